"""A container's cgroup: where it is, its statistics, and OOM notifications.

The cgroup is found from ``/proc/<init pid>/cgroup`` right after ``runc
create`` — whatever cgroupsPath or cgroup driver the spec used — and kept,
so statistics still read after the init has exited.  The hierarchy is v2
when ``/sys/fs/cgroup`` is cgroup2 itself; on a hybrid host (v1
controllers beside a unified mount) runc uses v1, and so do we.

Statistics come back as dicts shaped like containerd's cgroups ``Metrics``
messages (v1 or v2, field for field), so the daemon can turn them into
protobuf without knowing cgroupfs.  They are read the way containerd's
cgroups library reads them — which files, which fallbacks, what a missing
file leaves out, ``max`` as 0 (v1 pids) or 2^64-1 (v2) — so ``ctr task
metrics`` prints the same fields for the same cgroup.  The readers are
functions of a directory's files, testable on copies.
"""

from __future__ import annotations

import os

from . import _linux

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Cgroup",
    "OomWatch",
    "blkio_entries",
    "block_devices",
    "find",
    "hugepage_sizes",
    "io_entries",
    "rdma_entries",
    "stats_v1",
    "stats_v2",
    "unified",
]

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
        if self.version == 2:
            return {"version": 2, "metrics": stats_v2(self.paths[""])}
        hugepages: list[str] | None = None
        if "hugetlb" in self.paths:
            try:
                hugepages = hugepage_sizes(os.listdir("/sys/kernel/mm/hugepages"))
            except OSError:
                pass  # no huge pages on this kernel: containerd leaves hugetlb out too
        partitions = (_read("/proc", "partitions") or "") if "blkio" in self.paths else ""
        return {"version": 1, "metrics": stats_v1(self.paths, partitions=partitions, hugepages=hugepages)}


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
            return f.read()
    except OSError:
        return None


def _uint(text: str) -> int | None:
    """Go's ParseUint as containerd's cgroups library uses it: negative numbers are 0, words are None."""
    try:
        value = int(text)
    except ValueError:
        return None
    return min(max(value, 0), _MAX)


def _file_uint(path: str | None, name: str) -> int | None:
    """A single-number file; None when it is missing or holds something else."""
    text = _read(path, name)
    return None if text is None else _uint(text.strip())


