"""Progress on a terminal: rich bars per blob with state, bytes and speed (pyctr draws them from the daemon's events)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry

from .support import seed, two_platforms


def run_on_terminal(argv: list[str], timeout: float = 60.0) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError("no output for too long")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        proc.wait(timeout)
    return proc.returncode, out.decode(errors="replace")


def test_pull_draws_progress_bars(pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path) -> None:
    img = two_platforms()
    seed(registry, img, "tty/busybox:1", tmp_path)
    ref = f"{registry.host}/tty/busybox:1"
    rc, text = run_on_terminal(
        [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", pycontainerd_daemon.address, "images", "pull", ref]
    )
    assert rc == 0, text
    assert "layer-" in text and "complete" in text
    assert "MB" in text or "kB" in text  # rich's byte counts
    assert "\x1b[" in text  # drawn, not printed line by line
    assert f"{ref} {img.digest}" in text
