"""A container's cgroup: where it is, its statistics, and OOM notifications.

The cgroup is found from ``/proc/<init pid>/cgroup`` right after ``runc
create`` — whatever cgroupsPath or cgroup driver the spec used — and kept,
so statistics still read after the init has exited.  The hierarchy is v2
when ``/sys/fs/cgroup`` is cgroup2 itself; on a hybrid host (v1
controllers beside a unified mount) runc uses v1, and so do we.

Statistics come back as dicts shaped like containerd's cgroups ``Metrics``
messages (v1 or v2, field for field), so the daemon can turn them into
protobuf without knowing cgroupfs.
"""

from __future__ import annotations

import os

from . import _linux

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Cgroup", "OomWatch", "find", "unified"]

_ROOT = "/sys/fs/cgroup"
_MAX = (1 << 64) - 1


def unified() -> bool:
    return os.path.exists(f"{_ROOT}/cgroup.controllers")


def _v1_mounts() -> dict[str, str]:
    """controller → mount point of every v1 hierarchy."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = right.split()
            if len(fields) < 3 or fields[0] != "cgroup":
                continue
            point = left.split()[4]
            for opt in fields[2].split(","):
                if opt in ("rw", "ro") or opt.startswith("release_agent"):
                    continue
                out[opt.removeprefix("name=")] = point
    return out


class Cgroup:
    """Directories of one cgroup: one per v1 controller, or the single v2 directory (key "")."""

    def __init__(self, version: int, paths: dict[str, str]) -> None:
        self.version = version
        self.paths = paths

    def path(self, controller: str) -> str | None:
        return self.paths.get("" if self.version == 2 else controller)

    def exists(self) -> bool:
        p = self.path("memory")
        return p is not None and os.path.isdir(p)

    def stats(self) -> dict[str, Any]:
        return {"version": self.version, "metrics": _stats_v2(self) if self.version == 2 else _stats_v1(self)}


def find(pid: int) -> Cgroup | None:
    """The cgroup ``pid`` is in; None when it is gone or shares ours (a runtime told to manage no cgroups)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
        with open("/proc/self/cgroup") as f:
            if f.read().splitlines() == lines:
                return None
    except OSError:
        return None
    if unified():
        for line in lines:
            if line.startswith("0::"):
                return Cgroup(2, {"": _ROOT + line[3:]})
        return None
    mounts = _v1_mounts()
    paths: dict[str, str] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            c = name.removeprefix("name=")
            if c in mounts:
                paths[c] = mounts[c] + path
    return Cgroup(1, paths)


