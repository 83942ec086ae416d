"""The Transfer gRPC service: containerd.services.transfer.v1, pull and push in the daemon.

A transfer names a source and a destination as ``Any`` objects:
``OCIRegistry`` → ``ImageStore`` is a pull, ``ImageStore`` → ``OCIRegistry``
a push.  The work runs on threads (:mod:`pycontainerd.transfer`); its
progress goes back on the client's progress stream and its credential
questions on the client's auth stream (both opened on the Streaming service),
so the client's secrets never have to be stored in the daemon.  A push of
a migrated image makes its layer blobs first, here, where its snapshots are
(:mod:`pycontainerd.migrate.ondemand`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import empty_pb2

from .. import platforms
from ..api import typeurl
from ..api.convert import descriptor_to_pb
from ..api.services.transfer.v1 import transfer_pb2 as pb
from ..api.services.transfer.v1 import transfer_pb2_grpc as pb_grpc
from ..api.types import platform_pb2
from ..api.types.transfer import imagestore_pb2, progress_pb2, registry_pb2
from ..diff.local import LocalDiffer
from ..errors import InvalidArgument, NotFound, NotImplementedYet
from ..metadata import DB
from ..metadata.content import ContentStore
from ..metadata.images import ImageStore
from ..metadata.snapshots import SnapshotStore
from ..remotes.docker import DockerResolver, HostOptions
from ..streaming import Manager, Stream
from ..transfer import FetchOptions, Progress, PushOptions, pull, push
from ..unpack import UnpackTarget
from .rpc import guarded, namespace_and_lease, offload

__all__ = ["TransferService"]

log = logging.getLogger("pycontainerd.transfer")

LEASE_EXPIRY = timedelta(hours=24)
AUTH_TIMEOUT = 60.0


def matcher_for(ps: list[platforms.Platform]) -> platforms.Matcher:
    """As containerd's image store: the platforms in order of preference, or every platform when none."""
    return platforms.ordered(*ps) if ps else platforms.ALL


def _unpack_matcher(p: platform_pb2.Platform) -> platforms.Matcher:
    """An unpack's platform; none given means this host's."""
    if not p.os and not p.architecture:
        return platforms.default_matcher()
    return platforms.only(platforms.Platform(p.os, p.architecture, p.variant))


def _platforms(msgs: object) -> list[platforms.Platform]:
    out = []
    for m in msgs:  # type: ignore[attr-defined]
        if not m.os or not m.architecture:
            raise InvalidArgument("a platform needs an os and an architecture")
        out.append(platforms.normalize(platforms.Platform(m.os, m.architecture, m.variant)))
    return out


