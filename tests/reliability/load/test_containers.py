"""Containers started and removed in a loop: nothing accumulates.

Three ways take turns, so each path of the daemon is repeated: ``ctr run
--rm`` (attached, output checked), ``ctr run -d`` then ``ctr tasks kill -s
KILL``, ``tasks rm`` and ``containers rm`` (a detached life cycle ended by a
signal), and the Python client step by step (container record, snapshot,
FIFOs, create, start, wait, delete).  Afterwards the census of
:mod:`tests.reliability._runtime` finds no shim, container process, mount,
cgroup, FIFO, bundle, runc state, container, task, snapshot or lease, and
the daemon holds no more file descriptors than after the first few
containers (a leak of one per container would show).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_pb
from pycontainerd.client import Attached, Client, new_fifo_set
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.images.identity import chain_id
from tests.fixtures.daemon import DaemonFactory
from tests.ocibuild import busybox_files, image
from tests.reliability._runtime import BB, REF, RuntimeEnv
from tests.reliability.soak import record, scale
from tests.tasks.spec import remove_namespace_cgroups, spec_value

pytestmark = pytest.mark.containerd

NS = "loadctr"
COUNT = scale(30, 100)
WARMUP = 3
"""Containers run before the daemon's file descriptors are first counted (pools, the fork server)."""


@pytest.fixture
def env(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> Iterator[RuntimeEnv]:
    e = RuntimeEnv(pycontainerd_daemon_factory(), NS)
    e.import_image(tmp_path)
    try:
        yield e
    finally:
        remove_namespace_cgroups(NS)


def top_snapshot() -> str:
    img = image([busybox_files()])
    config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
    return chain_id(config["rootfs"]["diff_ids"])


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run_attached(e: RuntimeEnv, id: str) -> None:
    r = e.ctr("run", "--rm", REF, id, BB, "echo", id)
    assert r.returncode == 0 and r.stdout == f"{id}\n".encode(), r.stderr


def run_detached_and_kill(e: RuntimeEnv, id: str) -> None:
    e.ok("run", "-d", "--null-io", REF, id, BB, "sleep", "600")
    assert e.tasks()[id][1] == "RUNNING"
    e.ok("tasks", "kill", "-s", "KILL", id)
    deadline = time.monotonic() + 10
    while e.tasks()[id][1] != "STOPPED":
        assert time.monotonic() < deadline, e.tasks()
        time.sleep(0.02)
    r = e.ctr("tasks", "rm", id)
    assert r.returncode == 0 and b"exit code 137" in r.stderr, r.stderr
    e.ok("containers", "rm", id)


def run_with_client(c: Client, e: RuntimeEnv, top: str, id: str) -> None:
    options = runc_pb.Options(root=str(e.daemon.runc_root)).SerializeToString()
    c.containers.create(
        Container(
            id=id,
            runtime=RuntimeInfo("io.containerd.runc.v2", TypedValue("containerd.runc.v1.Options", options)),
            spec=spec_value(NS, id, [BB, "sh", "-c", f"echo {id}; exit 3"]),
            snapshotter="overlayfs",
            snapshot_key=id,
        )
    )
    snapshots = c.snapshotter("overlayfs")
    mounts = snapshots.prepare(id, top)
    fifos = new_fifo_set(id, stdin=False)
    out, err = io.BytesIO(), io.BytesIO()
    attached = Attached(fifos, None, out, err)
    try:
        c.tasks.create(id, rootfs=mounts, io=fifos.io)
        c.tasks.start(id)
        assert c.tasks.wait(id).status == 3
        assert attached.wait(10) and out.getvalue() == f"{id}\n".encode()
        assert c.tasks.delete(id).status == 3
    finally:
        attached.close()
        snapshots.remove(id)  # first, as containerd's client does: the record's deletion lets the collector at it
        c.containers.delete(id)


def test_containers_started_and_removed_in_a_loop(env: RuntimeEnv) -> None:
    top = top_snapshot()
    assert env.daemon.proc is not None
    daemon = env.daemon.proc.pid
    started = time.monotonic()
    baseline = 0
    with Client(env.daemon.address, namespace=NS) as c:
        for i in range(COUNT):
            id = f"loop{i}"
            env.ids.add(id)
            if i % 3 == 0:
                run_attached(env, id)
            elif i % 3 == 1:
                run_detached_and_kill(env, id)
            else:
                run_with_client(c, env, top, id)
            if i + 1 == WARMUP:
                baseline = fds(daemon)
    took = time.monotonic() - started
    leaks = env.leaks([top])
    grown = fds(daemon) - baseline
    record(
        "load",
        "containers started and removed in a loop (ctr run --rm; ctr run -d, kill, rm; the client)",
        COUNT,
        "no shim, process, mount, cgroup, FIFO, bundle, snapshot or lease left; daemon fds steady",
        problems=len(leaks) + (grown > 8),
    )
    print(f"{COUNT} containers in {took:.1f}s ({took / COUNT * 1000:.0f} ms each); daemon fds {baseline} -> +{grown}")
    assert leaks == []
    assert grown <= 8, f"the daemon holds {grown} more file descriptors after {COUNT - WARMUP} containers"
