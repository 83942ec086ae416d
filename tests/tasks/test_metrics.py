"""Per-container metrics: the Tasks Metrics RPC against the container's cgroup files, and ``ctr task metrics``.

Containers run for real (runc, overlayfs, the kernel's cgroups).  Numbers
are compared while the task is paused: a frozen cgroup's counters hold
still, so the RPC and a read of the files agree exactly.

Block IO: on a v1 host only blk-throttle counts it (the CFQ files went
with kernel 5.0), and recent kernels — this host's 6.18 among them — count
nothing for a disk until some cgroup has a throttle limit on it.  So the
containers set a limit nobody reaches (1 TiB/s) on the disk under the
daemon's root, as ``docker run --device-write-bps`` would, and move data
with O_DIRECT, past the page cache.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycontainerd import errors
from pycontainerd.api import typeurl
from pycontainerd.api.cgroups.v1 import metrics_pb2 as cg1
from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_pb
from pycontainerd.client import Client
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.events import Envelope
from pycontainerd.images.identity import chain_id
from tests.fixtures.containerd import Containerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import busybox_files, image, oci_layout_tar
from tests.tasks.spec import SPEC_TYPE_URL, minimal_spec, remove_namespace_cgroups

pytestmark = pytest.mark.containerd

CTR = "/usr/bin/ctr"
NS = "metricstest"
REF = "example.com/test/busybox:1"
MB = 1 << 20
V1 = Path("/sys/fs/cgroup")

# Moves block IO both ways past the page cache, spins, holds 8 MB in the shell, then waits for a sleeping child.
WORKLOAD = (
    "dd if=/dev/zero of=/data bs=64k count=16 oflag=direct 2>/dev/null && "
    "dd if=/data of=/dev/null bs=64k iflag=direct 2>/dev/null && "
    "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
    "x=$(head -c 8000000 /dev/zero | tr '\\0' a); "
    "sleep 600 & wait"
)


def disk_of(path: Path) -> tuple[int, int] | None:
    """(major, minor) of the whole disk holding ``path`` — blk-throttle limits name disks — or None off a disk."""
    dev = os.stat(path).st_dev
    sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sys_dev.exists():
        return None  # tmpfs, overlay, btrfs subvolumes: no block device of their own
    if (sys_dev / "partition").exists():
        sys_dev = sys_dev.resolve().parent
    major, minor = (sys_dev / "dev").read_text().split(":")
    return int(major), int(minor)


def argv0(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


def bundle_spec(id: str, args: list[str], *, memory: int, disk: tuple[int, int] | None) -> TypedValue:
    spec = minimal_spec(NS, id, args)
    resources: dict[str, Any] = {"memory": {"limit": memory, "swap": memory}}
    if disk is not None:
        throttle = [{"major": disk[0], "minor": disk[1], "rate": 1 << 40}]
        resources["blockIO"] = {"throttleReadBpsDevice": throttle, "throttleWriteBpsDevice": throttle}
    spec["linux"]["resources"] = resources
    return TypedValue(SPEC_TYPE_URL, json.dumps(spec).encode())


class Host:
    """One daemon holding the busybox image in NS: containers made and run through pycontainerd's client."""

    def __init__(self, address: str, runc_root: Path, root: Path, tmp: Path) -> None:
        self.address, self.runc_root, self.disk, self.tmp = address, runc_root, disk_of(root), tmp
        img = image([busybox_files()])
        archive = tmp / "busybox.tar"
        archive.write_bytes(oci_layout_tar(img, REF))
        self.ctr("images", "import", str(archive))
        config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
        self.top = chain_id(config["rootfs"]["diff_ids"])
        self.client = Client(address, namespace=NS)
        self.ids: list[str] = []

    def ctr(self, *args: str) -> str:
        r = subprocess.run([CTR, "-a", self.address, "-n", NS, *args], capture_output=True, timeout=60, check=False)
        assert r.returncode == 0, f"ctr {' '.join(args)}: {r.stderr.decode()}"
        return r.stdout.decode()

    def run(self, id: str, script: str, *, memory: int) -> int:
        """Create and start a task running ``sh -c script``; its pid."""
        c = self.client
        options = runc_pb.Options(root=str(self.runc_root)).SerializeToString()
        c.containers.create(
            Container(
                id=id,
                runtime=RuntimeInfo("io.containerd.runc.v2", TypedValue("containerd.runc.v1.Options", options)),
                spec=bundle_spec(id, ["/bin/busybox", "sh", "-c", script], memory=memory, disk=self.disk),
                snapshotter="overlayfs",
                snapshot_key=id,
            )
        )
        self.ids.append(id)
        mounts = c.snapshotter("overlayfs").prepare(id, self.top)
        c.tasks.create(id, rootfs=list(mounts))
        return c.tasks.start(id)

    def metrics(self, id: str) -> cg1.Metrics:
        [(mid, data)] = self.client.tasks.metrics([id])
        assert mid == id and typeurl.name_of(data) == "io.containerd.cgroups.v1.Metrics"
        return typeurl.unpack(data, cg1.Metrics)

    def wait_settled(self, id: str, timeout: float = 20) -> None:
        """Until WORKLOAD is down to its shell and the sleeping child (a subshell on the way also makes two)."""
        deadline = time.monotonic() + timeout
        while sorted(argv0(pid) for pid, _ in self.client.tasks.pids(id)) != ["/bin/busybox", "sleep"]:
            assert time.monotonic() < deadline, self.client.tasks.pids(id)
            time.sleep(0.05)

    def close(self) -> None:
        c = self.client
        steps = (
            c.tasks.resume,
            lambda id: c.tasks.kill(id, signal.SIGKILL, all=True),
            c.tasks.wait,
            c.tasks.delete,
            c.containers.delete,
            c.snapshotter("overlayfs").remove,
        )
        for id in self.ids:
            for step in steps:
                try:
                    step(id)
                except errors.ContainerdError:
                    pass
        c.close()


