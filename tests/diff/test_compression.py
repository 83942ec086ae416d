"""Compression: media types, sniffing, streams in both directions, damage reported as InvalidArgument."""

from __future__ import annotations

import io
import os

import pytest
import zstandard
from isal import igzip

from pycontainerd.diff import Compression, from_media_type, open_compressed, open_decompressed, sniff
from pycontainerd.errors import InvalidArgument


@pytest.mark.parametrize(
    ("media_type", "want"),
    [
        ("application/vnd.oci.image.layer.v1.tar", Compression.NONE),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Compression.GZIP),
        ("application/vnd.oci.image.layer.v1.tar+zstd", Compression.ZSTD),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression.GZIP),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression.ZSTD),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", Compression.NONE),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression.GZIP),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression.GZIP),
        ("", None),
        ("application/octet-stream", None),
        ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", None),
    ],
)
def test_from_media_type(media_type: str, want: Compression | None) -> None:
    assert from_media_type(media_type) is want


def test_sniff() -> None:
    assert sniff(igzip.compress(b"x")) is Compression.GZIP
    assert sniff(zstandard.ZstdCompressor().compress(b"x")) is Compression.ZSTD
    assert sniff(b"ustar") is Compression.NONE
    assert sniff(b"") is Compression.NONE
    assert sniff(b"\x1f") is Compression.NONE


@pytest.mark.parametrize("compression", list(Compression))
def test_round_trip_and_determinism(compression: Compression) -> None:
    data = os.urandom(100_000) + b"a" * 3_000_000

    def compress() -> bytes:
        out = io.BytesIO()
        with open_compressed(out, compression) as w:
            w.write(data[:5])
            w.write(data[5:])
        assert not out.closed
        return out.getvalue()

    blob = compress()
    assert blob == compress()
    assert sniff(blob[:4]) is compression
    assert open_decompressed(io.BytesIO(blob), compression).read() == data


def test_multi_member_gzip_and_multi_frame_zstd() -> None:
    gz = igzip.compress(b"one ") + igzip.compress(b"two")
    assert open_decompressed(io.BytesIO(gz), Compression.GZIP).read() == b"one two"
    z = zstandard.ZstdCompressor()
    zs = z.compress(b"one ") + z.compress(b"two")
    assert open_decompressed(io.BytesIO(zs), Compression.ZSTD).read() == b"one two"


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
@pytest.mark.parametrize("cut", [1, 10, 0.5, -1])
def test_truncated(compression: Compression, cut: float) -> None:
    data = bytes(range(256)) * 4000
    blob = igzip.compress(data) if compression is Compression.GZIP else zstandard.ZstdCompressor().compress(data)
    n = int(len(blob) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(blob) + cut)
    with pytest.raises(InvalidArgument, match=f"corrupt {compression.value} stream"):
        open_decompressed(io.BytesIO(blob[:n]), compression).read()


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_garbage(compression: Compression) -> None:
    magic = b"\x1f\x8b\x08\x00" if compression is Compression.GZIP else b"\x28\xb5\x2f\xfd"
    with pytest.raises(InvalidArgument, match="corrupt"):
        open_decompressed(io.BytesIO(magic + os.urandom(5000)), compression).read()
