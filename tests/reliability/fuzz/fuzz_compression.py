"""Fuzz target: compression sniffing and streaming decompression (gzip through ISA-L, zstd).

An input is one byte choosing how to read, then a blob.  The blob's
compression is sniffed from its first bytes and it is read through
:func:`~pycontainerd.diff.compression.decompressed_chunks` (what the applier
uses) or :func:`~pycontainerd.diff.compression.open_decompressed`.
Invariants: only InvalidArgument leaves the codec, no chunk handed out is
larger than :data:`MAX_CHUNK` (a few compressed bytes must not become
gigabytes in memory at once), and reading stops within :data:`DEADLINE`.

Run standalone: ``python -m tests.reliability.fuzz.fuzz_compression [libFuzzer flags] [CORPUS]``.
"""

from __future__ import annotations

import gzip
import io
import time

import zstandard

from tests.diff.layers import LayerTar

from ._harness import instrumented, main

with instrumented():
    from pycontainerd.diff.compression import Compression, decompressed_chunks, open_decompressed, sniff
    from pycontainerd.errors import InvalidArgument

__all__ = ["DEADLINE", "MAX_CHUNK", "one_input", "seeds"]

DEADLINE = 10.0
MAX_CHUNK = 4 << 20
_READ_AT_MOST = 256 << 20  # what one input may expand to before the target stops reading (not an error)


def one_input(data: bytes) -> None:
    if not data:
        return
    how, blob = data[0], data[1:]
    compression = sniff(blob[:4])
    start = time.monotonic()
    total = 0
    try:
        if how & 1:
            reader = open_decompressed(io.BytesIO(blob), compression)
            while total < _READ_AT_MOST and (chunk := reader.read(1 << 20)):
                total += len(chunk)
        else:
            for piece in decompressed_chunks(io.BytesIO(blob), compression):
                assert len(piece) <= MAX_CHUNK, f"a chunk of {len(piece)} bytes from {len(blob)} compressed"
                total += len(piece)
                if total >= _READ_AT_MOST:
                    break
    except InvalidArgument:
        pass
    took = time.monotonic() - start
    assert took < DEADLINE, f"decompressing took {took:.1f} s"


def seeds() -> dict[str, bytes]:
    with open("/bin/busybox", "rb") as f:
        busybox = f.read(64 << 10)
    layer = LayerTar().file("bin/busybox", busybox, mode=0o755).symlink("bin/sh", "busybox").bytes()
    zstd = zstandard.ZstdCompressor()
    raw = {
        "gzip": gzip.compress(layer, mtime=0),
        "gzip-members": gzip.compress(b"one", mtime=0) + gzip.compress(b"two", mtime=0),
        "gzip-truncated": gzip.compress(layer, mtime=0)[:-9],
        "gzip-zeros": gzip.compress(bytes(8 << 20), mtime=0),
        "zstd": zstd.compress(layer),
        "zstd-frames": zstd.compress(b"one") + zstd.compress(b"two"),
        "zstd-truncated": zstd.compress(layer)[:-5],
        "zstd-zeros": zstd.compress(bytes(64 << 20)),
        "zstd-skippable": b"\x50\x2a\x4d\x18\x04\x00\x00\x00skip" + zstd.compress(b"after"),
        "plain": layer[:4096],
    }
    assert sniff(raw["zstd"]) is Compression.ZSTD
    out = {}
    for name, blob in raw.items():
        out[f"{name}.chunks"] = b"\x00" + blob
        out[f"{name}.reader"] = b"\x01" + blob
    return out


if __name__ == "__main__":
    main(one_input, seeds)
