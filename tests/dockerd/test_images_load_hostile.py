"""docker load of hostile archives: each refused with one clear 400, and nothing left behind.

After every refusal the daemon's namespace holds no image record, no blob
and no ingest: the load's lease took what it had written.  The archives are
made here, byte by byte where a tar library would refuse to write them.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.client import Client
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import busybox_files, image, layer_tar, sha


def _tar(members: list[tuple[str, bytes | None, str]], end: bool = True) -> bytes:
    """A tar of (name, data, kind) members; kind is file, symlink (data is the target) or hardlink."""
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    for name, data, kind in members:
        info = tarfile.TarInfo(name)
        if kind == "file":
            assert data is not None
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = (data or b"").decode()
            tar.addfile(info)
    if end:
        tar.close()
        return buf.getvalue()
    tar.fileobj = None  # type: ignore[assignment]
    return buf.getvalue()


def _oci(img_bytes: dict[str, bytes], entry: dict[str, object]) -> list[tuple[str, bytes | None, str]]:
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]}
    members: list[tuple[str, bytes | None, str]] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', "file"),
        ("index.json", json.dumps(index).encode(), "file"),
    ]
    members += [(f"blobs/sha256/{d[7:]}", data, "file") for d, data in img_bytes.items()]
    return members


def _good() -> tuple[list[tuple[str, bytes | None, str]], str]:
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    entry = {
        "mediaType": img.media_type,
        "digest": img.digest,
        "size": len(img.manifest_bytes),
        "annotations": {"io.containerd.image.name": "docker.io/library/hostile:1"},
    }
    return _oci(img.blobs, entry), img.digest


def _legacy(layer_files: dict[str, bytes], dup: bool = False) -> list[tuple[str, bytes | None, str]]:
    """Docker's older archive: <id>/layer.tar, <id>.json, manifest.json, repositories (a link for a reused layer)."""
    raw = layer_tar(layer_files)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(raw)] * (2 if dup else 1)},
    }
    cfg = json.dumps(config).encode()
    members: list[tuple[str, bytes | None, str]] = [("aaa/layer.tar", raw, "file"), ("aaa/VERSION", b"1.0", "file")]
    layers = ["aaa/layer.tar"]
    if dup:
        members.append(("bbb/layer.tar", b"../aaa/layer.tar", "symlink"))
        layers.append("bbb/layer.tar")
    members += [
        (f"{sha(cfg)[7:]}.json", cfg, "file"),
        ("manifest.json", json.dumps([{"Config": f"{sha(cfg)[7:]}.json", "RepoTags": ["legacy:1"], "Layers": layers}]).encode(), "file"),
        ("repositories", json.dumps({"legacy": {"1": "bbb" if dup else "aaa"}}).encode(), "file"),
    ]  # fmt: skip
    return members


def _load(d: Pydockerd, body: bytes) -> tuple[int, dict[str, object] | list[dict[str, str]]]:
    status, _, raw = d.request("POST", "/images/load?quiet=1", body=body)
    if status == 200:
        return status, [json.loads(line) for line in raw.splitlines() if line.strip()]
    return status, json.loads(raw)


