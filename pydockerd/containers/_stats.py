"""``docker stats`` and ``docker top``: the task's cgroup metrics and processes in Docker's shapes.

Stats come from containerd's Metrics RPC (cgroup v1 or v2 statistics) and
are shaped as dockerd's ``StatsJSON`` — the CLI computes CPU percentages
from ``cpu_stats`` against ``precpu_stats`` and memory use as usage less
the inactive file cache.  Top runs the host's ``ps`` and keeps the rows of
the container's processes, as dockerd does.  The shaping and ps parsing
are pure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from google.protobuf import any_pb2

from pycontainerd.api import typeurl
from pycontainerd.api.cgroups.v1 import metrics_pb2 as cg1
from pycontainerd.api.cgroups.v2 import metrics_pb2 as cg2
from pycontainerd.errors import InvalidArgument

from ._jsonlog import format_time
from ._state import ZERO_TIME

__all__ = ["empty_stats", "parse_ps", "stats_json", "system_cpu_ns"]


def system_cpu_ns() -> int:
    """The host's total CPU time in nanoseconds (/proc/stat's first line), what Docker calls system_cpu_usage."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0
    ticks = os.sysconf("SC_CLK_TCK") or 100
    return sum(int(v) for v in fields[1:8]) * 1_000_000_000 // ticks


def empty_stats(id: str, name: str) -> dict[str, Any]:
    """The stats of a container that is not running: zeroes, as dockerd sends them."""
    return {
        "id": id,
        "name": name,
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {},
    }


def _cpu(usage: tuple[int, int, int], throttling: tuple[int, int, int], system: int, ncpu: int) -> dict[str, Any]:
    """``cpu_stats`` from (total, kernel, user) nanoseconds and (periods, throttled periods, throttled ns)."""
    total, kernel, user = usage
    periods, throttled, throttled_ns = throttling
    return {
        "cpu_usage": {"total_usage": total, "usage_in_kernelmode": kernel, "usage_in_usermode": user},
        "system_cpu_usage": system,
        "online_cpus": ncpu,
        "throttling_data": {"periods": periods, "throttled_periods": throttled, "throttled_time": throttled_ns},
    }


def stats_json(
    id: str,
    name: str,
    data: any_pb2.Any,
    *,
    read_ns: int,
    system_ns: int,
    ncpu: int,
    host_memory: int,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """One ``StatsJSON`` of cgroup v1 or v2 metrics; ``previous`` (the last one sent) fills ``precpu_stats``."""
    out = empty_stats(id, name)
    out["read"] = format_time(read_ns)
    if previous is not None:
        out["preread"] = previous["read"]
        out["precpu_stats"] = previous["cpu_stats"]
    kind = typeurl.name_of(data)
    if kind == cg2.Metrics.DESCRIPTOR.full_name:
        m2 = typeurl.unpack(data, cg2.Metrics)
        out["pids_stats"] = {"current": m2.pids.current, **({"limit": m2.pids.limit} if m2.pids.limit else {})}
        c = m2.cpu
        out["cpu_stats"] = _cpu(
            (c.usage_usec * 1000, c.system_usec * 1000, c.user_usec * 1000),
            (c.nr_periods, c.nr_throttled, c.throttled_usec * 1000),
            system_ns,
            ncpu,
        )
        mem = m2.memory
        limit = mem.usage_limit if 0 < mem.usage_limit < host_memory else host_memory
        stat_names = (
            "anon",
            "file",
            "kernel_stack",
            "slab",
            "sock",
            "shmem",
            "file_mapped",
            "file_dirty",
            "file_writeback",
            "anon_thp",
            "inactive_anon",
            "active_anon",
            "inactive_file",
            "active_file",
            "unevictable",
            "slab_reclaimable",
            "slab_unreclaimable",
            "pgfault",
            "pgmajfault",
        )
        out["memory_stats"] = {
            "usage": mem.usage,
            "stats": {n: getattr(mem, n) for n in stat_names},
            "limit": limit,
        }
        io = [
            {"major": e.major, "minor": e.minor, "op": op, "value": value}
            for e in m2.io.usage
            for op, value in (("read", e.rbytes), ("write", e.wbytes))
        ]
        out["blkio_stats"]["io_service_bytes_recursive"] = io or None
        return out
    if kind == cg1.Metrics.DESCRIPTOR.full_name:
        m1 = typeurl.unpack(data, cg1.Metrics)
        out["pids_stats"] = {"current": m1.pids.current, **({"limit": m1.pids.limit} if m1.pids.limit else {})}
        u, t = m1.cpu.usage, m1.cpu.throttling
        out["cpu_stats"] = _cpu(
            (u.total, u.kernel, u.user), (t.periods, t.throttled_periods, t.throttled_time), system_ns, ncpu
        )
        out["cpu_stats"]["cpu_usage"]["percpu_usage"] = list(u.per_cpu)
        limit = m1.memory.usage.limit if 0 < m1.memory.usage.limit < host_memory else host_memory
        out["memory_stats"] = {
            "usage": m1.memory.usage.usage,
            "max_usage": m1.memory.usage.max,
            "failcnt": m1.memory.usage.failcnt,
            "stats": {
                "cache": m1.memory.cache,
                "rss": m1.memory.rss,
                "total_inactive_file": m1.memory.total_inactive_file,
            },
            "limit": limit,
        }
        return out
    raise InvalidArgument(f"metrics of an unknown type: {kind or '(none)'}")


def parse_ps(output: str, pids: Sequence[int]) -> dict[str, Any]:
    """``ps`` output as top's Titles and Processes, keeping rows whose PID is one of ``pids``."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise InvalidArgument("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    col = titles.index("PID")
    wanted = set(pids)
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= col:
            continue
        try:
            pid = int(fields[col])
        except ValueError:
            raise InvalidArgument(f"Unexpected pid '{fields[col]}'") from None
        if pid in wanted:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
