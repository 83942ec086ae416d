"""containerd's own ctr moving whole images in and out of pycontainerd through the Content and Images APIs."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from pycontainerd.client import Client
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import image, oci_layout_tar, sha


def ctr(d: PycontainerdDaemon, *args: str) -> str:
    r = subprocess.run(["ctr", "-a", d.address, *args], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_then_export_round_trip(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    img = image([{"etc/hello": b"hello\n"}, {"usr/bin/tool": b"#!/bin/sh\necho tool\n" * 100}])
    archive = tmp_path / "in.tar"
    archive.write_bytes(oci_layout_tar(img, "example.com/test/app:1.0"))

    ctr(d, "images", "import", "--no-unpack", "--all-platforms", str(archive))

    listing = ctr(d, "images", "ls")
    assert "example.com/test/app:1.0" in listing
    assert sha(img.manifest_bytes) in listing
    # The archive's index.json is a blob too, until the collector sees nothing refers to it.
    blobs = set(ctr(d, "content", "ls", "-q").split())
    assert set(img.blobs) <= blobs
    with Client(d.address) as c:
        manifest = c.content.info(sha(img.manifest_bytes))
        # ctr's import wrote the gc references that keep the layers with the manifest.
        assert {v for k, v in manifest.labels.items() if k.startswith("containerd.io/gc.ref.content")} == set(
            img.blobs
        ) - {sha(img.manifest_bytes)}
        c.leases.delete(c.leases.create("gc-trigger").id, sync=True)
        assert {i.digest for i in c.content.walk()} == set(img.blobs)

    out = tmp_path / "out.tar"
    ctr(d, "images", "export", str(out), "example.com/test/app:1.0")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        for digest, data in img.blobs.items():
            member = "blobs/sha256/" + digest.split(":", 1)[1]
            assert member in names
            f = tar.extractfile(member)
            assert f is not None and f.read() == data

    ctr(d, "images", "rm", "--sync", "example.com/test/app:1.0")
    assert ctr(d, "content", "ls", "-q").strip() == ""


def test_import_is_isolated_by_namespace(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    archive = tmp_path / "in.tar"
    archive.write_bytes(oci_layout_tar(image([{"a": b"a"}]), "example.com/ns/app:1"))
    ctr(d, "-n", "one", "images", "import", "--no-unpack", str(archive))
    assert "example.com/ns/app:1" in ctr(d, "-n", "one", "images", "ls", "-q")
    assert ctr(d, "-n", "two", "images", "ls", "-q").strip() == ""
    assert ctr(d, "-n", "two", "content", "ls", "-q").strip() == ""
    r = subprocess.run(["ctr", "-a", d.address, "namespaces", "rm", "one"], capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "must be empty" in r.stderr
    assert "one" in ctr(d, "namespaces", "ls", "-q").split()
