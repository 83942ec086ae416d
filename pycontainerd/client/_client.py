"""The client: one channel to a containerd (real or ours), seen through the same stores the daemon uses.

Each service's module is imported when the client first uses it, so a
short-lived program loads only what it calls.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING

import grpc
from google.protobuf import empty_pb2

from ..api.services.introspection.v1 import introspection_pb2 as introspection_pb
from ..api.services.introspection.v1 import introspection_pb2_grpc
from ..errors import NotFound
from ..namespaces import DEFAULT
from ._rpc import Connection, dial

if TYPE_CHECKING:
    from ..content.proxy import ContentStore
    from ..images import Image
    from ..platforms import Platform
    from ..snapshots.proxy import ProxySnapshotter
    from ..transfer import ProgressFunc
    from ..unpack import UnpackResult
    from ._containers import ContainerStore
    from ._events import EventService
    from ._images import ImageStore
    from ._leases import LeaseManager
    from ._namespaces import NamespaceStore
    from ._tasks import TaskService
    from ._transfer import RegistryOptions

__all__ = ["DEFAULT_TIMEOUT", "Client", "InitError", "PluginInfo"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_SNAPSHOTTER = "overlayfs"
DEFAULT_LEASE_EXPIRY = timedelta(hours=24)
SKIP_PLUGIN = "skip plugin"


@dataclass(frozen=True)
class InitError:
    """Why a plugin failed to load: a gRPC status code number and message."""

    code: int
    message: str


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as the daemon's Introspection service reports it."""

    type: str
    id: str
    requires: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    exports: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    init_error: InitError | None = None

    @property
    def status(self) -> str:
        """``ok``, ``skip`` (the plugin declined to load) or ``error``, as ctr shows them."""
        if self.init_error is None:
            return "ok"
        return "skip" if SKIP_PLUGIN in self.init_error.message else "error"


def _platform(p: object) -> str:
    os_, arch, variant = (getattr(p, k) for k in ("os", "architecture", "variant"))
    return "/".join(x for x in (os_, arch, variant) if x)


def _plugin(m: introspection_pb.Plugin) -> PluginInfo:
    err = InitError(m.init_err.code, m.init_err.message) if m.HasField("init_err") else None
    return PluginInfo(
        type=m.type,
        id=m.id,
        requires=tuple(m.requires),
        platforms=tuple(_platform(p) for p in m.platforms),
        exports=dict(m.exports),
        capabilities=tuple(m.capabilities),
        init_error=err,
    )


