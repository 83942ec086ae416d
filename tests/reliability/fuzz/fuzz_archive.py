"""Fuzz target: the archive importer (OCI image layouts and ``docker save`` archives).

An input is an option byte then an archive.  The archive is imported into a
real metadata store (SQLite over a local content store) under a lease; bit
0 of the option byte also records the archive's index under a name, bit 1
names OCI entries that only carry a tag.  With bit 2 set the rest is not a
whole archive but the ``index.json`` (bit 3 clear) or ``manifest.json``
(bit 3 set) of one whose blobs are a real image's, so mutations reach the
importer's logic rather than stopping at tar checksums.  Invariants: only
:class:`~pycontainerd.errors.ContainerdError` leaves ``import_archive``;
every image it records points at content that is in the store; every blob
the store holds matches its digest; the import takes less than
:data:`DEADLINE` seconds.

Run standalone: ``python -m tests.reliability.fuzz.fuzz_archive [libFuzzer flags] [CORPUS]``.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from tests import ocibuild

from ._harness import instrumented, main

with instrumented():
    from pycontainerd.archive import ImportOptions, import_archive
    from pycontainerd.content import read_blob
    from pycontainerd.content.local import LocalStore
    from pycontainerd.errors import ContainerdError
    from pycontainerd.metadata import DB

__all__ = ["DEADLINE", "one_input", "seeds"]

DEADLINE = 10.0
NAMESPACE = "fuzz"
LEASE = "fuzz"


@functools.cache
def _db() -> DB:
    d = Path(tempfile.mkdtemp(prefix="fuzz-archive-"))
    db = DB(d / "meta.db", LocalStore(d / "content"))
    db.leases(NAMESPACE).create(LEASE)

    def close() -> None:
        db.close()
        shutil.rmtree(d, True)

    atexit.register(close)
    return db


def one_input(data: bytes) -> None:
    if not data:
        return
    db = _db()
    content, images = db.content(NAMESPACE, LEASE), db.images(NAMESPACE)
    opts = ImportOptions(
        index_name="fuzz.example/index:1" if data[0] & 1 else "",
        base_name="fuzz.example/base" if data[0] & 2 else "",
    )
    archive = data[1:]
    if data[0] & 4:
        archive = _with_document("manifest.json" if data[0] & 8 else "index.json", archive)
    start = time.monotonic()
    try:
        recorded = import_archive(content, images, io.BytesIO(archive), opts)
    except ContainerdError:
        recorded = []
    took = time.monotonic() - start
    for image in recorded:
        assert content.info(image.target.digest).size == image.target.size, image
    for info in content.walk():
        blob = read_blob(content, info.digest)
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == info.digest, info
    assert took < DEADLINE, f"import took {took:.1f} s"
    for image in images.list():
        images.delete(image.name)
    for info in list(content.walk()):
        content.delete(info.digest)


@functools.cache
def _image() -> ocibuild.Image:
    with open("/bin/busybox", "rb") as f:
        files = {"bin/busybox": f.read(16 << 10), "etc/hostname": b"fuzz\n"}
    return ocibuild.image([files])


def _members(img: ocibuild.Image) -> dict[str, bytes]:
    """The members of an archive holding ``img``'s blobs twice: as an OCI layout's and as ``docker save``'s."""
    out = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    config, layers = img.manifest["config"], img.manifest["layers"]
    for digest, blob in img.blobs.items():
        out[f"blobs/sha256/{digest[7:]}"] = blob
    out["config.json"] = img.blobs[config["digest"]]  # type: ignore[index]
    for i, layer in enumerate(layers):  # type: ignore[arg-type]
        out[f"layer{i}.tar"] = img.blobs[layer["digest"]]
    return out


def _with_document(name: str, document: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, blob in [*_members(_image()).items(), (name, document)]:
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def seeds() -> dict[str, bytes]:
    """Archives from real tools: our OCI layout tar, skopeo's docker-archive and oci-archive, umoci's layout."""
    img = _image()
    out = {"oci-layout": b"\x00" + ocibuild.oci_layout_tar(img, "fuzz.example/app:1")}
    manifest = img.manifest_bytes
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": img.media_type,
                "digest": ocibuild.sha(manifest),
                "size": len(manifest),
                "annotations": {
                    "io.containerd.image.name": "fuzz.example/app:1",
                    "org.opencontainers.image.ref.name": "1",
                },
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    out["index.json"] = b"\x06" + json.dumps(index).encode()
    layers = [f"layer{i}.tar" for i in range(len(img.manifest["layers"]))]  # type: ignore[arg-type]
    docker = [{"Config": "config.json", "RepoTags": ["fuzz.example/app:1"], "Layers": layers}]
    out["manifest.json"] = b"\x0c" + json.dumps(docker).encode()
    with tempfile.TemporaryDirectory(prefix="fuzz-archive-seeds-") as tmp:
        t = Path(tmp)
        ocibuild.oci_layout_dir(str(t / "layout"), img, "1")
        _run("skopeo", "copy", f"oci:{t / 'layout'}:1", f"docker-archive:{t / 'docker.tar'}:fuzz.example/app:1")
        out["docker-save"] = b"\x00" + (t / "docker.tar").read_bytes()
        _run("skopeo", "copy", f"oci:{t / 'layout'}:1", f"oci-archive:{t / 'oci.tar'}:1")
        out["skopeo-oci-archive"] = b"\x02" + (t / "oci.tar").read_bytes()
        _run("umoci", "init", "--layout", str(t / "umoci"))
        _run("umoci", "new", "--image", f"{t / 'umoci'}:1")
        shutil.make_archive(str(t / "umoci-tar"), "tar", t / "umoci")
        out["umoci-layout"] = b"\x03" + (t / "umoci-tar.tar").read_bytes()
    return out


if __name__ == "__main__":
    main(one_input, seeds)
