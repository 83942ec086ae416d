"""The OCI runtime failing: runc refusing, a runtime exiting non-zero or hanging on create, a shim SIGKILLed.

Each failure reaches the client as one error with the right gRPC status
(``ctr run`` and ``pyctr run`` print one line), and leaves nothing behind:
no shim, no container process, no mount, no cgroup, no FIFO, no bundle, no
runc state; the container record is then removed cleanly, its snapshot
with it.  The failing runtimes are real programs — small shell scripts that
wrap the real runc and misbehave on ``create`` — handed to the daemon as
ctr's ``--runc-binary`` (the runtime option ``BinaryName``).

A shim killed with SIGKILL is compared with containerd's own: the task is
reported exited (``/tasks/exit``, 137), a Wait in flight returns (containerd's
with an error, ours with the exit status, 137), nothing
hangs (Kill, Delete, the container's removal answer at once), and the
container's processes and mounts are gone (containerd's ``shim delete``).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pycontainerd import errors
from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_pb
from pycontainerd.client import Client
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.images.identity import chain_id
from pycontainerd.tasks import Exit
from tests.fixtures._shims import shims_under
from tests.fixtures.containerd import Containerd
from tests.fixtures.daemon import DaemonFactory
from tests.ocibuild import busybox_files, image
from tests.reliability._runtime import BB, REF, RuntimeEnv, alive, one_line
from tests.reliability.soak import record, scale
from tests.tasks.spec import SPEC_TYPE_URL, minimal_spec, remove_namespace_cgroups

pytestmark = pytest.mark.containerd

NS = "rtfault"
TIMEOUT = 3.0
"""The daemon's runtime_timeout in these tests: how long a hanging create is given."""
CONFIG = f'version = 2\n[plugins."io.containerd.runtime.v2.task"]\nruntime_timeout = "{TIMEOUT:g}s"\n'

# Real runc for every command but create, which fails (exit 3) or hangs (with a child, in its group).
FAILING = """#!/bin/sh
for a; do [ "$a" = create ] && { echo $$ >> MARKS; exit 3; }; done
exec runc "$@"
"""
HANGING = """#!/bin/sh
for a; do
  if [ "$a" = create ]; then
    echo $$ >> MARKS; sleep 3600 & echo $! >> MARKS; wait; exit 0
  fi
done
exec runc "$@"
"""

# Freezes the shim that runs it (SIGSTOP to its parent), then creates the container with real runc.
FREEZING = """#!/bin/sh
for a; do [ "$a" = create ] && { echo $PPID >> MARKS; kill -STOP $PPID; }; done
exec runc "$@"
"""


def top_snapshot() -> str:
    img = image([busybox_files()])
    config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
    return chain_id(config["rootfs"]["diff_ids"])


@pytest.fixture
def env(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> Iterator[RuntimeEnv]:
    e = RuntimeEnv(pycontainerd_daemon_factory(config=CONFIG), NS)
    e.import_image(tmp_path)
    try:
        yield e
    finally:
        for marks in tmp_path.glob("*.marks"):  # whatever a misbehaving runtime started, even if a test failed
            for pid in marks.read_text().split():
                with _suppress():
                    os.kill(int(pid), signal.SIGKILL)
        remove_namespace_cgroups(NS)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError | ValueError)  # type: ignore[arg-type]


def wrapper(tmp: Path, name: str, text: str) -> tuple[Path, Path]:
    """A runtime script and the file it notes its pids in."""
    marks = tmp / f"{name}.marks"
    script = tmp / name
    script.write_text(text.replace("MARKS", str(marks)))
    script.chmod(0o755)
    return script, marks


def assert_clean_after_rm(e: RuntimeEnv, *ids: str) -> None:
    """The failed containers' records (and snapshots) remain until removed; then nothing at all does."""
    image_snaps = [top_snapshot()]
    left = e.leaks(image_snaps)
    assert sorted(left) == sorted([*(f"container {i}" for i in ids), *(f"snapshot {i}" for i in ids)]), left
    for id in ids:
        e.ok("containers", "rm", id)
    assert e.leaks(image_snaps) == []
    assert b"Traceback" not in e.daemon.log().encode()


