"""The two Docker engines of the Docker benchmark, started on private directories and always taken down again.

* :func:`dockerd`: Debian's docker.io 20.10 on its own socket, data root,
  exec root and pidfile, ``--bridge=none``, no iptables, no IP forwarding,
  overlay2, its containers under a cgroup parent of their own.  It starts
  its own containerd (Debian's 1.6, under the exec root) and keeps images in
  its graph driver: the containerd image store came after 20.10.
* :func:`pydockerd`: pydockerd over a fresh pycontainerd, either the
  pycontainerd daemon as :mod:`bench.daemons` starts it (remote mode) or
  pycontainerd's services inside pydockerd (embedded, its default).

Each yields an :class:`Engine`: its API socket, the ``docker`` CLI pointed
at it (``DOCKER_HOST`` and a private ``DOCKER_CONFIG``), and the
directories that are empty when it holds no image.  On the way out,
whatever happened: containers removed while the engine answers, then
SIGTERM and SIGKILL, every process naming the private directory killed
(shims outlive their daemon), mounts detached, directories and cgroups
removed, and the ``/etc/docker/key.json`` dockerd 20.10 writes removed when
there was none before.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import daemons
from bench.daemons import PYCONTAINERD_NAME, REPO, Daemon, scratch
from bench.workloads import BenchmarkError

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/local/bin/docker")
TRUST_KEY = Path("/etc/docker/key.json")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DOCKERD_NAME = "dockerd"
PYDOCKERD_NAME = "pydockerd"
ENGINES = (DOCKERD_NAME, PYDOCKERD_NAME)
REMOTE, EMBEDDED = "remote", "embedded"
MODES = (REMOTE, EMBEDDED)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
CLI_TIMEOUT = 120.0


class EngineUnavailable(Exception):
    """The engine is not installed, or did not answer ``/_ping`` in time."""


def ping(sock: Path, timeout: float = 1.0) -> bool:
    """True once the Engine API on ``sock`` answers ``GET /_ping`` with 200."""
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(str(sock))
        conn.sock = s
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
        s.close()


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """:func:`bench.daemons.terminate` with an engine's longer grace (dockerd stops its containers first)."""
    daemons.terminate(proc, STOP_TIMEOUT)


def kill_mentioning(base: Path) -> None:
    """SIGKILL every process whose command line names a path under ``base`` (shims outlive their daemon)."""
    needle = (str(base) + "/").encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if needle in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)


