"""Build small OCI images from local bytes, for tests that need real image archives.

No registry and no network: a layer is a tar.gz made here, and the image is
written as an OCI image-layout tar that ``ctr images import`` accepts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer holding ``files`` (path -> content), directories implied."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d + "/")
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(files[path]), 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


@dataclass
class Image:
    """An image: its blobs by digest and the descriptor of its manifest."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifest: dict[str, object] = field(default_factory=dict)

    def add(self, data: bytes) -> str:
        d = sha(data)
        self.blobs[d] = data
        return d

    @property
    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest, sort_keys=True).encode()


def image(layers: list[dict[str, bytes]], arch: str = "amd64") -> Image:
    img = Image()
    diff_ids, descs = [], []
    for files in layers:
        raw = layer_tar(files)
        gz = gzip.compress(raw, mtime=0)
        diff_ids.append(sha(raw))
        descs.append({"mediaType": LAYER, "digest": img.add(gz), "size": len(gz)})
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        },
        sort_keys=True,
    ).encode()
    img.manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": img.add(config), "size": len(config)},
        "layers": descs,
    }
    img.add(img.manifest_bytes)
    return img


def oci_layout_tar(img: Image, ref: str) -> bytes:
    """An OCI image-layout archive with ``img`` tagged ``ref``."""
    mb = img.manifest_bytes
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": sha(mb),
                "size": len(mb),
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                },
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()}
    for d, data in img.blobs.items():
        entries["blobs/sha256/" + d.split(":", 1)[1]] = data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
