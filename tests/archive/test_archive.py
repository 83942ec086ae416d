"""Image archives with real tools: pyctr's exports read by skopeo, skopeo's exports imported by pyctr.

Images are built here from Debian's static busybox; every archive goes
through pycontainerd's daemon, over the Content and Images APIs.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from pycontainerd.client import Client
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import busybox_files, image, multi, oci_layout_dir, oci_layout_tar, sha


def pyctr(d: PycontainerdDaemon, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, *args]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def blobs_of(tar_path: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("blobs/sha256/"):
                f = tar.extractfile(m)
                assert f is not None
                out["sha256:" + m.name.rsplit("/", 1)[1]] = f.read()
    return out


def test_oci_round_trip_keeps_digests(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    img = multi([("amd64", ""), ("arm64", "v8")], [busybox_files()])
    layout = tmp_path / "layout"
    oci_layout_dir(str(layout), img, "example.com/multi/busybox:1")
    archive = tmp_path / "in.tar"
    ref = "example.com/multi/busybox:1"
    skopeo("copy", "--all", f"oci:{layout}:{ref}", f"oci-archive:{archive}:{ref}")

    r = pyctr(d, "images", "import", str(archive))
    assert f"example.com/multi/busybox:1 {img.digest}" in r.stdout
    assert "layer-sha256:" in r.stderr and ": complete" in r.stderr  # progress, a line per blob

    exported = tmp_path / "out.tar"
    r = pyctr(d, "images", "export", "--all-platforms", str(exported), "example.com/multi/busybox:1")
    assert f"index-{img.digest}: complete" in r.stderr
    assert set(blobs_of(exported)) == set(img.blobs)
    with tarfile.open(exported) as tar:
        f = tar.extractfile("index.json")
        assert f is not None
        index = json.load(f)
    assert index["manifests"][0]["digest"] == img.digest

    # Re-imported elsewhere, the same digests come back.
    pyctr(d, "-n", "other", "images", "import", str(exported))
    with Client(d.address, namespace="other") as c:
        assert c.images.get("example.com/multi/busybox:1").target.digest == img.digest
        assert {i.digest for i in c.content.walk()} >= set(img.blobs)

    # skopeo reads what we wrote, byte for byte.
    raw = skopeo("inspect", "--raw", f"oci-archive:{exported}")
    assert sha(raw.encode()) == img.digest


def test_docker_archive_both_ways(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    img = image([busybox_files(), {"etc/motd": b"hi\n"}])
    layout = tmp_path / "layout"
    oci_layout_dir(str(layout), img, "t")
    # skopeo writes a docker-archive (docker save format); pyctr imports it.
    archive = tmp_path / "docker.tar"
    skopeo("copy", f"oci:{layout}:t", f"docker-archive:{archive}:example.com/dock/app:2")
    out = pyctr(d, "images", "import", str(archive)).stdout
    assert "example.com/dock/app:2" in out
    config = img.manifest["config"]
    assert isinstance(config, dict)
    with Client(d.address) as c:
        rec = c.images.get("example.com/dock/app:2")
        manifest = json.loads(c.content.reader_at(rec.target.digest).read_at(0, rec.target.size))
        assert manifest["config"]["digest"] == config["digest"]

    # pyctr writes docker-archive; skopeo reads it (and finds the same config).
    exported = tmp_path / "out-docker.tar"
    pyctr(d, "images", "export", "--format", "docker", str(exported), "example.com/dock/app:2")
    seen = json.loads(skopeo("inspect", "--raw", f"docker-archive:{exported}"))
    assert seen["config"]["digest"] == config["digest"]
    skopeo("copy", f"docker-archive:{exported}", f"oci:{tmp_path / 'back'}:x")


def test_export_then_skopeo_copy(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    img = image([busybox_files()])
    src = tmp_path / "in.tar"
    src.write_bytes(oci_layout_tar(img, "example.com/x/y:3"))
    pyctr(d, "images", "import", str(src))
    exported = tmp_path / "out.tar"
    pyctr(d, "images", "export", str(exported), "example.com/x/y:3")
    skopeo("copy", f"oci-archive:{exported}", f"docker-archive:{tmp_path / 'd.tar'}:example.com/x/y:3")
    skopeo("copy", f"docker-archive:{exported}", f"oci:{tmp_path / 'o'}:y")


def test_bad_archives_leave_nothing(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    img = image([{"a": b"a" * 1000}])
    data = oci_layout_tar(img, "example.com/bad/img:1")
    # Corrupt one blob, keeping its size.
    layer = next(k for k, v in img.blobs.items() if v[:2] == b"\x1f\x8b")
    good = img.blobs[layer]
    bad = data.replace(good, good[:-1] + bytes([good[-1] ^ 0xFF]))
    archive = tmp_path / "bad.tar"
    archive.write_bytes(bad)
    r = pyctr(d, "images", "import", "-q", str(archive), ok=False)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "digest" in r.stderr
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    r = pyctr(d, "images", "import", "-q", str(tmp_path / "junk.tar"), ok=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    with Client(d.address) as c:
        assert c.images.list() == []
        assert c.content.list_statuses() == []
        c.leases.delete(c.leases.create("gc-trigger").id, sync=True)
        assert list(c.content.walk()) == []
    # A docker archive whose manifest.json is not what it should be.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        payload = b'{"not": "a list"}'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "m.tar").write_bytes(buf.getvalue())
    r = pyctr(d, "images", "import", "-q", str(tmp_path / "m.tar"), ok=False)
    assert "manifest.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1
