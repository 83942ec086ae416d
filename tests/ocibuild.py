"""Build small OCI and Docker images from local bytes, for tests that need real images.

No registry and no network: a layer is a tar.gz made here (typically holding
Debian's static busybox), and the image is written as an OCI image-layout
tar that ``ctr images import`` accepts, as an OCI layout directory for
skopeo, or pushed to a test registry.
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
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BUSYBOX = "/bin/busybox"


def busybox_files() -> dict[str, bytes]:
    """A minimal root filesystem: Debian's static busybox and a shell link made as a copy."""
    with open(BUSYBOX, "rb") as f:
        data = f.read()
    return {"bin/busybox": data, "etc/hostname": b"pycontainerd-test\n"}


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
            # Programs (anything under a bin/ directory) are executable, so tasks can run them.
            executable = "bin" in parts
            info.size, info.mode = len(files[path]), 0o755 if executable else 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


@dataclass
class Image:
    """An image: its blobs by digest and the descriptor of its manifest."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifest: dict[str, object] = field(default_factory=dict)
    platform: dict[str, str] = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        return str(self.manifest["mediaType"])

    @property
    def digest(self) -> str:
        return sha(self.manifest_bytes)

    def descriptor(self) -> dict[str, object]:
        """The manifest's descriptor, as an index lists it."""
        mb = self.manifest_bytes
        return {"mediaType": self.media_type, "digest": sha(mb), "size": len(mb), "platform": self.platform}

    def add(self, data: bytes) -> str:
        d = sha(data)
        self.blobs[d] = data
        return d

    @property
    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest, sort_keys=True).encode()


def image(
    layers: list[dict[str, bytes]],
    arch: str = "amd64",
    variant: str = "",
    docker: bool = False,
    config: dict[str, object] | None = None,
) -> Image:
    """A single-platform image; ``docker`` uses Docker schema2 media types instead of OCI's.

    ``config`` is the image config's ``config`` object (default: ``Cmd`` ``/bin/sh``).
    """
    img = Image()
    diff_ids, descs = [], []
    for files in layers:
        raw = layer_tar(files)
        gz = gzip.compress(raw, mtime=0)
        diff_ids.append(sha(raw))
        descs.append({"mediaType": DOCKER_LAYER if docker else LAYER, "digest": img.add(gz), "size": len(gz)})
    cfg: dict[str, object] = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]} if config is None else config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if variant:
        cfg["variant"] = variant
    config = json.dumps(cfg, sort_keys=True).encode()
    img.manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG if docker else CONFIG, "digest": img.add(config), "size": len(config)},
        "layers": descs,
    }
    img.platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
    img.add(img.manifest_bytes)
    return img


def oci_layout_tar(img: Image, ref: str) -> bytes:
    """An OCI image-layout archive with ``img`` tagged ``ref``."""
    mb = img.manifest_bytes
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": img.media_type,
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


@dataclass
class MultiImage:
    """An index (or Docker manifest list) of several single-platform images."""

    images: list[Image]
    docker: bool = False

    @property
    def index(self) -> dict[str, object]:
        return {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if self.docker else INDEX,
            "manifests": [i.descriptor() for i in self.images],
        }

    @property
    def index_bytes(self) -> bytes:
        return json.dumps(self.index, sort_keys=True).encode()

    @property
    def media_type(self) -> str:
        return DOCKER_LIST if self.docker else INDEX

    @property
    def digest(self) -> str:
        return sha(self.index_bytes)

    @property
    def blobs(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in self.images:
            out.update(i.blobs)
        out[sha(self.index_bytes)] = self.index_bytes
        return out


def multi(archs: list[tuple[str, str]], layers: list[dict[str, bytes]], docker: bool = False) -> MultiImage:
    """The same files for several platforms: ``archs`` is a list of (architecture, variant)."""
    return MultiImage([image(layers, arch, variant, docker) for arch, variant in archs], docker)


def oci_layout_dir(path: str, target: Image | MultiImage, tag: str) -> None:
    """Write ``target`` as an OCI image layout directory (skopeo's ``oci:PATH:TAG``)."""
    import os

    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    for d, data in target.blobs.items():
        with open(os.path.join(path, "blobs", "sha256", d.split(":", 1)[1]), "wb") as f:
            f.write(data)
    data = target.index_bytes if isinstance(target, MultiImage) else target.manifest_bytes
    entry = {
        "mediaType": target.media_type,
        "digest": sha(data),
        "size": len(data),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [entry]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