def _kv(text: str) -> dict[str, int]:
    """A flat keyed file's text (``key value`` lines); lines that are not a word and a number are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and (value := _uint(words[1])) is not None:
            out[words[0]] = value
    return out


def _keyed(path: str | None, name: str) -> dict[str, int]:
    return _kv(_read(path, name) or "")


# --- cgroup v1: one directory per controller ---------------------------------------------------------------------

# memory.stat keys whose Metrics field is named differently
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
# MemoryEntry field → file suffix, in the order containerd reads them
_V1_MEMORY_ENTRY = (("usage", "usage_in_bytes"), ("max", "max_usage_in_bytes"), ("failcnt", "failcnt"), ("limit", "limit_in_bytes"))  # fmt: skip
# the CFQ scheduler's blkio files (kernels before 5.0): file → BlkIOStat field
_V1_BLKIO_CFQ = (
    ("sectors_recursive", "sectors_recursive"),
    ("io_service_bytes_recursive", "io_service_bytes_recursive"),
    ("io_serviced_recursive", "io_serviced_recursive"),
    ("io_queued_recursive", "io_queued_recursive"),
    ("io_service_time_recursive", "io_service_time_recursive"),
    ("io_wait_time_recursive", "io_wait_time_recursive"),
    ("io_merged_recursive", "io_merged_recursive"),
    ("time_recursive", "io_time_recursive"),
)
# what blk-throttle counts, read when the CFQ files are absent or empty; containerd reads no bfq.* file
_V1_BLKIO_THROTTLE = (("throttle.io_serviced", "io_serviced_recursive"), ("throttle.io_service_bytes", "io_service_bytes_recursive"))  # fmt: skip
_CLOCK_TICKS = 100  # USER_HZ: containerd hard-codes it, and it is 100 on every Linux


def _memory_v1(path: str, out: dict[str, Any]) -> None:
    """memory and memory_oom_control; like containerd, a missing file ends the reading where it is."""
    stat = _read(path, "memory.stat")
    if stat is None:
        return
    memory: dict[str, Any] = {"usage": {}, "swap": {}, "kernel": {}, "kernel_tcp": {}}
    for name, value in _kv(stat).items():
        key = _V1_MEMORY_RENAMES.get(name, name)
        if key in _V1_MEMORY_FIELDS:
            memory[key] = value
    out["memory"] = memory
    oom_control = _read(path, "memory.oom_control")
    if oom_control is None:
        return
    oom = _kv(oom_control)
    out["memory_oom_control"] = {k: oom.get(k, 0) for k in ("oom_kill_disable", "under_oom", "oom_kill")}
    # memory.memsw.* exist only with swap accounting: without it swap, kernel and kernel_tcp stay empty
    for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"), ("kernel_tcp", "memory.kmem.tcp")):  # fmt: skip
        for field, suffix in _V1_MEMORY_ENTRY:
            number = _file_uint(path, f"{prefix}.{suffix}")
            if number is None:
                return
            memory[key][field] = number


def _cpu_v1(acct: str | None, cpu: str | None) -> dict[str, Any]:
    """cpuacct's usage (all or nothing) and cpu's throttling; both present even without the controllers."""
    usage: dict[str, Any] = {}
    stat = (_read(acct, "cpuacct.stat") or "").split()
    total = _file_uint(acct, "cpuacct.usage")
    per_cpu = [_uint(v) for v in (_read(acct, "cpuacct.usage_percpu") or "").split()]
    if len(stat) == 4 and stat[0] == "user" and stat[2] == "system" and total is not None and None not in per_cpu:
        user, system = _uint(stat[1]), _uint(stat[3])
        if user is not None and system is not None:
            usage = {
                "total": total,
                "user": user * 1_000_000_000 // _CLOCK_TICKS,
                "kernel": system * 1_000_000_000 // _CLOCK_TICKS,
                "per_cpu": per_cpu,
            }
    throttle = _keyed(cpu, "cpu.stat")
    names = (("periods", "nr_periods"), ("throttled_periods", "nr_throttled"), ("throttled_time", "throttled_time"))
    return {"usage": usage, "throttling": {k: throttle[n] for k, n in names if n in throttle}}


def block_devices(partitions: str) -> dict[tuple[int, int], str]:
    """(major, minor) → ``/dev/<name>`` from the text of ``/proc/partitions``; the first name of a number wins."""
    out: dict[tuple[int, int], str] = {}
    for line in partitions.splitlines()[2:]:
        words = line.split()
        if len(words) >= 4 and words[0].isdigit() and words[1].isdigit():
            out.setdefault((int(words[0]), int(words[1])), "/dev/" + words[3])
    return out


def blkio_entries(text: str, devices: dict[tuple[int, int], str]) -> list[dict[str, Any]]:
    """The BlkIOEntry list of one blkio file: ``maj:min [op] value`` lines; ``Total`` lines are skipped."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        words = line.replace(":", " ").split()
        if len(words) not in (3, 4):
            continue
        numbers = [_uint(w) for w in (words[0], words[1], words[-1])]
        major, minor, value = numbers
        if major is None or minor is None or value is None:
            continue
        entry: dict[str, Any] = {"major": major, "minor": minor, "value": value}
        if len(words) == 4:
            entry["op"] = words[2]
        if (major, minor) in devices:
            entry["device"] = devices[(major, minor)]
        out.append(entry)
    return out


