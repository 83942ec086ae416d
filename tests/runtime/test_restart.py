"""Shims outlive the daemon: found again with connect(bundle), exits kept, events delivered exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.errors import Unavailable
from pycontainerd.mount import is_mountpoint
from pycontainerd.runtime.shim.client import ShimClient, cleanup
from pycontainerd.tasks import Status

from .conftest import Harness, _alive, process, run

# A stand-in daemon: starts a shim per bundle, creates and starts its task, reports, and waits to be killed.
DAEMON = """
import asyncio, json, sys
from pathlib import Path
from pycontainerd.mount import Mount
from pycontainerd.runtime.shim.client import ShimClient
from pycontainerd.runtime.shim.spawn import ForkServer

async def main(runc_root, rootfs, bundles, how):
    forks = ForkServer() if how == "fork" else None
    out = []
    for bundle, id in bundles:
        c = await ShimClient.spawn(Path(bundle), "shimtest", id, forkserver=forks)
        pid = await c.create(rootfs=[Mount("bind", rootfs, ("rbind", "ro"))], runtime_root=runc_root)
        await c.start()
        out.append({"bundle": bundle, "shim": c.pid, "init": pid, "forkserver": forks.pid if forks else 0})
    print(json.dumps(out), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]))
"""


def start_daemon(
    harness: Harness, bundles: list[tuple[Path, str]], how: str = "exec"
) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]]]:
    args = [str(harness.runc_root), str(harness.busybox_root), json.dumps([(str(b), i) for b, i in bundles]), how]
    proc = subprocess.Popen(
        [sys.executable, "-c", DAEMON, *args], stdout=subprocess.PIPE, start_new_session=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    shims = json.loads(line) if line else []
    for s in shims:
        harness.shim_pids.add(s["shim"])
    assert len(shims) == len(bundles), "the stand-in daemon failed"
    return proc, shims


async def next_event(client: ShimClient, timeout: float = 5.0) -> dict[str, Any]:
    it = client.events()
    return await asyncio.wait_for(anext(it), timeout)


@pytest.mark.parametrize("how", ["exec", "fork"])
def test_shims_survive_the_daemon_and_its_process_group(harness: Harness, how: str) -> None:
    """Started from scratch or forked by the fork server (which is in the daemon's process group)."""
    b1 = harness.bundle("survive1", ["sleep", "30"])
    b2 = harness.bundle("survive2", ["sleep", "30"])
    daemon, shims = start_daemon(harness, [b1, b2], how)
    forkserver = shims[0]["forkserver"]
    assert (forkserver != 0) == (how == "fork")
    os.killpg(daemon.pid, signal.SIGKILL)  # the daemon and everything in its process group
    daemon.wait()
    daemon.stdout.close()  # type: ignore[union-attr]
    assert all(_alive(s["shim"]) and _alive(s["init"]) for s in shims)
    deadline = time.monotonic() + 5
    while forkserver and _alive(forkserver) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (forkserver and _alive(forkserver))
    # While no daemon is there, the second container's init dies.
    os.kill(shims[1]["init"], signal.SIGKILL)
    time.sleep(0.2)

    async def scenario() -> None:
        c1 = await ShimClient.connect(b1[0])
        assert c1.pid == shims[0]["shim"]
        assert c1.info["init"]["status"] == "running" and c1.info["init"]["pid"] == shims[0]["init"]
        state = await c1.state()
        assert state.status is Status.RUNNING and state.pid == shims[0]["init"]
        await c1.exec("after", process(["sh", "-c", "exit 5"]))
        await c1.start("after")
        assert (await c1.wait("after")).status == 5
        await c1.kill("", signal.SIGKILL)
        assert (await c1.wait()).status == 137
        await c1.delete()
        await c1.close()

        c2 = await ShimClient.connect(b2[0])
        state = await c2.state()
        assert state.status is Status.STOPPED and state.exit_status == 137 and state.exited_at is not None
        assert (await c2.wait()).status == 137
        # Everything the dead daemon never acknowledged, once; the exit among it.
        got = []
        async for ev in c2.events():
            got.append(ev)
            if ev["topic"] == "/tasks/exit":
                break
        assert [e["topic"] for e in got] == ["/tasks/create", "/tasks/start", "/tasks/exit"]
        assert got[-1]["exit_status"] == 137 and got[-1]["pid"] == shims[1]["init"]
        await c2.ack(got[-1]["seq"])
        await c2.close()
        # Reconnected again: the acknowledged exit is not sent a second time; the next event is a new one.
        c2 = await ShimClient.connect(b2[0])
        await c2.delete()
        ev = await next_event(c2)
        assert ev["topic"] == "/tasks/delete" and ev["seq"] > got[-1]["seq"]
        assert await c2.shutdown()
        await c2.close()

    run(scenario())
    for s in shims:
        deadline = time.monotonic() + 5
        while _alive(s["shim"]) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not _alive(shims[1]["shim"])  # shut down after its task was deleted
    assert not (b2[0] / "address").exists()


def test_dead_shim_is_cleaned_up(harness: Harness) -> None:
    async def scenario() -> None:
        client, id = await harness.run("dead", ["sleep", "30"])
        bundle = client.bundle
        init = (await client.state()).pid
        os.kill(client.pid, signal.SIGKILL)
        with pytest.raises(Unavailable):
            await client.state()
        await client.close()
        deadline = time.monotonic() + 5
        while _alive(client.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        with pytest.raises(Unavailable):
            await ShimClient.connect(bundle)
        assert is_mountpoint(bundle / "rootfs") and _alive(init)
        exit_ = await cleanup(bundle, str(harness.runc_root))
        assert exit_.status == 137 and exit_.pid == init and exit_.exited_at is not None
        assert not is_mountpoint(bundle / "rootfs")
        assert not (bundle / "address").exists()
        state = subprocess.run(
            ["runc", "--root", str(harness.runc_root), "state", id], capture_output=True, text=True, check=False
        )
        assert state.returncode != 0 and "does not exist" in state.stderr
        deadline = time.monotonic() + 5
        while _alive(init) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not _alive(init)
        with pytest.raises(Unavailable, match="no shim address"):
            await ShimClient.connect(bundle)
        assert (await cleanup(bundle, str(harness.runc_root))).status == 137  # twice is harmless

    run(scenario())
