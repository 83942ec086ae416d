"""Every plugin the daemon loads, with its registration and its config section.

This is the one place that says what a pycontainerd daemon is made of.
Types and ids are containerd's, so ``ctr plugins ls`` reads the same, except
the metadata store: it is SQLite, not bolt, so it says so (no client looks
the metadata plugin up by id).  Each plugin keeps its files under
``<root>/<type>.<id>/``, as in containerd.

A plugin with settings declares them as a dataclass (``config``); the server
checks every ``[plugins."<type>.<id>"]`` table against it before any plugin
starts, and the init function receives the checked values as ``ic.config``.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from ..content.local import LocalStore
from ..errors import FailedPrecondition
from ..events.exchange import Exchange
from ..limits import Limits, configure
from ..metadata import DB, GCConfig, Scheduler
from ..metadata.content import SHARING_POLICIES
from ..plugin import InitContext, PluginType, Registration, Registry
from ..remotes.docker import HostOptions
from ..services.containers import ContainersService
from ..services.content import ContentService
from ..services.diff import DiffService
from ..services.events import EventsService
from ..services.health import HealthService
from ..services.images import ImagesService
from ..services.introspection import IntrospectionService
from ..services.leases import LeasesService
from ..services.namespaces import NamespacesService
from ..services.snapshots import SnapshotsService
from ..services.streaming import StreamingService
from ..services.tasks import TasksService
from ..services.transfer import TransferService
from ..services.version import VersionService
from ..snapshots import Snapshotter
from ..snapshots.native import NativeSnapshotter
from ..snapshots.overlay import OverlaySnapshotter, check_overlay
from ..streaming import Manager as StreamManager
from ..tasks.manager import DEFAULT_RUNTIME_TIMEOUT, RUNC_RUNTIME, TaskManager
from .config import Duration

__all__ = [
    "BUILTINS",
    "Builtin",
    "GCSchedulerConfig",
    "MetadataConfig",
    "SnapshotsServiceConfig",
    "SnapshotterConfig",
    "TaskRuntimeConfig",
    "TransferConfig",
    "registry",
]

CONTENT_ID = "content"
METADATA_ID = "sqlite"


@dataclass(frozen=True)
class Builtin:
    registration: Registration
    config: type | None = None


@dataclass(frozen=True)
class MetadataConfig:
    """``[plugins."io.containerd.metadata.v1.sqlite"]``; the policies are described in :mod:`..metadata.content`."""

    content_sharing_policy: str = "shared"

    def __post_init__(self) -> None:
        if self.content_sharing_policy not in SHARING_POLICIES:
            raise ValueError(
                f"content_sharing_policy: {self.content_sharing_policy!r} is not a policy "
                f"(one of {', '.join(SHARING_POLICIES)})"
            )


@dataclass(frozen=True)
class GCSchedulerConfig:
    """``[plugins."io.containerd.gc.v1.scheduler"]``: containerd's keys, plus ``interval``.

    pycontainerd's scheduler collects after deletions (``schedule_delay``
    later, and spaced so collecting takes at most ``pause_threshold`` of the
    time, as containerd's) and every ``interval``; the deletion and mutation
    thresholds are accepted for compatibility.
    """

    pause_threshold: float = 0.02
    deletion_threshold: int = 0
    mutation_threshold: int = 100
    schedule_delay: Duration = 0.0
    startup_delay: Duration = 0.1
    interval: Duration = 3600.0

    def __post_init__(self) -> None:
        if not 0 <= self.pause_threshold <= 0.5:
            raise ValueError(f"pause_threshold: {self.pause_threshold} must be between 0 and 0.5")
        for name in ("deletion_threshold", "mutation_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        if self.interval <= 0:
            raise ValueError("interval: must be positive")


@dataclass(frozen=True)
class SnapshotterConfig:
    """``[plugins."io.containerd.snapshotter.v1.<id>"]``: where the snapshots live (default: the plugin's root)."""

    root_path: str = ""

    def __post_init__(self) -> None:
        if self.root_path and not self.root_path.startswith("/"):
            raise ValueError(f"root_path: {self.root_path!r} must be an absolute path")


@dataclass(frozen=True)
class SnapshotsServiceConfig:
    """``[plugins."io.containerd.service.v1.snapshots-service"]``: the snapshotter clients get by default.

    pyctr and the Transfer service's unpack read it from this plugin's
    exports (``ctr plugins ls -d`` shows it); containerd's ``ctr`` has its own
    default, overlayfs.
    """

    default: str = "overlayfs"

    def __post_init__(self) -> None:
        if not self.default:
            raise ValueError("default: must name a snapshotter")


@dataclass(frozen=True)
class TaskRuntimeConfig:
    """``[plugins."io.containerd.runtime.v2.task"]``: ``runtime_timeout``, how long one runtime command
    (runc create, start, kill, delete...) may take before the task's shim kills it and the call fails."""

    runtime_timeout: Duration = DEFAULT_RUNTIME_TIMEOUT

    def __post_init__(self) -> None:
        if not 0 < self.runtime_timeout <= 86400:
            raise ValueError(f"runtime_timeout: {self.runtime_timeout}s must be more than 0 and at most 24h")


@dataclass(frozen=True)
class TransferConfig:
    """``[plugins."io.containerd.grpc.v1.transfer"]``: how the daemon's pulls and pushes treat registries.

    ``registry_timeout`` bounds connecting and each read (a body that stalls
    that long is asked for again, from where it stopped); ``registry_retries``
    further tries follow a failure; a 429's Retry-After is waited out up to
    ``max_retry_after``.  A hosts.toml ``dial_timeout`` overrides the connect limit.
    ``config_path`` is the hosts directory (containerd's ``certs.d`` layout, as
    CRI's ``config_path``) for requests that name none.
    """

    registry_timeout: Duration = 30.0
    registry_retries: int = 3
    max_retry_after: Duration = 30.0
    config_path: str = ""

    def __post_init__(self) -> None:
        if self.config_path and not self.config_path.startswith("/"):
            raise ValueError(f"config_path: {self.config_path!r} must be an absolute path")
        if not 0 < self.registry_timeout <= 3600:
            raise ValueError(f"registry_timeout: {self.registry_timeout}s must be more than 0 and at most 1h")
        if not 0 <= self.registry_retries <= 100:
            raise ValueError(f"registry_retries: {self.registry_retries} must be between 0 and 100")


def _snapshotter_root(ic: InitContext) -> pathlib.Path:
    root = str(ic.config.get("root_path") or "")
    path = pathlib.Path(root) if root else ic.root
    ic.properties["root"] = str(path)
    return path


def _init_overlay(ic: InitContext) -> OverlaySnapshotter:
    root = _snapshotter_root(ic)
    check_overlay(root)
    return OverlaySnapshotter(root, async_remove=True)


def _init_native(ic: InitContext) -> NativeSnapshotter:
    return NativeSnapshotter(_snapshotter_root(ic), async_remove=True)


def _init_snapshots_service_core(ic: InitContext) -> SnapshotsServiceConfig:
    db = ic.get(PluginType.METADATA, DB)
    default = str(ic.config.get("default", "overlayfs"))
    if default not in db.snapshotters:
        raise FailedPrecondition(f"default snapshotter {default!r} is not loaded")
    ic.properties["default"] = default
    return SnapshotsServiceConfig(default=default)


def _init_content(ic: InitContext) -> LocalStore:
    ic.properties["root"] = str(ic.root)
    return LocalStore(ic.root)


def _init_metadata(ic: InitContext) -> DB:
    backend = ic.get(PluginType.CONTENT, LocalStore)
    path = ic.root / "meta.db"
    ic.root.mkdir(mode=0o711, parents=True, exist_ok=True)
    ic.properties["path"] = str(path)
    policy = str(ic.config.get("content_sharing_policy", "shared"))
    ic.properties["policy"] = policy
    snapshotters = {
        id_: sn for id_, sn in ic.plugins.get_all(PluginType.SNAPSHOT).items() if isinstance(sn, Snapshotter)
    }
    db = DB(path, backend, snapshotters=snapshotters)
    db.content_sharing_policy = policy
    db.publisher = ic.get(PluginType.EVENT, Exchange)
    return db


def _init_gc(ic: InitContext) -> Scheduler:
    db = ic.get(PluginType.METADATA, DB)
    c = ic.config
    scheduler = db.scheduler
    scheduler.configure(
        GCConfig(
            schedule_delay=float(c["schedule_delay"]),
            startup_delay=float(c["startup_delay"]),
            interval=float(c["interval"]),
            pause_threshold=float(c["pause_threshold"]),
        )
    )
    for key in ("schedule_delay", "startup_delay", "interval"):
        ic.properties[key] = f"{float(c[key])}s"
    ic.properties["pause_threshold"] = str(float(c["pause_threshold"]))
    scheduler.start()
    return scheduler


def _grpc(id_: str, requires: tuple[str, ...], init: Callable[[InitContext], object]) -> Builtin:
    return Builtin(Registration(type=PluginType.GRPC, id=id_, requires=requires, init=init))


def _init_exchange(ic: InitContext) -> Exchange:
    return Exchange()


def _init_events_service(ic: InitContext) -> object:
    return EventsService(ic.get(PluginType.EVENT, Exchange))


def _init_containers_service(ic: InitContext) -> object:
    ic.get(PluginType.GC, Scheduler)  # a deleted container's snapshot goes to the collector
    return ContainersService(ic.get(PluginType.METADATA, DB))


def _init_content_service(ic: InitContext) -> object:
    return ContentService(ic.get(PluginType.METADATA, DB))


def _init_images_service(ic: InitContext) -> object:
    ic.get(PluginType.GC, Scheduler)  # deletes with sync collect garbage
    return ImagesService(ic.get(PluginType.METADATA, DB))


def _init_leases_service(ic: InitContext) -> object:
    ic.get(PluginType.GC, Scheduler)
    return LeasesService(ic.get(PluginType.METADATA, DB))


def _init_snapshots_service(ic: InitContext) -> object:
    ic.get(PluginType.GC, Scheduler)  # removed snapshots leave their backend through the collector
    return SnapshotsService(ic.get(PluginType.METADATA, DB))


def _init_diff_service(ic: InitContext) -> object:
    configure(Limits(**ic.config))  # [plugins."io.containerd.grpc.v1.diff"]: bounds on hostile layers and documents
    return DiffService(ic.get(PluginType.METADATA, DB))


def _init_namespaces_service(ic: InitContext) -> object:
    return NamespacesService(ic.get(PluginType.METADATA, DB))


def _init_streaming_manager(ic: InitContext) -> StreamManager:
    return StreamManager()


def _init_streaming_service(ic: InitContext) -> object:
    return StreamingService(ic.get(PluginType.STREAMING, StreamManager))


def _init_transfer_service(ic: InitContext) -> object:
    ic.get(PluginType.GC, Scheduler)  # a pull's temporary lease is collected once it ends
    snapshots = ic.get(PluginType.SERVICE, SnapshotsServiceConfig, "snapshots-service")
    c = TransferConfig(**ic.config)
    hosts = HostOptions(
        timeout=c.registry_timeout,
        retries=c.registry_retries,
        max_retry_after=c.max_retry_after,
        hosts_dir=c.config_path,
    )
    ic.properties["config_path"] = c.config_path
    return TransferService(
        ic.get(PluginType.METADATA, DB), ic.get(PluginType.STREAMING, StreamManager), snapshots.default, hosts
    )


def _init_task_manager(ic: InitContext) -> TaskManager:
    # Imported here: the shim client is only needed once tasks are loaded.
    from ..runtime.shim.launcher import ShimLauncher

    runc_root = ic.state.parent / "runc"
    ic.properties["state"] = str(ic.state)
    ic.properties["runc_root"] = str(runc_root)
    ic.state.mkdir(mode=0o711, parents=True, exist_ok=True)
    timeout = float(ic.config.get("runtime_timeout", DEFAULT_RUNTIME_TIMEOUT))
    ic.properties["runtime_timeout"] = f"{timeout}s"
    ic.properties["runtime_type"] = RUNC_RUNTIME  # the one shim type this daemon runs
    ic.properties["binary_name"] = shutil.which("runc") or "runc"  # when a container names no BinaryName
    return TaskManager(ic.state, ic.get(PluginType.EVENT, Exchange), ShimLauncher(), runc_root, runtime_timeout=timeout)


def _init_tasks_service(ic: InitContext) -> object:
    return TasksService(ic.get(PluginType.METADATA, DB), ic.get(PluginType.RUNTIME, TaskManager))


def _init_introspection_service(ic: InitContext) -> object:
    return IntrospectionService(ic.plugins, ic.root)


def _init_version_service(ic: InitContext) -> object:
    return VersionService()


def _init_health_service(ic: InitContext) -> object:
    return HealthService()


_META = (PluginType.METADATA,)
_META_GC = (PluginType.METADATA, PluginType.GC)

BUILTINS: tuple[Builtin, ...] = (
    Builtin(Registration(type=PluginType.EVENT, id="exchange", init=_init_exchange)),
    Builtin(Registration(type=PluginType.CONTENT, id=CONTENT_ID, init=_init_content)),
    Builtin(Registration(type=PluginType.SNAPSHOT, id="native", init=_init_native), SnapshotterConfig),
    Builtin(Registration(type=PluginType.SNAPSHOT, id="overlayfs", init=_init_overlay), SnapshotterConfig),
    Builtin(
        Registration(
            type=PluginType.METADATA,
            id=METADATA_ID,
            requires=(PluginType.CONTENT, PluginType.SNAPSHOT, PluginType.EVENT),
            init=_init_metadata,
        ),
        MetadataConfig,
    ),
    Builtin(Registration(type=PluginType.GC, id="scheduler", requires=_META, init=_init_gc), GCSchedulerConfig),
    _grpc("containers", _META_GC, _init_containers_service),
    _grpc("content", _META, _init_content_service),
    _grpc("images", _META_GC, _init_images_service),
    _grpc("leases", _META_GC, _init_leases_service),
    _grpc("namespaces", _META, _init_namespaces_service),
    Builtin(
        Registration(
            type=PluginType.SERVICE, id="snapshots-service", requires=_META, init=_init_snapshots_service_core
        ),
        SnapshotsServiceConfig,
    ),
    _grpc("snapshots", _META_GC, _init_snapshots_service),
    Builtin(Registration(type=PluginType.GRPC, id="diff", requires=_META, init=_init_diff_service), Limits),
    _grpc("events", (PluginType.EVENT,), _init_events_service),
    Builtin(Registration(type=PluginType.STREAMING, id="manager", init=_init_streaming_manager)),
    _grpc("streaming", (PluginType.STREAMING,), _init_streaming_service),
    Builtin(
        Registration(
            type=PluginType.GRPC,
            id="transfer",
            requires=(*_META_GC, PluginType.STREAMING, PluginType.SERVICE),
            init=_init_transfer_service,
        ),
        TransferConfig,
    ),
    Builtin(
        Registration(type=PluginType.RUNTIME, id="task", requires=(PluginType.EVENT,), init=_init_task_manager),
        TaskRuntimeConfig,
    ),
    _grpc("tasks", (*_META, PluginType.RUNTIME), _init_tasks_service),
    _grpc("version", (), _init_version_service),
    _grpc("healthcheck", (), _init_health_service),
    _grpc("introspection", ("*",), _init_introspection_service),
)


def registry() -> Registry:
    """A registry holding every builtin plugin."""
    reg = Registry()
    for b in BUILTINS:
        reg.register(b.registration)
    return reg
