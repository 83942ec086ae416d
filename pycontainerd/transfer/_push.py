"""Push an image from a content store to a registry, children before parents.

Layers and configs go first (in parallel), then manifests, then the index
that names them, so a registry never sees a document whose references it
does not hold.  A blob that a pull fetched from another repository of the
same registry is mounted from there (the ``distribution.source`` label)
rather than uploaded again.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from .. import platforms
from ..content import Provider, open_blob, read_blob
from ..content import Store as ContentStore
from ..errors import Canceled, NotFound
from ..images import Descriptor, walk
from ..images import mediatypes as mt
from ..reference import parse as parse_reference
from ..remotes import Resolver
from ._pull import SOURCE_LABEL_PREFIX, source_host
from .progress import Progress, ProgressFunc, Throttle, discard, ref_key

__all__ = ["PushOptions", "push", "push_order"]


@dataclass(frozen=True)
class PushOptions:
    matcher: platforms.Matcher = field(default_factory=lambda: platforms.ALL)
    max_concurrent: int = 4


def push_order(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> list[Descriptor]:
    """Every descriptor to push, each after all of its children; NotFound names what is missing."""
    order: list[Descriptor] = []
    seen: set[str] = set()

    def visit(desc: Descriptor, context: str) -> None:
        if desc.digest in seen:
            return
        seen.add(desc.digest)
        m = desc.media_type
        if mt.is_index(m) or mt.is_manifest(m):
            try:
                data = read_blob(provider, desc.digest)
            except NotFound:
                raise NotFound(f"{context}{desc.digest} ({m}) is not in the content store") from None
            children = walk.children(desc, data)
            if mt.is_index(m):
                children = walk.filter_platforms(children, matcher)
            for child in children:
                where = f"{platforms.format(child.platform)}: " if child.platform is not None else context
                visit(child, where)
        order.append(desc)

    visit(target, "")
    return order


def push(
    resolver: Resolver,
    ref: str,
    store: ContentStore,
    target: Descriptor,
    opts: PushOptions | None = None,
    *,
    progress: ProgressFunc = discard,
    cancel: threading.Event | None = None,
) -> None:
    """Push ``target`` and everything it references (for the matching platforms) to ``ref``."""
    opts = opts or PushOptions()
    cancel = cancel or threading.Event()
    order = push_order(store, target, opts.matcher)
    pusher = resolver.pusher(ref)
    named = parse_reference(ref)
    source_key = SOURCE_LABEL_PREFIX + source_host(named.domain)
    progress(Progress(event=f"Pushing to {ref}"))
    for desc in order:
        progress(Progress(event="waiting", name=ref_key(desc), total=desc.size, desc=desc))

    def one(desc: Descriptor) -> None:
        if cancel.is_set():
            raise Canceled(f"push to {ref} canceled")
        mounts: list[str] = []
        try:
            sources = store.info(desc.digest).labels.get(source_key, "")
        except NotFound:
            sources = ""
        mounts = [r for r in sources.split(",") if r and r != named.path]
        throttle = Throttle()
        name = ref_key(desc)

        def on_read(offset: int) -> None:
            if cancel.is_set():
                raise Canceled(f"push to {ref} canceled")
            if throttle.due():
                progress(Progress(event="uploading", name=name, progress=offset, total=desc.size, desc=desc))

        def blob() -> BinaryIO:
            return open_blob(store, desc.digest, on_read)

        # Documents other than the target go by digest; the target takes the reference's tag.
        by = pusher if desc.digest == target.digest else resolver.pusher(f"{named.name}@{desc.digest}")
        outcome = by.push(desc, blob, mounts)
        event = {"exists": "already exists", "mounted": "mounted"}.get(outcome, "complete")
        progress(Progress(event=event, name=name, progress=desc.size, total=desc.size, desc=desc))

    blobs = [d for d in order if not (mt.is_index(d.media_type) or mt.is_manifest(d.media_type))]
    documents = [d for d in order if mt.is_index(d.media_type) or mt.is_manifest(d.media_type)]
    with ThreadPoolExecutor(max_workers=max(1, opts.max_concurrent), thread_name_prefix="push") as pool:
        futures = [pool.submit(one, d) for d in blobs]
        try:
            for f in futures:
                f.result()
        except BaseException:
            cancel.set()
            raise
    for d in documents:  # in order: children first, the target last
        one(d)
    progress(Progress(event=f"Completed push to {ref}", desc=target))
