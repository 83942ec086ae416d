"""Start containerd and pycontainerd on private roots, and always take them down again.

Each daemon gets a fresh directory made directly under the temp dir (a unix
socket path must stay under 108 bytes) holding its root, state, socket and
log.  Both run in their own session, so a Ctrl-C at the terminal reaches the
harness only, and the harness stops them in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from pycontainerd.api.services.version.v1 import version_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
CONTAINERD = Path("/usr/bin/containerd")
CTR = Path("/usr/bin/ctr")
PYCONTAINERD = REPO / ".venv" / "bin" / "pycontainerd"

CONTAINERD_NAME = "containerd"
PYCONTAINERD_NAME = "pycontainerd"
NAMES = (CONTAINERD_NAME, PYCONTAINERD_NAME)

# Plugins that need kernel features or networks the benchmarks never use.
DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MNT_DETACH = 2


class DaemonUnavailable(Exception):
    """The daemon is not installed, or did not start answering gRPC in time."""


@dataclass
class Daemon:
    """A daemon the harness started: where to reach it and how to stop it."""

    name: str
    address: str
    base: Path
    log: Path
    proc: subprocess.Popen[bytes]
    launched: float
    ready_after: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def containerd_config(base: Path) -> str:
    """A containerd 1.6 config keeping everything under ``base``; the test fixtures start theirs with it too."""
    disabled = ", ".join(f'"{p}"' for p in DISABLED_PLUGINS)
    return f"""\
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{base / "d.sock"}"

[ttrpc]
  address = "{base / "d.sock.ttrpc"}"

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "root" / "opt"}"
"""


def command_for(name: str, base: Path) -> list[str]:
    """The command line that runs daemon ``name`` on ``base``; writes its config if it needs one."""
    address = str(base / "d.sock")
    if name == CONTAINERD_NAME:
        if not os.access(CONTAINERD, os.X_OK):
            raise DaemonUnavailable(f"{CONTAINERD} is not installed")
        config = base / "config.toml"
        config.write_text(containerd_config(base))
        return [str(CONTAINERD), "--config", str(config)]
    if name == PYCONTAINERD_NAME:
        if not os.access(PYCONTAINERD, os.X_OK):
            raise DaemonUnavailable(f"{PYCONTAINERD} is not installed (run `make install`)")
        return [
            str(PYCONTAINERD),
            "--log-level",
            "warn",
            "--root",
            str(base / "root"),
            "--state",
            str(base / "state"),
            "--address",
            address,
        ]
    raise ValueError(f"unknown daemon {name!r}")


def launch(name: str, base: Path) -> Daemon:
    """Start daemon ``name`` in its own session; it may not answer yet (see :func:`wait_ready`)."""
    argv = command_for(name, base)
    log = base / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Daemon(name=name, address=str(base / "d.sock"), base=base, log=log, proc=proc, launched=time.monotonic())


def answers(address: str) -> bool:
    """True once the daemon serves the Version RPC (the socket appears before the services do)."""
    with grpc.insecure_channel(f"unix:{address}") as channel:
        try:
            version_pb2_grpc.VersionStub(channel).Version(empty_pb2.Empty(), timeout=1.0)
        except grpc.RpcError:
            return False
    return True


def wait_ready(daemon: Daemon, timeout: float = START_TIMEOUT) -> None:
    """Block until ``daemon`` answers; raise :class:`DaemonUnavailable` if it dies or times out."""
    deadline = daemon.launched + timeout
    while not (os.path.exists(daemon.address) and answers(daemon.address)):
        if not daemon.alive():
            raise DaemonUnavailable(f"{daemon.name} exited with {daemon.proc.returncode}:\n{daemon.log_tail()}")
        if time.monotonic() > deadline:
            raise DaemonUnavailable(f"{daemon.name} did not answer within {timeout:.0f} s:\n{daemon.log_tail()}")
        time.sleep(0.01)
    daemon.ready_after = time.monotonic() - daemon.launched


def terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; then kill anything left in its session.

    ``proc`` must lead a session of its own (started with ``start_new_session``):
    its pid is then the process group id of all it started.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop(daemon: Daemon) -> None:
    """The daemon and anything left in its session gone (:func:`terminate`)."""
    terminate(daemon.proc)


def _mounts_under(root: Path) -> list[str]:
    """Mount points below ``root``, deepest first (octal escapes decoded)."""
    prefix = str(root).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(root: Path) -> None:
    """Lazily detach any mount a daemon left under ``root``, then delete it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    for point in _mounts_under(root):
        libc.umount2(point.encode(), MNT_DETACH)
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def scratch(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A fresh directory under ``parent`` (default: the temp dir), removed (mounts and all) on the way out."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        remove_tree(path)


@contextlib.contextmanager
def running(names: list[str], parent: Path | None = None) -> Iterator[tuple[dict[str, Daemon], dict[str, str]]]:
    """Start every daemon in ``names`` at once (their roots under ``parent``); yield those that answer and why not.

    All are launched before any is waited for, so each has been up for the
    same time when the idle measurements start.  Whatever happens inside the
    ``with`` block, every daemon is stopped and every directory removed.
    """
    with contextlib.ExitStack() as stack:
        launched: dict[str, Daemon] = {}
        unavailable: dict[str, str] = {}
        for name in names:
            base = stack.enter_context(scratch(f"bench-{name}-", parent))
            try:
                daemon = launch(name, base)
            except DaemonUnavailable as exc:
                unavailable[name] = str(exc)
                continue
            stack.callback(stop, daemon)
            launched[name] = daemon
        ready: dict[str, Daemon] = {}
        for name, daemon in launched.items():
            try:
                wait_ready(daemon)
            except DaemonUnavailable as exc:
                unavailable[name] = str(exc)
                stop(daemon)
            else:
                ready[name] = daemon
        yield ready, unavailable


def version_of(binary: Path) -> str:
    """``binary --version``'s first line, or a note that it could not be run."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"
