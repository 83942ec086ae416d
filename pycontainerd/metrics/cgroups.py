"""Per-container metrics from cgroup statistics, named as containerd names them.

The Tasks Metrics RPC answers with containerd's cgroups v1 or v2
``Metrics`` messages; this turns the same messages into families labelled
by ``container_id`` and ``namespace``, so a scrape and the RPC agree.  Values are gauges
as containerd exposes them, except OOM kills, which only count up.  No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from ._types import Family, Labels, Sample

__all__ = ["ContainerStats", "families"]

#: (namespace, container id, an io.containerd.cgroups.v1.Metrics or v2.Metrics message)
ContainerStats = tuple[str, str, Message]

_V2_NAME = "io.containerd.cgroups.v2.Metrics"

# (metric name, help, path into the v1 metrics dict)
_V1: Sequence[tuple[str, str, tuple[str, ...]]] = (
    ("container_cpu_total_nanoseconds", "The total cpu time", ("cpu", "usage", "total")),
    ("container_cpu_kernel_nanoseconds", "The total kernel cpu time", ("cpu", "usage", "kernel")),
    ("container_cpu_user_nanoseconds", "The total user cpu time", ("cpu", "usage", "user")),
    ("container_cpu_throttle_periods_total", "The total cpu throttle periods", ("cpu", "throttling", "periods")),
    (
        "container_cpu_throttled_periods_total",
        "The total cpu throttled periods",
        ("cpu", "throttling", "throttled_periods"),
    ),
    (
        "container_cpu_throttled_time_nanoseconds",
        "The total cpu throttled time",
        ("cpu", "throttling", "throttled_time"),
    ),
    ("container_memory_cache_bytes", "The cache amount used", ("memory", "cache")),
    ("container_memory_rss_bytes", "The rss amount used", ("memory", "rss")),
    ("container_memory_rss_huge_bytes", "The rss_huge amount used", ("memory", "rss_huge")),
    ("container_memory_mapped_file_bytes", "The mapped_file amount used", ("memory", "mapped_file")),
    ("container_memory_dirty_bytes", "The dirty amount", ("memory", "dirty")),
    ("container_memory_writeback_bytes", "The writeback amount", ("memory", "writeback")),
    ("container_memory_pgfault_bytes", "The pgfault amount", ("memory", "pg_fault")),
    ("container_memory_pgmajfault_bytes", "The pgmajfault amount", ("memory", "pg_maj_fault")),
    ("container_memory_usage_usage_bytes", "The memory usage", ("memory", "usage", "usage")),
    ("container_memory_usage_limit_bytes", "The memory limit", ("memory", "usage", "limit")),
    ("container_memory_usage_max_bytes", "The memory maximum usage", ("memory", "usage", "max")),
    ("container_memory_usage_failcnt_total", "The memory usage failcnt", ("memory", "usage", "failcnt")),
    ("container_memory_swap_usage_bytes", "The swap usage", ("memory", "swap", "usage")),
    ("container_memory_swap_limit_bytes", "The swap limit", ("memory", "swap", "limit")),
    ("container_memory_kernel_usage_bytes", "The kernel usage", ("memory", "kernel", "usage")),
    ("container_pids_current", "The current number of pids", ("pids", "current")),
    ("container_pids_limit", "The pid limit", ("pids", "limit")),
)

_V2: Sequence[tuple[str, str, tuple[str, ...]]] = (
    ("container_cpu_usage_usec_microseconds", "Total cpu usage", ("cpu", "usage_usec")),
    ("container_cpu_user_usec_microseconds", "Current cpu usage in user space", ("cpu", "user_usec")),
    ("container_cpu_system_usec_microseconds", "Current cpu usage in kernel space", ("cpu", "system_usec")),
    ("container_cpu_nr_periods", "Current cpu number of periods", ("cpu", "nr_periods")),
    ("container_cpu_nr_throttled", "Total number of times tasks have been throttled", ("cpu", "nr_throttled")),
    ("container_cpu_throttled_usec_microseconds", "Total time duration of throttling", ("cpu", "throttled_usec")),
    ("container_memory_usage_bytes", "Current memory usage", ("memory", "usage")),
    ("container_memory_usage_limit_bytes", "Current memory usage limit", ("memory", "usage_limit")),
    ("container_memory_swap_usage_bytes", "Current swap usage", ("memory", "swap_usage")),
    ("container_memory_swap_limit_bytes", "Current swap usage limit", ("memory", "swap_limit")),
    ("container_memory_file_bytes", "Current memory file", ("memory", "file")),
    ("container_memory_anon_bytes", "Current memory anon", ("memory", "anon")),
    ("container_memory_file_mapped_bytes", "Current memory file mapped", ("memory", "file_mapped")),
    ("container_memory_pgfault", "Current memory pgfault", ("memory", "pgfault")),
    ("container_memory_pgmajfault", "Current memory pgmajfault", ("memory", "pgmajfault")),
    ("container_pids_current", "The current number of pids", ("pids", "current")),
    ("container_pids_limit", "The pid limit", ("pids", "limit")),
)

_OOM = ("container_memory_oom_total", "The number of times the OOM killer acted in the container")

# v1 blkio lists (containerd's BlkIOEntry: op, device, major, minor, value)
_BLKIO: Sequence[tuple[str, str, str]] = (
    (
        "container_blkio_io_service_bytes_recursive_bytes",
        "The blkio io service bytes recursive",
        "io_service_bytes_recursive",
    ),
    ("container_blkio_io_serviced_recursive_total", "The blkio io serviced recursive", "io_serviced_recursive"),
)

# v2 io.stat entries (containerd's IOEntry: major, minor, rbytes, wbytes, rios, wios)
_IO: Sequence[tuple[str, str, str]] = (
    ("container_io_rbytes_bytes", "IO bytes read", "rbytes"),
    ("container_io_wbytes_bytes", "IO bytes written", "wbytes"),
    ("container_io_rios_total", "Number of read IOs", "rios"),
    ("container_io_wios_total", "Number of write IOs", "wios"),
)


def _field(obj: Any, key: str) -> Any:
    """A field of a message (None when a sub-message is unset), or of a dict in tests' hands."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, Message):
        field = obj.DESCRIPTOR.fields_by_name.get(key)
        if field is None:
            return None
        if field.message_type is not None:
            try:
                if not obj.HasField(key):
                    return None
            except ValueError:  # a repeated field has no presence
                pass
        return getattr(obj, key)
    return None


