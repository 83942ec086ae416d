"""Builds as a service of the daemon: a spooled context in, an image (named or dangling) out.

One build runs under a lease for all it writes; its steps' images stay in
the layer cache's own lease, the final image gets a record (the ``t``
names, else Docker's dangling name) before the build's lease goes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from pycontainerd.client import Client

from .._commit import ImageCommitter
from .._events import EventLog
from .._images import ImageService
from .._progress import Message
from .._refs import familiar, parse_docker
from ._cache import LayerCache
from ._context import extract_context
from ._executor import Builder, BuildOptions
from ._parser import parse_dockerfile

__all__ = ["BuildService"]


class BuildService:
    def __init__(
        self, client: Client, images: ImageService, *, snapshotter: str = "", events: EventLog | None = None
    ) -> None:
        self._client = client
        self._images = images
        self._snapshotter = snapshotter
        self._events = events if events is not None else EventLog()

    def build(
        self, upload: BinaryIO, options: BuildOptions, emit: Callable[[Message], None], cancel: threading.Event
    ) -> str:
        """Build the context in ``upload``; the image ID.  Raises with Docker's message when a step fails.

        Nothing is emitted before the Dockerfile parsed, so a bad context or
        Dockerfile is the request's own error status.
        """
        tags = [parse_docker(t) for t in options.tags]
        context = extract_context(upload)
        try:
            df = parse_dockerfile(context.read_dockerfile(options.dockerfile))
            with self._client.lease() as leased:
                committer = ImageCommitter(leased, self._snapshotter)
                builder = Builder(
                    leased, self._images, committer, options=options, context=context, emit=emit, cancel=cancel
                )
                image_id, committed = builder.build(df)
                if committed is not None:
                    digest = committed.manifest.digest
                    if not any(r.target.digest == digest for r in leased.images.list()):
                        committer.record(committed)
        finally:
            context.close()
        emit({"aux": {"ID": image_id}})

        def say(text: str) -> None:
            if not options.quiet:
                emit({"stream": text})

        say(f"Successfully built {image_id.partition(':')[2][:12]}\n")
        for ref in tags:
            self._images.tag(image_id, str(ref), "")
            say(f"Successfully tagged {familiar(ref)}\n")
        if options.quiet:
            emit({"stream": f"{image_id}\n"})
        return image_id

    def prune(self) -> dict[str, Any]:
        """``POST /build/prune``: the layer cache forgotten."""
        ids, size = LayerCache(self._client, self._snapshotter or self._client.default_snapshotter()).prune()
        return {"CachesDeleted": ids, "SpaceReclaimed": size}
