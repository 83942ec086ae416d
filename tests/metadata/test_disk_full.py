"""A full disk under the metadata database: RESOURCE_EXHAUSTED, nothing half-written, and writes again once freed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.content.local import LocalStore
from pycontainerd.errors import ResourceExhausted
from pycontainerd.images import Descriptor, Image
from pycontainerd.metadata import DB

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@pytest.fixture
def small_fs() -> Iterator[Path]:
    mnt = Path(tempfile.mkdtemp(prefix="pcd-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def _fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


def test_full_disk_is_resource_exhausted_and_rolled_back(small_fs: Path) -> None:
    db = DB(small_fs / "meta.db", LocalStore(small_fs / "content"))
    try:
        store = db.images("default")
        target = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 10)
        store.create(Image(name="kept", target=target))
        _fill(small_fs / "ballast")
        big = {f"label.{i}": "x" * 4000 for i in range(64)}  # ~256 KiB of labels: more than is left
        with pytest.raises(ResourceExhausted, match="no space left on device"):
            store.create(Image(name="too-big", target=target, labels=big))
        assert [i.name for i in store.list()] == ["kept"]
        (small_fs / "ballast").unlink()
        store.create(Image(name="too-big", target=target, labels=big))
        assert sorted(i.name for i in store.list()) == ["kept", "too-big"]
    finally:
        db.close()
