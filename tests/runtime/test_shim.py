"""One shim, one container, driven through the client: real runc (and crun), real FIFOs, real mounts."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    Unknown,
)
from pycontainerd.mount import Mount, is_mountpoint
from pycontainerd.runtime.shim.client import ShimClient
from pycontainerd.tasks import Status

from .conftest import MB, Harness, _alive, process, run

CRUN_WRAPPER = """#!/bin/sh
exec unshare -m sh -c 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
"""


async def drain_events(client: ShimClient, until: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Events up to and including the first with topic ``until``, each acknowledged."""
    got: list[dict[str, Any]] = []

    async def collect() -> None:
        async for ev in client.events():
            got.append(ev)
            await client.ack(ev["seq"])
            if ev["topic"] == until:
                return

    await asyncio.wait_for(collect(), timeout)
    return got


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_run_command_output_and_exit_code(harness: Harness, runtime: str) -> None:
    if runtime == "crun":
        # crun refuses this hybrid host (a controller sits in the unified tree): it runs seeing v1 only.
        runtime = str(harness.tmp_path / "crun-no-cgroups")
        Path(runtime).write_text(CRUN_WRAPPER)
        os.chmod(runtime, 0o755)
    fifos = harness.fifo_set("run")

    async def scenario() -> None:
        client, id = await harness.run(
            "run", ["sh", "-c", "echo out; echo err >&2; exit 3"], io=fifos.io(), runtime=runtime, start=False
        )
        state = await client.state()
        assert state.status is Status.CREATED and state.pid > 0 and state.id == id
        assert await client.start() == state.pid
        exit_ = await client.wait()
        assert exit_.status == 3 and exit_.pid == state.pid and exit_.exited_at is not None
        assert fifos.read_all(fifos.out) == b"out\n"
        assert fifos.read_all(fifos.err) == b"err\n"
        state = await client.state()
        assert state.status is Status.STOPPED and state.exit_status == 3
        assert (await client.wait()).status == 3  # waiting on an exited process answers at once
        events = await drain_events(client, "/tasks/exit")
        assert [e["topic"] for e in events] == ["/tasks/create", "/tasks/start", "/tasks/exit"]
        assert events[2] == {
            "seq": events[2]["seq"],
            "topic": "/tasks/exit",
            "container_id": id,
            "id": id,
            "pid": state.pid,
            "exit_status": 3,
            "exited_at": events[2]["exited_at"],
        }
        deleted = await client.delete()
        assert deleted.status == 3
        with pytest.raises(NotFound):
            await client.state()
        assert (await drain_events(client, "/tasks/delete"))[-1]["exit_status"] == 3
        assert not is_mountpoint(harness.tmp_path / id / "rootfs")
        assert await client.shutdown()
        await client.close()

    run(scenario())


def test_stdin_eof_needs_close_io(harness: Harness) -> None:
    """The shim holds stdin open across client restarts; EOF comes once the client closed and called close_io."""
    fifos = harness.fifo_set("stdin", stdin=True)

    async def scenario() -> None:
        client, _ = await harness.run("stdin", ["sh", "-c", "cat; echo done"], io=fifos.io())
        fifos.write(b"line one\n")
        assert fifos.read_until(fifos.out, b"line one\n") == b"line one\n"
        fifos.close_stdin()  # the client's writer goes: no EOF yet, the shim still holds one
        await asyncio.sleep(0.3)
        assert (await client.state()).status is Status.RUNNING
        await client.close_io()
        assert (await client.wait()).status == 0
        assert fifos.read_all(fifos.out) == b"done\n"
        await client.delete()
        await client.close()

    run(scenario())


def test_terminal_resize_and_input(harness: Harness) -> None:
    fifos = harness.fifo_set("tty", stdin=True, stderr=False)

    async def scenario() -> None:
        args = ["sh", "-c", "stty size; read line; echo got:$line"]
        client, _ = await harness.run("tty", args, io=fifos.io(terminal=True), terminal=True, start=False)
        await client.resize_pty("", 123, 45)
        await client.start()
        assert b"45 123" in fifos.read_until(fifos.out, b"45 123")
        fifos.write(b"typed\n")
        assert (await client.wait()).status == 0
        output = fifos.read_all(fifos.out)
        assert b"got:typed" in output
        await client.delete()
        await client.close()

    run(scenario())