def _blkio_v1(path: str, devices: dict[tuple[int, int], str]) -> dict[str, Any]:
    """The CFQ ``*_recursive`` files when the kernel has them and they say something, else blk-throttle's two."""
    blkio: dict[str, Any] = {}
    if os.path.lexists(f"{path}/blkio.io_serviced_recursive"):
        for name, field in _V1_BLKIO_CFQ:
            if entries := blkio_entries(_read(path, f"blkio.{name}") or "", devices):
                blkio[field] = entries
        if blkio:
            return blkio
    for name, field in _V1_BLKIO_THROTTLE:
        if entries := blkio_entries(_read(path, f"blkio.{name}") or "", devices):
            blkio[field] = entries
    return blkio


def hugepage_sizes(names: list[str]) -> list[str]:
    """hugetlb's size names (``2MB``, ``1GB``) from ``/sys/kernel/mm/hugepages`` entries (``hugepages-2048kB``)."""
    out = []
    for name in sorted(names):
        number = name.removeprefix("hugepages-").removesuffix("kB")
        if not number.isdigit():
            continue
        size = float(int(number) * 1024)
        unit = 0
        while size >= 1024 and unit < 5:
            size /= 1024
            unit += 1
        out.append(f"{size:g}{('B', 'KB', 'MB', 'GB', 'TB', 'PB')[unit]}")
    return out