def _at(obj: Any, path: tuple[str, ...]) -> float | None:
    for key in path:
        obj = _field(obj, key)
        if obj is None:
            return None
    return float(obj) if isinstance(obj, int | float) and not isinstance(obj, bool) else None


def _list(obj: Any, path: tuple[str, ...]) -> list[Any]:
    for key in path:
        obj = _field(obj, key)
        if obj is None:
            return []
    return list(obj) if not isinstance(obj, str | bytes | Mapping | Message) else []


def _device_labels(entry: Any) -> Labels:
    major, minor = int(_at(entry, ("major",)) or 0), int(_at(entry, ("minor",)) or 0)
    device = str(_field(entry, "device") or f"{major}:{minor}")
    return (("device", device), ("major", str(major)), ("minor", str(minor)))


def families(stats: Iterable[ContainerStats]) -> list[Family]:
    """One family per metric any container reports, each container's samples in it."""
    samples: dict[str, list[Sample]] = {}
    helps: dict[str, tuple[str, str]] = {}

    def add(name: str, help: str, kind: str, labels: Labels, value: float) -> None:
        helps.setdefault(name, (help, kind))
        samples.setdefault(name, []).append(Sample(name, labels, value))

    for namespace, container_id, metrics in stats:
        base: Labels = (("container_id", container_id), ("namespace", namespace))
        v2 = metrics.DESCRIPTOR.full_name == _V2_NAME
        for name, help, path in _V2 if v2 else _V1:
            value = _at(metrics, path)
            if value is not None:
                add(name, help, "gauge", base, value)
        oom = _at(metrics, ("memory_events", "oom_kill") if v2 else ("memory_oom_control", "oom_kill"))
        if oom is not None:
            add(_OOM[0], _OOM[1], "counter", base, oom)
        if not v2:
            for i, ns in enumerate(_list(metrics, ("cpu", "usage", "per_cpu"))):
                if isinstance(ns, int | float):
                    add(
                        "container_per_cpu_nanoseconds",
                        "The total cpu time per cpu",
                        "gauge",
                        (*base, ("cpu", str(i))),
                        float(ns),
                    )
            for name, help, key in _BLKIO:
                for entry in _list(metrics, ("blkio", key)):
                    labels = (*base, ("op", str(_field(entry, "op") or "")), *_device_labels(entry))
                    add(name, help, "gauge", labels, _at(entry, ("value",)) or 0.0)
        else:
            for entry in _list(metrics, ("io", "usage")):
                for name, help, key in _IO:
                    add(name, help, "gauge", (*base, *_device_labels(entry)), _at(entry, (key,)) or 0.0)
    out = []
    for name in sorted(samples):
        help, kind = helps[name]
        out.append(Family(name, kind, help, tuple(samples[name])))
    return out
