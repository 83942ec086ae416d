"""``pyctr run`` and ``pyctr containers create`` against the real containerd: the spec pyctr makes runs."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from pycontainerd.client import FIFO_ROOT, Client
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


def test_detached_then_attached(client: tuple[Client, str, Path]) -> None:
    c = client[0]
    r = pyctr(c, "run", "-d", REF, "a1", "/bin/busybox", "sh", "-c", "sleep 1; echo out; echo err >&2; exit 5")
    assert r.returncode == 0, r.stderr
    fifo_dir = Path(c.tasks.get("a1").io.stdout).parent
    assert fifo_dir.parent == FIFO_ROOT and fifo_dir.is_dir()
    r = pyctr(c, "tasks", "attach", "a1")
    assert (r.returncode, r.stdout, r.stderr) == (5, b"out\n", b"err\n")
    assert pyctr(c, "tasks", "rm", "a1").returncode == 0
    assert not fifo_dir.exists()  # the FIFOs pyctr made go with the task
    pyctr(c, "containers", "rm", "a1")
    r = pyctr(c, "run", "-d", "--null-io", REF, "a2", "/bin/busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    r = pyctr(c, "tasks", "attach", "a2")
    assert r.returncode == 1 and r.stderr.startswith(b"pyctr: ") and b"not FIFOs" in r.stderr
    assert pyctr(c, "tasks", "rm", "-f", "a2").returncode == 0
    pyctr(c, "containers", "rm", "a2")


def test_terminal_has_its_size_from_the_start(client: tuple[Client, str, Path]) -> None:
    """pyctr sizes the terminal between create and start: no race with the process's first look (ctr has one)."""
    c = client[0]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 27, 93, 0, 0))
    argv = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", c.address, "-n", NS]
    argv += ["run", "-t", "--rm", REF, "tty1", "/bin/busybox", "stty", "size"]
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer is gone
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(10) == 0
    finally:
        os.close(master)
    assert out.replace(b"\r", b"").strip() == b"27 93"


def test_user_namespace(client: tuple[Client, str, Path]) -> None:
    c = client[0]
    script = "cat /proc/self/uid_map /proc/self/gid_map; /bin/busybox touch /new && echo wrote"
    r = pyctr(
        c,
        "run",
        "--rm",
        "--uidmap",
        "0:400000:65536",
        "--gidmap",
        "0:500000:65536",
        REF,
        "u1",
        "/bin/busybox",
        "sh",
        "-c",
        script,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["0", "400000", "65536", "0", "500000", "65536", "wrote"]
    r = pyctr(c, "run", "--rm", "--uidmap", "0:1", REF, "u2", "/bin/busybox", "true")
    assert r.returncode == 1 and r.stderr.strip() == b"pyctr: --uidmap '0:1': expected container-id:host-id:length"
    assert c.containers.list() == []


def test_join_a_network_namespace_by_path(client: tuple[Client, str, Path], tmp_path: Path) -> None:
    c = client[0]
    ns = tmp_path / "net"
    ns.touch()
    subprocess.run(["unshare", f"--net={ns}", "true"], check=True)
    try:
        r = pyctr(
            c, "run", "--rm", "--with-ns", f"network:{ns}", REF, "n1", "/bin/busybox", "readlink", "/proc/self/ns/net"
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"net:[{os.stat(ns).st_ino}]\n".encode()
        r = pyctr(c, "run", "--rm", "--with-ns", "network", REF, "n2", "/bin/busybox", "true")
        assert r.returncode == 1 and r.stderr.strip() == b"pyctr: --with-ns 'network': expected TYPE:PATH"
    finally:
        subprocess.run(["umount", str(ns)], check=True)
