"""containerd's own ``ctr`` runs containers on pycontainerd: run, exec, signals, terminals, events, limits.

Everything here goes through Debian's ``ctr`` (containerd 1.6's client)
to a pycontainerd daemon, whose shims drive the real runc (or crun) on real
overlayfs.  After each test the daemon's directory holds no mount, no shim
and no bundle: what a test leaks fails it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.runtime.shim.client import ShimClient
from tests.fixtures._shims import mounts_under, shims_under
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.ocibuild import busybox_files, image, oci_layout_tar
from tests.tasks.spec import remove_namespace_cgroups

pytestmark = pytest.mark.containerd

CTR = "/usr/bin/ctr"
NS = "ctrrun"
REF = "example.com/test/busybox:1"
BARE = "example.com/test/nocmd:1"
BB = "/bin/busybox"
TASK_STATE = "io.containerd.runtime.v2.task"


@dataclass
class Env:
    daemon: PycontainerdDaemon

    @property
    def base(self) -> Path:
        return self.daemon.base

    def ctr(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [CTR, "-a", self.daemon.address, "-n", NS, *args],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, input: bytes | None = None) -> str:
        r = self.ctr(*args, input=input)
        assert r.returncode == 0, f"ctr {' '.join(args)}: {r.stderr.decode()}\n{self.daemon.log()[-3000:]}"
        return r.stdout.decode()

    def tasks(self) -> dict[str, tuple[int, str]]:
        rows = self.ok("tasks", "ls").splitlines()[1:]
        return {id: (int(pid), status) for id, pid, status in (row.split() for row in rows)}

    def wait_stopped(self, *ids: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while any(self.tasks()[id][1] != "STOPPED" for id in ids):
            assert time.monotonic() < deadline, self.tasks()
            time.sleep(0.05)

    def kill_and_remove(self, *ids: str) -> None:
        """SIGKILL every process of each task, then remove the tasks and their containers."""
        for id in ids:
            self.ok("tasks", "kill", "--all", "-s", "KILL", id)
        self.wait_stopped(*ids)
        for id in ids:
            self.ok("tasks", "rm", id)
            self.ok("containers", "rm", id)

    def assert_clean(self) -> None:
        """No task left: no shim, no rootfs mount, no bundle, no container cgroup."""
        deadline = time.monotonic() + 5
        while shims_under(self.base) and time.monotonic() < deadline:  # a deleted task's shim exits on its own
            time.sleep(0.02)
        assert shims_under(self.base) == []
        assert [m for m in mounts_under(self.base) if "/rootfs" in m] == []
        bundles = self.daemon.state / TASK_STATE / NS
        assert not bundles.exists() or list(bundles.iterdir()) == []
        assert [p for p in Path("/sys/fs/cgroup").glob(f"*/{NS}/*") if p.is_dir()] == []


@pytest.fixture
def env(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> Iterator[Env]:
    d = pycontainerd_daemon_factory()
    e = Env(d)
    for ref, img in ((REF, image([busybox_files()])), (BARE, image([busybox_files()], config={}))):
        archive = tmp_path / "image.tar"
        archive.write_bytes(oci_layout_tar(img, ref))
        e.ok("images", "import", str(archive))
    try:
        yield e
    finally:
        remove_namespace_cgroups(NS)


@contextlib.contextmanager
def events(e: Env) -> Iterator[list[str]]:
    """``ctr events`` running while the block runs; the list holds its lines afterwards."""
    lines: list[str] = []
    proc = subprocess.Popen([CTR, "-a", e.daemon.address, "events"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # subscribed before the block acts
        yield lines
        time.sleep(0.3)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        lines.extend(out.decode().splitlines())


def topics(lines: list[str], id: str) -> list[str]:
    """The topics of the events about container ``id`` (a line: 4 words of time, namespace, topic, JSON)."""
    out = []
    for line in lines:
        parts = line.split(" ", 6)
        if (
            len(parts) == 7
            and parts[4] == NS
            and json.loads(parts[6]).get("container_id", json.loads(parts[6]).get("id")) == id
        ):
            out.append(parts[5])
    return out


def test_run_rm_stdio_and_exit_code(env: Env) -> None:
    r = env.ctr("run", "--rm", REF, "r1", BB, "sh", "-c", "read x; echo out $x; echo err >&2; exit 7", input=b"in\n")
    assert r.returncode == 7, r.stderr
    assert r.stdout == b"out in\n" and r.stderr == b"err\n"
    assert env.ok("containers", "ls", "-q") == "" and env.tasks() == {}
    assert "r1" not in env.ok("snapshots", "ls")
    env.assert_clean()


def test_detached_task_lifecycle_and_its_events(env: Env) -> None:
    with events(env) as lines:
        env.ok("run", "-d", REF, "d1", BB, "sleep", "600")
        pid, status = env.tasks()["d1"]
        assert status == "RUNNING" and pid > 0
        assert env.ok("tasks", "exec", "--exec-id", "e1", "d1", BB, "sh", "-c", "echo in") == "in\n"
        r = env.ctr("tasks", "exec", "--exec-id", "e2", "d1", BB, "sh", "-c", "exit 4")
        assert r.returncode == 4
        ps = env.ok("tasks", "ps", "d1").splitlines()
        assert ps[0].split() == ["PID", "INFO"] and [int(row.split()[0]) for row in ps[1:]] == [pid]
        env.ok("tasks", "pause", "d1")
        assert env.tasks()["d1"][1] == "PAUSED"
        env.ok("tasks", "resume", "d1")
        metrics = dict(line.split(None, 1) for line in env.ok("tasks", "metrics", "d1").splitlines()[3:] if line)
        assert int(metrics["pids.current"]) == 1 and int(metrics["memory.usage_in_bytes"]) > 0
        r = env.ctr("tasks", "rm", "d1")
        assert r.returncode != 0 and b"must be stopped" in r.stderr
        r = env.ctr("containers", "rm", "d1")
        assert r.returncode != 0 and b"non stopped" in r.stderr
        env.ok("tasks", "kill", "-s", "KILL", "d1")
        env.wait_stopped("d1")
        r = env.ctr("tasks", "rm", "d1")
        assert r.returncode == 0 and b"exit code 137" in r.stderr
        env.ok("containers", "rm", "d1")
    assert topics(lines, "d1") == [
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ]
    env.assert_clean()


def test_terminal_and_resize(env: Env) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    try:
        proc = subprocess.Popen(
            [
                CTR,
                "-a",
                env.daemon.address,
                "-n",
                NS,
                "run",
                "-t",
                "--rm",
                REF,
                "t1",
                BB,
                "sh",
                "-c",
                "sleep 1; stty size; tty",
            ],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the last writer is gone
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(10) == 0
    finally:
        os.close(master)
    assert out.replace(b"\r", b"").splitlines() == [b"33 101", b"/dev/pts/0"], out
    env.assert_clean()


# crun 1.8 refuses this hybrid host (the unified hierarchy holds a controller, hugetlb), as it would under
# containerd: the wrapper runs it in a mount namespace of its own where only the v1 hierarchies are mounted.
CRUN_WRAPPER = """#!/bin/sh
exec unshare -m sh -c 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
"""


def test_crun_through_runc_binary(env: Env, tmp_path: Path) -> None:
    crun = tmp_path / "crun-v1"
    crun.write_text(CRUN_WRAPPER)
    crun.chmod(0o755)
    env.ok("run", "-d", "--runc-binary", str(crun), REF, "c1", BB, "sleep", "600")
    shim = json.loads((env.daemon.state / TASK_STATE / NS / "c1" / "shim.json").read_text())
    assert shim["runtime"] == str(crun)
    assert "crun" in subprocess.run(["crun", "--version"], capture_output=True, text=True, check=True).stdout
    assert env.ok("tasks", "exec", "--exec-id", "x", "c1", BB, "echo", "crun") == "crun\n"
    env.kill_and_remove("c1")
    assert env.ok("run", "--rm", "--runc-binary", str(crun), REF, "c2", BB, "echo", "again") == "again\n"
    r = env.ctr("run", "--rm", "--runc-binary", "no-such-runtime", REF, "c3", BB, "true")
    assert r.returncode != 0 and b"no-such-runtime" in r.stderr and b"not installed" in r.stderr
    env.assert_clean()


def test_oom_kill_and_event(env: Env) -> None:
    with events(env) as lines:
        r = env.ctr(
            "run", "--rm", "--memory-limit", str(32 << 20), REF, "m1",
            BB, "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1",
        )  # fmt: skip
        assert r.returncode == 137, r.stderr
    assert "/tasks/oom" in topics(lines, "m1")
    env.assert_clean()


def test_pids_limit_stops_a_fork_bomb(env: Env) -> None:
    # ctr 1.6 has no pids flag: its --config takes a whole spec, so pyctr (which does) makes this one.
    import sys

    r = subprocess.run(
        [
            sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", env.daemon.address, "-n", NS, "run", "-d",
            "--pids-limit", "16", REF, "p1", BB, "sh", "-c", "(while :; do sleep 600 & done) 2>/dev/null; exec sleep 600",
        ],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    time.sleep(1.5)
    pids = len(env.ok("tasks", "ps", "p1").splitlines()) - 1
    assert 2 <= pids <= 16
    metrics = dict(line.split(None, 1) for line in env.ok("tasks", "metrics", "p1").splitlines()[3:] if line)
    assert int(metrics["pids.limit"]) == 16
    assert env.tasks()["p1"][1] == "RUNNING"  # the bomb hit the limit; the container lives on
    env.kill_and_remove("p1")
    env.assert_clean()


def test_bad_input_is_one_error_and_leaks_nothing(env: Env) -> None:
    # One line each: ctr's, carrying the runtime's reason (runc's own complaint never reaches the stream).
    r = env.ctr("run", "--rm", BARE, "b1")
    assert r.returncode != 0 and r.stderr.count(b"\n") == 1 and b"args must not be empty" in r.stderr, r.stderr
    r = env.ctr("run", "--rm", REF, "b2", "/bin/no-such-program")
    assert r.returncode != 0 and r.stderr.count(b"\n") == 1 and b"no such file or directory" in r.stderr, r.stderr
    env.ok("run", "-d", REF, "b4", BB, "sleep", "600")
    r = env.ctr("tasks", "exec", "--exec-id", "x", "b4", "/bin/nope")
    assert r.returncode != 0 and r.stderr.count(b"\n") == 1 and b"no such file or directory" in r.stderr, r.stderr
    env.kill_and_remove("b4")
    env.ok("containers", "create", REF, "b3", BB, "sleep", "600")
    r = env.ctr("containers", "create", REF, "b3", BB, "true")
    assert r.returncode != 0 and b"already exists" in r.stderr, r.stderr
    r = env.ctr("tasks", "rm", "no-such-task")
    assert r.returncode != 0 and b"not found" in r.stderr
    env.ok("containers", "rm", "b3")
    assert env.ok("containers", "ls", "-q") == "" and env.tasks() == {}
    assert "b1" not in env.ok("snapshots", "ls") and "b2" not in env.ok("snapshots", "ls")
    assert b"Traceback" not in env.daemon.log().encode()
    env.assert_clean()


def unacknowledged_events(bundle: Path) -> list[str]:
    """Topics the task's shim still holds for the daemon: what a restarted daemon would be told again."""

    async def collect() -> list[str]:
        got: list[str] = []
        async with await ShimClient.connect(bundle) as shim:

            async def read() -> None:
                async for ev in shim.events():
                    got.append(ev["topic"])

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read(), 1.0)
        return got

    return asyncio.run(collect())