class _Progress:
    """Progress events from worker threads, sent in order on the client's stream."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: Stream | None) -> None:
        self._loop = loop
        self._stream = stream
        self._queue: asyncio.Queue[Progress | None] = asyncio.Queue()
        self._task = loop.create_task(self._send()) if stream is not None else None

    def __call__(self, p: Progress) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, p)

    async def _send(self) -> None:
        assert self._stream is not None
        while (p := await self._queue.get()) is not None:
            msg = progress_pb2.Progress(
                event=p.event, name=p.name, parents=list(p.parents), progress=p.progress, total=p.total
            )
            if p.desc is not None:
                msg.desc.CopyFrom(descriptor_to_pb(p.desc))
            try:
                await self._stream.send(typeurl.pack(msg))
            except Exception as e:  # the client stopped listening; the transfer goes on
                log.debug("progress stream: %s", e)
                return

    async def finish(self) -> None:
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        assert self._stream is not None
        self._stream.close()


def _credentials(
    loop: asyncio.AbstractEventLoop, stream: Stream, reference: str
) -> Callable[[str], tuple[str, str] | None]:
    """Ask the client for credentials, from a worker thread, over its auth stream."""
    lock = threading.Lock()

    async def ask(host: str) -> registry_pb2.AuthResponse:
        await stream.send(typeurl.pack(registry_pb2.AuthRequest(host=host, reference=reference)))
        return typeurl.unpack(await stream.recv(), registry_pb2.AuthResponse)

    def credentials(host: str) -> tuple[str, str] | None:
        with lock:
            resp = asyncio.run_coroutine_threadsafe(ask(host), loop).result(AUTH_TIMEOUT)
        if resp.authType == registry_pb2.CREDENTIALS:
            return resp.username, resp.secret
        if resp.authType == registry_pb2.REFRESH:
            return "<token>", resp.secret
        return None

    return credentials


class TransferService(pb_grpc.TransferServicer):
    def __init__(
        self, db: DB, streams: Manager, default_snapshotter: str = "overlayfs", hosts: HostOptions | None = None
    ) -> None:
        """``hosts``: the timeouts and retries every registry gets, and the hosts directory of requests naming none."""
        self._default_snapshotter = default_snapshotter
        self._hosts = hosts or HostOptions()
        self._db = db
        self._streams = streams

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_TransferServicer_to_server(guarded(self), server)

    def _resolver(
        self, namespace: str, src: registry_pb2.RegistryResolver, reference: str, loop: asyncio.AbstractEventLoop
    ) -> DockerResolver:
        credentials = None
        if src.auth_stream:
            credentials = _credentials(loop, self._streams.get(namespace, src.auth_stream), reference)
        if src.default_scheme not in ("", "http", "https"):
            raise InvalidArgument(f"default_scheme {src.default_scheme!r}: want http or https")
        hosts = replace(
            self._hosts,
            plain_http=src.default_scheme == "http",
            headers=dict(src.headers),
            hosts_dir=src.host_dir or self._hosts.hosts_dir,
        )
        return DockerResolver(hosts, credentials=credentials)

    async def Transfer(self, request: pb.TransferRequest, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        namespace, lease = namespace_and_lease(context)
        kinds = (registry_pb2.OCIRegistry, imagestore_pb2.ImageStore)
        src = typeurl.unpack_one_of(request.source, kinds)
        dst = typeurl.unpack_one_of(request.destination, kinds)
        loop = asyncio.get_running_loop()
        stream = None
        if request.options.progress_stream:
            stream = self._streams.get(namespace, request.options.progress_stream)
        progress = _Progress(loop, stream)
        cancel = threading.Event()
        try:
            if isinstance(src, registry_pb2.OCIRegistry) and isinstance(dst, imagestore_pb2.ImageStore):
                work = self._pull(namespace, lease, src=src, dst=dst, loop=loop, progress=progress, cancel=cancel)
            elif isinstance(src, imagestore_pb2.ImageStore) and isinstance(dst, registry_pb2.OCIRegistry):
                work = self._push(namespace, src, dst, loop=loop, progress=progress, cancel=cancel)
            else:
                raise NotImplementedYet(
                    f"transfer from {typeurl.name_of(request.source)} to {typeurl.name_of(request.destination)}"
                    " is not supported"
                )
            await offload(work)
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            await progress.finish()
        return empty_pb2.Empty()

    def _pull(
        self,
        namespace: str,
        lease: str | None,
        *,
        src: registry_pb2.OCIRegistry,
        dst: imagestore_pb2.ImageStore,
        loop: asyncio.AbstractEventLoop,
        progress: _Progress,
        cancel: threading.Event,
    ) -> Callable[[], None]:
        if not src.reference:
            raise InvalidArgument("OCIRegistry.reference is required")
        unpacks = [(u.snapshotter or self._default_snapshotter, _unpack_matcher(u.platform)) for u in dst.unpacks]
        for sn_name, _ in unpacks:
            self._db.snapshotter(sn_name, namespace)  # an unknown snapshotter fails before any fetch
        if len(dst.extra_references):
            raise NotImplementedYet("extra image references are not supported yet")
        resolver = self._resolver(namespace, src.resolver, src.reference, loop)
        opts = FetchOptions(
            matcher=matcher_for(_platforms(dst.platforms)),
            all_metadata=dst.all_metadata,
            manifest_limit=dst.manifest_limit,
            labels=dict(dst.labels),
        )

        def work() -> None:
            with resolver, self._lease(namespace, lease) as held:
                content = self._db.content(namespace, held)
                targets = [
                    UnpackTarget(self._db.snapshotter(sn_name, namespace, held), sn_name, LocalDiffer(content), matcher)
                    for sn_name, matcher in unpacks
                ]
                # Layers are unpacked as they arrive; the image is recorded once all is done.
                pull(
                    resolver,
                    src.reference,
                    content,
                    self._db.images(namespace),
                    opts,
                    progress=progress,
                    cancel=cancel,
                    name=dst.name,
                    unpack=targets,
                )

        return work

    def _push(
        self,
        namespace: str,
        src: imagestore_pb2.ImageStore,
        dst: registry_pb2.OCIRegistry,
        *,
        loop: asyncio.AbstractEventLoop,
        progress: _Progress,
        cancel: threading.Event,
    ) -> Callable[[], None]:
        if not src.name:
            raise InvalidArgument("ImageStore.name is required")
        if not dst.reference:
            raise InvalidArgument("OCIRegistry.reference is required")
        resolver = self._resolver(namespace, dst.resolver, dst.reference, loop)
        ps = _platforms(src.platforms)
        opts = PushOptions(matcher=matcher_for(ps))

        def work() -> None:
            from ..migrate.ondemand import materialize

            image = self._db.images(namespace).get(src.name)
            stores = _Stores(self._db, namespace, self._default_snapshotter)
            image = materialize(stores, image, progress=progress, cancel=cancel)
            with resolver:
                push(
                    resolver,
                    dst.reference,
                    self._db.content(namespace),
                    image.target,
                    opts,
                    progress=progress,
                    cancel=cancel,
                )

        return work

    def _lease(self, namespace: str, lease: str | None) -> _HeldLease:
        return _HeldLease(self._db, namespace, lease)


class _Stores:
    """One namespace of the daemon's stores, as :class:`~pycontainerd.migrate.ondemand.Stores` sees a daemon."""

    def __init__(self, db: DB, namespace: str, default_snapshotter: str, lease: str | None = None) -> None:
        self._db = db
        self._namespace = namespace
        self._default = default_snapshotter
        self._lease = lease

    @property
    def content(self) -> ContentStore:
        return self._db.content(self._namespace, self._lease)

    @property
    def images(self) -> ImageStore:
        return self._db.images(self._namespace)

    def snapshotter(self, name: str = "") -> SnapshotStore:
        return self._db.snapshotter(name or self._default, self._namespace, self._lease)

    @contextlib.contextmanager
    def lease(self) -> Iterator[_Stores]:
        """The same stores under a temporary lease (a day's expiry), removed after the block."""
        with _HeldLease(self._db, self._namespace, None) as held:
            yield _Stores(self._db, self._namespace, self._default, held)


