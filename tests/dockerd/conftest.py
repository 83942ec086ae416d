"""pydockerd as users run it: a subprocess on a private socket, over a fresh pycontainerd.

Tests drive it with the machine's real ``docker`` CLI (DOCKER_HOST pointed at
the socket, its config in a temporary directory) and with docker-py.
Teardown stops pydockerd (SIGTERM, then SIGKILL) before the pycontainerd
fixture stops its daemon, and removes the directory.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures._proc import dying_with_parent
from tests.fixtures.daemon import PycontainerdDaemon

DOCKER = "/usr/local/bin/docker"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """Plain http.client over the daemon's socket, for requests no client library would send."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class Pydockerd:
    """One pydockerd process: ``socket``, ``host`` (for DOCKER_HOST), ``docker()`` and ``client()``."""

    def __init__(self, base: Path, containerd: str) -> None:
        self.base = base
        self.containerd = containerd
        self.socket = str(base / "docker.sock")
        self.host = f"unix://{self.socket}"
        self.log_path = base / "pydockerd.log"
        self.cli_config = base / "cli"
        self.cli_config.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._clients: list[Any] = []

    def command(self) -> list[str]:
        """pydockerd's command line (tests/dockerd/_engines.py runs it in other modes)."""
        cmd = [sys.executable, "-m", "pydockerd", "-H", self.host, "--containerd-address", self.containerd]
        return [*cmd, "--data-root", str(self.base / "root")]

    def start(self) -> Pydockerd:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dying_with_parent(self.command()),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pydockerd did not start (exit {self.proc.poll()}):\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        try:
            status, _, _ = self.request("GET", "/_ping", timeout=1.0)
        except OSError:
            return False
        return status == 200

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 30.0
    ) -> tuple[int, dict[str, str], bytes]:
        conn = UnixHTTPConnection(self.socket, timeout)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def docker(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.cli_config))
        r = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
        if ok:
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}\n{self.log()[-2000:]}"
        return r

    def client(self, **kwargs: Any) -> Any:
        """A docker-py DockerClient on the socket, closed at teardown."""
        import docker

        c = docker.DockerClient(base_url=self.host, **kwargs)
        self._clients.append(c)
        return c

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def pydockerd(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[Pydockerd]:
    """pydockerd over a fresh pycontainerd, on a socket of its own."""
    base = Path(tempfile.mkdtemp(prefix="pdd-"))
    d = Pydockerd(base, pycontainerd_daemon.address)
    try:
        yield d.start()
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)
