"""Pull and push from a client: in the daemon when it has a Transfer service, here otherwise.

A daemon with containerd's Transfer service (pycontainerd, containerd 1.7+)
does the work itself, so layer bytes never cross the socket; the client
opens two streams on the Streaming service beforehand, one on which the
daemon reports progress and one on which it asks for credentials, which
therefore stay in the client.  Against a daemon without it (containerd 1.6)
the same transfer code runs here, over the Content and Images APIs and under
a lease, as containerd 1.x's own clients do.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2

from .. import platforms
from ..api import typeurl
from ..api.convert import descriptor_from_pb
from ..api.services.introspection.v1 import introspection_pb2, introspection_pb2_grpc
from ..api.services.streaming.v1 import streaming_pb2, streaming_pb2_grpc
from ..api.services.transfer.v1 import transfer_pb2, transfer_pb2_grpc
from ..api.types import platform_pb2
from ..api.types.transfer import imagestore_pb2, progress_pb2, registry_pb2
from ..errors import InvalidArgument
from ..reference import parse_normalized
from ..transfer.progress import Progress, ProgressFunc, ref_key
from ._rpc import Connection, translated

if TYPE_CHECKING:  # the client-side transfers' modules load only when one runs
    from ..images import Image
    from ..remotes.docker import DockerResolver
    from ..unpack import UnpackResult

__all__ = ["Credentials", "RegistryOptions", "has_transfer", "pull", "push"]

Credentials = Callable[[str], tuple[str, str] | None]
_END = object()


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach a registry: the client's side of containerd's RegistryResolver."""

    plain_http: bool = False
    credentials: Credentials | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hosts_dir: str = ""  # containerd's certs.d layout: <dir>/<host>/hosts.toml and *.crt
    timeout: float = 30.0  # client-side transfers only: the daemon keeps its own

    def resolver(self) -> DockerResolver:
        from ..remotes.docker import DockerResolver, HostOptions

        hosts = HostOptions(
            plain_http=self.plain_http, headers=dict(self.headers), hosts_dir=self.hosts_dir, timeout=self.timeout
        )
        return DockerResolver(hosts, self.credentials)


class _Stream:
    """A named stream on the daemon's Streaming service."""

    def __init__(self, conn: Connection) -> None:
        self.id = uuid.uuid4().hex
        self._out: queue.Queue[object] = queue.Queue()
        stub = conn.stub(streaming_pb2_grpc.StreamingStub)
        self._out.put(typeurl.pack(streaming_pb2.StreamInit(id=self.id)))
        with translated():
            self._call = stub.Stream(iter(self._out.get, _END), metadata=conn.metadata)
            next(self._call)  # registered: the daemon's acknowledgement

    def send(self, message: any_pb2.Any) -> None:
        self._out.put(message)

    def __iter__(self) -> Iterator[any_pb2.Any]:
        try:
            yield from self._call
        except grpc.RpcError:
            return  # cancelled by close(), or the daemon went away: the transfer call reports that

    def close(self) -> None:
        self._out.put(_END)
        self._call.cancel()


def _platform_pb(p: platforms.Platform) -> platform_pb2.Platform:
    return platform_pb2.Platform(os=p.os, architecture=p.architecture, variant=p.variant)


def _progress_from_pb(m: progress_pb2.Progress) -> Progress:
    return Progress(
        event=m.event,
        name=m.name,
        parents=tuple(m.parents),
        progress=m.progress,
        total=m.total,
        desc=descriptor_from_pb(m.desc) if m.HasField("desc") else None,
    )


def _watch(stream: _Stream, progress: ProgressFunc) -> threading.Thread:
    def run() -> None:
        for a in stream:
            if typeurl.is_type(a, progress_pb2.Progress):
                progress(_progress_from_pb(typeurl.unpack(a, progress_pb2.Progress)))

    t = threading.Thread(target=run, name="transfer-progress", daemon=True)
    t.start()
    return t


def _answer(stream: _Stream, credentials: Credentials) -> threading.Thread:
    def run() -> None:
        for a in stream:
            if not typeurl.is_type(a, registry_pb2.AuthRequest):
                continue
            req = typeurl.unpack(a, registry_pb2.AuthRequest)
            try:
                found = credentials(req.host)
            except Exception:  # a failing credential helper means "no credentials", as in containerd
                found = None
            if found is None:
                resp = registry_pb2.AuthResponse(authType=registry_pb2.NONE)
            else:
                resp = registry_pb2.AuthResponse(authType=registry_pb2.CREDENTIALS, username=found[0], secret=found[1])
            stream.send(typeurl.pack(resp))

    t = threading.Thread(target=run, name="transfer-auth", daemon=True)
    t.start()
    return t


def has_transfer(conn: Connection) -> bool:
    """Whether the daemon serves containerd's Transfer service (containerd 1.6 does not)."""
    stub = conn.stub(introspection_pb2_grpc.IntrospectionStub)
    req = introspection_pb2.PluginsRequest(filters=["type==io.containerd.grpc.v1,id==transfer"])
    resp = conn.unary(stub.Plugins, req)
    return any(not p.HasField("init_err") for p in resp.plugins)


