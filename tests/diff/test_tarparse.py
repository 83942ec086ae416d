"""The tar reader alone, on bytes: formats, chunking, limits, damage."""

from __future__ import annotations

import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontainerd.diff._tarparse import END, NEED_DATA, EntryType, TarEntry, TarParser, parse_pax_records
from pycontainerd.errors import InvalidArgument

from .layers import LayerTar


def events(blob: bytes, chunk: int = 1 << 20) -> list[object]:
    """Entries (with their data joined into bytes) and END, feeding ``chunk`` bytes at a time."""
    p = TarParser()
    out: list[object] = []
    for i in range(0, len(blob), chunk):
        p.feed(blob[i : i + chunk])
        while (ev := p.next_event()) is not NEED_DATA:
            if isinstance(ev, memoryview):
                last = out[-1]
                out[-1] = (last if isinstance(last, bytes) else b"") + bytes(ev)
                if not isinstance(last, bytes):
                    out.insert(len(out) - 1, last)
            else:
                out.append(ev)
    p.end_of_input()
    return out


def sample() -> bytes:
    return (
        LayerTar()
        .dir("d", mode=0o755, uid=1, gid=2, mtime=10)
        .file("d/f", b"hello world", mode=0o4755, uid=70000000, mtime=20, xattrs={"user.a": "b"})
        .symlink("d/l", "f")
        .hardlink("d/h", "d/f")
        .char("d/c", 5, 1)
        .fifo("d/p")
        .file("n" * 300, b"z" * 1025, pax_headers={"mtime": "1700000000.5", "atime": "-1.25"})
        .bytes()
    )


def test_entries() -> None:
    evs = events(sample())
    assert evs[-1] is END
    entries = [e for e in evs if isinstance(e, TarEntry)]
    assert [(e.name, e.type) for e in entries] == [
        ("d/", EntryType.DIR),
        ("d/f", EntryType.REG),
        ("d/l", EntryType.SYMLINK),
        ("d/h", EntryType.LINK),
        ("d/c", EntryType.CHAR),
        ("d/p", EntryType.FIFO),
        ("n" * 300, EntryType.REG),
    ]
    d, f, link, hard, c = entries[:5]
    assert (d.mode, d.uid, d.gid, d.mtime_ns) == (0o755, 1, 2, 10 * 10**9)
    assert (f.mode, f.uid, f.size, f.xattrs) == (0o4755, 70000000, 11, {"user.a": b"b"})
    assert evs[evs.index(f) + 1] == b"hello world"
    assert link.linkname == "f" and hard.linkname == "d/f"
    assert (c.devmajor, c.devminor) == (5, 1)
    long = entries[6]
    assert long.mtime_ns == 1_700_000_000_500_000_000 and long.atime_ns == -1_250_000_000
    assert evs[evs.index(long) + 1] == b"z" * 1025


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=3000))
def test_any_chunking_gives_the_same_events(chunk: int) -> None:
    blob = sample()
    assert events(blob, chunk) == events(blob)


def test_gnu_long_names_and_base256() -> None:
    t = tarfile.TarInfo("L" * 200)
    t.linkname = "K" * 200
    t.type = tarfile.SYMTYPE
    t.uid = 8**8  # beyond octal: base-256
    t.mtime = 1
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(t)
    (e, end) = events(buf.getvalue())
    assert isinstance(e, TarEntry) and end is END
    assert (e.name, e.linkname, e.uid) == ("L" * 200, "K" * 200, 8**8)


def test_header_only_types_carry_no_data() -> None:
    # a hard link whose header claims a size (some writers do): no data follows it
    blob = bytearray(LayerTar(tarfile.USTAR_FORMAT).file("f", b"abc").hardlink("h", "f").file("g", b"x").bytes())
    at = 1024  # f's header and one data block
    blob[at + 124 : at + 136] = b"%011o\0" % 3
    blob[at + 148 : at + 156] = b" " * 8
    blob[at + 148 : at + 156] = b"%06o\0 " % sum(blob[at : at + 512])
    names = [e.name for e in events(bytes(blob)) if isinstance(e, TarEntry)]
    assert names == ["f", "h", "g"]


def test_pax_records() -> None:
    assert parse_pax_records(b"11 path=ab\n13 uid=12345\n") == {"path": b"ab", "uid": b"12345"}
    assert parse_pax_records(b"22 SCHILY.xattr.k=\x00\n\xff\n") == {"SCHILY.xattr.k": b"\x00\n\xff"}
    for bad in (b"99 path=x\n", b"x path=y\n", b"8 path\n", b"10 path=xy"):
        with pytest.raises(InvalidArgument, match="malformed pax record"):
            parse_pax_records(bad)


def test_ends() -> None:
    one = LayerTar(tarfile.USTAR_FORMAT).file("f", b"x").bytes()
    events(one[:1024])  # no end blocks at all: accepted at an entry boundary
    events(one[:1536])  # one zero block
    with pytest.raises(InvalidArgument, match="truncated tar"):
        events(one[:700])
    with pytest.raises(InvalidArgument, match="single zero block"):
        events(one[:1024] + bytes(512) + one[:1024])
    with pytest.raises(InvalidArgument, match="truncated"):
        events(LayerTar().file("f", b"", pax_headers={"comment": "c"}).bytes()[:1024])  # pax header, no entry


def test_after_the_end_nothing_is_read() -> None:
    blob = LayerTar(tarfile.USTAR_FORMAT).file("f", b"x").bytes() + b"garbage that is not a header" * 50
    assert events(blob)[-1] is END


def test_checksum() -> None:
    blob = bytearray(LayerTar(tarfile.USTAR_FORMAT).file("f", b"x").bytes())
    blob[0] ^= 1
    with pytest.raises(InvalidArgument, match="checksum mismatch"):
        events(bytes(blob))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("mtime", "soon", "invalid pax mtime"), ("uid", "-1", "invalid pax uid"), ("GNU.sparse.size", "1", "sparse")],
)
def test_bad_pax_values(key: str, value: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        events(LayerTar().file("f", b"", pax_headers={key: value}).bytes())


def test_global_pax_header_is_skipped() -> None:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "g"}) as tf:
        tf.addfile(tarfile.TarInfo("f"))
    assert [e.name for e in events(buf.getvalue()) if isinstance(e, TarEntry)] == ["f"]
