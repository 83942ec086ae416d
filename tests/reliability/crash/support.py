"""What the crash tests share: test images, running pyctr, killing the daemon mid-operation, checking the root.

A kill point is one operation started in a pyctr subprocess (or a client
script) and the daemon SIGKILLed after a delay drawn from inside the
operation's measured duration.  Every draw comes from one seeded
``random.Random``; the seed is in every failure message, and
``PYCONTAINERD_CRASH_SEED`` replays it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pycontainerd.check import Kind
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import Image, busybox_files, image

SEED = int(os.environ.get("PYCONTAINERD_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))

# What a SIGKILL may leave that the daemon itself removes when it starts again (its recovery collects
# them): leftovers nothing names.  A record naming something missing is never among them.
HEALED_AT_START = frozenset(
    {
        Kind.BLOB_UNREFERENCED,
        Kind.INGEST_UNREFERENCED,
        Kind.INGEST_BROKEN,
        Kind.INGEST_DATA_MISSING,
        Kind.SNAPSHOT_UNREFERENCED,
        Kind.SNAPSHOT_DIR_ORPHANED,
        Kind.SNAPSHOT_COMMIT_UNFINISHED,
    }
)


def layered_image(n: int) -> Image:
    """Seven layers: busybox, many small files, a few MiB of noise, then small edits, one a whiteout."""
    rnd = random.Random(n)
    many = {f"usr/share/set{n}/d{i % 20}/f{i}": rnd.randbytes(rnd.randrange(10, 400)) for i in range(600)}
    noise = {f"var/noise{n}.bin": rnd.randbytes(3 << 20)}
    layers = [busybox_files(), many, noise]
    for k in range(4):
        layers.append({f"etc/step{n}-{k}": f"{n}:{k}\n".encode(), f"usr/share/set{n}/.wh.d{k}": b""})
    return image(layers)


def pyctr_argv(d: PycontainerdDaemon, *args: str) -> list[str]:
    return [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, *args]


def pyctr(d: PycontainerdDaemon, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(pyctr_argv(d, *args), capture_output=True, text=True, timeout=120, check=False)
    if ok:
        assert r.returncode == 0, f"pyctr {' '.join(args)}: {r.stderr}{r.stdout} (seed {SEED})"
    return r


def check(d: PycontainerdDaemon, *extra: str) -> tuple[int, list[str]]:
    """``pyctr check`` on the daemon's directories, as a user runs it; (exit status, problem lines)."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycontainerd.cmd.pyctr",
            "check",
            "--root",
            str(d.root),
            "--state",
            str(d.state),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    assert lines, f"pyctr check printed nothing: {r.stderr}"
    return r.returncode, lines[:-1] if r.returncode in (0, 1) else [r.stderr]


def assert_clean(d: PycontainerdDaemon, context: str) -> None:
    rc, problems = check(d)
    assert rc == 0 and not problems, f"{context} (seed {SEED}): pyctr check found:\n" + "\n".join(problems)


def assert_only_healed(d: PycontainerdDaemon, context: str) -> list[str]:
    """Right after a kill, offline: only leftovers the daemon removes at start may be there."""
    rc, problems = check(d)
    healed = {k.value for k in HEALED_AT_START}
    bad = [p for p in problems if p.split(":", 1)[0] not in healed]
    assert not bad, f"{context} (seed {SEED}): after the kill pyctr check found:\n" + "\n".join(problems)
    assert rc == (1 if problems else 0)
    return problems


@dataclass
class KillStats:
    points: int = 0
    interrupted: int = 0
    leftovers: int = 0
    delays: list[float] = field(default_factory=list)


def kill_during(
    d: PycontainerdDaemon, argv: Sequence[str], delay: float, stats: KillStats, env: dict[str, str] | None = None
) -> None:
    """Run ``argv``, SIGKILL the daemon after ``delay`` seconds, and wait for the client to give up."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(delay)
        stats.points += 1
        stats.delays.append(delay)
        if proc.poll() is None:
            stats.interrupted += 1
        d.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def timed(argv: Sequence[str]) -> float:
    started = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, f"{argv}: {r.stderr}"
    return time.monotonic() - started


def store_is_empty(d: PycontainerdDaemon) -> list[str]:
    """Files the root still holds once every image and lease is gone and collected: none may be left."""
    left: list[str] = []
    content = d.root / "io.containerd.content.v1.content"
    for sub in ("blobs", "ingest"):
        for dirpath, _, files in os.walk(content / sub):
            left += [str(Path(dirpath) / f) for f in files]
    for sn in d.root.glob("io.containerd.snapshotter.v1.*/snapshots"):
        left += [str(p) for p in sn.iterdir()]
    return left
