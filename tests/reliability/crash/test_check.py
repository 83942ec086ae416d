"""``pyctr check`` itself: what it finds, how it says so, when it refuses, and what --repair removes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pycontainerd.check import Kind, Layout, check
from pycontainerd.client import Client
from tests.fixtures.daemon import PycontainerdDaemon

from .support import pyctr


def run_check(d: PycontainerdDaemon, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "check", "--root", str(d.root), "--state", str(d.state)]
    return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=120, check=False)


def _ingest(d: PycontainerdDaemon, data: bytes) -> str:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycontainerd.cmd.pyctr",
            "-a",
            d.address,
            "content",
            "ingest",
            "--label",
            "containerd.io/gc.root=yes",
            "blob",
        ],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().split()[-1]


def test_refuses_while_the_daemon_runs_and_checks_live(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    r = run_check(d)
    assert r.returncode == 1 and r.stdout == ""
    assert (
        r.stderr.strip() == f"pyctr: a daemon is running on {d.root} (pid {d.proc.pid}): stop it, or check with --live"
    )  # type: ignore[union-attr]
    r = run_check(d, "--live")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("clean (live check)")
    assert "--live" in run_check(d, "--live", "--repair").stderr


def test_finds_a_corrupt_a_short_and_a_missing_blob(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    digest = _ingest(d, b"precious bytes\n")
    d.stop()
    assert run_check(d).returncode == 0
    blob = d.root / "io.containerd.content.v1.content/blobs/sha256" / digest.split(":")[1]
    os.chmod(blob, 0o644)
    blob.write_bytes(b"precious bytez\n")  # same size, other bytes
    r = run_check(d)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"blob-corrupt: blob {digest}: its bytes hash to sha256:"), lines
    assert lines[-1] == f"{d.root}: 1 problem found (offline check)"
    blob.write_bytes(b"short\n")
    kinds = {p.kind for p in check(Layout.of(d.root, d.state))}
    assert kinds == {Kind.BLOB_CORRUPT, Kind.BLOB_SIZE}
    blob.unlink()
    assert {p.kind for p in check(Layout.of(d.root, d.state))} == {Kind.CONTENT_BLOB_MISSING}


def test_repair_removes_leftovers_only(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    digest = _ingest(d, b"kept\n")
    d.stop()
    content = d.root / "io.containerd.content.v1.content"
    stray = content / "blobs/sha256" / ("ab" * 32)
    stray.write_bytes(b"nobody's")
    (content / "ingest/.tmp-00").mkdir()
    orphan = d.root / "io.containerd.snapshotter.v1.overlayfs/snapshots/99/fs"
    orphan.mkdir(parents=True)
    r = run_check(d)
    assert r.returncode == 1
    assert sorted(line.split(":", 1)[0] for line in r.stdout.splitlines()[:-1]) == [
        "blob-unreferenced",
        "ingest-broken",
        "snapshot-dir-orphaned",
    ]
    assert "3 repairable with --repair" in r.stdout.splitlines()[-1]
    r = run_check(d, "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "repaired 3 of 3 problems"
    assert not stray.exists() and not orphan.parent.exists() and not (content / "ingest/.tmp-00").exists()
    assert (content / "blobs/sha256" / digest.split(":")[1]).exists()
    d.start()
    assert pyctr(d, "content", "ls", "-q").stdout.split() == [digest]


def test_an_unleased_ingest_expires_after_a_day(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    with Client(d.address) as c:
        w = c.content.writer("abandoned", total=100)
        w.write(b"half of it")
        w.close()
    d.stop()
    assert run_check(d).returncode == 0  # fresh: a writer may come back for it
    with sqlite3.connect(d.root / "io.containerd.metadata.v1.sqlite" / "meta.db") as db:
        db.execute("UPDATE ingests SET created_ns = ? WHERE ref = 'abandoned'", (time.time_ns() - 25 * 3600 * 10**9,))
    r = run_check(d)
    assert r.returncode == 1
    assert (
        r.stdout.splitlines()[0] == "ingest-expired: [default] ingest abandoned: opened without a lease over a day ago"
    )
    d.start()  # the start-up collection aborts it, as containerd's collector does past the ingest's expiry
    d.stop()
    r = run_check(d)
    assert r.returncode == 0, r.stdout


def test_a_root_without_a_daemon_is_reported_not_a_traceback(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "check", "--root", str(tmp_path)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is this a pycontainerd root?" in r.stdout
    r = subprocess.run([*argv[:-1], str(tmp_path / "none")], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"pyctr: root {tmp_path / 'none'} is not a directory"