class _HeldLease:
    """The caller's lease, or a temporary one (expiring in a day) removed when the work is done."""

    def __init__(self, db: DB, namespace: str, lease: str | None) -> None:
        self._db = db
        self._namespace = namespace
        self._given = lease
        self._made: str | None = None

    def __enter__(self) -> str:
        if self._given:
            return self._given
        expire = (datetime.now(UTC) + LEASE_EXPIRY).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._made = f"transfer-{uuid.uuid4().hex}"
        self._db.leases(self._namespace).create(self._made, {"containerd.io/gc.expire": expire})
        return self._made

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._made is not None:
            try:
                self._db.leases(self._namespace).delete(self._made)
            except NotFound:
                pass
            except Exception as e:
                if exc_type is None:
                    raise
                # The transfer's own failure is the one to report (a full disk can fail both); the lease
                # is removed once the store takes writes again.
                log.warning("transfer lease %s not removed yet: %s", self._made, e)
                threading.Thread(target=self._remove_later, name="lease-retry", daemon=True).start()

    def _remove_later(self, every: float = 1.0, tries: int = 3600) -> None:
        assert self._made is not None
        for _ in range(tries):
            time.sleep(every)
            try:
                self._db.leases(self._namespace).delete(self._made)
                return
            except NotFound:
                return
            except Exception as e:
                log.debug("transfer lease %s not removed yet: %s", self._made, e)