def test_exec_processes(harness: Harness) -> None:
    out = harness.fifo_set("exec-out")
    tty = harness.fifo_set("exec-tty", stderr=False)

    async def scenario() -> None:
        client, _ = await harness.run("exec", ["sleep", "30"])
        await client.exec("e1", process(["sh", "-c", "echo from exec; exit 7"]), out.io())
        with pytest.raises(AlreadyExists):
            await client.exec("e1", process(["true"]))
        with pytest.raises(InvalidArgument):
            await client.exec("../x", process(["true"]))
        state = await client.state("e1")
        assert state.status is Status.CREATED and state.pid == 0
        with pytest.raises(FailedPrecondition):
            await client.kill("e1", signal.SIGTERM)
        pid = await client.start("e1")
        assert (await client.wait("e1")).status == 7
        assert out.read_all(out.out) == b"from exec\n"
        assert (await client.state("e1")).pid == pid
        assert (await client.delete("e1")).status == 7
        with pytest.raises(NotFound):
            await client.state("e1")
        # a terminal exec, resized while running
        await client.exec("e2", process(["sh", "-c", "sleep 0.3; stty size"], terminal=True), tty.io(terminal=True))
        await client.start("e2")
        await client.resize_pty("e2", 80, 24)
        assert (await client.wait("e2")).status == 0
        assert b"24 80" in tty.read_all(tty.out)
        events = await drain_events(client, "/tasks/exit")
        topics = [e["topic"] for e in events]
        assert topics[:5] == [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
        ]
        assert events[3]["exec_id"] == "e1" and events[3]["pid"] == pid
        assert events[4]["id"] == "e1" and events[4]["exit_status"] == 7
        await client.kill("", signal.SIGKILL)
        assert (await client.wait()).status == 128 + signal.SIGKILL
        await client.delete()
        await client.close()

    run(scenario())


def test_kill_signals_and_statuses(harness: Harness) -> None:
    async def scenario() -> None:
        client, _ = await harness.run("kill", ["sleep", "30"])
        await client.exec("s", process(["sleep", "30"]))
        await client.start("s")
        waiters = [asyncio.ensure_future(client.wait("s")) for _ in range(5)]  # many waiters at once
        await client.kill("s", signal.SIGTERM)
        assert {(await w).status for w in waiters} == {128 + signal.SIGTERM}
        with pytest.raises(NotFound):
            await client.kill("s", signal.SIGTERM)
        with pytest.raises(FailedPrecondition):
            await client.delete()  # the init still runs
        await client.kill("", signal.SIGKILL)
        assert (await client.wait()).status == 137
        with pytest.raises(NotFound):
            await client.kill("", signal.SIGKILL)
        await client.delete()
        await client.close()

    run(scenario())


def test_kill_all_in_the_host_pid_namespace(harness: Harness) -> None:
    """Without a pid namespace nothing kills the init's children for us: kill --all does."""

    async def scenario() -> None:
        args = ["sh", "-c", "sleep 30 & sleep 31 & wait"]
        client, _ = await harness.run("killall", args, pid_namespace=False)
        for _ in range(100):
            if len(await client.pids()) == 3:
                break
            await asyncio.sleep(0.05)
        pids = [pid for pid, _ in await client.pids()]
        assert len(pids) == 3
        await client.kill("", signal.SIGTERM, all=True)
        assert (await client.wait()).status == 128 + signal.SIGTERM
        await asyncio.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)
        await client.delete()
        await client.close()

    run(scenario())


def test_pause_resume_and_pids(harness: Harness) -> None:
    async def scenario() -> None:
        client, _ = await harness.run("pause", ["sleep", "30"])
        await client.exec("x", process(["sleep", "30"]))
        xpid = await client.start("x")
        init = await client.state()
        assert sorted(await client.pids()) == sorted([(init.pid, ""), (xpid, "x")])
        with pytest.raises(FailedPrecondition):
            await client.resume()
        await client.pause()
        assert (await client.state()).status is Status.PAUSED
        assert (await client.state("x")).status is Status.PAUSED
        with pytest.raises(FailedPrecondition):
            await client.exec("y", process(["true"]))
        await client.resume()
        assert (await client.state()).status is Status.RUNNING
        assert (await client.state("x")).status is Status.RUNNING
        topics = [e["topic"] for e in await drain_events(client, "/tasks/resumed")]
        assert topics[-2:] == ["/tasks/paused", "/tasks/resumed"]
        await client.kill("", signal.SIGKILL)
        await client.wait()
        await client.delete()
        await client.close()

    run(scenario())


def test_stats_and_update(harness: Harness) -> None:
    async def scenario() -> None:
        client, _ = await harness.run("stats", ["sleep", "30"], memory=64 * MB)
        stats = await client.stats()
        m = stats["metrics"]
        if stats["version"] == 1:
            assert m["memory"]["usage"]["limit"] == 64 * MB
            assert m["memory"]["usage"]["usage"] > 0
            assert m["cpu"]["usage"]["total"] > 0
        else:
            assert m["memory"]["usage_limit"] == 64 * MB
        assert m["pids"]["current"] >= 1
        await client.update({"memory": {"limit": 96 * MB, "swap": 96 * MB}})
        stats = await client.stats()
        limit = (
            stats["metrics"]["memory"]["usage"]["limit"]
            if stats["version"] == 1
            else stats["metrics"]["memory"]["usage_limit"]
        )
        assert limit == 96 * MB
        await client.kill("", signal.SIGKILL)
        await client.wait()
        await client.delete()
        await client.close()

    run(scenario())


