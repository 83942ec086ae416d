"""Fetch an image from a registry into a content store, and record it.

The walk is containerd's: resolve the reference to a root descriptor, fetch
it, read its children (an index's manifests, a manifest's config and
layers), keep the manifests for the wanted platforms, and fetch those in
turn.  Manifests and indexes are small: they are fetched into memory,
checked against their digest and committed with the gc labels that name
their children, so garbage collection keeps exactly what the image needs.
Layers stream into resumable ingests named by :func:`ref_key`; a pull that
was interrupted resumes from the offset each ingest reached.

A pull can unpack as it goes (:class:`~pycontainerd.unpack.Unpacker`): each
blob is announced once it is in the store, and layers are applied while
later ones are still downloading; the image record is written once both the
fetch and the unpacks have succeeded, as containerd's pull does.  Where the
store can show an ingest as it is written (the daemon's local store), a
layer is applied while it downloads: the unpack checks its diffID against
the verified config, so it needs no digest-checked blob to trust it.

The same code runs in the daemon (server-side pull, over the local store)
and in clients (over the Content API), as containerd's does.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from .. import limits, platforms
from .._kmutex import KeyedMutex
from ..content import Following, ReaderAt, Writer, read_blob, validate_digest
from ..content import Store as ContentStore
from ..content.helpers import ensure_labels, open_writer
from ..errors import (
    AlreadyExists,
    Canceled,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    ResourceExhausted,
)
from ..images import Descriptor, Image, save, walk
from ..images import Store as ImageStore
from ..images import mediatypes as mt
from ..metrics import REGISTRY
from ..reference import parse as parse_reference
from ..remotes import Fetcher, ReadStream, Resolver
from .progress import Progress, ProgressFunc, Throttle, discard, ref_key

if TYPE_CHECKING:
    from ..unpack import UnpackTarget

__all__ = ["FetchOptions", "distribution_source_label", "fetch", "pull", "source_host"]

SOURCE_LABEL_PREFIX = "containerd.io/distribution.source."
COPY_BUFFER = 1 << 20
CANCEL_POLL = 0.1  # seconds between looks at the cancel event while blobs download
_FETCHING = KeyedMutex()

_PULLS = REGISTRY.gauge("pycontainerd_pulls_in_progress", "Pulls and fetches from registries running now.")
_PULLED = REGISTRY.counter("pycontainerd_pulls_total", "Pulls and fetches finished, by result.", ("result",))
_FETCHED = REGISTRY.counter(
    "pycontainerd_fetched_bytes_total", "Bytes received from registries: manifests, indexes, configs and layers."
)


@contextlib.contextmanager
def _counted() -> Iterator[None]:
    """Count one pull while it runs and by how it ended."""
    running = _PULLS.labels()
    running.inc()
    result = "error"
    try:
        yield
        result = "ok"
    finally:
        running.dec()
        _PULLED.labels(result).inc()


@dataclass(frozen=True)
class FetchOptions:
    """What to fetch of a multi-platform image, and how many blobs at once."""

    matcher: platforms.Matcher = field(default_factory=platforms.default_matcher)
    all_metadata: bool = False  # every platform's manifest and config, layers only for matching ones
    manifest_limit: int = 0  # keep the n best matching manifests of an index; 0 keeps all that match
    max_concurrent: int = 8
    labels: Mapping[str, str] = field(default_factory=dict)  # image labels, for pull


def distribution_source_label(name: str) -> tuple[str, str]:
    """The label a pull sets on every blob it fetches: which repository it came from.

    A push to the same registry later mounts the blob from there instead of
    uploading it again.
    """
    ref = parse_reference(name)
    return SOURCE_LABEL_PREFIX + source_host(ref.domain), ref.path


def source_host(domain: str) -> str:
    """A registry's name in the source label: without its port, as containerd keys it."""
    if domain.startswith("["):
        return domain[: domain.index("]") + 1]
    return domain.rsplit(":", 1)[0]


def _merge_sources(existing: str, repo: str) -> str:
    repos = [r for r in existing.split(",") if r]
    if repo not in repos:
        repos.append(repo)
    return ",".join(sorted(repos))


class LayerFollower(Protocol):
    """Who reads layers while they download (an unpack): told when a layer's bytes start and grow."""

    def receiving(self, desc: Descriptor, reader: ReaderAt, offset: int) -> None:
        """``reader`` shows the layer's ingest, ``offset`` bytes of it written so far."""

    def received(self, desc: Descriptor, offset: int) -> None:
        """``offset`` bytes of the layer are written."""


