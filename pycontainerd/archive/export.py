"""Write images to a tar archive: an OCI image layout, or Docker's ``docker save`` format.

The OCI layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) keeps
every blob byte for byte, multi-platform indexes included, so an export
imported again yields the same digests.  Beside it goes Docker's
``manifest.json`` for each image that has a manifest for the wanted platform,
as containerd writes it, so ``docker load`` and skopeo's ``docker-archive:``
read the same file.  ``docker`` format is that ``manifest.json`` and
``repositories`` alone, with one platform per image.

Tar headers are fixed (owner root, mode 0644, time 0): the same images give
the same archive.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from .. import platforms
from ..content import Provider, open_blob
from ..errors import InvalidArgument, NotFound
from ..images import Descriptor, Image, walk
from ..images import mediatypes as mt
from ..reference import parse_normalized
from ..transfer.progress import Progress, ProgressFunc, Throttle, discard, ref_key
from ._names import familiar, oci_ref_name

__all__ = ["ExportOptions", "export"]

IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ExportOptions:
    format: Literal["oci", "docker"] = "oci"
    matcher: platforms.Matcher = field(default_factory=platforms.default_matcher)
    docker_manifest: bool = True  # with the OCI layout, also Docker's manifest.json
    progress: ProgressFunc = discard


def _blob_path(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


class _Writer:
    """A tar stream that holds each blob once."""

    def __init__(self, out: BinaryIO, progress: ProgressFunc = discard) -> None:
        self._progress = progress
        self._tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self._written: set[str] = set()
        self._dirs: set[str] = set()

    def _info(self, name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size
        info.type = kind
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.mtime = 0
        info.uname = info.gname = ""
        return info

    def directory(self, name: str) -> None:
        if name not in self._dirs:
            self._dirs.add(name)
            self._tar.addfile(self._info(name, 0, tarfile.DIRTYPE))

    def file(self, name: str, data: bytes) -> None:
        self._tar.addfile(self._info(name, len(data)), io.BytesIO(data))

    def blob(self, provider: Provider, desc: Descriptor, image: str = "") -> str:
        path = _blob_path(desc.digest)
        if desc.digest in self._written:
            return path
        self._written.add(desc.digest)
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.directory("/".join(parts[:i]))
        name, throttle = ref_key(desc), Throttle()

        def on_read(offset: int) -> None:
            if throttle.due():
                self._progress(Progress("exporting", name, progress=offset, total=desc.size, desc=desc))

        try:
            f = open_blob(provider, desc.digest, on_read)
        except NotFound:
            raise NotFound(
                f"{image or 'image'}: {desc.digest} ({desc.media_type}) is not in the content store;"
                " pull the platforms you export first"
            ) from None
        with f:
            self._tar.addfile(self._info(path, desc.size), f)
        self._progress(Progress("complete", name, progress=desc.size, total=desc.size, desc=desc))
        return path

    def close(self) -> None:
        self._tar.close()


def _docker_entry(provider: Provider, w: _Writer, image: Image, matcher: platforms.Matcher) -> dict[str, object]:
    mdesc, manifest = walk.manifest_for(provider, image.target, matcher)
    layers = [w.blob(provider, layer, image.name) for layer in manifest.layers]
    config = w.blob(provider, manifest.config, image.name)
    w.blob(provider, mdesc, image.name)
    name = familiar(image.name)
    return {"Config": config, "RepoTags": [name] if "@" not in name else [], "Layers": layers}


def export(provider: Provider, images: Sequence[Image], out: BinaryIO, opts: ExportOptions | None = None) -> None:
    """Write ``images`` and the content they need (for the wanted platforms) to ``out``."""
    opts = opts or ExportOptions()
    if not images:
        raise InvalidArgument("nothing to export: name at least one image")
    for image in images:
        parse_normalized(image.name)  # an export must be importable under the same name
    w = _Writer(out, opts.progress)
    try:
        docker: list[dict[str, object]] = []
        if opts.format == "oci":
            w.file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            entries = []
            for image in images:
                for desc in walk.walk(provider, image.target, opts.matcher):
                    w.blob(provider, desc, image.name)
                annotations = {IMAGE_NAME_ANNOTATION: image.name}
                ref_name = oci_ref_name(image.name)
                if ref_name:
                    annotations[REF_NAME_ANNOTATION] = ref_name
                entry: dict[str, object] = {
                    "mediaType": image.target.media_type,
                    "digest": image.target.digest,
                    "size": image.target.size,
                    "annotations": annotations,
                }
                entries.append(entry)
                if opts.docker_manifest:
                    with contextlib.suppress(NotFound):  # no manifest for the platform: the OCI layout has it all
                        docker.append(_docker_entry(provider, w, image, opts.matcher))
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
            w.file("index.json", json.dumps(index, separators=(",", ":")).encode())
        else:
            repositories: dict[str, dict[str, str]] = {}
            for image in images:
                entry = _docker_entry(provider, w, image, opts.matcher)
                docker.append(entry)
                name = familiar(image.name)
                repo, _, tag = name.rpartition(":")
                if repo and "/" not in tag:
                    config = str(entry["Config"])
                    repositories.setdefault(repo, {})[tag] = config.rsplit("/", 1)[-1]
            w.file("repositories", json.dumps(repositories, separators=(",", ":")).encode())
        if docker:
            w.file("manifest.json", json.dumps(docker, separators=(",", ":")).encode())
    finally:
        w.close()