def _transfer(
    conn: Connection,
    source: Any,
    destination: Any,
    *,
    registry: RegistryOptions,
    remote: registry_pb2.OCIRegistry,
    progress: ProgressFunc | None,
) -> None:
    streams: list[_Stream] = []
    watcher: threading.Thread | None = None
    try:
        req = transfer_pb2.TransferRequest()
        if progress is not None:
            s = _Stream(conn)
            streams.append(s)
            watcher = _watch(s, progress)
            req.options.progress_stream = s.id
        if registry.credentials is not None:
            s = _Stream(conn)
            streams.append(s)
            _answer(s, registry.credentials)
            remote.resolver.auth_stream = s.id  # the message itself: protobuf copies on assignment
        req.source.CopyFrom(typeurl.pack(source))
        req.destination.CopyFrom(typeurl.pack(destination))
        stub = conn.stub(transfer_pb2_grpc.TransferStub)
        with translated():
            stub.Transfer(req, metadata=conn.metadata)  # no deadline: a pull takes as long as it takes
        if watcher is not None:
            watcher.join(5.0)  # the daemon closes the progress stream after the last event
    finally:
        for s in streams:
            s.close()


def _resolver_msg(registry: RegistryOptions) -> registry_pb2.RegistryResolver:
    return registry_pb2.RegistryResolver(
        default_scheme="http" if registry.plain_http else "",
        headers=dict(registry.headers),
        host_dir=os.path.abspath(registry.hosts_dir) if registry.hosts_dir else "",
    )


def pull(
    client: Any,
    ref: str,
    *,
    platform_list: Sequence[platforms.Platform] = (),
    all_platforms: bool = False,
    all_metadata: bool = False,
    registry: RegistryOptions | None = None,
    labels: dict[str, str] | None = None,
    progress: ProgressFunc | None = None,
    local: bool = False,
    unpack: bool = False,
    snapshotter: str = "",
) -> Image:
    """Fetch ``ref``, record it under its normalised name and, with ``unpack``, unpack it; returns the record."""
    registry = registry or RegistryOptions()
    name = str(parse_normalized(ref))
    if all_platforms and platform_list:
        raise InvalidArgument("cannot pull both some platforms and all platforms")
    wanted = [] if all_platforms else list(platform_list) or [platforms.default()]
    if not local and has_transfer(client.connection):
        src = registry_pb2.OCIRegistry(reference=name, resolver=_resolver_msg(registry))
        # As in containerd's image store, no platforms means every platform.
        dst = imagestore_pb2.ImageStore(name=name, labels=labels or {}, all_metadata=all_metadata)
        dst.platforms.extend(_platform_pb(p) for p in wanted)
        if unpack:
            target = wanted[0] if wanted else platforms.default()
            dst.unpacks.append(
                imagestore_pb2.UnpackConfiguration(platform=_platform_pb(target), snapshotter=snapshotter)
            )
        _transfer(client.connection, src, dst, registry=registry, remote=src, progress=progress)
        return client.images.get(name)  # type: ignore[no-any-return]
    from ..diff.proxy import ProxyDiffer
    from ..transfer import FetchOptions
    from ..transfer import pull as local_pull
    from ..unpack import UnpackTarget

    matcher = platforms.ordered(*wanted) if wanted else platforms.ALL
    opts = FetchOptions(matcher=matcher, all_metadata=all_metadata, labels=labels or {})
    report = progress or _ignore
    with registry.resolver() as resolver, client.lease() as leased:
        targets = []
        if unpack:  # layers unpacked as they arrive, through the daemon's Snapshots and Diff services
            sn = snapshotter or leased.default_snapshotter()
            only = platforms.only(wanted[0]) if wanted else None
            targets.append(UnpackTarget(leased.snapshotter(sn), sn, ProxyDiffer(leased.connection), only))
        return local_pull(
            resolver, name, leased.content, leased.images, opts, progress=report, name=name, unpack=targets
        )


def unpack_image(
    client: Any,
    image: Image,
    platform: platforms.Platform | None = None,
    snapshotter: str = "",
    progress: ProgressFunc | None = None,
) -> UnpackResult:
    """Unpack ``image`` from the client side: the daemon's Snapshots and Diff services do the disk work.

    ``client`` should hold a lease, so layers half unpacked by a failure are collected.
    """
    from ..diff.proxy import ProxyDiffer
    from ..unpack import unpack as run_unpack

    name = snapshotter or client.default_snapshotter()
    report = progress or _ignore
    return run_unpack(
        client.content,
        client.snapshotter(name),
        name,
        ProxyDiffer(client.connection),
        image.target,
        matcher=platforms.only(platform) if platform else None,
        progress=lambda e: report(Progress(event=e.state, name=ref_key(e.layer), desc=e.layer)),
    )


def push(
    client: Any,
    ref: str,
    image: str = "",
    *,
    platform_list: Sequence[platforms.Platform] = (),
    registry: RegistryOptions | None = None,
    progress: ProgressFunc | None = None,
    local: bool = False,
) -> None:
    """Push the image record ``image`` (default: ``ref`` itself) to ``ref``."""
    registry = registry or RegistryOptions()
    target_ref = str(parse_normalized(ref))
    source = image or target_ref
    if not local and has_transfer(client.connection):
        src = imagestore_pb2.ImageStore(name=source)
        src.platforms.extend(_platform_pb(p) for p in platform_list)
        dst = registry_pb2.OCIRegistry(reference=target_ref, resolver=_resolver_msg(registry))
        _transfer(client.connection, src, dst, registry=registry, remote=dst, progress=progress)
        return
    from ..migrate.ondemand import materialize
    from ..transfer import PushOptions
    from ..transfer import push as local_push

    # A migrated image's layer blobs are made here first (the daemon's would, with a Transfer service).
    record = materialize(client, client.images.get(source), progress=progress)
    matcher = platforms.any_of(*platform_list) if platform_list else platforms.ALL
    with registry.resolver() as resolver:
        local_push(
            resolver,
            target_ref,
            client.content,
            record.target,
            PushOptions(matcher=matcher),
            progress=progress or _ignore,
        )


def _ignore(_: Progress) -> None:
    pass
