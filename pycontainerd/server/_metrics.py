"""The daemon's metrics endpoint: what it reads from the plugins when scraped, and its lifetime.

Counters kept as the daemon works (gRPC calls, pulls, garbage collection)
live beside the code that counts them; what is cheaper to read on demand —
the content store's size, the snapshotters' records, every container's
cgroup — is read here at each scrape, off the event loop where it touches
disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from .. import __version__
from ..errors import ContainerdError
from ..metrics import REGISTRY, Family, Registry, Sample
from ..metrics import cgroups as cgroup_metrics
from ..metrics._http import MetricsServer
from ..plugin import PluginSet, PluginType
from ..services import rpc
from ..snapshots import Kind
from ..tasks.manager import TaskManager
from .config import MetricsConfig, check_tcp_address

__all__ = ["start_metrics"]

log = logging.getLogger("pycontainerd")


class _Sized(Protocol):
    def totals(self) -> tuple[int, int]: ...


class _Counted(Protocol):
    def totals(self) -> dict[Kind, tuple[int, int, int]]: ...


def _gauge(name: str, help: str, samples: list[Sample]) -> Family:
    return Family(name, "gauge", help, tuple(samples))


def _content_families(store: _Sized) -> list[Family]:
    count, size = store.totals()
    return [
        _gauge(
            "pycontainerd_content_blobs",
            "Blobs in the content store.",
            [Sample("pycontainerd_content_blobs", (), count)],
        ),
        _gauge(
            "pycontainerd_content_bytes",
            "Bytes of the blobs in the content store.",
            [Sample("pycontainerd_content_bytes", (), size)],
        ),
    ]


def _snapshot_families(snapshotters: dict[str, _Counted]) -> list[Family]:
    counts: list[Sample] = []
    sizes: list[Sample] = []
    inodes: list[Sample] = []
    for name, sn in sorted(snapshotters.items()):
        try:
            totals = sn.totals()
        except ContainerdError as e:
            log.debug("metrics: snapshotter %s: %s", name, e)
            continue
        committed = (0, 0, 0)
        for kind in (Kind.ACTIVE, Kind.VIEW, Kind.COMMITTED):
            n, size, files = totals.get(kind, (0, 0, 0))
            counts.append(Sample("pycontainerd_snapshots", (("snapshotter", name), ("kind", kind.label.lower())), n))
            if kind == Kind.COMMITTED:
                committed = (n, size, files)
        sizes.append(Sample("pycontainerd_snapshot_committed_bytes", (("snapshotter", name),), committed[1]))
        inodes.append(Sample("pycontainerd_snapshot_committed_inodes", (("snapshotter", name),), committed[2]))
    return [
        _gauge("pycontainerd_snapshots", "Snapshots by snapshotter and kind.", counts),
        _gauge(
            "pycontainerd_snapshot_committed_bytes",
            "Disk used by committed snapshots, as measured after commit.",
            sizes,
        ),
        _gauge(
            "pycontainerd_snapshot_committed_inodes",
            "Inodes used by committed snapshots, as measured after commit.",
            inodes,
        ),
    ]


def _register_collectors(registry: Registry, plugins: PluginSet) -> None:
    info = registry.gauge("pycontainerd_build_info", "Constant 1, labelled with the daemon's version.", ("version",))
    info.labels(__version__).set(1)
    content = plugins.get_all(PluginType.CONTENT).get("content")
    if content is not None and hasattr(content, "totals"):
        store: _Sized = content
        registry.add_collector("content", lambda: asyncio.to_thread(_content_families, store))
    snapshotters: dict[str, _Counted] = {
        name: sn for name, sn in plugins.get_all(PluginType.SNAPSHOT).items() if hasattr(sn, "totals")
    }
    if snapshotters:
        registry.add_collector("snapshots", lambda: asyncio.to_thread(_snapshot_families, snapshotters))
    for runtime in plugins.get_all(PluginType.RUNTIME).values():
        if isinstance(runtime, TaskManager):
            registry.add_collector("tasks", _task_collector(runtime))


def _task_collector(manager: TaskManager) -> Callable[[], Awaitable[list[Family]]]:
    async def collect() -> list[Family]:
        return cgroup_metrics.families(await manager.stats())

    return collect


async def start_metrics(
    config: MetricsConfig, plugins: PluginSet, registry: Registry = REGISTRY
) -> MetricsServer | None:
    """Serve ``registry`` at ``[metrics] address`` (None when it is empty); raises OSError if the port is taken."""
    rpc.enable_histogram(config.grpc_histogram)
    if not config.address:
        return None
    host, port = check_tcp_address("metrics.address", config.address)
    _register_collectors(registry, plugins)
    server = MetricsServer(registry, host, port)
    await server.start()
    bound_host, bound_port = server.address
    log.info("metrics served at http://%s:%d/v1/metrics", bound_host, bound_port)
    return server