def test_a_missing_command(env: RuntimeEnv) -> None:
    env.ids |= {"f1", "f2"}
    r = env.ctr("run", REF, "f1", "/bin/no-such-program")
    assert r.returncode != 0 and one_line(r.stderr), r.stderr
    assert b"OCI runtime create failed" in r.stderr and b"no such file or directory" in r.stderr, r.stderr
    r = env.pyctr("run", REF, "f2", "/bin/no-such-program")
    assert r.returncode != 0 and one_line(r.stderr), r.stderr
    assert b"no such file or directory" in r.stderr, r.stderr
    assert env.tasks() == {}
    assert_clean_after_rm(env, "f1", "f2")
    record(
        "faults", "runc failing to start: a missing command (ctr run, pyctr run)", 2, "one error line; nothing leaked"
    )


def test_a_spec_the_runtime_rejects(env: RuntimeEnv) -> None:
    """A relative cwd passes the daemon (which does not validate specs) and runc refuses it: Unknown, runc's reason."""
    env.ids.add("s1")
    spec = minimal_spec(NS, "s1", [BB, "true"])
    spec["process"]["cwd"] = "relative/dir"
    with Client(env.daemon.address, namespace=NS) as c:
        options = runc_pb.Options(root=str(env.daemon.runc_root)).SerializeToString()
        c.containers.create(
            Container(
                id="s1",
                runtime=RuntimeInfo("io.containerd.runc.v2", TypedValue("containerd.runc.v1.Options", options)),
                spec=TypedValue(SPEC_TYPE_URL, json.dumps(spec).encode()),
                snapshotter="overlayfs",
                snapshot_key="s1",
            )
        )
        mounts = c.snapshotter("overlayfs").prepare("s1", top_snapshot())
        with pytest.raises(errors.Unknown) as caught:
            c.tasks.create("s1", rootfs=mounts)
        assert "OCI runtime create failed" in str(caught.value) and "cwd" in str(caught.value).lower()
        with pytest.raises(errors.NotFound):
            c.tasks.get("s1")
    assert_clean_after_rm(env, "s1")
    record("faults", "runc failing to start: a spec runc rejects", 1, "gRPC Unknown with runc's reason; nothing leaked")


def test_a_runtime_that_exits_non_zero_on_create(env: RuntimeEnv, tmp_path: Path) -> None:
    env.ids |= {"x1", "x2", "x3"}
    runtime, marks = wrapper(tmp_path, "failing-runc", FAILING)
    r = env.ctr("run", "--runc-binary", str(runtime), REF, "x1", BB, "true")
    assert r.returncode != 0 and one_line(r.stderr), r.stderr
    assert b"exited with status 3" in r.stderr and b": unknown" in r.stderr, r.stderr
    r = env.pyctr("run", "--runc-binary", str(runtime), REF, "x2", BB, "true")
    assert r.returncode != 0 and one_line(r.stderr) and b"exited with status 3" in r.stderr, r.stderr
    r = env.ctr("run", "--rm", "--runc-binary", str(runtime), REF, "x3", BB, "true")  # --rm takes the record too
    assert r.returncode != 0 and one_line(r.stderr), r.stderr
    assert len(marks.read_text().split()) == 3  # the wrapper did run, once per create
    assert_clean_after_rm(env, "x1", "x2")
    # The same container runs once the runtime is a good one.
    env.ids.add("x4")
    assert env.ok("run", "--rm", REF, "x4", BB, "echo", "fine") == "fine\n"
    assert env.leaks([top_snapshot()]) == []
    record("faults", "runc failing to start: a runtime exiting 3 on create", 3, "one error line; nothing leaked")