def _read(path: str | None, name: str) -> str | None:
    if path is None:
        return None
    try:
        with open(f"{path}/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def _int(path: str | None, name: str) -> int:
    value = _read(path, name)
    if value is None or value == "":
        return 0
    if value == "max":
        return _MAX
    try:
        return int(value)
    except ValueError:
        return 0


def _keyed(path: str | None, name: str) -> dict[str, int]:
    """A flat keyed file (``key value`` lines)."""
    out: dict[str, int] = {}
    for line in (_read(path, name) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


# memory.stat keys whose Metrics field is named differently (v1)
_V1_MEMORY_RENAMES = {
    "pgpgin": "pg_pg_in",
    "pgpgout": "pg_pg_out",
    "pgfault": "pg_fault",
    "pgmajfault": "pg_maj_fault",
    "hierarchical_memsw_limit": "hierarchical_swap_limit",
    "total_pgpgin": "total_pg_pg_in",
    "total_pgpgout": "total_pg_pg_out",
    "total_pgfault": "total_pg_fault",
    "total_pgmajfault": "total_pg_maj_fault",
}
_V1_MEMORY_FIELDS = frozenset(
    {
        "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pg_pg_in", "pg_pg_out", "pg_fault",
        "pg_maj_fault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
        "hierarchical_memory_limit", "hierarchical_swap_limit", "total_cache", "total_rss", "total_rss_huge",
        "total_mapped_file", "total_dirty", "total_writeback", "total_pg_pg_in", "total_pg_pg_out",
        "total_pg_fault", "total_pg_maj_fault", "total_inactive_anon", "total_active_anon",
        "total_inactive_file", "total_active_file", "total_unevictable",
    }
)  # fmt: skip


def _entry_v1(path: str | None, prefix: str) -> dict[str, int]:
    return {
        "usage": _int(path, f"{prefix}.usage_in_bytes"),
        "limit": _int(path, f"{prefix}.limit_in_bytes"),
        "max": _int(path, f"{prefix}.max_usage_in_bytes"),
        "failcnt": _int(path, f"{prefix}.failcnt"),
    }


def _stats_v1(cg: Cgroup) -> dict[str, Any]:
    mem = cg.path("memory")
    memory: dict[str, Any] = {}
    for name, value in _keyed(mem, "memory.stat").items():
        key = _V1_MEMORY_RENAMES.get(name, name)
        if key in _V1_MEMORY_FIELDS:
            memory[key] = value
    memory["usage"] = _entry_v1(mem, "memory")
    memory["swap"] = _entry_v1(mem, "memory.memsw")
    memory["kernel"] = _entry_v1(mem, "memory.kmem")
    memory["kernel_tcp"] = _entry_v1(mem, "memory.kmem.tcp")
    oom = _keyed(mem, "memory.oom_control")

    acct = cg.path("cpuacct")
    ticks = os.sysconf("SC_CLK_TCK")
    cpustat = _keyed(acct, "cpuacct.stat")
    per_cpu = [int(v) for v in (_read(acct, "cpuacct.usage_percpu") or "").split() if v.isdigit()]
    throttle = _keyed(cg.path("cpu"), "cpu.stat")

    pids = cg.path("pids")
    return {
        "pids": {"current": _int(pids, "pids.current"), "limit": _int(pids, "pids.max")},
        "cpu": {
            "usage": {
                "total": _int(acct, "cpuacct.usage"),
                "kernel": cpustat.get("system", 0) * 1_000_000_000 // ticks,
                "user": cpustat.get("user", 0) * 1_000_000_000 // ticks,
                "per_cpu": per_cpu,
            },
            "throttling": {
                "periods": throttle.get("nr_periods", 0),
                "throttled_periods": throttle.get("nr_throttled", 0),
                "throttled_time": throttle.get("throttled_time", 0),
            },
        },
        "memory": memory,
        "memory_oom_control": {
            "oom_kill_disable": oom.get("oom_kill_disable", 0),
            "under_oom": oom.get("under_oom", 0),
            "oom_kill": oom.get("oom_kill", 0),
        },
    }


_V2_MEMORY_FIELDS = frozenset(
    {
        "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
        "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
        "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
        "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate",
        "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
    }
)  # fmt: skip


def _stats_v2(cg: Cgroup) -> dict[str, Any]:
    path = cg.path("")
    memory: dict[str, Any] = {k: v for k, v in _keyed(path, "memory.stat").items() if k in _V2_MEMORY_FIELDS}
    memory["usage"] = _int(path, "memory.current")
    memory["usage_limit"] = _int(path, "memory.max")
    memory["swap_usage"] = _int(path, "memory.swap.current")
    memory["swap_limit"] = _int(path, "memory.swap.max")
    cpu = _keyed(path, "cpu.stat")
    events = _keyed(path, "memory.events")
    return {
        "pids": {"current": _int(path, "pids.current"), "limit": _int(path, "pids.max")},
        "cpu": {
            k: cpu.get(k, 0)
            for k in ("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")
        },
        "memory": memory,
        "memory_events": {k: events.get(k, 0) for k in ("low", "high", "max", "oom", "oom_kill")},
    }


class OomWatch:
    """An fd that becomes readable when the cgroup's OOM killer acts.

    v1: an eventfd registered for ``memory.oom_control`` through
    ``cgroup.event_control`` (the kernel also signals it when the cgroup is
    removed, so :meth:`check` looks).  v2: an inotify watch on
    ``memory.events``, compared against the last ``oom_kill`` count.
    """

    def __init__(self, cg: Cgroup) -> None:
        self.cg = cg
        self._control = -1
        self._count = 0
        path = cg.path("memory")
        if path is None:
            raise OSError(2, "no memory cgroup")
        if cg.version == 1:
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            try:
                self._control = os.open(f"{path}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
                with open(f"{path}/cgroup.event_control", "w") as f:
                    f.write(f"{self.fd} {self._control}")
            except BaseException:
                self.close()
                raise
        else:
            self.fd = _linux.inotify_init()
            try:
                _linux.inotify_add_watch(self.fd, f"{path}/memory.events")
            except BaseException:
                self.close()
                raise
            self._count = _keyed(path, "memory.events").get("oom_kill", 0)

    def check(self) -> bool | None:
        """After the fd became readable: True for an OOM kill, False for nothing, None when the cgroup is gone."""
        try:
            os.read(self.fd, 4096)
            readable = True
        except BlockingIOError:
            readable = False
        if not self.cg.exists():
            return None
        if self.cg.version == 1:
            return readable
        count = _keyed(self.cg.path(""), "memory.events").get("oom_kill", 0)
        fired = count > self._count
        self._count = count
        return fired

    def close(self) -> None:
        for fd in (self.fd, self._control):
            if fd >= 0:
                os.close(fd)
        self.fd = self._control = -1
