"""tar-split records without Docker: the parser on bytes, the assembler on directories made here.

Records are made by :func:`disassemble`, a few lines over Python's
``tarfile`` that cut a tar stream where the format says (raw bytes between
file contents become segments, each member's contents a file entry), so a
round trip must give back the very bytes of the tar.
"""

from __future__ import annotations

import base64
import errno
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontainerd.errors import InvalidArgument, NotFound, Unknown
from pycontainerd.migrate import (
    DiffDirSource,
    FileEntry,
    Segment,
    TarAssembler,
    TarSplitDecoder,
    parse_entry,
    read_entries,
)
from pycontainerd.migrate._crc64 import Crc64
from pycontainerd.migrate._safefs import SafeDir, clean_name
from pycontainerd.migrate.tarsplit import MAX_LINE


def crc(data: bytes) -> bytes:
    c = Crc64()
    c.update(data)
    return c.digest()


def disassemble(tar_bytes: bytes) -> bytes:
    """A gzip-compressed tar-split record of ``tar_bytes`` (type 1 file, type 2 segment)."""
    lines: list[dict[str, object]] = []

    def segment(data: bytes) -> None:
        if data:
            lines.append({"type": 2, "payload": base64.b64encode(data).decode()})

    pos = 0
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for m in tar:
            segment(tar_bytes[pos : m.offset_data])
            entry: dict[str, object] = {"type": 1, "payload": None}
            raw = m.name.encode("utf-8", "surrogateescape")
            try:
                entry["name"] = raw.decode()
            except UnicodeDecodeError:
                entry["name_raw"] = base64.b64encode(raw).decode()
            pos = m.offset_data
            if m.isreg() and m.size:
                entry["size"] = m.size
                entry["payload"] = base64.b64encode(crc(tar_bytes[pos : pos + m.size])).decode()
                pos += m.size
            lines.append(entry)
    segment(tar_bytes[pos:])
    for i, line in enumerate(lines):
        line["position"] = i
    return gzip.compress(b"".join(json.dumps(x).encode() + b"\n" for x in lines))


def make_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type, t.linkname, t.mode, t.mtime = kind, link, 0o644, 1_700_000_000
    return t


