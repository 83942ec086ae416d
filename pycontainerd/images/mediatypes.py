"""The media types of image documents and blobs, OCI and Docker schema2, and what kind each is."""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LAYER_ZSTD",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1_MANIFEST",
    "DOCKER_SCHEMA1_SIGNED",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDIST",
    "OCI_LAYER_NONDIST_GZIP",
    "OCI_LAYER_NONDIST_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "is_config",
    "is_index",
    "is_known",
    "is_layer",
    "is_manifest",
    "is_schema1",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

_INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
_LAYERS = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDIST,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_ZSTD,
        DOCKER_FOREIGN_LAYER,
    }
)


def _base(media_type: str) -> str:
    """Without parameters (``; charset=...``), which registries sometimes add."""
    return media_type.split(";", 1)[0].strip()


def is_index(media_type: str) -> bool:
    return _base(media_type) in _INDEXES


def is_manifest(media_type: str) -> bool:
    return _base(media_type) in _MANIFESTS


def is_config(media_type: str) -> bool:
    return _base(media_type) in _CONFIGS


def is_layer(media_type: str) -> bool:
    """Known layer types, and any OCI layer variant (``...image.layer.v1.tar+<compression>``)."""
    base = _base(media_type)
    return base in _LAYERS or base.startswith("application/vnd.oci.image.layer.")


def is_schema1(media_type: str) -> bool:
    return _base(media_type) in (DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED)


def is_known(media_type: str) -> bool:
    return is_index(media_type) or is_manifest(media_type) or is_config(media_type) or is_layer(media_type)
