"""Who may reach the daemon: the socket's mode and group, and what lies under root and state.

A real unprivileged user is made for each test (``useradd``) and removed
afterwards, however the test ends.  Without the socket's group it is
refused — by the kernel, at connect(2) — whether it runs Debian's ``ctr``,
``pyctr`` or a bare connect; once the daemon's ``[grpc] gid`` names a group
the user belongs to, the same commands work.  The daemon opens no other
socket (pycontainerd serves neither a debug nor a TTRPC socket), and its
directories have containerd 1.6's modes: root 0700, state 0711, so no blob
or snapshot can be read by a user who knows its name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.content.helpers import write_blob
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.reliability.soak import record

REPO = Path(__file__).resolve().parents[3]
# The venv's interpreter lives under /root, which other users cannot enter; Debian's
# python3.11 (the same ABI) runs pyctr from the venv's packages instead.
SYSTEM_PYTHON = "/usr/bin/python3.11"
SITE = REPO / ".venv" / "lib" / "python3.11" / "site-packages"


@dataclass(frozen=True)
class Stranger:
    user: str
    group: str  # the group the test may give the socket; the user is not in it at first
    uid: int
    gid: int

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``argv`` as this user, with the groups /etc/group gives it now (runuser, as a login would)."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "PYTHONPATH": f"{SITE}:{REPO}"}
        return subprocess.run(
            ["runuser", "-u", self.user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ctr(self, address: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("ctr", "--timeout", "5s", "-a", address, *args)

    def pyctr(self, address: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(SYSTEM_PYTHON, "-m", "pycontainerd.cmd.pyctr", "-a", address, *args)

    def connect(self, address: str) -> subprocess.CompletedProcess[str]:
        code = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry: s.connect(sys.argv[1])\nexcept OSError as e: sys.exit(e.strerror)\nprint('connected')"
        return self.run(SYSTEM_PYTHON, "-I", "-c", code, address)


def _tool(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def stranger() -> Iterator[Stranger]:
    """A new system user with a primary group of its own, and a second group it is not in."""
    tag = secrets.token_hex(3)
    user, group = f"pcdu{tag}", f"pcdg{tag}"
    made: list[list[str]] = []
    try:
        _tool("groupadd", "--system", user)
        made.append(["groupdel", user])
        _tool("groupadd", "--system", group)
        made.append(["groupdel", group])
        _tool("useradd", "--system", "-M", "-N", "-g", user, "-d", "/nonexistent", "-s", "/usr/sbin/nologin", user)
        made.append(["userdel", user])
        gid = int(
            subprocess.run(["getent", "group", group], capture_output=True, text=True, check=True).stdout.split(":")[2]
        )
        uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True).stdout)
        yield Stranger(user, group, uid, gid)
    finally:
        for argv in reversed(made):
            subprocess.run(argv, capture_output=True, timeout=30, check=False)
        assert subprocess.run(["id", user], capture_output=True, check=False).returncode != 0


def _sockets(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode))


def _refused(s: Stranger, d: PycontainerdDaemon) -> int:
    """Every way in fails for ``s`` with permission denied; returns how many were tried."""
    r = s.connect(d.address)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = s.ctr(d.address, "namespaces", "ls")
    assert r.returncode != 0 and r.stdout == "", r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "permission denied" in lines[0], r.stderr
    r = s.pyctr(d.address, "namespaces", "ls")
    assert r.returncode == 1 and r.stdout == "", r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyctr: ") and "Permission denied" in lines[0], r.stderr
    assert "socket's group" in lines[0] and "daemon running" not in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    return 3


def _allowed(s: Stranger, d: PycontainerdDaemon) -> int:
    r = s.connect(d.address)
    assert r.returncode == 0 and r.stdout.strip() == "connected", r
    r = s.ctr(d.address, "namespaces", "ls", "-q")
    assert r.returncode == 0, r.stderr
    assert "team" in r.stdout.split()
    r = s.pyctr(d.address, "-n", "team", "content", "ls", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [_BLOB_DIGEST]
    return 3


_BLOB = b"only for the socket's group\n"
_BLOB_DIGEST = "sha256:" + hashlib.sha256(_BLOB).hexdigest()


def test_the_socket_group_decides_who_may_call(stranger: Stranger, pycontainerd_daemon_factory: DaemonFactory) -> None:
    s = stranger
    # Root's daemon with no [grpc] gid: root:root 0660, and the stranger is refused.
    d = pycontainerd_daemon_factory()
    with Client(d.address, namespace="team") as c:
        held = c.leases.create("keep")
        write_blob(c.with_lease(held.id).content, "b", _BLOB)
    st = os.stat(d.address)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, 0)
    tried = _refused(s, d)
    d.stop()

    # The same root, now with [grpc] gid = the stranger's second group, which it has not joined yet.
    again = pycontainerd_daemon_factory(config=f"version = 2\n[grpc]\ngid = {s.gid}\n", start=False, share_with=d)
    again.start()
    st = os.stat(again.address)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, s.gid)
    tried += _refused(s, again)
    _tool("usermod", "-a", "-G", s.group, s.user)  # joins it: the same commands now work
    tried += _allowed(s, again)
    assert _sockets(again.base) == [Path(again.address)]  # no debug or TTRPC socket beside it
    record(
        area="access",
        tried="a non-root user calling the daemon (connect, ctr, pyctr) without and with the socket's group",
        count=tried,
        held="refused with one 'permission denied' line without the group; served with it",
    )


def test_the_socket_owner_may_call(stranger: Stranger, pycontainerd_daemon_factory: DaemonFactory) -> None:
    s = stranger
    d = pycontainerd_daemon_factory(config=f"version = 2\n[grpc]\nuid = {s.uid}\n")
    with Client(d.address, namespace="team") as c:
        held = c.leases.create("keep")
        write_blob(c.with_lease(held.id).content, "b", _BLOB)
    st = os.stat(d.address)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, s.uid, 0)
    tried = _allowed(s, d)  # the owner, in no group of the socket's
    record(
        area="access",
        tried="a non-root user named as the socket's owner ([grpc] uid) calling the daemon",
        count=tried,
        held="served",
    )


def test_root_and_state_are_closed_to_other_users(
    stranger: Stranger, pycontainerd_daemon_factory: DaemonFactory
) -> None:
    d = pycontainerd_daemon_factory(start=False)
    d.root.mkdir(mode=0o755)  # as an older pycontainerd or a careless admin left it: narrowed at start
    d.start()
    with Client(d.address) as c, c.lease() as leased:
        digest = write_blob(leased.content, "b", _BLOB)
        blob = d.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / digest.split(":")[1]
        assert blob.read_bytes() == _BLOB
        modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (d.root, d.state)}
        assert modes == {d.root: 0o700, d.state: 0o711}  # containerd 1.6's
        tried = 0
        for path in (d.root, blob, d.root / "io.containerd.metadata.v1.sqlite" / "meta.db"):
            r = stranger.run("ls" if path.is_dir() else "cat", str(path))
            assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r)
            tried += 1
        for path in d.state.iterdir():  # state is 0711: its plugin directories hold nothing a user may list
            assert stat.S_IMODE(path.stat().st_mode) & 0o004 == 0, path
            tried += 1
    record(
        area="access",
        tried="a non-root user reading the daemon's root, a blob and the metadata database",
        count=tried,
        held="root 0700 and state 0711 as containerd's; every read refused",
    )