class _Fetch:
    """One fetch: the walk, the pool of workers and the shared state."""

    def __init__(
        self,
        name: str,
        fetcher: Fetcher,
        store: ContentStore,
        *,
        opts: FetchOptions,
        progress: ProgressFunc,
        cancel: threading.Event,
        stored: Callable[[Descriptor], None] | None = None,
    ) -> None:
        self.name = name
        self.fetcher = fetcher
        self.store = store
        self.opts = opts
        self.progress = progress
        self.cancel = cancel
        self.stored = stored or _ignore_descriptor
        self.follower: LayerFollower | None = None
        self._streams: set[ReadStream] = set()
        self._streams_lock = threading.Lock()
        self.source_key, self.source_repo = distribution_source_label(name)

    # -- the walk ---------------------------------------------------------

    def run(self, root: Descriptor) -> None:
        seen = {root.digest}
        with ThreadPoolExecutor(max_workers=max(1, self.opts.max_concurrent), thread_name_prefix="fetch") as pool:
            pending: set[Future[list[tuple[Descriptor, bool, str]]]] = {pool.submit(self.handle, root, True, self.name)}
            try:
                while pending:
                    done, pending = wait(pending, timeout=CANCEL_POLL, return_when=FIRST_COMPLETED)
                    if self.cancel.is_set():
                        self.abort_streams()
                    for f in done:
                        for child, wanted, parent in f.result():
                            if child.digest in seen:
                                continue
                            seen.add(child.digest)
                            self.report("waiting", child, 0, parent)
                            pending.add(pool.submit(self.handle, child, wanted, parent))
            except BaseException:
                self.cancel.set()
                for f in pending:
                    f.cancel()
                self.abort_streams()
                raise

    @contextlib.contextmanager
    def open_stream(self, desc: Descriptor, offset: int = 0) -> Iterator[ReadStream]:
        """The remote's stream of ``desc``, aborted by :meth:`abort_streams` if the fetch is canceled meanwhile."""
        with self.fetcher.fetch(desc, offset) as stream:
            with self._streams_lock:
                self._streams.add(stream)
            try:
                yield stream
            finally:
                with self._streams_lock:
                    self._streams.discard(stream)

    def abort_streams(self) -> None:
        """Wake the workers blocked reading a stream, so a canceled fetch ends now rather than after the read."""
        with self._streams_lock:
            for stream in self._streams:
                stream.abort()

    def handle(self, desc: Descriptor, wanted: bool, parent: str) -> list[tuple[Descriptor, bool, str]]:
        """Fetch one blob; return the children to fetch next, each with whether its platform is wanted."""
        try:
            return self.handle_one(desc, wanted, parent)
        except Exception:
            self.check_canceled()  # a stream aborted by a cancel fails somehow: say it was canceled
            raise

    def handle_one(self, desc: Descriptor, wanted: bool, parent: str) -> list[tuple[Descriptor, bool, str]]:
        self.check_canceled()
        m = desc.media_type
        if mt.is_schema1(m):
            raise NotImplementedYet(f"{self.name}: Docker schema 1 manifests are not supported ({m})")
        if not (mt.is_index(m) or mt.is_manifest(m)):
            self.fetch_blob(desc, parent)
            self.stored(desc)
            return []
        data = self.fetch_document(desc, parent)
        children = walk.children(desc, data)
        self.commit_document(desc, data, walk.child_gc_labels(desc, children))
        self.stored(desc)
        me = ref_key(desc)
        if mt.is_index(m):
            if self.opts.all_metadata:
                return [(c, self.matches(c), me) for c in children]
            kept = walk.filter_platforms(children, self.opts.matcher)
            if self.opts.manifest_limit > 0:
                kept = walk.limit_manifests(kept, self.opts.matcher, self.opts.manifest_limit)
            return [(c, True, me) for c in kept]
        if wanted:
            return [(c, True, me) for c in children]
        return [(c, False, me) for c in children if mt.is_config(c.media_type)]

    def matches(self, desc: Descriptor) -> bool:
        return desc.platform is None or self.opts.matcher.match(desc.platform)

    def check_canceled(self) -> None:
        if self.cancel.is_set():
            raise Canceled(f"fetch of {self.name} canceled")

    def report(self, event: str, desc: Descriptor, progress: int, parent: str = "") -> None:
        self.progress(
            Progress(
                event=event,
                name=ref_key(desc),
                parents=(parent,) if parent else (),
                progress=progress,
                total=desc.size,
                desc=desc,
            )
        )

    # -- manifests and indexes: small, in memory --------------------------

    def fetch_document(self, desc: Descriptor, parent: str) -> bytes:
        limit = limits.current().max_manifest_size
        if desc.size > limit:
            raise limits.exceeded(
                f"{self.name}: {desc.media_type} {desc.digest} is {desc.size} bytes", "max_manifest_size", limit
            )
        try:
            info = self.store.info(desc.digest)
        except NotFound:
            pass
        else:
            if info.size == desc.size:
                self.report("already exists", desc, desc.size, parent)
                return read_blob(self.store, desc.digest)
        self.report("downloading", desc, 0, parent)
        with self.open_stream(desc) as stream:
            data = _read_at_most(stream, desc.size + 1)
        _FETCHED.inc(len(data))
        verify(self.name, desc, data)
        self.report("complete", desc, desc.size, parent)
        return data

    def commit_document(self, desc: Descriptor, data: bytes, labels: dict[str, str]) -> None:
        try:
            w = open_writer(self.store, ref_key(desc), total=desc.size, expected=desc.digest)
        except AlreadyExists:
            self.update_labels(desc, labels)
            return
        try:
            if w.status().offset:
                w.truncate(0)
            w.write(data)
            w.commit(size=desc.size, expected=desc.digest, labels={**labels, self.source_key: self.source_repo})
        except AlreadyExists:
            self.update_labels(desc, labels)
        finally:
            w.close()

    def update_labels(self, desc: Descriptor, wanted: Mapping[str, str]) -> None:
        """Add gc references and this repository as a source to a blob that already exists."""

        def merge(key: str, old: str, new: str) -> str:
            return _merge_sources(old, new) if key == self.source_key and old else new

        ensure_labels(self.store, desc.digest, {**wanted, self.source_key: self.source_repo}, merge)

    # -- layers and configs: streamed into resumable ingests ----------------

    def fetch_blob(self, desc: Descriptor, parent: str) -> None:
        # One fetch of a digest at a time in this process, as containerd's duplication suppressor: a parallel
        # pull of an image sharing the layer waits here, then finds the blob in the store.
        with _FETCHING.hold(desc.digest, self.cancel):
            self._fetch_blob(desc, parent)

    def _fetch_blob(self, desc: Descriptor, parent: str) -> None:
        ref = ref_key(desc)
        try:
            w = open_writer(self.store, ref, total=desc.size, expected=desc.digest)
        except AlreadyExists:
            self.update_labels(desc, {})
            self.report("already exists", desc, desc.size, parent)
            return
        try:
            offset = w.status().offset
            if offset > desc.size:
                w.truncate(0)
                offset = 0
            throttle = Throttle()
            self.report("downloading", desc, offset, parent)
            follower = self._follow(desc, w, offset)
            if offset < desc.size:
                fetched = _FETCHED.labels()
                with self.open_stream(desc, offset) as stream:
                    buf = bytearray(min(COPY_BUFFER, max(desc.size - offset, 1)))
                    view = memoryview(buf)
                    while offset < desc.size:
                        self.check_canceled()
                        n = stream.readinto(view[: min(len(buf), desc.size - offset)])
                        if n <= 0:
                            break
                        try:
                            w.write(view[:n])  # type: ignore[arg-type]  # any buffer will do
                        except ResourceExhausted:
                            # The disk is full: what was written would only keep it full.  Dropping it
                            # can fail too (the metadata store cannot write); the write's error is the one to report.
                            with contextlib.suppress(Exception):
                                self.store.abort(ref)
                            raise
                        offset += n
                        fetched.inc(n)
                        if follower is not None:
                            follower.received(desc, offset)
                        if throttle.due():
                            self.report("downloading", desc, offset, parent)
            if offset < desc.size:
                raise FailedPrecondition(
                    f"{self.name}: {desc.digest} ended after {offset} of {desc.size} bytes; pull again to resume"
                )
            try:
                w.commit(size=desc.size, expected=desc.digest, labels={self.source_key: self.source_repo})
            except AlreadyExists:
                pass
            except FailedPrecondition as e:
                # Wrong bytes are no use to a resumed fetch: drop them.
                try:
                    self.store.abort(ref)
                except NotFound:
                    pass
                raise InvalidArgument(f"{self.name}: content of {desc.digest} does not match its digest ({e})") from e
        finally:
            w.close()
        self.report("complete", desc, desc.size, parent)

    def _follow(self, desc: Descriptor, w: Writer, offset: int) -> LayerFollower | None:
        """Let the follower read a layer as it downloads, when there is one and the store can show the ingest."""
        if self.follower is None or not mt.is_layer(desc.media_type) or not isinstance(w, Following):
            return None
        try:
            reader = w.reader()
        except NotImplementedYet:
            return None
        self.follower.receiving(desc, reader, offset)
        return self.follower


