"""The shim's cgroup readers on directories of cgroupfs files, compared with what containerd 1.6 reports.

The readers are functions of a directory, so a cgroup is a tmp directory
holding files in the kernel's formats (a v2 cgroup, v1 controllers of a
CFQ-era kernel), or a copy of a live one of this host.  The expected values
follow containerd's cgroups library: which files it reads, its fallbacks
and what a missing file leaves out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.api import typeurl
from pycontainerd.api.cgroups.v1 import metrics_pb2 as cg1
from pycontainerd.api.cgroups.v2 import metrics_pb2 as cg2
from pycontainerd.runtime.shim import _cgroups
from pycontainerd.runtime.shim.launcher import to_metrics

MAX64 = (1 << 64) - 1

# A container's cgroup on a 6.x kernel with cgroup v2 (files trimmed to the lines containerd might read, plus
# some it must skip: keys of newer kernels, nested keys, discard counters).
V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    "cpu.stat": (
        "usage_usec 1403218\nuser_usec 1104563\nsystem_usec 298655\ncore_sched.force_idle_usec 0\n"
        "nr_periods 40\nnr_throttled 3\nthrottled_usec 51234\nnr_bursts 0\nburst_usec 0\n"
    ),
    "memory.stat": (
        "anon 9023488\nfile 1142784\nkernel 720896\nkernel_stack 49152\npagetables 106496\nsock 0\nvmalloc 0\n"
        "shmem 4096\nfile_mapped 835584\nfile_dirty 8192\nfile_writeback 0\nswapcached 0\nanon_thp 0\n"
        "file_thp 0\nshmem_thp 0\ninactive_anon 9003008\nactive_anon 24576\ninactive_file 610304\n"
        "active_file 532480\nunevictable 0\nslab_reclaimable 219128\nslab_unreclaimable 178456\nslab 397584\n"
        "workingset_refault_anon 0\nworkingset_refault_file 0\nworkingset_activate_anon 0\n"
        "workingset_activate_file 0\nworkingset_restore_anon 0\nworkingset_restore_file 0\n"
        "workingset_nodereclaim 0\npgscan 0\npgsteal 0\npgscan_kswapd 0\npgscan_direct 0\npgfault 5342\n"
        "pgmajfault 11\npgrefill 0\npgactivate 130\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\n"
        "thp_fault_alloc 0\nthp_collapse_alloc 0\n"
    ),
    "memory.current": "11706368\n",
    "memory.max": "67108864\n",
    "memory.swap.current": "0\n",
    "memory.swap.max": "max\n",
    "memory.events": "low 0\nhigh 0\nmax 27\noom 1\noom_kill 1\noom_group_kill 0\n",
    "pids.current": "3\n",
    "pids.max": "max\n",
    "io.stat": (
        "254:0 rbytes=1048576 wbytes=2101248 rios=16 wios=35 dbytes=0 dios=0\n"
        "7:3 rbytes=40960 wbytes=0 rios=10 wios=0 dbytes=0 dios=0\n"
    ),
    "rdma.current": "mlx4_0 hca_handle=2 hca_object=2000\nocrdma1 hca_handle=3 hca_object=max\n",
    "rdma.max": "mlx4_0 hca_handle=max hca_object=max\nocrdma1 hca_handle=3 hca_object=max\n",
    "hugetlb.1GB.current": "0\n",
    "hugetlb.1GB.max": "max\n",
    "hugetlb.1GB.events": "max 0\n",
    "hugetlb.2MB.current": "4194304\n",
    "hugetlb.2MB.max": "8388608\n",
    "hugetlb.2MB.rsvd.current": "0\n",
    "hugetlb.2MB.rsvd.max": "max\n",
}


def v1_message(metrics: dict[str, Any]) -> cg1.Metrics:
    """What the daemon sends: the shim's dict as protobuf, under containerd's type URL (unpack checks it)."""
    return typeurl.unpack(typeurl.pack(to_metrics({"version": 1, "metrics": metrics})), cg1.Metrics)


def v2_message(metrics: dict[str, Any]) -> cg2.Metrics:
    return typeurl.unpack(typeurl.pack(to_metrics({"version": 2, "metrics": metrics})), cg2.Metrics)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_v2_reads_what_containerd_reads(tmp_path: Path) -> None:
    m = _cgroups.stats_v2(str(write_tree(tmp_path / "cg", V2_FILES)))
    assert m["pids"] == {"current": 3, "limit": MAX64}
    assert m["cpu"] == {
        "usage_usec": 1403218,
        "user_usec": 1104563,
        "system_usec": 298655,
        "nr_periods": 40,
        "nr_throttled": 3,
        "throttled_usec": 51234,
    }
    memory = m["memory"]
    assert (memory["usage"], memory["usage_limit"], memory["swap_usage"], memory["swap_limit"]) == (
        11706368,
        67108864,
        0,
        MAX64,
    )
    assert memory["anon"] == 9023488 and memory["file_dirty"] == 8192 and memory["pgmajfault"] == 11
    assert "workingset_refault" not in memory  # this kernel splits it into _anon and _file: containerd 1.6 reads 0
    assert "kernel" not in memory and "pagetables" not in memory  # not in the v2 MemoryStat message
    assert m["memory_events"] == {"low": 0, "high": 0, "max": 27, "oom": 1, "oom_kill": 1}
    assert m["io"]["usage"] == [
        {"major": 254, "minor": 0, "rbytes": 1048576, "wbytes": 2101248, "rios": 16, "wios": 35},
        {"major": 7, "minor": 3, "rbytes": 40960, "wbytes": 0, "rios": 10, "wios": 0},
    ]
    assert m["rdma"] == {
        "current": [
            {"device": "mlx4_0", "hca_handles": 2, "hca_objects": 2000},
            {"device": "ocrdma1", "hca_handles": 3, "hca_objects": (1 << 32) - 1},
        ],
        "limit": [
            {"device": "mlx4_0", "hca_handles": (1 << 32) - 1, "hca_objects": (1 << 32) - 1},
            {"device": "ocrdma1", "hca_handles": 3, "hca_objects": (1 << 32) - 1},
        ],
    }
    assert m["hugetlb"] == [
        {"pagesize": "1GB", "current": 0, "max": MAX64},
        {"pagesize": "2MB", "current": 4194304, "max": 8388608},
    ]

    msg = v2_message(m)
    assert msg.io.usage[0].wbytes == 2101248 and msg.memory_events.oom_kill == 1 and msg.pids.limit == MAX64
    assert msg.HasField("rdma") and msg.hugetlb[1].pagesize == "2MB"


def test_v2_without_controllers_reads_as_containerd(tmp_path: Path) -> None:
    """cpu.stat and memory.stat count only for controllers enabled on the cgroup; an empty cgroup still has
    (empty) io and rdma, and no memory_events without the file."""
    files = {k: v for k, v in V2_FILES.items() if not k.startswith(("io.", "rdma.", "hugetlb.", "memory.events"))}
    files["cgroup.controllers"] = "pids\n"
    m = _cgroups.stats_v2(str(write_tree(tmp_path / "cg", files)))
    assert m["cpu"] == {} and "anon" not in m["memory"] and m["memory"]["usage"] == 11706368
    assert m["io"] == {"usage": []} and m["rdma"] == {"current": [], "limit": []} and m["hugetlb"] == []
    assert "memory_events" not in m
    msg = v2_message(m)
    assert msg.HasField("io") and msg.HasField("rdma") and not msg.HasField("memory_events")


def test_v2_on_a_copy_of_a_live_cgroup(tmp_path: Path) -> None:
    """Whatever this host's cgroup2 files hold parses; the copy reads as the live directory does."""
    live = Path("/sys/fs/cgroup")
    if not (live / "cgroup.controllers").exists():
        live = live / "unified"
    if not (live / "cgroup.controllers").exists():
        pytest.skip("no cgroup2 hierarchy on this host")
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in live.iterdir():
        if f.is_file():
            try:
                shutil.copyfile(f, copy / f.name)
            except OSError:
                continue  # write-only files (cgroup.kill) and pressure files that refuse a plain read
    got = _cgroups.stats_v2(str(copy))
    assert set(got) >= {"pids", "cpu", "memory", "io", "rdma", "hugetlb"}
    assert v2_message(got).HasField("memory")