def test_running_tasks_survive_a_killed_daemon(env: Env) -> None:
    for i in range(1, 6):
        script = f"trap 'exit {10 + i}' TERM; while :; do sleep 1; done"
        env.ok("run", "-d", REF, f"s{i}", BB, "sh", "-c", script)
    env.ok("run", "-d", REF, "brief", BB, "sh", "-c", "sleep 2; exit 9")
    before = env.tasks()
    assert {id: st for id, (_, st) in before.items()} == {
        **{f"s{i}": "RUNNING" for i in range(1, 6)},
        "brief": "RUNNING",
    }
    env.daemon.kill()
    time.sleep(2.5)  # "brief" exits while no daemon runs
    brief = env.daemon.state / TASK_STATE / NS / "brief"
    assert unacknowledged_events(brief)[-1:] == ["/tasks/exit"]  # kept for the daemon, not lost
    env.daemon.start()
    after = env.tasks()
    assert after["brief"] == (before["brief"][0], "STOPPED")
    assert {id: after[id] for id in before if id != "brief"} == {id: v for id, v in before.items() if id != "brief"}
    deadline = time.monotonic() + 5
    while unacknowledged_events(brief):  # the restarted daemon took the exit: nobody is told it twice
        assert time.monotonic() < deadline
    assert env.ok("tasks", "exec", "--exec-id", "after", "s3", BB, "echo", "still here") == "still here\n"
    env.daemon.kill()
    env.daemon.start()
    with Client(env.daemon.address, namespace=NS) as c, concurrent.futures.ThreadPoolExecutor(5) as pool:
        waits = [pool.submit(c.tasks.wait, f"s{i}") for i in range(1, 6)]  # waiting on tasks of a past daemon
        with events(env) as lines:
            for i in range(1, 6):
                env.ok("tasks", "kill", f"s{i}")
            env.wait_stopped(*(f"s{i}" for i in range(1, 6)))
        assert [w.result(10).status for w in waits] == [11, 12, 13, 14, 15]
    for i in range(1, 6):
        assert topics(lines, f"s{i}") == ["/tasks/exit"]
    codes = {}
    for id in [*(f"s{i}" for i in range(1, 6)), "brief"]:
        r = env.ctr("tasks", "rm", id)
        assert r.returncode == 0, r.stderr
        codes[id] = r.stderr.decode()
        env.ok("containers", "rm", id)
    for i in range(1, 6):
        assert f"exit code {10 + i}" in codes[f"s{i}"]
    assert "exit code 9" in codes["brief"]
    env.assert_clean()


