"""Fuzz target: the parsers of image documents (indexes, manifests, configs) and what reads a config.

An input is a selector byte, a media type byte, then a JSON document.  The
selector picks the parser: an index, a manifest, an image config, the
children of a document (:func:`pycontainerd.images.walk.children`), or a
config's ``config`` object turned into a container's process
(:func:`pycontainerd.oci.image.with_image_config`, its ``User`` resolved in
a rootfs holding /etc/passwd and /etc/group, and the stop signal).
Invariants: only :class:`~pycontainerd.errors.ContainerdError` leaves, a
document that parses keeps its promises (descriptors with valid digests
and sizes, diff ids that are digests), and parsing takes less than
:data:`DEADLINE` seconds.

Run standalone: ``python -m tests.reliability.fuzz.fuzz_documents [libFuzzer flags] [CORPUS]``.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import time
from pathlib import Path

from tests import ocibuild

from ._harness import instrumented, main

with instrumented():
    from pycontainerd.content import validate_digest
    from pycontainerd.errors import ContainerdError
    from pycontainerd.images import Descriptor, walk
    from pycontainerd.images import mediatypes as mt
    from pycontainerd.images.manifest import parse_config, parse_index, parse_manifest
    from pycontainerd.oci.image import image_stop_signal, with_image_config
    from pycontainerd.oci.spec import default_spec

__all__ = ["DEADLINE", "one_input", "seeds"]

DEADLINE = 5.0
MEDIA_TYPES = (
    "",
    mt.OCI_INDEX,
    mt.OCI_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    mt.DOCKER_MANIFEST,
    mt.OCI_CONFIG,
    mt.DOCKER_CONFIG,
    mt.OCI_LAYER_GZIP,
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
)
KINDS = ("index", "manifest", "config", "children", "process")


@functools.cache
def _rootfs() -> Path:
    d = Path(tempfile.mkdtemp(prefix="fuzz-documents-"))
    atexit.register(shutil.rmtree, d, True)
    (d / "etc").mkdir()
    (d / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (d / "etc" / "group").write_text("root:x:0:\nwheel:x:10:app\napp:x:1000:\n")
    return d


def _check_descriptors(descs: tuple[Descriptor, ...] | list[Descriptor]) -> None:
    for d in descs:
        validate_digest(d.digest)
        assert 0 <= d.size < 1 << 63, d


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    kind = KINDS[data[0] % len(KINDS)]
    media_type = MEDIA_TYPES[data[1] % len(MEDIA_TYPES)]
    doc = data[2:]
    start = time.monotonic()
    try:
        if kind == "index":
            _check_descriptors(parse_index(doc, media_type).manifests)
        elif kind == "manifest":
            m = parse_manifest(doc, media_type)
            _check_descriptors([m.config, *m.layers])
        elif kind == "config":
            c = parse_config(doc)
            for d in c.diff_ids:
                validate_digest(d)
        elif kind == "children":
            _check_descriptors(walk.children(Descriptor(media_type, ocibuild.sha(doc), len(doc)), doc))
        else:
            raw = parse_config(doc).raw.get("config")
            spec = default_spec("default", "fuzz")
            config = raw if isinstance(raw, dict) else None
            with_image_config(config, rootfs=_rootfs())(spec)
            image_stop_signal(config)
            json.dumps(spec)  # what goes to the runtime must still be JSON
    except ContainerdError:
        pass
    took = time.monotonic() - start
    assert took < DEADLINE, f"parsing took {took:.1f} s"


def seeds() -> dict[str, bytes]:
    """Real documents: the index, manifests and configs of images built from busybox, OCI and Docker."""
    files = {"bin/busybox": b"\x7fELF" + bytes(64), "etc/hostname": b"fuzz\n"}
    oci = ocibuild.multi([("amd64", ""), ("arm64", "v8")], [files])
    docker = ocibuild.image([files], docker=True, config={"User": "app:wheel", "Env": ["A=1"], "StopSignal": "SIGINT"})
    out: dict[str, bytes] = {}

    def put(name: str, kind: str, media_type: str, doc: bytes) -> None:
        out[name] = bytes([KINDS.index(kind), MEDIA_TYPES.index(media_type)]) + doc

    put("oci-index", "index", mt.OCI_INDEX, oci.index_bytes)
    put("oci-index-children", "children", mt.OCI_INDEX, oci.index_bytes)
    put("oci-manifest", "manifest", mt.OCI_MANIFEST, oci.images[0].manifest_bytes)
    put("oci-manifest-children", "children", mt.OCI_MANIFEST, oci.images[1].manifest_bytes)
    put("docker-manifest", "manifest", mt.DOCKER_MANIFEST, docker.manifest_bytes)
    for digest, blob in [*oci.images[0].blobs.items(), *docker.blobs.items()]:
        if blob.startswith(b"{") and b'"rootfs"' in blob:
            put(f"config-{digest[7:19]}", "config", "", blob)
            put(f"process-{digest[7:19]}", "process", "", blob)
    put("schema1", "manifest", "", json.dumps({"schemaVersion": 1, "fsLayers": [], "name": "x"}).encode())
    put("nested", "index", "", b'{"manifests":' + b"[" * 5000 + b"]" * 5000 + b"}")
    return out


if __name__ == "__main__":
    main(one_input, seeds)
