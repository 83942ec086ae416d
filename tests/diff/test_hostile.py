"""Hostile and broken layers: refused with InvalidArgument, and nothing outside the target touched.

The ``target`` fixture checks after every test that the sentinel directory
beside the root is exactly as it was and that nothing new appeared beside it.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard
from isal import igzip

from pycontainerd.diff import WhiteoutMode, apply_layer
from pycontainerd.errors import InvalidArgument, ResourceExhausted

from .conftest import Target
from .layers import LayerTar


def refused(root: Path, blob: bytes, match: str, **kw: object) -> None:
    with pytest.raises(InvalidArgument, match=match):
        apply_layer(root, io.BytesIO(blob), **kw)  # type: ignore[arg-type]


def over_limit(root: Path, blob: bytes, key: str, **kw: object) -> None:
    with pytest.raises(ResourceExhausted, match=key):
        apply_layer(root, io.BytesIO(blob), **kw)  # type: ignore[arg-type]


@pytest.fixture(params=[WhiteoutMode.DELETE, WhiteoutMode.OVERLAY])
def mode(request: pytest.FixtureRequest) -> WhiteoutMode:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["../sentinel/file", "a/../../sentinel/file", "/../sentinel/file", "./../x"])
def test_dotdot_climbing_out(target: Target, mode: WhiteoutMode, name: str) -> None:
    refused(target.root, LayerTar().file(name, b"pwned").bytes(), "climbs out", whiteouts=mode)


@pytest.mark.parametrize("kind", ["file", "dir", "symlink", "whiteout"])
def test_dotdot_for_every_kind(target: Target, kind: str) -> None:
    t = LayerTar()
    {
        "file": lambda: t.file("../sentinel/new", b"x"),
        "dir": lambda: t.dir("../sentinel/new"),
        "symlink": lambda: t.symlink("../sentinel/new", "/"),
        "whiteout": lambda: t.whiteout("../sentinel/file"),
    }[kind]()
    refused(target.root, t.bytes(), "climbs out")


def test_absolute_names_stay_inside(target: Target) -> None:
    name = str(target.sentinel / "file")  # an absolute host path: inside the root it is just a name
    apply_layer(target.root, io.BytesIO(LayerTar().file(name, b"inside").bytes()))
    assert (target.root / name.lstrip("/")).read_bytes() == b"inside"


@pytest.mark.parametrize("link", ["../../..", "..", "../sentinel", "x/../../.."])
def test_relative_symlink_escape(target: Target, mode: WhiteoutMode, link: str) -> None:
    layer = LayerTar().symlink("a", link).file("a/sentinel/file", b"pwned").file("a/file", b"pwned").bytes()
    refused(target.root, layer, "leads out of the root", whiteouts=mode)


def test_absolute_symlink_is_rooted(target: Target, mode: WhiteoutMode) -> None:
    # "a -> /" is the container's root: writing through it lands inside ours, never in the host's
    layer = (
        LayerTar()
        .symlink("a", "/")
        .file("a/etc/x", b"in root")
        .symlink("s", str(target.sentinel))
        .file("s/file", b"in root too")
        .bytes()
    )
    apply_layer(target.root, io.BytesIO(layer), whiteouts=mode)
    assert (target.root / "etc/x").read_bytes() == b"in root"
    assert (target.root / str(target.sentinel).lstrip("/") / "file").read_bytes() == b"in root too"


def test_symlink_replacing_a_directory_mid_layer(target: Target, mode: WhiteoutMode) -> None:
    layer = LayerTar().dir("d").file("d/x", b"ok").symlink("d", "../sentinel").file("d/file", b"pwned").bytes()
    refused(target.root, layer, "leads out of the root", whiteouts=mode)


def test_symlink_in_lower_layer_escaping(target: Target) -> None:
    apply_layer(target.root, io.BytesIO(LayerTar().symlink("etc", "../../sentinel/etc").bytes()))
    refused(target.root, LayerTar().file("etc/passwd", b"pwned").bytes(), "leads out of the root")
    refused(target.root, LayerTar().whiteout("etc/passwd").bytes(), "leads out of the root")


def test_overlay_parent_symlink_escaping(target: Target, tmp_path: Path) -> None:
    lower = target.sentinel / "lower"
    lower.mkdir()
    (lower / "etc").symlink_to("../../../sentinel/etc")
    from .treecmp import snapshot_tree

    target.before = snapshot_tree(target.sentinel)
    refused(
        target.root,
        LayerTar().file("etc/passwd", b"pwned").bytes(),
        "leads out of the root",
        whiteouts=WhiteoutMode.OVERLAY,
        parents=[lower],
    )


@pytest.mark.parametrize(
    "link", ["/etc/passwd", "../sentinel/etc/passwd", "up/sentinel/etc/passwd", "abs/etc/passwd", "nothing"]
)
def test_hardlink_outside(target: Target, mode: WhiteoutMode, link: str) -> None:
    layer = LayerTar().symlink("up", "../..").symlink("abs", "/").hardlink("h", link).bytes()
    refused(target.root, layer, "climbs out|leads out of the root|does not exist", whiteouts=mode)


def test_hardlink_to_directory_or_self(target: Target) -> None:
    refused(target.root, LayerTar().dir("d").hardlink("h", "d").bytes(), "is a directory")
    refused(target.root, LayerTar().file("f", b"").hardlink("f", "f").bytes(), "to itself")


def test_huge_pax_header(target: Target) -> None:
    layer = LayerTar().file("f", b"x", pax_headers={"comment": "x" * (2 << 20)}).bytes()
    over_limit(target.root, layer, "max_header_size")


def test_huge_gnu_long_name(target: Target) -> None:
    layer = LayerTar(tarfile.GNU_FORMAT).file("n" * (2 << 20), b"x").bytes()
    over_limit(target.root, layer, "max_header_size")


def test_name_longer_than_path_max(target: Target) -> None:
    refused(target.root, LayerTar().file("a/" * 2100 + "f", b"x").bytes(), "longer than 4096")
    refused(target.root, LayerTar().symlink("s", "t" * 5000).bytes(), "longer than 4096")


@pytest.mark.parametrize("cut", [700, 1100, 1536 + 10])
def test_truncated_tar(target: Target, cut: int) -> None:
    layer = LayerTar().file("f", b"d" * 1000).file("g", b"e" * 10).bytes()
    refused(target.root, layer[:cut], "truncated tar")


def test_truncated_gzip(target: Target) -> None:
    gz = igzip.compress(LayerTar().file("f", b"d" * 100_000).bytes())
    refused(target.root, gz[: len(gz) // 2], "corrupt gzip")
    refused(target.root, gz[:-4], "corrupt gzip")  # the length in the trailer is missing


def test_corrupt_gzip(target: Target) -> None:
    gz = bytearray(igzip.compress(LayerTar().file("f", b"abcdefgh" * 100_000).bytes()))
    gz[-8] ^= 0xFF  # the CRC
    refused(target.root, bytes(gz), "corrupt gzip")


def test_truncated_zstd(target: Target) -> None:
    z = zstandard.ZstdCompressor().compress(LayerTar().file("f", bytes(range(256)) * 1000).bytes())
    refused(target.root, z[: len(z) - 7], "corrupt zstd|truncated")


def test_diff_id_mismatch(target: Target) -> None:
    layer = LayerTar().file("f", b"x").bytes()
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    right = "sha256:" + hashlib.sha256(layer).hexdigest()
    refused(target.root, layer, f"diffID mismatch: expected {wrong}, got {right}", expected_diff_id=wrong)


def test_not_a_tar(target: Target) -> None:
    refused(target.root, b"this is not a tar archive".ljust(1024, b"!"), "checksum")


def test_unknown_type_refused(target: Target) -> None:
    layer = bytearray(LayerTar(tarfile.USTAR_FORMAT).file("f", b"").bytes())
    layer[156] = ord("Z")
    layer[148:156] = b" " * 8
    layer[148:156] = b"%06o\0 " % sum(layer[:512])
    refused(target.root, bytes(layer), "unsupported type flag")


def test_parent_is_a_file(target: Target) -> None:
    refused(target.root, LayerTar().file("f", b"").file("f/g", b"").bytes(), "is not a directory")


def test_error_names_the_entry(target: Target) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply_layer(target.root, io.BytesIO(LayerTar().file("ok", b"").file("../bad-name", b"").bytes()))
    assert '"../bad-name"' in str(info.value)
