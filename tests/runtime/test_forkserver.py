"""Shims forked by the fork server: the same process as one started from scratch, and a fallback when it fails."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from pycontainerd.errors import Unavailable
from pycontainerd.runtime.shim.client import ShimClient, socket_path
from pycontainerd.runtime.shim.launcher import ShimLauncher
from pycontainerd.runtime.shim.spawn import MAX_FAILURES, ForkServer, shim_args, shim_command
from pycontainerd.tasks import Status

from .conftest import Harness, _alive, run


def argv_of(pid: int) -> list[str]:
    """A process's command line, without the NULs that pad a rewritten one."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().rstrip(b"\0").split(b"\0")]


def stat_of(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


async def spawn(harness: Harness, server: ForkServer, bundle: Path, id: str) -> ShimClient:
    client = await ShimClient.spawn(bundle, "shimtest", id, forkserver=server)
    harness.shim_pids.add(client.pid)
    return client


def test_a_forked_shim_runs_a_task_and_looks_spawned(harness: Harness) -> None:
    fifos = harness.fifo_set("forked")

    async def scenario() -> None:
        server = ForkServer()
        try:
            bundle, id = harness.bundle("forked", ["sh", "-c", "echo forked; exit 4"])
            client = await spawn(harness, server, bundle, id)
            assert server.pid and _alive(server.pid) and client.pid != server.pid
            # The shim is in a session of its own and no child of the fork server: it outlives it.
            fields = stat_of(client.pid)
            assert int(fields[3]) == client.pid and int(fields[1]) != server.pid
            assert argv_of(client.pid) == shim_command() + shim_args(bundle, "shimtest", id, socket_path(bundle))
            assert "--forkserver" in argv_of(server.pid) and not any(a.startswith("--pad") for a in argv_of(server.pid))
            await client.create(rootfs=harness.rootfs(), io=fifos.io(), runtime_root=str(harness.runc_root))
            await client.start()
            assert (await client.wait()).status == 4
            assert fifos.read_all(fifos.out) == b"forked\n"
            await client.delete()
            assert await client.shutdown()
            await client.close()
            # A second shim comes from the same server.
            bundle2, id2 = harness.bundle("forked2", ["true"])
            second = await spawn(harness, server, bundle2, id2)
            assert second.pid != client.pid and server.failures == 0
            assert await second.shutdown()
            await second.close()
        finally:
            await server.close()
        assert not _alive(server.pid or 0)

    run(scenario())


def test_shims_outlive_a_killed_fork_server_which_is_replaced(harness: Harness) -> None:
    async def scenario() -> None:
        server = ForkServer()
        try:
            client, _ = await _running(harness, server, "outlive")
            first = server.pid
            os.kill(first, signal.SIGKILL)
            while _alive(first):
                await asyncio.sleep(0.01)
            assert (await client.state()).status is Status.RUNNING
            # The next shim is started from scratch; the one after from a new fork server.
            bundle, id = harness.bundle("after-kill", ["true"])
            scratch = await spawn(harness, server, bundle, id)
            assert server.failures == 1 and "--forkserver" not in argv_of(scratch.pid)
            bundle, id = harness.bundle("new-server", ["true"])
            forked = await spawn(harness, server, bundle, id)
            assert server.pid not in (0, first) and server.failures == 0
            for c in (scratch, forked):
                assert await c.shutdown()
                await c.close()
            await client.kill("", signal.SIGKILL)
            await client.wait()
            await client.delete()
            assert await client.shutdown()
            await client.close()
        finally:
            await server.close()

    run(scenario())


async def _running(harness: Harness, server: ForkServer, name: str) -> tuple[ShimClient, str]:
    bundle, id = harness.bundle(name, ["sleep", "30"])
    client = await spawn(harness, server, bundle, id)
    await client.create(rootfs=harness.rootfs(), runtime_root=str(harness.runc_root))
    await client.start()
    return client, id


def test_a_shim_that_fails_to_start_says_why(harness: Harness) -> None:
    async def scenario() -> None:
        server = ForkServer()
        try:
            bundle, id = harness.bundle("busy", ["true"])
            client = await spawn(harness, server, bundle, id)
            with pytest.raises(Unavailable, match="already listens"):
                await ShimClient.spawn(bundle, "shimtest", id, forkserver=server)
            assert server.failures == 0  # the shim failed, not the server
            assert await client.shutdown()
            await client.close()
        finally:
            await server.close()

    run(scenario())


def test_a_command_line_too_long_to_rewrite_starts_from_scratch(harness: Harness) -> None:
    deep = harness.tmp_path / "/".join(["d" * 200] * 12)  # 2.4 KiB: more than the server's argv area

    async def scenario() -> None:
        server = ForkServer()
        try:
            bundle = deep / "long"
            (bundle / "rootfs").mkdir(parents=True)
            client = await spawn(harness, server, bundle, "long")
            assert argv_of(client.pid)[-7] == str(bundle) and server.failures == 0
            assert await client.shutdown()
            await client.close()
        finally:
            await server.close()

    run(scenario())


def test_a_broken_fork_server_is_given_up(harness: Harness) -> None:
    async def scenario() -> None:
        server = ForkServer(python="/nonexistent/python")
        for n in range(MAX_FAILURES + 1):
            bundle, id = harness.bundle(f"broken{n}", ["true"])
            with pytest.raises(Unavailable):  # from scratch too: the same interpreter is missing
                await ShimClient.spawn(bundle, "shimtest", id, forkserver=server, python="/nonexistent/python")
        assert not server.usable and server.failures == MAX_FAILURES
        await server.close()

    run(scenario())


def test_the_launcher_forks_and_stops_its_server(harness: Harness) -> None:
    async def scenario() -> None:
        launcher = ShimLauncher()
        assert launcher.forkserver is not None
        bundle, id = harness.bundle("launched", ["true"])
        shim = await launcher.start(bundle, "shimtest", id)
        harness.shim_pids.add(shim.client.pid)
        pid = launcher.forkserver.pid
        assert _alive(pid)
        await shim.shutdown()
        await launcher.close()
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not _alive(pid)
        assert ShimLauncher(forks=False).forkserver is None

    run(scenario())


def test_an_idle_fork_server_is_stopped_and_started_again(harness: Harness) -> None:
    async def scenario() -> None:
        server = ForkServer(idle_timeout=0.3)
        try:
            bundle, id = harness.bundle("idle1", ["true"])
            first = await spawn(harness, server, bundle, id)
            pid = server.pid
            await asyncio.sleep(0.1)
            assert _alive(pid)
            deadline = time.monotonic() + 5
            while (server.pid or _alive(pid)) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert server.pid == 0 and not _alive(pid)
            bundle, id = harness.bundle("idle2", ["true"])
            second = await spawn(harness, server, bundle, id)
            assert server.pid not in (0, pid) and server.failures == 0
            for c in (first, second):
                assert await c.shutdown()
                await c.close()
        finally:
            await server.close()

    run(scenario())
