"""The bounds on hostile input (pycontainerd.limits): real bombs and huge headers, each refused by its limit.

Every refusal is one ResourceExhausted naming the config key to raise; the
apply stops early (well before the bomb has expanded) and nothing beside the
target is touched (the ``target`` fixture checks).  The end-to-end test sets
the limits in a daemon's config and unpacks an image whose layer is a bomb:
the error crosses gRPC as RESOURCE_EXHAUSTED and no snapshot is left.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from isal import igzip

from pycontainerd.archive import import_archive
from pycontainerd.content.local import LocalStore
from pycontainerd.diff import apply_layer
from pycontainerd.errors import ResourceExhausted
from pycontainerd.images.manifest import parse_config, parse_manifest
from pycontainerd.limits import Limits, configure, current
from pycontainerd.metadata import DB
from pycontainerd.server.config import ConfigError, decode_plugin_config
from tests import ocibuild
from tests.fixtures.daemon import DaemonFactory

from .conftest import Target
from .layers import LayerTar

MiB = 1 << 20


def zero_file_tar(size: int, name: str = "zeros") -> Iterator[bytes]:
    """A tar holding one file of ``size`` zero bytes, streamed in 1 MiB pieces (never whole in memory)."""
    info = tarfile.TarInfo(name)
    info.size = size
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    left = size
    while left:
        n = min(left, MiB)
        yield bytes(n)
        left -= n
    yield bytes(-size % 512 + 1024)


def gzip_bomb(size: int) -> bytes:
    buf = io.BytesIO()
    with igzip.IGzipFile(fileobj=buf, mode="wb", compresslevel=3, mtime=0) as gz:
        for piece in zero_file_tar(size):
            gz.write(piece)
    return buf.getvalue()


def zstd_bomb(size: int) -> bytes:
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(level=3).stream_writer(buf, closefd=False) as z:
        for piece in zero_file_tar(size):
            z.write(piece)
    return buf.getvalue()


def over(root: Path, blob: bytes, key: str, limits: Limits) -> float:
    start = time.monotonic()
    with pytest.raises(
        ResourceExhausted, match=rf"over the limit of \d+ \(plugins.\"io.containerd.grpc.v1.diff\".{key}\)"
    ):
        apply_layer(root, io.BytesIO(blob), limits=limits)
    return time.monotonic() - start


def test_defaults_fit_real_images() -> None:
    d = Limits()
    assert d.max_header_size >= 1 * MiB and d.max_xattr_size >= 64 << 10  # Linux's own per-file bounds are 64 KiB
    assert d.max_entries >= 1_000_000 and d.max_layer_size >= 64 << 30
    assert d.max_manifest_size == 4 * 1048 * 1048  # containerd's
    assert current() == d


def test_gzip_bomb_stops_at_max_layer_size(target: Target) -> None:
    bomb = gzip_bomb(2 << 30)  # 2 GiB of zeros in a few MB (gzip's ratio is at most about 1000)
    assert len(bomb) < 16 * MiB
    took = over(target.root, bomb, "max_layer_size", Limits(max_layer_size=64 * MiB))
    assert took < 10
    written = (target.root / "zeros").stat().st_size
    assert written <= 64 * MiB  # stopped at the bound, not at the end of the bomb


def test_zstd_bomb_stops_at_max_ratio(target: Target) -> None:
    bomb = zstd_bomb(2 << 30)  # 2 GiB of zeros in about 64 KB
    assert len(bomb) < 256 << 10
    limits = Limits(max_ratio=100, ratio_floor=16 * MiB)
    over(target.root, bomb, "max_ratio", limits)
    assert (target.root / "zeros").stat().st_size <= 32 * MiB
    # the same layer under the defaults' ratio (off) and a sufficient size bound is refused by size instead
    over(target.root, bomb, "max_layer_size", Limits(max_layer_size=32 * MiB))


def test_layer_within_the_bounds_applies(target: Target) -> None:
    blob = gzip_bomb(8 * MiB)
    limits = Limits(max_layer_size=9 * MiB, max_ratio=1100, ratio_floor=1 * MiB)
    apply_layer(target.root, io.BytesIO(blob), limits=limits)
    assert (target.root / "zeros").stat().st_size == 8 * MiB


def test_pax_header_of_many_megabytes(target: Target) -> None:
    layer = LayerTar().file("f", b"x", pax_headers={"comment": "x" * (64 * MiB)}).bytes()
    took = over(target.root, layer, "max_header_size", Limits())
    assert took < 2  # refused from the header's size field, before its body is read
    assert list(target.root.iterdir()) == []


def test_many_pax_headers_before_one_entry_are_summed(target: Target) -> None:
    one = LayerTar().file("f", b"x", pax_headers={"comment": "y" * (600 << 10)}).bytes()
    body = int(one[124:136].strip(b"\0 "), 8)
    header = one[: 512 + -(-body // 512) * 512]  # the pax header block and its body
    layer = header * 3 + one
    over(target.root, layer, "max_header_size", Limits())
    apply_layer(target.root, io.BytesIO(layer), limits=Limits(max_header_size=4 * MiB))
    assert (target.root / "f").read_bytes() == b"x"


def test_gnu_long_name_over_the_bound(target: Target) -> None:
    layer = LayerTar(tarfile.GNU_FORMAT).file("n" * 3000, b"x").bytes()
    over(target.root, layer, "max_header_size", Limits(max_header_size=2048))


def test_xattrs_per_entry(target: Target) -> None:
    xattrs = {f"user.k{i}": "v" * 900 for i in range(3)}  # what ext4 holds in one block
    layer = LayerTar().file("f", b"x", xattrs=xattrs).bytes()
    over(target.root, layer, "max_xattr_size", Limits(max_xattr_size=2048))
    apply_layer(target.root, io.BytesIO(layer))  # the default bound holds far more
    assert len([k for k in os.listxattr(target.root / "f") if k.startswith("user.k")]) == 3


def test_entries_per_layer(target: Target) -> None:
    t = LayerTar()
    for i in range(101):
        t.file(f"f{i}", b"")
    layer = t.bytes()
    over(target.root, layer, "max_entries", Limits(max_entries=100))
    apply_layer(target.root, io.BytesIO(layer), limits=Limits(max_entries=101))


@pytest.fixture
def configured() -> Iterator[None]:
    before = current()
    yield
    configure(before)


def test_document_limits_are_configurable(configured: None) -> None:
    img = ocibuild.image([{"etc/hostname": b"x\n"}])
    manifest = img.manifest_bytes
    config = img.blobs[img.manifest["config"]["digest"]]  # type: ignore[index]
    configure(Limits(max_manifest_size=len(manifest) - 1, max_config_size=len(config) - 1))
    with pytest.raises(ResourceExhausted, match="max_manifest_size"):
        parse_manifest(manifest, ocibuild.MANIFEST)
    with pytest.raises(ResourceExhausted, match="max_config_size"):
        parse_config(config)
    configure(Limits(max_manifest_size=len(manifest), max_config_size=len(config)))
    assert parse_manifest(manifest, ocibuild.MANIFEST).layers
    assert parse_config(config).diff_ids


def test_archive_documents_are_bounded(configured: None, tmp_path: Path) -> None:
    img = ocibuild.image([{"etc/hostname": b"x\n"}])
    archive = ocibuild.oci_layout_tar(img, "example.com/a:1")
    db = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    try:
        db.leases("default").create("l")
        configure(Limits(max_manifest_size=64))
        with pytest.raises(ResourceExhausted, match="max_manifest_size"):
            import_archive(db.content("default", "l"), db.images("default"), io.BytesIO(archive))
        configure(Limits())
        assert [i.name for i in import_archive(db.content("default", "l"), db.images("default"), io.BytesIO(archive))]
    finally:
        db.close()


def test_config_section_is_checked() -> None:
    where = 'plugins."io.containerd.grpc.v1.diff"'
    values, warnings = decode_plugin_config(where, {"max_entries": 5, "max_ratio": 0}, Limits)
    assert Limits(**values).max_entries == 5 and warnings == []
    for bad in ({"max_entries": -1}, {"max_layer_size": 0}, {"max_header_size": 100}, {"max_ratio": "big"}):
        with pytest.raises(ConfigError, match=where):
            decode_plugin_config(where, bad, Limits)


def test_daemon_refuses_a_bomb_by_its_config(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    config = 'version = 2\n[plugins."io.containerd.grpc.v1.diff"]\n  max_layer_size = 8388608\n'
    d = pycontainerd_daemon_factory(config=config)
    img = ocibuild.image([{"big/zeros": bytes(32 * MiB)}])
    archive = tmp_path / "bomb.tar"
    archive.write_bytes(ocibuild.oci_layout_tar(img, "example.com/bomb:1"))

    def pyctr(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, "--snapshotter", "native", *args]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)

    assert pyctr("images", "import", str(archive)).returncode == 0
    r = pyctr("images", "unpack", "example.com/bomb:1")
    assert r.returncode != 0
    assert "max_layer_size" in r.stderr and "over the limit of 8388608" in r.stderr, r.stderr
    snapshots = pyctr("snapshots", "ls")
    assert snapshots.returncode == 0 and "extract-" not in snapshots.stdout, snapshots.stdout
    assert pyctr("images", "ls").returncode == 0  # the daemon still serves


def test_compressed_archive_members_are_bounded(configured: None, tmp_path: Path) -> None:
    members = io.BytesIO()
    with tarfile.open(fileobj=members, mode="w") as tar:
        for i in range(20):
            info = tarfile.TarInfo(f"blobs/sha256/{i:064x}")
            info.size = 0
            tar.addfile(info)
    bomb = gzip_bomb(512 * MiB)  # a tar of one 512 MiB member, as `docker save | gzip` would give
    db = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    try:
        db.leases("default").create("l")
        content, images = db.content("default", "l"), db.images("default")
        configure(Limits(max_layer_size=64 * MiB))
        start = time.monotonic()
        with pytest.raises(ResourceExhausted, match="max_layer_size"):
            import_archive(content, images, io.BytesIO(bomb))
        assert time.monotonic() - start < 2  # refused from the member's header, not after inflating it
        configure(Limits(max_entries=10))
        with pytest.raises(ResourceExhausted, match="max_entries"):
            import_archive(content, images, io.BytesIO(members.getvalue()))
    finally:
        db.close()