def _read_at_most(stream: ReadStream, limit: int) -> bytes:
    """Read to the end, but never more than ``limit`` bytes: a lying server cannot make us buffer more."""
    buf = bytearray(limit)
    view = memoryview(buf)
    got = 0
    while got < limit:
        n = stream.readinto(view[got:])
        if n <= 0:
            break
        got += n
    return bytes(view[:got])


def verify(name: str, desc: Descriptor, data: bytes) -> None:
    """A document must be exactly what its descriptor says: size first, then digest."""
    if len(data) != desc.size:
        raise InvalidArgument(f"{name}: {desc.digest}: got {len(data)} bytes, the descriptor says {desc.size}")
    validate_digest(desc.digest)
    algorithm, _, expected = desc.digest.partition(":")
    if hashlib.new(algorithm, data).hexdigest() != expected:
        raise InvalidArgument(f"{name}: content of {desc.digest} does not match its digest")


def _ignore_descriptor(_: Descriptor) -> None:
    pass


def _resolve(resolver: Resolver, ref: str, progress: ProgressFunc) -> tuple[str, Descriptor]:
    progress(Progress(event=f"Resolving from {ref}"))
    name, root = resolver.resolve(ref)
    if mt.is_schema1(root.media_type):
        raise NotImplementedYet(f"{name}: Docker schema 1 manifests are not supported ({root.media_type})")
    if not (mt.is_index(root.media_type) or mt.is_manifest(root.media_type)):
        raise InvalidArgument(f"{name}: unexpected media type {root.media_type!r} for an image")
    progress(Progress(event=f"Pulling from {name}"))
    return name, replace(root, annotations=dict(root.annotations))