@dataclass
class Engine:
    """One running engine: its API socket, its processes (started last, stopped first) and where it keeps layers."""

    name: str
    base: Path
    socket: Path
    procs: list[subprocess.Popen[bytes]]
    log: Path
    # Directories that hold nothing but these entries once the engine holds no image.
    empty_when_idle: dict[Path, frozenset[str]]
    ready_after: float = 0.0
    extra_logs: list[Path] = field(default_factory=list)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def log_tail(self, chars: int = 1500) -> str:
        text = ""
        for path in [self.log, *self.extra_logs]:
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")[-chars:]
        return text[-chars:]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.base / "cli"))
        return env

    def docker(self, *args: str, timeout: float = CLI_TIMEOUT) -> tuple[float, str]:
        """Run the CLI against this engine; its wall time and stdout.  :class:`BenchmarkError` on a non-zero exit."""
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [str(DOCKER), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=self.env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError(f"`docker {' '.join(args)}` took over {timeout:.0f} s") from exc
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            err = cli_error(done.stderr.decode(errors="replace"))
            raise BenchmarkError(f"`docker {' '.join(args)}` exited {done.returncode}: {err}")
        return elapsed, done.stdout.decode(errors="replace")

    def leftovers(self) -> list[str]:
        """Entries in :attr:`empty_when_idle` directories that an empty engine would not have."""
        left = []
        for d, allowed in self.empty_when_idle.items():
            with contextlib.suppress(FileNotFoundError):
                left += [str(d / e) for e in os.listdir(d) if e not in allowed]
        return left


def cli_error(stderr: str) -> str:
    """What went wrong, from the CLI's stderr: its last error line, not the progress or usage hint around it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("Run '")]
    errors = [line for line in lines if "rror" in line]
    return (errors or lines or ["(no output)"])[-1][:500]


def _wait_ping(engine: Engine, launched: float) -> None:
    while not ping(engine.socket):
        if not engine.alive():
            raise EngineUnavailable(f"{engine.name} exited:\n{engine.log_tail()}")
        if time.monotonic() > launched + START_TIMEOUT:
            raise EngineUnavailable(f"{engine.name} did not answer within {START_TIMEOUT:.0f} s:\n{engine.log_tail()}")
        time.sleep(0.02)
    engine.ready_after = time.monotonic() - launched


def _cgroup_dirs(parent: str) -> list[Path]:
    return [*CGROUP_ROOT.glob(f"*/{parent}"), CGROUP_ROOT / parent]


def _remove_cgroups(parent: str) -> None:
    for top in _cgroup_dirs(parent):
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()


def dockerd_argv(base: Path, cgroup: str, *extra: str) -> list[str]:
    """dockerd on the directories under ``base`` (socket, data and exec roots, pidfile, config), overlay2,
    no networking set-up on the host, its containers under cgroup ``/<cgroup>``."""
    return [
        str(DOCKERD),
        f"--host=unix://{base / 'docker.sock'}",
        f"--data-root={base / 'root'}",
        f"--exec-root={base / 'exec'}",
        f"--pidfile={base / 'docker.pid'}",
        f"--config-file={base / 'daemon.json'}",
        f"--cgroup-parent=/{cgroup}",
        *extra,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--storage-driver=overlay2",
        "--log-level=warn",
    ]


@contextlib.contextmanager
def dockerd(insecure: str, parent: Path | None = None) -> Iterator[Engine]:
    """Debian's dockerd on private directories, its containers in cgroup ``/bench-dockerd-PID``."""
    if not os.access(DOCKERD, os.X_OK):
        raise EngineUnavailable(f"{DOCKERD} is not installed (Debian package docker.io; make bench installs it)")
    key_existed = TRUST_KEY.exists()
    cgroup = f"bench-dockerd-{os.getpid()}"
    with scratch("bench-dockerd-", parent) as base:
        (base / "cli").mkdir()
        (base / "daemon.json").write_text("{}\n")
        argv = dockerd_argv(base, cgroup, f"--insecure-registry={insecure}")
        launched = time.monotonic()
        proc = _spawn(argv, base / "dockerd.log", base)
        root = base / "root"
        engine = Engine(
            DOCKERD_NAME,
            base,
            base / "docker.sock",
            [proc],
            base / "dockerd.log",
            {
                root / "overlay2": frozenset({"l"}),
                root / "overlay2" / "l": frozenset(),
                root / "image" / "overlay2" / "layerdb" / "sha256": frozenset(),
            },
        )
        try:
            _wait_ping(engine, launched)
            yield engine
        finally:
            _stop(engine)
            if not key_existed:
                with contextlib.suppress(FileNotFoundError):
                    TRUST_KEY.unlink()
            _remove_cgroups(cgroup)


def _snapshots_and_blobs(root: Path) -> dict[Path, frozenset[str]]:
    """A containerd root's overlayfs snapshots and content blobs: both empty when no image is held."""
    return {
        root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots": frozenset(),
        root / "io.containerd.content.v1.content" / "blobs" / "sha256": frozenset(),
    }


@contextlib.contextmanager
def pydockerd(insecure: str, mode: str = REMOTE, parent: Path | None = None) -> Iterator[Engine]:
    """pydockerd on private data and exec roots, over a fresh pycontainerd.

    ``mode`` :data:`REMOTE`: the pycontainerd daemon as :mod:`bench.daemons`
    starts it, and pydockerd its gRPC client; :data:`EMBEDDED`: pydockerd
    runs pycontainerd's services in its own process (its default), as
    dockerd runs a containerd of its own.
    """
    with scratch("bench-pydockerd-", parent) as base:
        (base / "cli").mkdir()
        data, execroot = base / "data", base / "exec"
        argv = [
            sys.executable,
            "-m",
            "pydockerd",
            f"--host=unix://{base / 'docker.sock'}",
            f"--data-root={data}",
            f"--exec-root={execroot}",
            f"--insecure-registry={insecure}",
        ]
        launched = time.monotonic()
        engine = Engine(PYDOCKERD_NAME, base, base / "docker.sock", [], base / "pydockerd.log", {})
        try:
            if mode == REMOTE:
                (base / "c").mkdir()
                try:
                    containerd = daemons.launch(PYCONTAINERD_NAME, base / "c")
                except daemons.DaemonUnavailable as exc:
                    raise EngineUnavailable(str(exc)) from exc
                engine.procs.append(containerd.proc)
                engine.extra_logs.append(containerd.log)
                engine.empty_when_idle = _snapshots_and_blobs(base / "c" / "root")
                _wait_containerd(containerd)
                argv.append(f"--containerd={containerd.address}")
            else:
                argv.append("--containerd=embedded")
                engine.empty_when_idle = _snapshots_and_blobs(data / "containerd" / "daemon")
            engine.procs.insert(0, _spawn(argv, engine.log, REPO))
            _wait_ping(engine, launched)
            yield engine
        finally:
            _stop(engine)


def _wait_containerd(containerd: Daemon) -> None:
    try:
        daemons.wait_ready(containerd)
    except daemons.DaemonUnavailable as exc:
        raise EngineUnavailable(str(exc)) from exc


def _stop(engine: Engine) -> None:
    """Containers removed while the engine still answers; then every process, shims included."""
    if engine.alive() and ping(engine.socket):
        with contextlib.suppress(BenchmarkError):
            _, ids = engine.docker("ps", "-aq", timeout=30)
            if ids.split():
                engine.docker("rm", "-f", *ids.split(), timeout=60)
    for proc in engine.procs:
        _terminate(proc)
    kill_mentioning(engine.base)