class Client:
    """A synchronous client for containerd's v1 API over a unix socket.

    Every call carries the client's namespace (and lease, if any).  Clients
    made by :meth:`with_namespace`, :meth:`with_lease` and :meth:`lease` share
    the channel of the client they come from; only that original client
    closes it.  The ``timeout`` bounds each call (for the Write stream, each
    reply); ``None`` waits forever.
    """

    def __init__(self, address: str, namespace: str = DEFAULT, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._address = address
        self._owner = True
        self._default_snapshotter: str | None = None
        channel = dial(address)
        try:
            self._conn = Connection(channel=channel, namespace=namespace, timeout=timeout or None)
        except BaseException:
            channel.close()
            raise

    @classmethod
    def _sharing(cls, parent: Client, conn: Connection) -> Client:
        child = cls.__new__(cls)
        child._address = parent._address
        child._default_snapshotter = parent._default_snapshotter
        child._owner = False
        child._conn = conn
        return child

    @property
    def address(self) -> str:
        return self._address

    @property
    def namespace(self) -> str:
        return self._conn.namespace

    @property
    def lease_id(self) -> str | None:
        """The lease every call carries, if any."""
        return self._conn.lease

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for services this client does not wrap."""
        return self._conn.channel

    @property
    def connection(self) -> Connection:
        return self._conn

    def with_namespace(self, namespace: str) -> Client:
        """The same channel, calls in ``namespace``."""
        return Client._sharing(self, self._conn.with_namespace(namespace))

    def with_lease(self, lease_id: str | None) -> Client:
        """The same channel, calls holding ``lease_id`` (``None``: no lease)."""
        return Client._sharing(self, self._conn.with_lease(lease_id))

    @contextlib.contextmanager
    def lease(
        self,
        expire: timedelta = DEFAULT_LEASE_EXPIRY,
        labels: Mapping[str, str] | None = None,
        *,
        sync: bool = False,
    ) -> Iterator[Client]:
        """Create a lease for the duration of the block and yield a client that holds it.

        What the block writes is protected from garbage collection until the
        lease is deleted on exit (or, if the process dies, until ``expire``).
        A lease that is already gone on exit is not an error.
        """
        held = self.leases.create_expiring(expire, labels)
        try:
            yield self.with_lease(held.id)
        finally:
            with contextlib.suppress(NotFound):
                self.leases.delete(held.id, sync=sync)

    # Services

    @property
    def namespaces(self) -> NamespaceStore:
        from ._namespaces import NamespaceStore

        return NamespaceStore(self._conn)

    @property
    def content(self) -> ContentStore:
        from ..content.proxy import ContentStore

        return ContentStore(self._conn)

    @property
    def images(self) -> ImageStore:
        from ._images import ImageStore

        return ImageStore(self._conn)

    @property
    def leases(self) -> LeaseManager:
        from ._leases import LeaseManager

        return LeaseManager(self._conn)

    @property
    def containers(self) -> ContainerStore:
        from ._containers import ContainerStore

        return ContainerStore(self._conn)

    @property
    def events(self) -> EventService:
        from ._events import EventService

        return EventService(self._conn)

    @property
    def tasks(self) -> TaskService:
        from ._tasks import TaskService

        return TaskService(self._conn)

    def snapshotter(self, name: str = "") -> ProxySnapshotter:
        """Snapshotter ``name`` (default: the daemon's default) of the daemon, in this client's namespace and lease."""
        from ..snapshots.proxy import ProxySnapshotter

        return ProxySnapshotter(self._conn, name or self.default_snapshotter())

    def default_snapshotter(self) -> str:
        """The daemon's default snapshotter, as its snapshots-service plugin exports it; overlayfs otherwise.

        containerd exports no default, and its clients assume overlayfs, so that is the answer for it.
        """
        if self._default_snapshotter is None:
            found = self.plugins(["type==io.containerd.service.v1,id==snapshots-service"])
            exported = found[0].exports.get("default", "") if found else ""
            self._default_snapshotter = exported or DEFAULT_SNAPSHOTTER
        return self._default_snapshotter

    def version(self) -> tuple[str, str]:
        """The daemon's (version, revision)."""
        from ..api.services.version.v1 import version_pb2_grpc

        resp = self._conn.unary(self._conn.stub(version_pb2_grpc.VersionStub).Version, empty_pb2.Empty())
        return resp.version, resp.revision

    def server(self) -> str:
        """The daemon's UUID, stable across its restarts."""
        stub = self._conn.stub(introspection_pb2_grpc.IntrospectionStub)
        resp: introspection_pb.ServerResponse = self._conn.unary(stub.Server, empty_pb2.Empty())
        return resp.uuid

    def plugins(self, filters: Sequence[str] = ()) -> builtins.list[PluginInfo]:
        """Loaded (and failed) plugins matching any of ``filters`` (fields: type, id, capabilities...)."""
        stub = self._conn.stub(introspection_pb2_grpc.IntrospectionStub)
        resp = self._conn.unary(stub.Plugins, introspection_pb.PluginsRequest(filters=list(filters)))
        return [_plugin(p) for p in resp.plugins]

    # Distribution

    def pull(
        self,
        ref: str,
        *,
        platforms: Sequence[Platform] = (),
        all_platforms: bool = False,
        all_metadata: bool = False,
        registry: RegistryOptions | None = None,
        labels: Mapping[str, str] | None = None,
        progress: ProgressFunc | None = None,
        local: bool = False,
        unpack: bool = False,
        snapshotter: str = "",
    ) -> Image:
        """Fetch ``ref`` from its registry and record it under its normalised name; with ``unpack``, unpack it.

        The daemon does the work when it can (``local`` makes the client do
        it, over the Content, Snapshots and Diff APIs); ``progress`` receives
        the events.  ``snapshotter`` defaults to the daemon's default.
        """
        from . import _transfer

        return _transfer.pull(
            self,
            ref,
            platform_list=platforms,
            all_platforms=all_platforms,
            all_metadata=all_metadata,
            registry=registry,
            labels=dict(labels or {}),
            progress=progress,
            local=local,
            unpack=unpack,
            snapshotter=snapshotter,
        )

    def unpack(
        self,
        image: Image | str,
        *,
        platform: Platform | None = None,
        snapshotter: str = "",
        progress: ProgressFunc | None = None,
    ) -> UnpackResult:
        """Unpack an image record (or the one named) into ``snapshotter``, under a lease held meanwhile."""
        from . import _transfer

        record = self.images.get(image) if isinstance(image, str) else image
        with self.lease() as leased:
            return _transfer.unpack_image(leased, record, platform, snapshotter, progress)

    def push(
        self,
        ref: str,
        image: str = "",
        *,
        platforms: Sequence[Platform] = (),
        registry: RegistryOptions | None = None,
        progress: ProgressFunc | None = None,
        local: bool = False,
    ) -> None:
        """Push the image record ``image`` (default: ``ref``) and all it references to ``ref``."""
        from . import _transfer

        _transfer.push(self, ref, image, platform_list=platforms, registry=registry, progress=progress, local=local)

    # Lifetime

    def close(self) -> None:
        """Close the channel if this client opened it; calls in flight are cancelled."""
        if self._owner:
            self._conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        lease = f", lease={self.lease_id!r}" if self.lease_id else ""
        return f"Client({self._address!r}, namespace={self.namespace!r}{lease})"


if TYPE_CHECKING:
    from .. import containers, content, images, leases, namespaces

    def _conforms(
        conn: Connection,
    ) -> tuple[content.Store, images.Store, leases.Manager, namespaces.Store, containers.Store]:
        """Checked by mypy only: the gRPC stores present the daemon's interfaces."""
        return (
            ContentStore(conn),
            ImageStore(conn),
            LeaseManager(conn),
            NamespaceStore(conn),
            ContainerStore(conn),
        )