def cfq_blkio(ops: dict[str, int]) -> str:
    lines = [f"8:0 {op} {value}" for op, value in ops.items()]
    return "\n".join([*lines, f"8:0 Total {sum(ops.values())}", f"Total {sum(ops.values())}"]) + "\n"


THROTTLE = {
    "blkio.throttle.io_service_bytes": cfq_blkio({"Read": 4096, "Write": 1048576, "Sync": 1052672, "Async": 0}),
    "blkio.throttle.io_serviced": cfq_blkio({"Read": 1, "Write": 16, "Sync": 17, "Async": 0}),
}
PARTITIONS = "major minor  #blocks  name\n\n   8        0  268435456 sda\n   8        1     524288 sda1\n"


def blkio_of(tmp_path: Path, files: dict[str, str]) -> dict[str, Any]:
    root = write_tree(tmp_path / "blkio", files)
    return dict(_cgroups.stats_v1({"blkio": str(root)}, partitions=PARTITIONS)["blkio"])


def test_v1_blkio_reads_the_cfq_files_when_they_count(tmp_path: Path) -> None:
    files = {
        **THROTTLE,
        "blkio.io_serviced_recursive": cfq_blkio({"Read": 3, "Write": 5}),
        "blkio.io_service_bytes_recursive": cfq_blkio({"Read": 12288, "Write": 20480}),
        "blkio.sectors_recursive": "8:0 64\n",
        "blkio.time_recursive": "8:0 1234\n",
        "blkio.io_queued_recursive": "Total 0\n",
    }
    blkio = blkio_of(tmp_path, files)
    assert sorted(blkio) == [
        "io_service_bytes_recursive",
        "io_serviced_recursive",
        "io_time_recursive",
        "sectors_recursive",
    ]
    assert blkio["sectors_recursive"] == [{"major": 8, "minor": 0, "value": 64, "device": "/dev/sda"}]
    assert blkio["io_time_recursive"] == [{"major": 8, "minor": 0, "value": 1234, "device": "/dev/sda"}]
    assert [(e["op"], e["value"]) for e in blkio["io_serviced_recursive"]] == [("Read", 3), ("Write", 5), ("Total", 8)]