def test_oom_event(harness: Harness) -> None:
    async def scenario() -> None:
        client, _ = await harness.run("oom", ["tail", "/dev/zero"], memory=16 * MB)
        exit_ = await client.wait()
        assert exit_.status == 137
        topics = [e["topic"] for e in await drain_events(client, "/tasks/exit")]
        assert "/tasks/oom" in topics and topics.index("/tasks/oom") < topics.index("/tasks/exit")
        stats = await client.stats()
        if stats["version"] == 1:
            assert stats["metrics"]["memory_oom_control"]["oom_kill"] == 1
            assert stats["metrics"]["memory"]["usage"]["max"] == 16 * MB
        await client.delete()
        await client.close()

    run(scenario())


def test_rootfs_already_in_place(harness: Harness) -> None:
    """No mounts given: the bundle's rootfs directory is used as it is and left alone at delete."""
    from .conftest import _fill_rootfs

    fifos = harness.fifo_set("plain")

    async def scenario() -> None:
        bundle, id = harness.bundle("plain", ["sh", "-c", "ls /bin/busybox"])
        _fill_rootfs(bundle / "rootfs")
        client = await harness.spawn(bundle, id)
        await client.create(io=fifos.io(), runtime_root=str(harness.runc_root))
        await client.start()
        assert (await client.wait()).status == 0
        assert fifos.read_all(fifos.out) == b"/bin/busybox\n"
        await client.delete()
        assert (bundle / "rootfs/bin/busybox").exists()
        await client.close()

    run(scenario())


def test_create_failures_leave_nothing(harness: Harness) -> None:
    async def scenario() -> None:
        bundle, id = harness.bundle("bad", ["/no/such/binary"])
        client = await harness.spawn(bundle, id)
        with pytest.raises(InvalidArgument):
            await client.create(rootfs=[Mount("nfs", "x")], runtime_root=str(harness.runc_root))
        with pytest.raises(Exception, match="no-such-runtime"):
            await client.create(rootfs=harness.rootfs(), binary="no-such-runtime", runtime_root=str(harness.runc_root))
        assert not is_mountpoint(bundle / "rootfs")
        with pytest.raises(NotFound):
            await client.state()
        assert await client.shutdown()  # nothing was created: the shim goes
        await client.close()

    run(scenario())


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.parametrize("terminal", [False, True])
def test_output_nobody_reads_blocks_the_process_not_the_shim(harness: Harness, terminal: bool) -> None:
    """The client went away: the container fills the FIFO and blocks; the shim neither hangs nor spins."""
    fifos = harness.fifo_set("flood", stderr=not terminal)

    async def scenario() -> None:
        client, _ = await harness.run("flood", ["yes"], io=fifos.io(terminal=terminal), terminal=terminal)
        assert fifos.read_until(fifos.out, b"y\n" * 100)  # it writes...
        fifos.close()  # ...and then nobody reads
        await asyncio.sleep(0.3)
        before = _cpu_ticks(client.pid)
        await asyncio.sleep(1.0)
        assert _cpu_ticks(client.pid) - before <= 5  # at most 50 ms of CPU in a second: blocked, not busy
        for _ in range(20):
            assert (await asyncio.wait_for(client.state(), 1)).status is Status.RUNNING
        await client.kill("", signal.SIGKILL)
        assert (await asyncio.wait_for(client.wait(), 5)).status == 137
        await client.delete()
        await client.close()

    run(scenario())


def test_hostile_clients_are_dropped_and_the_shim_serves_on(harness: Harness) -> None:
    async def scenario() -> None:
        bundle, id = harness.bundle("hostile", ["true"])
        client = await harness.spawn(bundle, id)
        path = (bundle / "address").read_text().removeprefix("unix://")
        for garbage in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x05[1,2]", b"\x00\x00\x00\x02{}"):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(garbage)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped
            writer.close()
        with pytest.raises(NotImplementedYet):
            await client._call("format_disk")
        with pytest.raises(InvalidArgument):
            await client._call("kill", exec_id=5, signal="x")
        with pytest.raises(InvalidArgument):
            await client._call("create", rootfs="nope")
        with pytest.raises(InvalidArgument):
            await client.exec("x" * 200, process(["true"]))
        assert (await ShimClient.connect(bundle)).pid == client.pid
        assert await client.shutdown()
        await client.close()

    run(scenario())


def test_stderr_holds_the_process_output_only(harness: Harness) -> None:
    """runc's own complaint about a failed exec stays out of the stream; a megabyte of the process's arrives whole."""
    failed = harness.fifo_set("failed")
    big = harness.fifo_set("big")

    async def scenario() -> None:
        client, _ = await harness.run("stderr", ["sleep", "30"])
        await client.exec("bad", process(["/no/such/program"]), failed.io())
        with pytest.raises(Unknown, match="no such file"):
            await client.start("bad")
        await client.delete("bad")
        await client.exec(
            "big", process(["sh", "-c", "dd if=/dev/zero bs=65536 count=16 >&2 2>/dev/null; exit 3"]), big.io()
        )
        await client.start("big")
        got = asyncio.get_running_loop().run_in_executor(None, big.read_all, big.err)
        assert (await client.wait("big")).status == 3
        assert await got == bytes(1 << 20)
        await client.kill("", signal.SIGKILL)
        await client.wait()
        await client.delete()
        await client.close()

    run(scenario())
    failed.close_stdin()
    assert failed.read_all(failed.err, timeout=1.0) == b""