def test_a_shim_killed_under_a_running_daemon_is_cleaned_up(env: Env) -> None:
    env.ok("run", "-d", REF, "k1", BB, "sleep", "600")
    pid = env.tasks()["k1"][0]
    [(shim, _)] = shims_under(env.base)
    with events(env) as lines:
        os.kill(shim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "k1" in env.tasks():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert topics(lines, "k1") == ["/tasks/exit", "/tasks/delete"]
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    env.ok("containers", "rm", "k1")
    env.assert_clean()


def test_user_namespace_with_a_remapped_snapshot(env: Env) -> None:
    """ctr remaps the image's snapshot through the Snapshots API; the overlay keeps the remapped root's owner."""
    script = "cat /proc/self/uid_map; /bin/busybox touch /new && /bin/busybox stat -c %u /new"
    out = env.ok(
        "run", "--rm", "--uidmap", "0:300000:65536", "--gidmap", "0:300000:65536", REF, "u1", BB, "sh", "-c", script
    )
    assert out.split() == ["0", "300000", "65536", "0"]
    env.assert_clean()


def test_concurrent_runs(env: Env) -> None:
    """Ten ``ctr run -d`` at once, and two creates of one task racing: one wins, one is told it exists."""
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        runs = list(pool.map(lambda i: env.ctr("run", "-d", REF, f"p{i}", BB, "sleep", "600"), range(10)))
    assert [r.returncode for r in runs] == [0] * 10, [r.stderr for r in runs]
    assert {st for _, st in env.tasks().values()} == {"RUNNING"} and len(env.tasks()) == 10
    env.ok("containers", "create", REF, "race", BB, "sleep", "600")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        racers = list(pool.map(lambda _: env.ctr("tasks", "start", "-d", "race"), range(2)))
    results = sorted((r.returncode, r.stderr) for r in racers)
    assert results[0] == (0, b"") and results[1][0] == 1 and b"already exists" in results[1][1], results
    env.kill_and_remove(*(f"p{i}" for i in range(10)), "race")
    env.assert_clean()


def test_runc_options_reach_the_runtime(env: Env, tmp_path: Path) -> None:
    """``--runc-root`` keeps runc's state under ROOT/<namespace>, as containerd; ``--no-pivot`` runs.

    ``--no-pivot`` is a task option and, as under containerd, replaces the container's runtime options.
    """
    root = tmp_path / "runc-state"
    env.ok("run", "-d", "--runc-root", str(root), REF, "o1", BB, "sleep", "600")
    assert (root / NS / "o1" / "state.json").is_file()
    assert env.ok("tasks", "exec", "--exec-id", "x", "o1", BB, "echo", "ok") == "ok\n"
    env.kill_and_remove("o1")
    assert not (root / NS / "o1").exists()
    assert env.ok("run", "--rm", "--no-pivot", REF, "o2", BB, "echo", "no pivot") == "no pivot\n"
    env.assert_clean()