@pytest.fixture
def host(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> Iterator[Host]:
    h = Host(pycontainerd_daemon.address, pycontainerd_daemon.runc_root, pycontainerd_daemon.root, tmp_path)
    try:
        yield h
    finally:
        h.close()
        remove_namespace_cgroups(NS)


def v1_only() -> None:
    if not (V1 / "memory").is_dir():
        pytest.skip("runc puts containers in cgroup v2 on this host; the v2 reader is tested on files")


def read_int(path: Path) -> int:
    return int(path.read_text())


def keyed(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def blkio_file(path: Path) -> list[tuple[str, int, int, int]]:
    """(op, major, minor, value) of a blkio file's device lines."""
    out = []
    for line in path.read_text().splitlines():
        words = line.replace(":", " ").split()
        if len(words) == 4:
            out.append((words[2], int(words[0]), int(words[1]), int(words[3])))
    return out


CGROUP_FILES = (
    "memory/memory.usage_in_bytes",
    "memory/memory.max_usage_in_bytes",
    "memory/memory.failcnt",
    "memory/memory.memsw.limit_in_bytes",
    "memory/memory.stat",
    "memory/memory.oom_control",
    "pids/pids.current",
    "cpuacct/cpuacct.usage",
    "cpuacct/cpuacct.usage_percpu",
    "blkio/blkio.throttle.io_service_bytes",
    "blkio/blkio.throttle.io_serviced",
)


def frozen_metrics(host: Host, id: str) -> tuple[cg1.Metrics, dict[str, Path]]:
    """The RPC's answer between two identical reads of the cgroup's files, and a copy of those files.

    Frozen tasks change nothing, but the kernel may still reclaim a frozen
    cgroup's page cache under pressure from elsewhere: then read again.
    """
    live = {name: V1 / name.split("/")[0] / NS / id / name.split("/")[1] for name in CGROUP_FILES}
    for _ in range(20):
        before = {name: path.read_text() for name, path in live.items() if path.exists()}
        m = host.metrics(id)
        after = {name: path.read_text() for name, path in live.items() if path.exists()}
        if before == after:
            copy = Path(host.tmp) / "cgroup"
            for name, text in before.items():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                (copy / name).write_text(text)
            return m, {c: copy / c for c in ("memory", "pids", "cpuacct", "blkio")}
        time.sleep(0.05)
    pytest.fail("the paused container's cgroup files kept changing")


def test_metrics_are_the_cgroup_files(host: Host) -> None:
    v1_only()
    id = "busy"
    host.run(id, WORKLOAD, memory=64 * MB)
    host.wait_settled(id)
    host.client.tasks.pause(id)
    m, cg = frozen_metrics(host, id)

    stat = keyed(cg["memory"] / "memory.stat")
    assert m.memory.usage.usage == read_int(cg["memory"] / "memory.usage_in_bytes") and m.memory.usage.limit == 64 * MB
    assert m.memory.usage.max == read_int(cg["memory"] / "memory.max_usage_in_bytes")
    assert m.memory.rss == stat["rss"] >= 8_000_000 and m.memory.total_rss == stat["total_rss"]
    assert m.memory.cache == stat["cache"] and m.memory.pg_fault == stat["pgfault"]
    assert m.memory.hierarchical_memory_limit == 64 * MB
    assert m.memory.swap.limit == read_int(cg["memory"] / "memory.memsw.limit_in_bytes") == 64 * MB
    assert m.memory_oom_control.oom_kill == keyed(cg["memory"] / "memory.oom_control")["oom_kill"] == 0
    assert m.memory.usage.failcnt == read_int(cg["memory"] / "memory.failcnt")

    assert m.pids.current == read_int(cg["pids"] / "pids.current") == len(host.client.tasks.pids(id)) == 2
    assert m.pids.limit == 0  # pids.max is "max"
    assert m.cpu.usage.total == read_int(cg["cpuacct"] / "cpuacct.usage") > 0
    assert list(m.cpu.usage.per_cpu) == [int(v) for v in (cg["cpuacct"] / "cpuacct.usage_percpu").read_text().split()]
    assert m.cpu.usage.user + m.cpu.usage.kernel > 0

    if host.disk is None:
        pytest.skip("the daemon's root is not on a block device: no block IO to count")
    if (V1 / "blkio" / NS / id / "blkio.io_serviced_recursive").exists() and m.blkio.sectors_recursive:
        pytest.skip("a CFQ kernel: its *_recursive files are what counts (the readers' tests cover them)")
    bytes_, ios = m.blkio.io_service_bytes_recursive, m.blkio.io_serviced_recursive
    assert [(e.op, e.major, e.minor, e.value) for e in bytes_] == blkio_file(
        cg["blkio"] / "blkio.throttle.io_service_bytes"
    )
    assert [(e.op, e.major, e.minor, e.value) for e in ios] == blkio_file(cg["blkio"] / "blkio.throttle.io_serviced")
    on_disk = [e for e in bytes_ if (e.major, e.minor) == host.disk]
    moved = {e.op: e.value for e in on_disk}
    assert moved["Write"] >= MB and moved["Read"] >= MB, moved
    assert len({e.device for e in on_disk}) == 1 and on_disk[0].device.startswith("/dev/")


def _follow(address: str, into: queue.Queue[Envelope]) -> Client:
    """A second client whose subscription feeds ``into``; closing it ends the subscription."""
    follower = Client(address, namespace=NS)

    def run() -> None:
        try:
            for e in follower.events.subscribe([f'namespace=="{NS}"']):
                into.put(e)
        except errors.ContainerdError:
            pass

    threading.Thread(target=run, daemon=True).start()
    return follower


def test_oom_kill_is_counted_and_published(host: Host) -> None:
    v1_only()
    got: queue.Queue[Envelope] = queue.Queue()
    follower = _follow(host.address, got)
    try:
        # The subscription is live once an event of ours arrives through it.
        host.run("probe", "exit 0", memory=64 * MB)
        deadline = time.monotonic() + 10
        while (e := got.get(timeout=max(0.1, deadline - time.monotonic()))).topic != "/tasks/exit":
            pass
        host.run("oom", "exec tail /dev/zero", memory=16 * MB)  # one line without end: tail keeps all of it
        assert host.client.tasks.wait("oom").status == 137
        m = host.metrics("oom")  # an exited task keeps its cgroup until it is deleted
        memory = V1 / "memory" / NS / "oom"
        assert m.memory_oom_control.oom_kill == keyed(memory / "memory.oom_control")["oom_kill"] == 1
        assert m.memory.usage.max == m.memory.usage.limit == 16 * MB
        # failcnt is what the kernel says (recent kernels leave it at 0 even here): the oom_kill count is the sign
        assert m.memory.usage.failcnt == read_int(memory / "memory.failcnt")
        assert m.memory.swap.failcnt == read_int(memory / "memory.memsw.failcnt")
        topics = []
        deadline = time.monotonic() + 10
        while "/tasks/exit" not in topics:
            e = got.get(timeout=max(0.1, deadline - time.monotonic()))
            if e.topic.startswith("/tasks/"):
                topics.append(e.topic)
        assert "/tasks/oom" in topics and topics.index("/tasks/oom") < topics.index("/tasks/exit")
    finally:
        follower.close()


# Counters of the page cache and of CPU time split by mode: their zeros (which JSON omits) depend on timing.
VOLATILE = frozenset(
    {"cache", "dirty", "writeback", "mapped_file", "active_file", "inactive_file", "pg_maj_fault", "rss_huge"}
    | {"unevictable", "kernel", "user"}
)


def shape(value: Any, key: str = "") -> Any:
    """A ``ctr task metrics --format json`` document with numbers as "n", per-CPU lists as their length,
    and the volatile counters left out: what must be the same for equivalent containers."""
    if isinstance(value, dict):
        return {
            k: shape(v, k)
            for k, v in value.items()
            if not (isinstance(v, int) and k.removeprefix("total_") in VOLATILE)
        }
    if isinstance(value, list):
        return len(value) if key == "per_cpu" else [shape(v) for v in value]
    return value if isinstance(value, str) else "n"


def table(text: str) -> dict[str, str]:
    """The METRIC/VALUE rows of ``ctr task metrics``."""
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "TIMESTAMP"] and lines[3].split() == ["METRIC", "VALUE"], text
    return {k: v.strip() for k, v in (line.split(None, 1) for line in lines[4:] if line.strip())}


def test_ctr_task_metrics_prints_what_containerd_prints(
    containerd: Containerd, pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path
) -> None:
    v1_only()
    hosts = {
        "containerd": Host(containerd.address, containerd.runc_root, containerd.root, tmp_path),
        "pycontainerd": Host(
            pycontainerd_daemon.address, pycontainerd_daemon.runc_root, pycontainerd_daemon.root, tmp_path
        ),
    }
    tables, docs = {}, {}
    try:
        for name, h in hosts.items():
            id = f"cmp-{name}"  # cgroups are per id: the two containers run side by side
            h.run(id, WORKLOAD, memory=64 * MB)
        for name, h in hosts.items():
            id = f"cmp-{name}"
            h.wait_settled(id)
            h.client.tasks.pause(id)
            tables[name] = table(h.ctr("task", "metrics", id))
            docs[name] = json.loads(h.ctr("task", "metrics", "--format", "json", id))
    finally:
        for h in hosts.values():
            h.close()
    ours, theirs = tables["pycontainerd"], tables["containerd"]
    assert (
        list(ours)
        == list(theirs)
        == [
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.stat.cache",
            "cpuacct.usage",
            "cpuacct.usage_percpu",
            "pids.current",
            "pids.limit",
        ]
    )
    for key in ("memory.limit_in_bytes", "pids.current", "pids.limit"):
        assert ours[key] == theirs[key], key
    assert len(ours["cpuacct.usage_percpu"].split()) == len(theirs["cpuacct.usage_percpu"].split()) == os.cpu_count()

    assert shape(docs["pycontainerd"]) == shape(docs["containerd"])
    for doc in docs.values():
        memory = doc["memory"]
        assert memory["usage"]["limit"] == memory["swap"]["limit"] == memory["hierarchical_memory_limit"] == 64 * MB
        assert doc["pids"] == {"current": 2}  # pids.max "max" is a limit of 0, which JSON omits
        if hosts["pycontainerd"].disk is not None:
            moved = {e["op"]: e.get("value", 0) for e in doc["blkio"]["io_service_bytes_recursive"]}
            assert moved["Read"] >= MB and moved["Write"] >= MB, doc["blkio"]