def test_a_runtime_that_hangs_on_create(env: RuntimeEnv, tmp_path: Path) -> None:
    env.ids |= {"h1", "h2"}
    runtime, marks = wrapper(tmp_path, "hanging-runc", HANGING)
    started = time.monotonic()
    r = env.ctr("run", "--runc-binary", str(runtime), REF, "h1", BB, "true", timeout=TIMEOUT + 30)
    took = time.monotonic() - started
    assert r.returncode != 0 and one_line(r.stderr), r.stderr
    assert b"did not finish within 3s" in r.stderr and b"deadline exceeded" in r.stderr, r.stderr
    assert TIMEOUT <= took < TIMEOUT + 10
    pids = [int(p) for p in marks.read_text().split()]
    assert len(pids) == 2 and not any(alive(p) for p in pids)  # the runtime and its child: killed as a group
    # The gRPC status, through the Python client (and pyctr beside it).
    r = env.pyctr("run", "--runc-binary", str(runtime), REF, "h2", BB, "true", timeout=TIMEOUT + 30)
    assert r.returncode != 0 and one_line(r.stderr) and b"did not finish" in r.stderr, r.stderr
    env.ids.add("h3")
    with Client(env.daemon.address, namespace=NS) as c:
        options = runc_pb.Options(binary_name=str(runtime)).SerializeToString()
        c.containers.create(
            Container(
                id="h3",
                runtime=RuntimeInfo("io.containerd.runc.v2", TypedValue("containerd.runc.v1.Options", options)),
                spec=TypedValue(SPEC_TYPE_URL, json.dumps(minimal_spec(NS, "h3", [BB, "true"])).encode()),
                snapshotter="overlayfs",
                snapshot_key="h3",
            )
        )
        mounts = c.snapshotter("overlayfs").prepare("h3", top_snapshot())
        with pytest.raises(errors.DeadlineExceeded):
            c.tasks.create("h3", rootfs=mounts)
        # The daemon was not held up meanwhile, and is still answering.
        assert c.version()[0]
    assert not any(alive(int(p)) for p in marks.read_text().split())
    assert_clean_after_rm(env, "h1", "h2", "h3")
    record(
        "faults",
        f"runc failing to start: a runtime hanging on create ({TIMEOUT:g}s timeout)",
        3,
        "DeadlineExceeded in bounded time; runtime's group killed; nothing leaked",
    )


def test_a_shim_that_stops_answering_during_create(env: RuntimeEnv, tmp_path: Path) -> None:
    """The daemon's own bound: a shim frozen mid-create is killed after 2 x runtime_timeout + 5s, and cleaned up after."""
    env.ids.add("fz1")
    runtime, marks = wrapper(tmp_path, "freezing-runc", FREEZING)
    started = time.monotonic()
    r = env.ctr("run", "--runc-binary", str(runtime), REF, "fz1", BB, "sleep", "600", timeout=60)
    took = time.monotonic() - started
    assert r.returncode != 0 and one_line(r.stderr), r.stderr
    assert b"did not answer create" in r.stderr and b"deadline exceeded" in r.stderr, r.stderr
    assert 2 * TIMEOUT + 5 <= took < 2 * TIMEOUT + 15
    [shim] = [int(p) for p in marks.read_text().split()]
    assert not alive(shim)
    assert env.ctr("tasks", "ls").returncode == 0 and env.tasks() == {}
    assert_clean_after_rm(env, "fz1")  # runc's container (created meanwhile) force-deleted, rootfs unmounted
    record(
        "faults",
        "a shim frozen during create",
        1,
        f"DeadlineExceeded after {took:.0f}s; shim killed, runc's container deleted; nothing leaked",
    )


# -- a shim killed with SIGKILL, here and under containerd --------------------------------------------------


@pytest.fixture(params=["containerd", "pycontainerd"])
def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, RuntimeEnv]]:
    """The same scenario against the real containerd (the reference) and pycontainerd."""
    if request.param == "containerd":
        d: Containerd = request.getfixturevalue("containerd")
        e = RuntimeEnv(_AsDaemon(d), NS)  # type: ignore[arg-type]
    else:
        factory: DaemonFactory = request.getfixturevalue("pycontainerd_daemon_factory")
        e = RuntimeEnv(factory(), NS)
    e.import_image(tmp_path)
    try:
        yield request.param, e
    finally:
        remove_namespace_cgroups(NS)


class _AsDaemon:
    """Enough of PycontainerdDaemon's face for RuntimeEnv to drive a real containerd."""

    def __init__(self, d: Containerd) -> None:
        self.address = d.address
        self.base = d.root.parent
        self.state = d.state
        self.runc_root = d.runc_root
        self.running = True
        self._log = d.log

    def log(self) -> str:
        return self._log.read_text(errors="replace")


