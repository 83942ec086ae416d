"""A full disk under the daemon's root: during ingest and during unpack.

The daemon's root is a small loop-mounted ext4 (64 MB, no blocks reserved
for root, so what statvfs calls free is all there is), filled by a ballast file
until only a few MB are free.  A pull whose layer does not fit fails while
the layer is written; a pull whose small layer unpacks into more than is
free fails in the unpack.  Each gives one clear error, the daemon keeps
serving, nothing is left committed (no blob, no snapshot, no image), and
once the ballast is gone the same pull completes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.errors import NotFound
from tests.distribution.support import assert_clean, one_line_error, pyctr, seed
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image
from tests.reliability.soak import record, scale

SIZE_MB = 64


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, innermost last (from /proc/self/mountinfo)."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(path) or point.startswith(f"{path}/"):
                out.append(point)
    return out


@pytest.fixture
def small_root(pycontainerd_daemon_factory: DaemonFactory) -> Iterator[PycontainerdDaemon]:
    d = pycontainerd_daemon_factory(start=False)
    d.root.mkdir(parents=True, exist_ok=True)
    image = d.base / "root.ext4"
    try:
        with open(image, "wb") as f:
            f.truncate(SIZE_MB << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(d.root)], check=True)  # the loop device goes with it
        d.start()
        yield d
    finally:
        with contextlib.suppress(Exception):
            d.stop()
        for point in reversed(_mounts_under(d.base)):
            if subprocess.run(["umount", point], check=False, capture_output=True).returncode:
                subprocess.run(["umount", "-l", point], check=False)
        image.unlink(missing_ok=True)
        assert _mounts_under(d.base) == []


def _fill(root: Path, leave: int) -> Path:
    """A ballast file taking all but ``leave`` bytes of the filesystem."""
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    ballast = root / "ballast"
    fd = os.open(ballast, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(free - leave, 1))
    finally:
        os.close(fd)
    return ballast


def _still_serving(d: PycontainerdDaemon) -> None:
    """Reads are answered while the disk is full (writes to the metadata store wait for space)."""
    assert d.running
    assert pyctr(d, "namespaces", "ls").returncode == 0
    with Client(d.address) as c:
        c.content.list_statuses()
        c.leases.list()


def _clean_soon(address: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            assert_clean(address)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_disk_full_during_ingest_and_unpack(small_root: PycontainerdDaemon, registry: Registry, tmp_path: Path) -> None:
    d = small_root
    big = image([{"data/random.bin": os.urandom(16 << 20)}])  # incompressible: 16 MB to ingest
    seed(registry, big, "disk/big:1", tmp_path)
    zeros = image([busybox_files(), {"data/zeros.bin": bytes(24 << 20)}])  # tiny to fetch, 24 MB to unpack
    seed(registry, zeros, "disk/zeros:1", tmp_path)
    layer = str(big.manifest["layers"][0]["digest"])  # type: ignore[index]
    rounds = scale(1, 5)
    for _ in range(rounds):
        for ref, img, stage in (("disk/big:1", big, "ingest"), ("disk/zeros:1", zeros, "unpack")):
            name = f"{registry.host}/{ref}"
            ballast = _fill(d.root, 6 << 20)
            started = time.monotonic()
            line = one_line_error(pyctr(d, "images", "pull", "-q", name, ok=False))
            assert "no space left on device" in line.lower(), line
            assert time.monotonic() - started < 60
            _still_serving(d)
            with Client(d.address) as c:
                assert c.images.list() == []
                if stage == "ingest":
                    with pytest.raises(NotFound):
                        c.content.info(layer)  # no half-written blob committed
            committed = [s for s in pyctr(d, "snapshots", "ls").stdout.splitlines()[1:] if "Committed" in s]
            ballast.unlink()
            _clean_soon(d.address)  # the failed pull's lease goes once the disk takes writes, and gc with it
            assert len(committed) <= 1  # at most busybox's layer; never the one that failed
            assert pyctr(d, "images", "pull", "-q", name).stdout.split() == [name, img.digest]
            pyctr(d, "images", "rm", "--sync", name)
            assert_clean(d.address)
    assert "Traceback" not in d.log(), d.log()[d.log().find("Traceback") - 300 :][:3000]
    record("faults", "disk full during ingest", rounds, "one error, daemon serving, nothing committed, pull repeated")
    record("faults", "disk full during unpack", rounds, "one error, daemon serving, no snapshot left, pull repeated")
