"""The image side's pure parts, with bytes: the incremental tar reader, the tar writer's framing,
platform choices for push/save/inspect, and push progress as Docker's messages."""

from __future__ import annotations

import io
import tarfile

import pytest

from pycontainerd import platforms
from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.images import Descriptor
from pycontainerd.images.manifest import Manifest
from pycontainerd.transfer import Progress
from pydockerd._errors import Conflict
from pydockerd._imagedelete import check_users
from pydockerd._manifests import PlatformManifest, parse_platform, pick, push_target
from pydockerd._progress import Message, PushReporter
from pydockerd.archive import _tar
from pydockerd.archive._tarstream import Member, TarStream
from pydockerd.archive.load import clean_name, link_target


def _read(raw: bytes, step: int) -> dict[str, tuple[Member, bytes]]:
    ts = TarStream()
    events = []
    for i in range(0, len(raw), step):
        events += ts.feed(raw[i : i + step])
    ts.finish()
    out: dict[str, tuple[Member, bytes]] = {}
    current = None
    for e in events:
        if isinstance(e, Member):
            current = e.name
            out[current] = (e, b"")
        elif e is None:
            current = None
        else:
            assert current is not None
            out[current] = (out[current][0], out[current][1] + e)
    return out


def _python_tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in [("a", b"x" * 1000), ("d/" + "long" * 40, b"yy"), ("e", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "a"
        t.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("step", [1, 13, 512, 1 << 20])
def test_tar_stream_any_chunking(fmt: int, step: int) -> None:
    got = _read(_python_tar(fmt), step)
    assert {k: (m.kind, d) for k, (m, d) in got.items()} == {
        "a": ("file", b"x" * 1000),
        "d/" + "long" * 40: ("file", b"yy"),
        "e": ("file", b""),
        "l": ("symlink", b""),
    }
    assert got["l"][0].linkname == "a"


def test_tar_stream_refusals() -> None:
    raw = _python_tar(tarfile.PAX_FORMAT)
    bad = bytearray(raw)
    bad[0] ^= 0xFF
    with pytest.raises(InvalidArgument, match="checksum"):
        TarStream().feed(bytes(bad))
    no_end = _tar.file_header("f", 3) + b"abc" + _tar.padding(3)
    for part in (raw[:100], raw[:700], no_end):
        ts = TarStream()
        ts.feed(part)
        with pytest.raises(InvalidArgument, match="truncated"):
            ts.finish()
    big = tarfile.TarInfo("x")
    big.pax_headers = {"comment": "y" * (2 << 20)}
    with pytest.raises(InvalidArgument, match="over the limit"):
        TarStream().feed(big.tobuf(format=tarfile.PAX_FORMAT))
    # GNU base-256 sizes (members over 8 GiB) are numbers too.
    huge = bytearray(_tar.file_header("h", 0))
    huge[124:136] = b"\x80" + (10 << 30).to_bytes(11, "big")
    huge[148:156] = b"        "
    huge[148:155] = f"{sum(huge):06o}\0".encode()
    [m] = TarStream().feed(bytes(huge))
    assert isinstance(m, Member) and m.size == 10 << 30


def test_tar_writer_framing_reads_back() -> None:
    raw = _tar.dir_header("blobs") + _tar.file_header("blobs/f", 3) + b"abc" + _tar.padding(3) + _tar.END
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        assert [(m.name, m.isdir(), m.size, m.mtime, m.uid) for m in t] == [
            ("blobs", True, 0, 0, 0),
            ("blobs/f", False, 3, 0, 0),
        ]


def test_names_and_links_stay_inside() -> None:
    assert clean_name("./blobs//sha256/./x") == "blobs/sha256/x"
    for name in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(InvalidArgument):
            clean_name(name)
    assert link_target("b/layer.tar", "../a/layer.tar", symlink=True) == "a/layer.tar"
    assert link_target("b/layer.tar", "a/layer.tar", symlink=False) == "a/layer.tar"
    for target in ("../../x", "/etc/passwd"):
        with pytest.raises(InvalidArgument):
            link_target("b/layer.tar", target, symlink=True)


def test_parse_platform() -> None:
    assert parse_platform("") is None
    assert parse_platform('{"os":"linux","architecture":"aarch64"}') == platforms.Platform("linux", "arm64")
    assert parse_platform("linux/arm/v7") == platforms.Platform("linux", "arm", "v7")
    with pytest.raises(InvalidArgument):
        parse_platform("{bad")


def _entry(arch: str, available: bool, variant: str = "") -> PlatformManifest:
    d = Descriptor("application/vnd.oci.image.manifest.v1+json", f"sha256:{arch:0<64}"[:71], 10)
    m = Manifest(2, d.media_type, Descriptor("c", "sha256:" + "c" * 64, 1), ())
    return PlatformManifest(d, m, platforms.Platform("linux", arch, variant), available)


def test_push_target_choices() -> None:
    index = Descriptor("application/vnd.oci.image.index.v1+json", "sha256:" + "f" * 64, 100)
    host = platforms.default()
    here, other = _entry(host.architecture, True), _entry("s390x", True)
    # Everything here: the index whole.
    assert push_target(index, [here, other], False, None, "x") == index
    # Something missing: the one that is whole; of several, this host's.
    assert push_target(index, [here, _entry("s390x", False)], True, None, "x") == here.desc
    assert push_target(index, [here, other], True, None, "x") == here.desc
    with pytest.raises(Conflict):
        push_target(index, [other, _entry("ppc64le", True)], True, None, "x")
    # A platform asked for: its manifest, or Docker's not-found message.
    assert push_target(index, [here, other], False, platforms.Platform("linux", "s390x"), "x") == other.desc
    with pytest.raises(NotFound, match=r"does not provide the specified platform \(linux/riscv64\)"):
        push_target(index, [here], False, platforms.Platform("linux", "riscv64"), "x")
    assert pick([other, here], None, "x") == here
    with pytest.raises(NotFound):
        pick([_entry(host.architecture, False)], None, "x")


def test_push_reporter_messages() -> None:
    got: list[Message] = []
    r = PushReporter(got.append, lambda digest: "library/busybox")
    layer = "layer-sha256:" + "a" * 64
    r(Progress("Pushing to x"))
    r(Progress("waiting", "config-sha256:" + "c" * 64))
    r(Progress("waiting", layer, total=10))
    r(Progress("uploading", layer, progress=4, total=10))
    r(Progress("complete", layer, progress=10, total=10))
    r(Progress("mounted", "layer-sha256:" + "b" * 64, total=3))
    statuses = [(m["id"], m["status"]) for m in got]
    assert statuses == [
        ("aaaaaaaaaaaa", "Preparing"),
        ("aaaaaaaaaaaa", "Pushing"),
        ("aaaaaaaaaaaa", "Pushing"),
        ("aaaaaaaaaaaa", "Pushed"),
        ("bbbbbbbbbbbb", "Mounted from library/busybox"),
    ]
    assert got[1]["progressDetail"] == {"current": 4, "total": 10}


def test_check_users_rules() -> None:
    image_id = "sha256:" + "1" * 64
    running, stopped = [("a" * 64, True)], [("b" * 64, False)]
    assert check_users([], image_id, "x:1", by_id=True, force=False) is False
    with pytest.raises(
        Conflict, match=r"111111111111 \(cannot be forced\) - image is being used by running container a{12}$"
    ):
        check_users(running, image_id, "x:1", by_id=True, force=True)
    with pytest.raises(Conflict, match=r"\(must be forced\) - image is being used by stopped container b{12}$"):
        check_users(stopped, image_id, "x:1", by_id=True, force=False)
    assert check_users(stopped, image_id, "x:1", by_id=True, force=True) is False  # it goes
    with pytest.raises(Conflict, match=r'repository reference "x:1" \(must force\) - container a{12} is using'):
        check_users(running, image_id, "x:1", by_id=False, force=False)
    assert check_users(running, image_id, "x:1", by_id=False, force=True) is True  # untagged, kept dangling