def shim_pids(kind: str, e: RuntimeEnv, id: str) -> list[int]:
    if kind == "pycontainerd":
        return [pid for pid, bundle in shims_under(e.base) if bundle.name == id]
    out = subprocess.run(["pgrep", "-f", f"containerd-shim-runc-v2 -namespace {NS} -id {id} -address {e.daemon.address}"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    return [int(p) for p in out.split()]


def test_a_shim_killed_with_sigkill(any_env: tuple[str, RuntimeEnv], tmp_path: Path) -> None:
    kind, e = any_env
    fifos = str(tmp_path / "fifos")  # detached ctr keeps its FIFOs for good: not in the census's places
    e.ids |= {"k1", "k2"}
    with Client(e.daemon.address, namespace=NS) as c:
        e.ok("run", "-d", "--null-io", "--runc-root", str(e.daemon.runc_root), REF, "k1",
             BB, "sh", "-c", "sleep 600 & exec sleep 600")  # fmt: skip
        e.ok("tasks", "exec", "-d", "--fifo-dir", fifos, "--exec-id", "x", "k1", BB, "sleep", "601")
        init = e.tasks()["k1"][0]
        inside = [p for p, _ in e.container_pids()]
        assert init in inside and len(inside) == 3
        waited: list[object] = []
        waiter = threading.Thread(target=lambda: waited.append(_outcome(lambda: c.tasks.wait("k1"))), daemon=True)
        waiter.start()
        log = e.base / f"events-{kind}.txt"
        with open(log, "wb") as out:
            events = subprocess.Popen(
                ["/usr/bin/ctr", "-a", e.daemon.address, "events"], stdout=out, stderr=subprocess.DEVNULL
            )
        try:
            time.sleep(0.5)
            [shim] = shim_pids(kind, e, "k1")
            os.kill(shim, signal.SIGKILL)
            waiter.join(15)
            assert waited, "Wait hung after its shim was killed"
            if kind == "containerd":  # its Wait fails with the lost connection ("ttrpc: closed")
                assert isinstance(waited[0], errors.Unknown), waited
            else:  # ours tells how the task ended: killed with its shim
                assert isinstance(waited[0], Exit) and waited[0].status == 137, waited
            deadline = time.monotonic() + 10
            while b" /tasks/delete " not in log.read_bytes():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            events.terminate()
            events.wait(10)
        lines = log.read_text().splitlines()
        assert "k1" not in e.tasks() or e.tasks()["k1"][1] == "STOPPED"
        exits = [json.loads(line.split(" ", 6)[6]) for line in lines if " /tasks/exit " in line]
        assert [(x["container_id"], x["pid"], x["exit_status"]) for x in exits] == [("k1", init, 137)], lines
        # Nothing hangs afterwards: each answers at once, as containerd answers.
        kill = e.ctr("tasks", "kill", "k1", timeout=10)
        rm = e.ctr("tasks", "rm", "k1", timeout=10)
        assert kill.returncode != 0 and b"not found" in kill.stderr, kill.stderr
        assert rm.returncode != 0 and b"not found" in rm.stderr, rm.stderr
        e.ok("containers", "rm", "k1")
        # A second task with the same runtime runs after it: nothing of the first is in the way.
        e.ok("run", "--rm", "--runc-root", str(e.daemon.runc_root), REF, "k1", BB, "true")
    deadline = time.monotonic() + 5
    while e.container_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert e.container_pids() == []  # init, its child and the exec'd process: killed with the container
    if kind == "pycontainerd":
        assert e.leaks([top_snapshot()]) == []
        record("faults", "a shim killed with SIGKILL (compared with containerd's)", 1, "exit 137 reported, Wait returned, no hang; nothing leaked")  # fmt: skip


def _collect(into: list[object], fn: object) -> None:
    into.append(_outcome(fn))


def _outcome(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except (errors.ContainerdError, grpc.RpcError) as err:
        return err


KILLS = scale(4, 30)


def test_shims_killed_at_each_stage(env: RuntimeEnv) -> None:
    """Shims SIGKILLed in turn with their task created but not started, running, running an exec, paused.

    Each time: Wait returns 137, the exit is reported, Kill and Delete answer
    NotFound at once, the container goes cleanly, and nothing is left.
    """
    stages = ["created", "running", "exec", "paused"]
    top = top_snapshot()
    problems: list[str] = []
    with Client(env.daemon.address, namespace=NS) as c:
        for i in range(KILLS):
            stage, id = stages[i % len(stages)], f"kill{i}"
            env.ids.add(id)
            options = runc_pb.Options(root=str(env.daemon.runc_root)).SerializeToString()
            c.containers.create(
                Container(
                    id=id,
                    runtime=RuntimeInfo("io.containerd.runc.v2", TypedValue("containerd.runc.v1.Options", options)),
                    spec=TypedValue(SPEC_TYPE_URL, json.dumps(minimal_spec(NS, id, [BB, "sleep", "600"])).encode()),
                    snapshotter="overlayfs",
                    snapshot_key=id,
                )
            )
            snapshots = c.snapshotter("overlayfs")
            init = c.tasks.create(id, rootfs=snapshots.prepare(id, top))
            if stage != "created":
                c.tasks.start(id)
            if stage == "exec":
                c.tasks.exec(id, "x", {"args": [BB, "sleep", "601"], "cwd": "/", "user": {"uid": 0, "gid": 0}})
                c.tasks.start(id, "x")
            if stage == "paused":
                c.tasks.pause(id)
            waited: list[object] = []
            waiter = threading.Thread(target=_collect, args=(waited, functools.partial(c.tasks.wait, id)), daemon=True)
            waiter.start()
            time.sleep(0.1)
            [shim] = shim_pids("pycontainerd", env, id)
            os.kill(shim, signal.SIGKILL)
            waiter.join(15)
            if not (waited and isinstance(waited[0], Exit) and waited[0].status == 137):
                problems.append(f"{stage}: Wait gave {waited}")
            for step in (functools.partial(c.tasks.kill, id, signal.SIGKILL), functools.partial(c.tasks.delete, id)):
                outcome = _outcome(step)
                if not isinstance(outcome, errors.NotFound):
                    problems.append(f"{stage}: {outcome!r} instead of NotFound")
            snapshots.remove(id)  # first, as containerd's client does: the record's deletion lets the collector at it
            c.containers.delete(id)
            if init in [p for p, _ in env.container_pids()]:
                problems.append(f"{stage}: init {init} survived its shim")
    leaks = env.leaks([top])
    record(
        "faults",
        "shims SIGKILLed with their task created, running, running an exec, paused",
        KILLS,
        "Wait returned 137; Kill, Delete NotFound at once; container removed; nothing leaked",
        problems=len(problems) + len(leaks),
    )
    assert problems == [] and leaks == []


def test_a_stopped_shim_does_not_hold_up_the_task_list(any_env: tuple[str, RuntimeEnv]) -> None:
    """A shim frozen with SIGSTOP: ``ctr tasks ls`` still answers in bounded time, with the other tasks."""
    kind, e = any_env
    e.ids |= {"z1", "z2"}
    for id in ("z1", "z2"):
        e.ok("run", "-d", "--null-io", "--runc-root", str(e.daemon.runc_root), REF, id, BB, "sleep", "600")
    [frozen] = shim_pids(kind, e, "z1")
    os.kill(frozen, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = e.ctr("tasks", "ls", timeout=30)
        took = time.monotonic() - started
        assert r.returncode == 0, r.stderr
        listed = {row.split()[0]: row.split()[2] for row in r.stdout.decode().splitlines()[1:]}
        assert listed.get("z2") == "RUNNING" and took < 10, (listed, took)
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert {id: st for id, (_, st) in e.tasks().items()} == {"z1": "RUNNING", "z2": "RUNNING"}
    for id in ("z1", "z2"):
        e.ok("tasks", "kill", "-s", "KILL", id)
    deadline = time.monotonic() + 10
    while any(st != "STOPPED" for _, st in e.tasks().values()):
        assert time.monotonic() < deadline, e.tasks()
        time.sleep(0.05)
    for id in ("z1", "z2"):
        e.ok("tasks", "rm", id)
        e.ok("containers", "rm", id)
    if kind == "pycontainerd":
        assert e.leaks([top_snapshot()]) == []
        record("faults", "a shim frozen with SIGSTOP (compared with containerd's)", 1, f"task list answered in {took:.1f}s without it; all fine after SIGCONT")  # fmt: skip