def extract(tar_bytes: bytes, target: Path) -> None:
    target.mkdir(exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        tar.extractall(target, filter="fully_trusted")


def rebuild(record: bytes, diff: Path, **kw: object) -> bytes:
    with SafeDir.open(diff) as d:
        assembler = TarAssembler(read_entries(io.BytesIO(record)), DiffDirSource(d), **kw)  # type: ignore[arg-type]
        out = b"".join(assembler.chunks())
        assert assembler.result.digest == "sha256:" + hashlib.sha256(out).hexdigest()
        assert assembler.result.size == len(out)
    return out


SAMPLE = [
    (info("bin/", tarfile.DIRTYPE), b""),
    (info("bin/tool"), b"#!/bin/sh\necho tool\n" * 100),
    (info("bin/same", tarfile.LNKTYPE, "bin/tool"), b""),
    (info("bin/sym", tarfile.SYMTYPE, "tool"), b""),
    (info("etc/"), b""),
    (info("etc/empty"), b""),
    (info("etc/.wh.gone"), b""),
    (info("opt/.wh..wh..opq"), b""),
    (info("d/" + "long-directory/" * 12 + "file"), b"long\n"),
    (info("big"), os.urandom(3 << 20)),
]
SAMPLE[4][0].type = tarfile.DIRTYPE


def test_crc64_is_gos_iso_variant() -> None:
    c = Crc64()
    c.update(b"123456789")
    assert c.value() == 0xB90956C775A41001
    assert base64.b64encode(crc(b"a\n")) == b"YUQgAAAAAAA="  # as Docker's tar-split recorded it for "a\n"
    assert crc(b"") == bytes(8)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_round_trip_is_byte_exact(tmp_path: Path, fmt: int) -> None:
    members = SAMPLE if fmt != tarfile.USTAR_FORMAT else [m for m in SAMPLE if len(m[0].name) < 100]
    original = make_tar(members, fmt)
    extract(original, tmp_path / "diff")
    for name in ("etc/.wh.gone", "opt/.wh..wh..opq"):
        (tmp_path / "diff" / name).unlink()  # overlay2 keeps whiteouts otherwise: they are never read
    assert rebuild(disassemble(original), tmp_path / "diff", chunk_size=4096) == original


def test_chunks_are_bounded(tmp_path: Path) -> None:
    original = make_tar(SAMPLE)
    extract(original, tmp_path / "diff")
    with SafeDir.open(tmp_path / "diff") as d:
        assembler = TarAssembler(read_entries(io.BytesIO(disassemble(original))), DiffDirSource(d), chunk_size=65536)
        assert max(len(c) for c in assembler.chunks()) <= 65536


def test_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    original = make_tar([(info(name), b"latin-1\n")], tarfile.GNU_FORMAT)
    record = disassemble(original)
    assert b"name_raw" in gzip.decompress(record)
    (tmp_path / "diff").mkdir()
    (tmp_path / "diff" / os.fsencode(name).decode("utf-8", "surrogateescape")).write_bytes(b"latin-1\n")
    assert rebuild(record, tmp_path / "diff") == original


def test_the_decoder_takes_any_chunking() -> None:
    raw = gzip.decompress(disassemble(make_tar(SAMPLE[:4])))
    whole = TarSplitDecoder()
    expected = whole.feed(raw) + whole.close()
    bytewise = TarSplitDecoder()
    got = [e for i in range(len(raw)) for e in bytewise.feed(raw[i : i + 1])] + bytewise.close()
    assert got == expected
    assert [type(e) for e in got[:3]] == [Segment, FileEntry, Segment]


def test_parse_entry_accepts_what_tar_split_writes() -> None:
    assert parse_entry(b'{"type":2,"payload":"AAE=","position":0}') == Segment(b"\0\1")
    assert parse_entry(b'{"type":2,"payload":null,"position":0}') == Segment(b"")
    assert parse_entry(b'{"type":1,"name":"a/","payload":null,"position":1}') == FileEntry(b"a/", 0, None)
    assert parse_entry(b'{"type":1,"name":"f","size":2,"payload":"YUQgAAAAAAA=","position":3}') == FileEntry(
        b"f", 2, base64.b64decode("YUQgAAAAAAA=")
    )
    assert parse_entry(b'{"type":1,"name_raw":"Y2Fm6Q==","payload":null}').name == b"caf\xe9"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"type":3}', "unknown entry type 3"),
        (b'{"type":true}', "unknown entry type true"),
        (b'{"type":2,"payload":"***"}', "not valid base64"),
        (b'{"type":2,"payload":5}', "not a base64 string"),
        (b'{"type":1,"payload":null}', "without a name"),
        (b'{"type":1,"name":7}', "name is not a string"),
        (b'{"type":1,"name":"f","size":-1}', "is not a count"),
        (b'{"type":1,"name":"f","size":"9"}', "is not a count"),
        (b'{"type":1,"name":"f","size":3,"payload":null}', "no 8-byte CRC-64"),
        (b'{"type":1,"name":"f","size":3,"payload":"AAE="}', "no 8-byte CRC-64"),
    ],
)
def test_parse_entry_refuses(line: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_entry(line)


def test_decoder_refuses_duplicates_long_lines_and_empty_records() -> None:
    d = TarSplitDecoder()
    with pytest.raises(InvalidArgument, match=r'tar-split line 2: file "./a//b" appears twice'):
        d.feed(b'{"type":1,"name":"a/b"}\n{"type":1,"name":"./a//b"}\n')
    with pytest.raises(InvalidArgument, match="longer than"):
        TarSplitDecoder().feed(b"x" * (MAX_LINE + 1))
    with pytest.raises(InvalidArgument, match="no entries"):
        TarSplitDecoder().close()
    last = TarSplitDecoder()
    assert last.feed(b'{"type":2,"payload":"AA=="}') == []
    assert last.close() == [Segment(b"\0")]  # a last line without its newline


def test_truncated_and_corrupt_gzip() -> None:
    record = disassemble(make_tar(SAMPLE[:3]))
    with pytest.raises(InvalidArgument, match="truncated"):
        list(read_entries(io.BytesIO(record[: len(record) // 2])))
    with pytest.raises(InvalidArgument, match="not a valid gzip stream"):
        list(read_entries(io.BytesIO(b"not gzip at all")))
    cut = gzip.compress(gzip.decompress(record)[:-7])  # a whole gzip stream, cut inside its last line
    with pytest.raises(InvalidArgument, match="not JSON"):
        list(read_entries(io.BytesIO(cut)))


def record_of(*entries: dict[str, object]) -> bytes:
    return gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in entries))


def file_entry(name: str, data: bytes) -> dict[str, object]:
    return {"type": 1, "name": name, "size": len(data), "payload": base64.b64encode(crc(data)).decode()}


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("../outside", InvalidArgument, r'"../outside": escapes its directory'),
        ("a/../../outside", InvalidArgument, "escapes its directory"),
        ("link/secret", InvalidArgument, r'diff/link": a component is not a directory \(or is a symbolic link\)'),
        ("tolink", InvalidArgument, r'diff/tolink": is a symbolic link'),
        ("missing", NotFound, r'diff/missing": no such file or directory'),
        ("fifo", InvalidArgument, r'diff/fifo": not a regular file'),
        ("dev", InvalidArgument, r'diff/dev": not a regular file'),
        ("dir", InvalidArgument, r'diff/dir": not a regular file'),
    ],
)
def test_files_are_read_only_from_inside_the_directory(
    tmp_path: Path, name: str, error: type[Exception], message: str
) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    diff = tmp_path / "diff"
    (diff / "dir").mkdir(parents=True)
    (diff / "link").symlink_to(tmp_path)
    (diff / "tolink").symlink_to(tmp_path / "outside")
    os.mkfifo(diff / "fifo")
    os.mknod(diff / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # refused before it is opened
    record = record_of(file_entry(name, b"secret"))
    with pytest.raises(error, match=message):
        rebuild(record, diff)


def test_dotdot_inside_the_directory_is_resolved_lexically(tmp_path: Path) -> None:
    (tmp_path / "diff" / "a").mkdir(parents=True)
    (tmp_path / "diff" / "f").write_bytes(b"data")
    record = record_of(file_entry("a/../f", b"data"))
    assert rebuild(record, tmp_path / "diff") == b"data"
    assert clean_name("/./a//b/") == ("a", "b")


def test_contents_that_differ_from_the_record(tmp_path: Path) -> None:
    diff = tmp_path / "diff"
    diff.mkdir()
    (diff / "f").write_bytes(b"other")
    with pytest.raises(InvalidArgument, match=r'file "f": contents differ from the tar-split\'s CRC-64'):
        rebuild(record_of(file_entry("f", b"right")), diff)
    assert rebuild(record_of(file_entry("f", b"right")), diff, check_crc=False) == b"other"
    with pytest.raises(InvalidArgument, match=r'file "f": 5 bytes on disk, the tar-split says 9'):
        rebuild(record_of(file_entry("f", b"otherwise")), diff)
    with pytest.raises(InvalidArgument, match=r'file "f": longer on disk than the 3 bytes recorded'):
        rebuild(record_of(file_entry("f", b"oth")), diff)


def test_the_result_waits_for_the_end(tmp_path: Path) -> None:
    (tmp_path / "diff").mkdir()
    with SafeDir.open(tmp_path / "diff") as d:
        assembler = TarAssembler([Segment(b"x")], DiffDirSource(d))
        with pytest.raises(InvalidArgument, match="not been read to its end"):
            _ = assembler.result


names = st.text(alphabet="abcxyz-_.", min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))


@settings(max_examples=25, deadline=None)
@given(files=st.dictionaries(st.tuples(names, names), st.binary(max_size=3000), min_size=1, max_size=8))
def test_any_tree_round_trips(tmp_path_factory: pytest.TempPathFactory, files: dict[tuple[str, str], bytes]) -> None:
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    dirs = sorted({d for d, _ in files})
    for d in dirs:
        members.append((info(d + "/", tarfile.DIRTYPE), b""))
    for (d, f), data in sorted(files.items()):
        if f not in dirs or d != "":
            members.append((info(f"{d}/{f}"), data))
    original = make_tar(members)
    target = tmp_path_factory.mktemp("tree") / "diff"
    extract(original, target)
    assert rebuild(disassemble(original), target, chunk_size=1000) == original


class _FailingFile(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, b: object) -> int:
        raise OSError(errno.EIO, "Input/output error")


class _FailingDisk:
    """A file source whose disk fails under every read, as a dying disk does."""

    def open(self, name: bytes) -> io.RawIOBase:
        return _FailingFile()


def test_a_read_error_names_the_file_in_one_error() -> None:
    record = record_of(file_entry("etc/f", b"data"))
    assembler = TarAssembler(read_entries(io.BytesIO(record)), _FailingDisk())  # type: ignore[arg-type]
    with pytest.raises(Unknown, match=r'"file etc/f": Input/output error'):
        b"".join(assembler.chunks())