def fetch(
    resolver: Resolver,
    ref: str,
    store: ContentStore,
    opts: FetchOptions | None = None,
    *,
    progress: ProgressFunc = discard,
    cancel: threading.Event | None = None,
) -> tuple[str, Descriptor]:
    """Fetch what ``ref`` names into ``store``; returns the resolved name and the root descriptor.

    Run it under a lease (or hold the result in an image record at once):
    until then nothing keeps the fetched blobs from garbage collection.
    """
    opts = opts or FetchOptions()
    with _counted():
        name, root = _resolve(resolver, ref, progress)
        job = _Fetch(
            name, resolver.fetcher(name), store, opts=opts, progress=progress, cancel=cancel or threading.Event()
        )
        job.run(root)
    return name, root


def pull(
    resolver: Resolver,
    ref: str,
    store: ContentStore,
    images: ImageStore,
    opts: FetchOptions | None = None,
    *,
    progress: ProgressFunc = discard,
    cancel: threading.Event | None = None,
    name: str = "",
    unpack: Sequence[UnpackTarget] = (),
) -> Image:
    """Fetch ``ref``, unpack it into each of ``unpack`` meanwhile, and create or update the image record ``name``.

    ``name`` defaults to the resolved name.  The record is written only once
    everything succeeded; run the pull under a lease, which holds what a
    failure leaves (blobs, snapshots) until it is released.  An unpack that
    fails stops the fetch, and its error is the one raised.
    """
    opts = opts or FetchOptions()
    cancel = cancel or threading.Event()
    with _counted():
        resolved, root = _resolve(resolver, ref, progress)
        job = _Fetch(resolved, resolver.fetcher(resolved), store, opts=opts, progress=progress, cancel=cancel)
        if unpack:
            _fetch_unpacking(job, root, unpack)
        else:
            job.run(root)
        image = Image(name=name or resolved, target=root, labels=dict(opts.labels))
        saved = save(images, image)
    progress(Progress(event="saved", name=saved.name, desc=root))
    progress(Progress(event=f"Completed pull from {resolved}"))
    return saved


def _fetch_unpacking(job: _Fetch, root: Descriptor, targets: Sequence[UnpackTarget]) -> None:
    """Run ``job`` with an :class:`Unpacker` following it; raise the failure that came first."""
    from ..unpack import Unpacker  # with the differ it brings: only pulls that unpack load it

    report = job.progress
    unpacker = Unpacker(
        job.store,
        root,
        targets,
        cancel=job.cancel,
        progress=lambda e: report(Progress(event=e.state, name=ref_key(e.layer), desc=e.layer)),
    )
    job.stored = unpacker.stored
    job.follower = unpacker
    try:
        job.run(root)
    except BaseException:
        unpacker.fetch_ended(False)
        unpacker.join()
        cause = unpacker.cause()
        if cause is not None:
            raise cause from None  # the fetch stopped because an unpack failed
        raise
    unpacker.fetch_ended(True)
    unpacker.wait()
