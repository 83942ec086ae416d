"""``pyctr tasks`` against the real containerd and pycontainerd: start attached and detached, exec, ps, kill, rm."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.client import Client
from tests.tasks.conftest import NS, make_container

pytestmark = pytest.mark.containerd


def pyctr(client: Client, *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", client.address, "-n", NS, *args],
        input=input,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_pyctr_tasks(client: tuple[Client, str, Path]) -> None:
    c, top, runc_root = client
    make_container(c, top, "fg", ["/bin/busybox", "sh", "-c", "read line; echo got $line; exit 3"], runc_root)
    r = pyctr(c, "tasks", "start", "fg", input=b"hello\n")
    assert r.returncode == 3, r.stderr
    assert r.stdout == b"got hello\n"
    assert pyctr(c, "tasks", "ls", "-q").stdout == b""  # a foreground start deletes its task

    make_container(c, top, "bg", ["/bin/busybox", "sleep", "600"], runc_root)
    r = pyctr(c, "tasks", "start", "-d", "bg")
    assert r.returncode == 0, r.stderr
    rows = pyctr(c, "tasks", "ls").stdout.decode().splitlines()
    assert rows[0].split() == ["TASK", "PID", "STATUS"] and rows[1].split()[::2] == ["bg", "RUNNING"]
    r = pyctr(c, "tasks", "exec", "--exec-id", "e1", "bg", "/bin/busybox", "sh", "-c", "echo in; exit 5")
    assert (r.returncode, r.stdout) == (5, b"in\n"), r.stderr
    ps = pyctr(c, "tasks", "ps", "bg").stdout.decode().splitlines()
    assert ps[0].split() == ["PID", "INFO"] and len(ps) == 2
    r = pyctr(c, "tasks", "rm", "bg")
    assert r.returncode == 1 and b"running" in r.stderr and b"Traceback" not in r.stderr
    assert pyctr(c, "tasks", "pause", "bg").returncode == 0
    assert "PAUSED" in pyctr(c, "tasks", "ls").stdout.decode()
    assert pyctr(c, "tasks", "resume", "bg").returncode == 0
    metrics = dict(line.split(None, 1) for line in pyctr(c, "tasks", "metrics", "bg").stdout.decode().splitlines())
    assert metrics["METRIC"] == "VALUE" and int(metrics["pids.current"]) == 1
    assert int(metrics["memory.usage_in_bytes"]) > 0
    raw = json.loads(pyctr(c, "tasks", "metrics", "--format", "json", "bg").stdout)
    assert raw["pids"]["current"] == "1"  # uint64 is a string in protobuf's JSON
    r = pyctr(c, "tasks", "kill", "-s", "NOPE", "bg")
    assert r.returncode != 0 and r.stderr.strip() == b"pyctr: unknown signal 'NOPE'"
    assert pyctr(c, "tasks", "kill", "-s", "KILL", "bg").returncode == 0
    assert c.tasks.wait("bg").status == 137
    assert pyctr(c, "tasks", "rm", "bg").returncode == 0
    r = pyctr(c, "tasks", "rm", "-f", "nope")
    assert r.returncode == 1 and b"not found" in r.stderr
    for id in ("fg", "bg"):
        c.containers.delete(id)
        with contextlib.suppress(errors.NotFound):  # the collector may have taken it once the record went
            c.snapshotter("overlayfs").remove(id)
