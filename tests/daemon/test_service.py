"""Service management: sd_notify readiness, the systemd unit, the OpenRC and sysvinit scripts.

systemd is installed here but is not PID 1 (this is a container), so no
unit can be started: the unit is checked by ``systemd-analyze verify`` and
by its keys.  The notify protocol is checked against a real datagram socket
standing in for systemd's, and against Debian's ``start-stop-daemon
--notify-await``, a second implementation of the receiving side, which the
sysvinit script uses: its ``start`` returns once the daemon serves.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from pycontainerd.server._sdnotify import Notifier, datagram_address
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon, health_status
from tests.ocibuild import busybox_files, image, oci_layout_tar
from tests.tasks.spec import remove_namespace_cgroups

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
UNIT = CONTRIB / "systemd" / "pycontainerd.service"
OPENRC = CONTRIB / "openrc" / "pycontainerd"
SYSVINIT = CONTRIB / "sysvinit" / "pycontainerd"
PYCONTAINERD = Path(sys.executable).parent / "pycontainerd"  # the console script pip installs
SERVING = health_pb2.HealthCheckResponse.SERVING
CTR = "/usr/bin/ctr"
NS = "servicetest"
BUSYBOX = "example.com/test/busybox:1"


# -- sd_notify -------------------------------------------------------------------


def test_notify_addresses() -> None:
    assert datagram_address("/run/systemd/notify") == "/run/systemd/notify"
    assert datagram_address("@/org/freedesktop/systemd1/notify/123") == b"\0/org/freedesktop/systemd1/notify/123"
    for bad in ("relative/path", "@", "vsock:2:1234"):
        with pytest.raises(ValueError, match="neither an absolute path nor an abstract name"):
            datagram_address(bad)


def test_notifier_takes_the_variable_out_of_the_environment() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "PATH": "/bin"}
    notifier = Notifier(env)
    assert notifier.enabled and notifier.name == "/run/systemd/notify"
    assert env == {"PATH": "/bin"}  # shims and runc, started later, never see it
    assert not Notifier({}).ready()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket where systemd's would be, and the NOTIFY_SOCKET value naming it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify")
        sock.bind(name)
    else:
        name = f"@pycontainerd-test/{os.getpid()}/{time.monotonic_ns()}"
        sock.bind(b"\0" + name[1:].encode())
    sock.settimeout(30)
    try:
        yield name, sock
    finally:
        sock.close()


def test_ready_once_serving_and_stopping_when_stopped(
    pycontainerd_daemon_factory: DaemonFactory,
    notify_socket: tuple[str, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    d = pycontainerd_daemon_factory(start=False).start(wait=False)
    assert d.proc is not None
    assert sock.recv(4096) == f"READY=1\nMAINPID={d.proc.pid}".encode()
    assert health_status(d.address) == SERVING  # ready means serving, not starting
    d.proc.send_signal(signal.SIGTERM)
    assert sock.recv(4096) == b"STOPPING=1"
    assert d.proc.wait(timeout=30) == 0
    assert "sd notification" not in d.log()  # nothing failed (and the debug line is below info)


def test_a_bad_notify_socket_is_a_warning_not_a_failure(
    pycontainerd_daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    d = pycontainerd_daemon_factory()
    assert 'level=warning msg="sd notification failed state=READY=1: [Errno 2] No such file or directory"' in d.log()
    monkeypatch.setenv("NOTIFY_SOCKET", "relative")
    d = pycontainerd_daemon_factory()
    assert "sd notification failed state=READY=1: NOTIFY_SOCKET='relative' is neither" in d.log()
    assert d.stop() == 0


@pytest.mark.containerd
def test_containers_do_not_inherit_the_notify_socket(
    pycontainerd_daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """runc given NOTIFY_SOCKET would hand the container a notify socket and wait for its READY=1."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    d = pycontainerd_daemon_factory()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert listener.recv(4096).startswith(b"READY=1\n")
    archive = tmp_path / "busybox.tar"
    archive.write_bytes(oci_layout_tar(image([busybox_files()]), BUSYBOX))
    ctr = [CTR, "-a", d.address, "-n", NS]
    try:
        subprocess.run([*ctr, "images", "import", str(archive)], capture_output=True, timeout=60, check=True)
        res = subprocess.run(
            [*ctr, "run", "--rm", BUSYBOX, "notify-env", "/bin/busybox", "env"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr + d.log()[-3000:]
        assert "PATH=" in res.stdout and "NOTIFY_SOCKET" not in res.stdout
    finally:
        remove_namespace_cgroups(NS)
        listener.close()


# -- the systemd unit --------------------------------------------------------------


def _unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit's sections as (key, value) lists, keys repeatable; malformed lines fail the test."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if m := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            current = sections.setdefault(m[1], [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep and re.fullmatch(r"[A-Za-z]+", key), f"line {n}: {line!r}"
        current.append((key, value))
    return sections


def test_systemd_unit_keys() -> None:
    sections = _unit_sections(UNIT.read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    service = dict(sections["Service"])
    assert len(service) == len(sections["Service"])  # no key given twice
    assert service["Type"] == "notify"
    assert service["Delegate"] == "yes"
    assert service["KillMode"] == "process"
    assert service["ExecStartPre"] == "-/sbin/modprobe overlay"
    assert service["ExecStart"] == "/usr/local/bin/pycontainerd"
    for key in ("LimitNOFILE", "LimitNPROC", "LimitCORE", "TasksMax"):
        assert service[key] == "infinity"
    assert service["Restart"] == "always" and int(service["OOMScoreAdjust"]) < 0
    assert dict(sections["Install"]) == {"WantedBy": "multi-user.target"}
    assert "network.target" in dict(sections["Unit"])["After"].split()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this checkout's console script.
    unit = tmp_path / "pycontainerd.service"
    unit.write_text(UNIT.read_text().replace("ExecStart=/usr/local/bin/pycontainerd", f"ExecStart={PYCONTAINERD}"))
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    # And it does complain when something is wrong, so the silence above means something.
    unit.write_text(UNIT.read_text().replace("KillMode=process", "KillMode=process\nKilMode=mixed"))
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Unknown key 'KilMode'" in res.stderr


# -- the init scripts ---------------------------------------------------------------


@pytest.mark.parametrize("script", [OPENRC, SYSVINIT], ids=["openrc", "sysvinit"])
def test_scripts_parse(script: Path) -> None:
    assert os.access(script, os.X_OK)
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            res = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
            assert (res.returncode, res.stderr) == (0, ""), (shell, res.stderr)


def _init(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env}
    )


def _kill_pidfile(pidfile: Path) -> None:
    """Whatever a failed test left running."""
    try:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


@pytest.mark.skipif(shutil.which("start-stop-daemon") is None, reason="start-stop-daemon is not installed")
def test_sysvinit_script_starts_reports_and_stops_the_daemon(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(start=False)
    defaults = d.base / "defaults"
    pidfile = d.base / "pycontainerd.pid"
    defaults.write_text(
        f"PYCONTAINERD={PYCONTAINERD}\n"
        f'PYCONTAINERD_OPTS="{" ".join(d.command()[3:])}"\n'  # --root, --state, --address of the fixture
        f"PIDFILE={pidfile}\nLOGFILE={d.log_path}\nSTOP_TIMEOUT=20\n"
    )
    env = {"PYCONTAINERD_DEFAULTS": str(defaults)}
    try:
        assert _init(SYSVINIT, env, "status").returncode == 3
        res = _init(SYSVINIT, env, "start")
        assert res.returncode == 0, res.stdout + res.stderr + d.log()
        # start-stop-daemon --notify-await returned on the daemon's READY=1: it serves already.
        assert health_status(d.address) == SERVING
        pid = int(pidfile.read_text())
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1].endswith(b"pycontainerd")
        res = _init(SYSVINIT, env, "status")
        assert (res.returncode, res.stdout) == (0, f"pycontainerd is running (pid {pid})\n")
        res = _init(SYSVINIT, env, "start")
        assert (res.returncode, res.stdout) == (0, f"pycontainerd is already running (pid {pid})\n")
        assert int(pidfile.read_text()) == pid
        assert _init(SYSVINIT, env, "restart").returncode == 0
        assert int(pidfile.read_text()) != pid and health_status(d.address) == SERVING
        res = _init(SYSVINIT, env, "stop")
        assert res.returncode == 0, res.stdout + res.stderr
        assert not pidfile.exists() and not Path(d.address).exists()
        assert (_init(SYSVINIT, env, "status").returncode, _init(SYSVINIT, env, "stop").returncode) == (3, 0)
        assert _init(SYSVINIT, env, "reload").returncode == 2
    finally:
        _kill_pidfile(pidfile)
    log = d.log()
    assert log.count("pycontainerd stopped") == 2 and "Traceback" not in log
    assert "level=warning" not in log  # no failed notification: STOPPING=1 after ssd left is a debug line


@pytest.mark.skipif(shutil.which("start-stop-daemon") is None, reason="start-stop-daemon is not installed")
def test_openrc_script_settings_run_the_daemon(pycontainerd_daemon_factory: DaemonFactory) -> None:
    """OpenRC is not here: its script is sourced, and its settings run as openrc-run would run them."""
    d: PycontainerdDaemon = pycontainerd_daemon_factory(start=False)
    env = {
        "RC_SVCNAME": "pycontainerd",
        "PYCONTAINERD": str(PYCONTAINERD),
        "PYCONTAINERD_OPTS": " ".join(d.command()[3:]),
        "PYCONTAINERD_PIDFILE": str(d.base / "pycontainerd.pid"),
        "PYCONTAINERD_LOG": str(d.log_path),
    }
    show = '. "$0" && start_pre && printf "%s\\n" "$command" "$command_args" "$pidfile" "$output_log" "$retry"'
    res = subprocess.run(
        ["sh", "-c", show, str(OPENRC)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **env},
    )
    assert res.returncode == 0, res.stderr
    command, args, pidfile, output_log, retry = res.stdout.splitlines()
    assert (command, args, pidfile, output_log) == (
        env["PYCONTAINERD"],
        env["PYCONTAINERD_OPTS"],
        env["PYCONTAINERD_PIDFILE"],
        env["PYCONTAINERD_LOG"],
    )
    try:
        # command_background="yes" with a pidfile: what openrc-run asks start-stop-daemon for.
        start = ["start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile", pidfile]
        subprocess.run(
            [*start, "--output", output_log, "--startas", command, "--", *args.split()], timeout=60, check=True
        )
        deadline = time.monotonic() + 30
        while health_status(d.address) != SERVING:
            assert time.monotonic() < deadline, d.log()[-3000:]
            time.sleep(0.05)
        subprocess.run(
            ["start-stop-daemon", "--stop", "--pidfile", pidfile, "--retry", retry, "--remove-pidfile"],
            timeout=60,
            check=True,
        )
        assert not Path(d.address).exists() and not Path(pidfile).exists()
    finally:
        _kill_pidfile(Path(pidfile))
    assert "pycontainerd stopped" in d.log()