@pytest.fixture
def client(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[Client]:
    c = Client(pycontainerd_daemon.address, namespace="moby")
    yield c
    c.close()


def _nothing_left(c: Client) -> None:
    """No record, no ingest, and (once the collector has run) no blob."""
    assert c.images.list() == []
    assert c.content.list_statuses() == []
    deadline = time.monotonic() + 10
    while list(c.content.walk()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(c.content.walk()) == []


def _refused(d: Pydockerd, c: Client, body: bytes, message: str) -> None:
    status, doc = _load(d, body)
    assert status == 400, doc
    assert isinstance(doc, dict)
    assert message in str(doc["message"]), doc
    _nothing_left(c)


def test_hostile_archives(pydockerd: Pydockerd, client: Client) -> None:
    good, digest = _good()
    # Path traversal, in a member name and through links.
    _refused(pydockerd, client, _tar([*good, ("../../etc/evil", b"x", "file")]), "leaves the archive")
    _refused(pydockerd, client, _tar([*good, ("/etc/evil", b"x", "file")]), "absolute path")
    _refused(pydockerd, client, _tar([*good, ("blobs/x", b"../../../etc/passwd", "symlink")]), "points outside")
    legacy = _legacy({"etc/l": b"1\n"})
    escaping = [m if m[0] != "aaa/layer.tar" else ("aaa/layer.tar", b"/etc/passwd", "symlink") for m in legacy]
    _refused(pydockerd, client, _tar(escaping), "points outside the archive")
    # A blob that is not what its name says.
    tampered = [(n, (b if n != f"blobs/sha256/{digest[7:]}" else b.replace(b"2", b"3")), k) for n, b, k in good]  # type: ignore[union-attr]
    _refused(pydockerd, client, _tar(tampered), "does not match its digest")
    # manifest.json naming files that are not there.
    missing = [m for m in legacy if m[0] != "aaa/layer.tar"]
    _refused(pydockerd, client, _tar(missing), "aaa/layer.tar is not in the archive")
    # An index naming content that is not there.
    no_blobs = [m for m in good if not m[0].startswith("blobs/")]
    _refused(pydockerd, client, _tar(no_blobs), "whose content is not in the archive")
    # Truncated: inside a member, and before the end marker.
    whole = _tar(good)
    _refused(pydockerd, client, whole[: len(whole) // 2], "truncated")
    _refused(pydockerd, client, whole[:1024 * 3 + 100], "truncated")  # fmt: skip
    _refused(pydockerd, client, _tar(good, end=False), "truncated")
    # Huge members: a manifest.json that claims a GiB, an extended header of 2 MiB.
    header = tarfile.TarInfo("manifest.json")
    header.size = 1 << 30
    _refused(pydockerd, client, header.tobuf(format=tarfile.USTAR_FORMAT) + b"[" * 4096, "over the limit")
    pax = tarfile.TarInfo("x")
    pax.pax_headers = {"comment": "y" * (2 << 20)}
    _refused(pydockerd, client, pax.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024, "over the limit")
    # Not an archive at all; an empty body; a tar of nothing an image is made of.
    _refused(pydockerd, client, b"this is not a tar archive" * 40, "checksum")
    _refused(pydockerd, client, b"", "empty")
    _refused(pydockerd, client, _tar([("hello.txt", b"hi\n", "file")]), "unrecognized image format")
    # A layer that is not a layer: refused at unpack, before anything is named.
    bad_layer = _legacy({"etc/l": b"1\n"})
    bad_layer = [(n, b"not a tar" * 100 if n == "aaa/layer.tar" else b, k) for n, b, k in bad_layer]
    status, doc = _load(pydockerd, _tar(bad_layer))
    assert status == 400, doc
    _nothing_left(client)
    # A manifest.json that is not JSON, or names a bad tag.
    _refused(pydockerd, client, _tar([("manifest.json", b"{not json", "file")]), "not JSON")
    bad_tag = [(n, b.replace(b"legacy:1", b"UPPER:1") if n == "manifest.json" else b, k) for n, b, k in legacy]  # type: ignore[union-attr]
    _refused(pydockerd, client, _tar(bad_tag), "invalid reference format")
    assert "Traceback" not in pydockerd.log()

    # After all that, the good archive loads, and so do the legacy one (a link for a reused layer) and a gzip one.
    assert _load(pydockerd, _tar(good)) == (200, [{"stream": "Loaded image: hostile:1\n"}])
    assert _load(pydockerd, _tar(_legacy({"etc/l": b"1\n"}, dup=True))) == (
        200,
        [{"stream": "Loaded image: legacy:1\n"}],
    )
    legacy2 = _tar(_legacy({"etc/l": b"2\n"}))
    status, lines = _load(pydockerd, gzip.compress(legacy2))
    assert (status, lines) == (200, [{"stream": "Loaded image: legacy:1\n"}])
    tags = pydockerd.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(tags) == ["<none>:<none>", "hostile:1", "legacy:1"]  # the first legacy:1 lost its name


def test_cli_load_refusal(pydockerd: Pydockerd, tmp_path: Path) -> None:
    good, _ = _good()
    whole = _tar(good)
    path = tmp_path / "cut.tar"
    path.write_bytes(whole[: len(whole) // 2])
    r = pydockerd.docker("load", "-i", str(path), ok=False)
    assert r.returncode == 1
    assert "invalid tar archive: unexpected end of archive inside a member (truncated)" in r.stderr