def _hugetlb_v1(path: str, sizes: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for size in sizes:
        entry: dict[str, Any] = {"pagesize": size}
        for field, suffix in (("usage", "usage_in_bytes"), ("max", "max_usage_in_bytes"), ("failcnt", "failcnt")):
            value = _file_uint(path, f"hugetlb.{size}.{suffix}")
            if value is None:
                return out
            entry[field] = value
        out.append(entry)
    return out


def rdma_entries(text: str) -> list[dict[str, Any]]:
    """``rdma.current``/``rdma.max`` lines: ``<device> hca_handle=N hca_object=N`` ("max" is 2^32-1)."""
    out: list[dict[str, Any]] = []
    for line in text.split("\n"):
        words = line.split()
        if len(words) != 3:
            continue
        entry: dict[str, Any] = {"device": words[0]}
        for word in words[1:]:
            key, _, raw = word.partition("=")
            value = (1 << 32) - 1 if raw == "max" else _uint(raw)
            if value is None or value >= 1 << 32:
                continue
            if key in ("hca_handle", "hca_object"):
                entry[key + "s"] = value
        out.append(entry)
    return out


def stats_v1(paths: dict[str, str], *, partitions: str = "", hugepages: list[str] | None = None) -> dict[str, Any]:
    """containerd's v1 Metrics of a cgroup whose controllers are in ``paths``, read as containerd reads them.

    A controller whose directory is missing contributes nothing; ``cpu``
    is always there.  ``partitions`` (``/proc/partitions``) names the block
    devices; ``hugepages`` are the host's page sizes as hugetlb names them.
    """
    live = {c: p for c, p in paths.items() if os.path.isdir(p)}
    out: dict[str, Any] = {"cpu": _cpu_v1(live.get("cpuacct"), live.get("cpu"))}
    if (pids := live.get("pids")) is not None:
        current, limit = _file_uint(pids, "pids.current"), (_read(pids, "pids.max") or "").strip()
        if current is not None and (limit == "max" or _uint(limit) is not None):
            out["pids"] = {"current": current, "limit": 0 if limit == "max" else _uint(limit)}  # unlimited is 0 in v1
    if (memory := live.get("memory")) is not None:
        _memory_v1(memory, out)
    if (blkio := live.get("blkio")) is not None:
        out["blkio"] = _blkio_v1(blkio, block_devices(partitions))
    if (hugetlb := live.get("hugetlb")) is not None and hugepages is not None:
        out["hugetlb"] = _hugetlb_v1(hugetlb, hugepages)
    if (rdma := live.get("rdma")) is not None:
        used, most = _read(rdma, "rdma.current"), _read(rdma, "rdma.max")
        if used is not None and most is not None and used.count("\n") == most.count("\n"):  # else a device went
            out["rdma"] = {"current": rdma_entries(used), "limit": rdma_entries(most)}
    return out


# --- cgroup v2: one directory ------------------------------------------------------------------------------------

_V2_MEMORY_FIELDS = frozenset(
    {
        "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
        "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
        "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
        "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate",
        "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
    }
)  # fmt: skip
_V2_CPU_FIELDS = ("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")


def _v2_value(path: str, name: str) -> int:
    """A v2 limit or counter: ``max`` is 2^64-1, a missing or odd file 0."""
    text = (_read(path, name) or "").strip()
    return _MAX if text == "max" else _uint(text) or 0


def io_entries(text: str) -> list[dict[str, Any]]:
    """``io.stat`` lines: ``maj:min rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`` → IOEntry."""
    out: list[dict[str, Any]] = []
    for line in text.split("\n"):
        words = line.split(" ")
        if len(words) < 2:
            continue
        major, sep, minor = words[0].partition(":")
        if not sep:
            continue
        if (maj := _uint(major)) is None or (mn := _uint(minor)) is None:
            break  # as containerd: the rest is not trusted
        entry: dict[str, Any] = {"major": maj, "minor": mn}
        for word in words[1:]:
            key, _, raw = word.partition("=")
            if key in ("rbytes", "wbytes", "rios", "wios") and (value := _uint(raw)) is not None:
                entry[key] = value
        out.append(entry)
    return out


def _hugetlb_v2(path: str) -> list[dict[str, Any]]:
    """One HugeTlbStat per page size with a ``hugetlb.<size>.current`` or ``.max`` file."""
    by_size: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    for name in names:
        parts = name.split(".")
        if "hugetlb" not in name or not name.endswith(("max", "current")) or len(parts) < 3:
            continue
        text = _read(path, name)
        if text is None:
            continue
        value = _MAX if text.strip() == "max" else _uint(text.strip())
        if value is None:
            continue
        entry = by_size.setdefault(parts[1], {"pagesize": parts[1]})
        if parts[2] in ("max", "current"):
            entry[parts[2]] = value
    return list(by_size.values())


def stats_v2(path: str) -> dict[str, Any]:
    """containerd's v2 Metrics of the cgroup directory ``path``, read as containerd reads it.

    ``cpu.stat`` and ``memory.stat`` count only when the controller is in
    the directory's ``cgroup.controllers``; io, rdma and hugetlb are read
    from whatever files are there.
    """
    controllers = (_read(path, "cgroup.controllers") or "").split()
    values: dict[str, int] = {}
    for c in ("cpu", "memory"):
        if c in controllers:
            values.update(_keyed(path, f"{c}.stat"))
    memory: dict[str, Any] = {k: values[k] for k in _V2_MEMORY_FIELDS if k in values}
    memory["usage"] = _v2_value(path, "memory.current")
    memory["usage_limit"] = _v2_value(path, "memory.max")
    memory["swap_usage"] = _v2_value(path, "memory.swap.current")
    memory["swap_limit"] = _v2_value(path, "memory.swap.max")
    out: dict[str, Any] = {
        "pids": {"current": _v2_value(path, "pids.current"), "limit": _v2_value(path, "pids.max")},
        "cpu": {k: values[k] for k in _V2_CPU_FIELDS if k in values},
        "memory": memory,
        "io": {"usage": io_entries(_read(path, "io.stat") or "")},
        "rdma": {
            "current": rdma_entries(_read(path, "rdma.current") or ""),
            "limit": rdma_entries(_read(path, "rdma.max") or ""),
        },
        "hugetlb": _hugetlb_v2(path),
    }
    if events := _keyed(path, "memory.events"):
        out["memory_events"] = {k: events.get(k, 0) for k in ("low", "high", "max", "oom", "oom_kill")}
    return out


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
