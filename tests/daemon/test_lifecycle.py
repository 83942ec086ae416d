"""Start, refuse, stop and crash: the daemon process as an operator sees it."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.empty_pb2 import Empty

from pycontainerd.api.services.content.v1 import content_pb2 as cpb
from pycontainerd.server.server import LOCK_FILE
from tests.daemon.conftest import Stubs, channel_to, md
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon, health_status


def _run(d: PycontainerdDaemon, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*d.command(), *extra], capture_output=True, text=True, timeout=60, check=False)


def test_serves_on_a_0660_socket_and_stops_cleanly_on_sigterm(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    st = os.stat(d.address)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert health_status(d.address) == 1  # SERVING
    assert (d.root / LOCK_FILE).read_text().strip() == str(d.proc.pid if d.proc else 0)
    assert d.stop() == 0
    assert not os.path.exists(d.address)
    assert "pycontainerd stopped" in d.log()
    assert "Traceback" not in d.log()


def test_sigint_is_a_clean_stop_too(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    assert d.proc is not None
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=20) == 0
    assert not os.path.exists(d.address)


def test_second_daemon_on_the_same_root_is_refused_with_one_line(
    pycontainerd_daemon: PycontainerdDaemon, pycontainerd_daemon_factory: DaemonFactory
) -> None:
    first = pycontainerd_daemon
    assert first.proc is not None
    second = pycontainerd_daemon_factory(start=False, share_with=first)
    # Even on another socket address: the root is what is shared.
    res = _run(second, "--address", str(first.base / "other.sock"))
    assert res.returncode == 1
    assert res.stderr == f"pycontainerd: another daemon is using root {first.root} (pid {first.proc.pid})\n"
    assert res.stdout == ""
    assert not (first.base / "other.sock").exists()
    assert health_status(first.address) == 1


def test_socket_in_use_by_another_daemon_is_refused(
    pycontainerd_daemon: PycontainerdDaemon, pycontainerd_daemon_factory: DaemonFactory
) -> None:
    other = pycontainerd_daemon_factory(start=False)
    res = _run(other, "--address", pycontainerd_daemon.address)
    assert res.returncode == 1
    assert (
        res.stderr.splitlines()[-1]
        == f"pycontainerd: address {pycontainerd_daemon.address} is in use by another process"
    )
    assert health_status(pycontainerd_daemon.address) == 1


def test_stale_socket_is_removed_at_start(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(start=False)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(d.address)
    stale.close()  # the file stays, nobody listens
    assert os.path.exists(d.address)
    d.start()
    assert health_status(d.address) == 1


def test_killed_daemon_restarts_on_the_same_root(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    with channel_to(d.address) as ch:
        uuid = Stubs(ch).introspection.Server(Empty()).uuid
    d.kill()
    assert os.path.exists(d.address)  # a crash leaves the socket behind
    d.start()
    with channel_to(d.address) as ch:
        assert Stubs(ch).introspection.Server(Empty()).uuid == uuid


def test_shutdown_cancels_streams_still_open(pycontainerd_daemon: PycontainerdDaemon) -> None:
    """A client holding a Write stream open does not keep the daemon alive past the grace period."""
    d = pycontainerd_daemon
    release = threading.Event()

    def requests() -> Iterator[cpb.WriteContentRequest]:
        yield cpb.WriteContentRequest(action=cpb.STAT, ref="held")
        release.wait(30)

    with channel_to(d.address) as ch:
        call = Stubs(ch).content.Write(requests(), metadata=md())
        try:
            assert next(call).action == cpb.STAT
            started = time.monotonic()
            assert d.stop() == 0
            assert time.monotonic() - started < 15
            with pytest.raises(grpc.RpcError):
                next(call)
        finally:
            release.set()


def test_unwritable_root_is_one_line(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    d = pycontainerd_daemon_factory(start=False)
    res = _run(d, "--root", str(blocker / "root"))
    assert res.returncode == 1
    assert res.stderr.startswith(f"pycontainerd: cannot use root {blocker / 'root'}")
    assert len(res.stderr.splitlines()) == 1
