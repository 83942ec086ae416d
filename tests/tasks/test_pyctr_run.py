"""``pyctr run`` and ``pyctr containers create`` against the real containerd: the spec pyctr makes runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pycontainerd.client import Client
from tests.tasks.conftest import NS, REF

pytestmark = pytest.mark.containerd


def pyctr(client: Client, *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", client.address, "-n", NS, *args],
        input=input,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_run_rm_with_flags(client: tuple[Client, str, Path]) -> None:
    c = client[0]
    r = pyctr(
        c, "run", "--rm", "--env", "GREETING=hi", "--cwd", "/bin", "--hostname", "box", "--memory-limit",
        str(64 << 20), "--pids-limit", "20", "--read-only", REF, "r1",
        "/bin/busybox", "sh", "-c", "echo $GREETING $(/bin/busybox hostname) $(/bin/busybox pwd); "
        "/bin/busybox touch /x 2>/dev/null || echo ro; exit 4",
    )  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert r.stdout == b"hi box /bin\nro\n"
    assert c.containers.list() == [] and c.tasks.list() == []
    assert "r1" not in [i.name for i in c.snapshotter("overlayfs").walk()]


def test_containers_create_then_start(client: tuple[Client, str, Path]) -> None:
    c = client[0]
    r = pyctr(c, "containers", "create", "--label", "a=b", REF, "c1", "/bin/busybox", "echo", "created")
    assert r.returncode == 0 and r.stdout == b"c1\n", r.stderr
    spec = json.loads(pyctr(c, "containers", "info", "--spec", "c1").stdout)
    assert spec["process"]["args"] == ["/bin/busybox", "echo", "created"]
    assert spec["linux"]["cgroupsPath"] == f"/{NS}/c1"
    info = json.loads(pyctr(c, "containers", "info", "c1").stdout)
    assert info["Labels"] == {"a": "b", "io.containerd.image.config.stop-signal": "SIGTERM"}
    r = pyctr(c, "tasks", "start", "c1")
    assert (r.returncode, r.stdout) == (0, b"created\n"), r.stderr
    assert pyctr(c, "containers", "rm", "c1").returncode == 0


def test_run_bad_input(client: tuple[Client, str, Path]) -> None:
    c = client[0]
    r = pyctr(c, "run", "--rm", "example.com/none:1", "x1", "true")
    assert r.returncode == 1 and b"not found: pull it first" in r.stderr
    r = pyctr(c, "run", "--rm", REF, "x2", "/bin/no-such-program")
    assert r.returncode != 0 and b"no-such-program" in r.stderr and b"Traceback" not in r.stderr
    r = pyctr(c, "run", "--rm", "--mount", "type=bind,dst=/x", REF, "x3", "/bin/busybox", "true")
    assert r.returncode == 1 and b"invalid mount" in r.stderr
    pyctr(c, "containers", "create", REF, "dup", "/bin/busybox", "true")
    r = pyctr(c, "run", "--rm", REF, "dup", "/bin/busybox", "true")
    assert r.returncode == 1 and b"already exists" in r.stderr
    pyctr(c, "containers", "rm", "dup")
    assert c.containers.list() == [] and c.tasks.list() == []