@pytest.mark.parametrize("cfq", [None, "Total 0\n"], ids=["blk-mq kernel", "cfq files empty"])
def test_v1_blkio_falls_back_to_blk_throttle(tmp_path: Path, cfq: str | None) -> None:
    files = dict(THROTTLE)
    if cfq is not None:
        files |= {"blkio.io_serviced_recursive": cfq, "blkio.io_service_bytes_recursive": cfq}
    blkio = blkio_of(tmp_path, files)
    assert sorted(blkio) == ["io_service_bytes_recursive", "io_serviced_recursive"]
    assert blkio["io_service_bytes_recursive"][1] == {
        "major": 8,
        "minor": 0,
        "op": "Write",
        "value": 1048576,
        "device": "/dev/sda",
    }
    assert [e["op"] for e in blkio["io_serviced_recursive"]] == ["Read", "Write", "Sync", "Async", "Total"]


def test_v1_blkio_entries_name_known_devices_only() -> None:
    devices = _cgroups.block_devices(PARTITIONS)
    assert devices == {(8, 0): "/dev/sda", (8, 1): "/dev/sda1"}
    assert _cgroups.blkio_entries("253:7 Read 5\nbad line here now x\n", devices) == [
        {"major": 253, "minor": 7, "op": "Read", "value": 5}
    ]


V1_MEMORY = {
    "memory.stat": (
        "cache 8192\nrss 8183808\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 8192\nwriteback 0\npgpgin 4513\n"
        "pgpgout 2513\npgfault 5007\npgmajfault 0\ninactive_anon 8175616\nactive_anon 8192\ninactive_file 0\n"
        "active_file 8192\nunevictable 0\nhierarchical_memory_limit 67108864\n"
        "hierarchical_memsw_limit 67108864\ntotal_cache 8192\ntotal_rss 8183808\ntotal_pgfault 5007\n"
    ),
    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    "memory.usage_in_bytes": "8687616\n",
    "memory.max_usage_in_bytes": "17006592\n",
    "memory.failcnt": "0\n",
    "memory.limit_in_bytes": "67108864\n",
    "memory.kmem.usage_in_bytes": "323584\n",
    "memory.kmem.max_usage_in_bytes": "614400\n",
    "memory.kmem.failcnt": "0\n",
    "memory.kmem.limit_in_bytes": "9223372036854771712\n",
}


def test_v1_memory_without_swap_accounting_stops_where_containerd_stops(tmp_path: Path) -> None:
    """No memory.memsw.* (swapaccount=0): containerd's reading ends there, so kernel and kernel_tcp stay empty."""
    root = write_tree(tmp_path / "memory", V1_MEMORY)
    m = _cgroups.stats_v1({"memory": str(root)})
    memory = m["memory"]
    assert memory["usage"] == {"usage": 8687616, "max": 17006592, "failcnt": 0, "limit": 67108864}
    assert memory["swap"] == memory["kernel"] == memory["kernel_tcp"] == {}
    assert memory["pg_pg_in"] == 4513 and memory["hierarchical_swap_limit"] == 67108864 and "shmem" not in memory
    assert m["memory_oom_control"] == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 2}
    msg = v1_message(m)
    assert msg.memory.HasField("kernel_tcp") and msg.memory_oom_control.oom_kill == 2
    assert msg.HasField("cpu") and msg.cpu.HasField("usage") and not msg.HasField("pids")


def test_v1_pids_cpu_hugetlb_rdma(tmp_path: Path) -> None:
    pids = write_tree(tmp_path / "pids", {"pids.current": "4\n", "pids.max": "max\n"})
    acct = write_tree(
        tmp_path / "cpuacct",
        {
            "cpuacct.stat": "user 7\nsystem 2\n",
            "cpuacct.usage": "95030988\n",
            "cpuacct.usage_percpu": "58377414 36653574 \n",
        },
    )
    cpu = write_tree(tmp_path / "cpu", {"cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n"})
    hugetlb = write_tree(
        tmp_path / "hugetlb",
        {
            **{
                f"hugetlb.2MB.{k}": v
                for k, v in (("usage_in_bytes", "2097152"), ("max_usage_in_bytes", "4194304"), ("failcnt", "1"))
            },
            "hugetlb.1GB.usage_in_bytes": "0",  # the rest of 1GB is missing: containerd stops at it
        },
    )
    rdma = write_tree(tmp_path / "rdma", {"rdma.current": "mlx4_0 hca_handle=1 hca_object=9\n", "rdma.max": "mlx4_0 hca_handle=max hca_object=max\n"})  # fmt: skip
    paths = {"pids": str(pids), "cpuacct": str(acct), "cpu": str(cpu), "hugetlb": str(hugetlb), "rdma": str(rdma)}
    m = _cgroups.stats_v1(paths, hugepages=_cgroups.hugepage_sizes(["hugepages-2048kB", "hugepages-1048576kB"]))
    assert m["pids"] == {"current": 4, "limit": 0}  # v1's "max" is 0, v2's 2^64-1
    assert m["cpu"] == {
        "usage": {"total": 95030988, "user": 70_000_000, "kernel": 20_000_000, "per_cpu": [58377414, 36653574]},
        "throttling": {"periods": 10, "throttled_periods": 2, "throttled_time": 5000},
    }
    assert m["hugetlb"] == []  # 1GB (read first, as sorted) is incomplete: nothing
    os.remove(hugetlb / "hugetlb.1GB.usage_in_bytes")
    for k in ("usage_in_bytes", "max_usage_in_bytes", "failcnt"):
        (hugetlb / f"hugetlb.1GB.{k}").write_text("0\n")
    m = _cgroups.stats_v1(paths, hugepages=["1GB", "2MB"])
    assert m["hugetlb"] == [
        {"pagesize": "1GB", "usage": 0, "max": 0, "failcnt": 0},
        {"pagesize": "2MB", "usage": 2097152, "max": 4194304, "failcnt": 1},
    ]
    assert m["rdma"]["current"] == [{"device": "mlx4_0", "hca_handles": 1, "hca_objects": 9}]
    assert "memory" not in m and "blkio" not in m  # controllers the cgroup is not in
    msg = v1_message(m)
    assert msg.rdma.limit[0].hca_handles == (1 << 32) - 1 and msg.hugetlb[1].failcnt == 1


def test_hugepage_size_names() -> None:
    names = ["hugepages-64kB", "hugepages-2048kB", "hugepages-1048576kB", "hugepages-32768kB", "README"]
    assert _cgroups.hugepage_sizes(names) == ["1GB", "2MB", "32MB", "64KB"]


def test_v1_on_a_copy_of_this_process_cgroups(tmp_path: Path) -> None:
    """This host's own v1 files, copied: the copy reads as the files say."""
    if _cgroups.unified():
        pytest.skip("no cgroup v1 on this host")
    own = _cgroups.find(os.getpid())
    paths = {}
    for controller in ("memory", "cpuacct", "pids", "blkio"):
        src = Path("/sys/fs/cgroup") / controller
        if own is not None and (p := own.path(controller)) is not None:
            src = Path(p)
        if not src.is_dir():
            continue
        dst = tmp_path / controller
        dst.mkdir()
        for f in src.iterdir():
            if f.is_file() and f.name.startswith((controller, "cpuacct", "pids", "blkio.throttle")):
                try:
                    shutil.copyfile(f, dst / f.name)
                except OSError:
                    continue
        paths[controller] = str(dst)
    m = _cgroups.stats_v1(paths, partitions=Path("/proc/partitions").read_text())
    if "memory" in paths:
        memory = Path(paths["memory"])
        assert m["memory"]["usage"]["usage"] == int((memory / "memory.usage_in_bytes").read_text())
        rss = next(line for line in (memory / "memory.stat").read_text().splitlines() if line.startswith("rss "))
        assert m["memory"]["rss"] == int(rss.split()[1])
    if "cpuacct" in paths:
        assert m["cpu"]["usage"]["total"] == int((Path(paths["cpuacct"]) / "cpuacct.usage").read_text())
    assert v1_message(m).HasField("cpu")
