"""The media types of image documents and blobs, OCI and Docker schema2, and what kind each is.

The predicates ignore media-type parameters (``; charset=utf-8``), which
registries sometimes add to ``Content-Type``.
"""

from __future__ import annotations

from ..errors import NotImplementedYet, quote

__all__ = [
    "CONTAINERD_CHECKPOINT",
    "CONTAINERD_CHECKPOINT_CONFIG",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_FOREIGN_LAYER_GZIP",
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
    "OCI_LAYER_ENCRYPTED",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_GZIP_ENCRYPTED",
    "OCI_LAYER_NONDIST",
    "OCI_LAYER_NONDIST_GZIP",
    "OCI_LAYER_NONDIST_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "diff_compression",
    "is_config",
    "is_index",
    "is_known",
    "is_known_config",
    "is_layer",
    "is_manifest",
    "is_non_distributable",
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
OCI_LAYER_ENCRYPTED = OCI_LAYER + "+encrypted"
OCI_LAYER_GZIP_ENCRYPTED = OCI_LAYER_GZIP + "+encrypted"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# containerd's checkpoint blobs: configs as far as garbage-collection labels go
CONTAINERD_CHECKPOINT = "application/vnd.containerd.container.criu.checkpoint.criu.tar"
CONTAINERD_CHECKPOINT_CONFIG = "application/vnd.containerd.container.checkpoint.config.v1+proto"

_INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
_SCHEMA1 = frozenset({DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED})
# Docker layer types, compared without "+suffix" wrappings such as +encrypted
_DOCKER_LAYERS = frozenset(
    {DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP}
)
_OCI_LAYER_PREFIX = "application/vnd.oci.image.layer."


def _base(media_type: str) -> str:
    """Without parameters."""
    return media_type.split(";", 1)[0].strip()


def _split(media_type: str) -> tuple[str, list[str]]:
    """The type before any ``+suffix`` and the suffixes, sorted (``+gzip+encrypted``)."""
    base, *ext = _base(media_type).split("+")
    return base, sorted(ext)


def is_index(media_type: str) -> bool:
    """An OCI index or a Docker manifest list."""
    return _base(media_type) in _INDEXES


def is_manifest(media_type: str) -> bool:
    """An OCI image manifest or a Docker schema2 manifest (schema 1 is not one: see :func:`is_schema1`)."""
    return _base(media_type) in _MANIFESTS


def is_config(media_type: str) -> bool:
    """An image config an image's platform and rootfs are read from."""
    return _base(media_type) in _CONFIGS


def is_known_config(media_type: str) -> bool:
    """A config for garbage-collection purposes: image configs and containerd's checkpoint configs."""
    return is_config(media_type) or _base(media_type) in (CONTAINERD_CHECKPOINT, CONTAINERD_CHECKPOINT_CONFIG)


def is_layer(media_type: str) -> bool:
    """Any OCI layer type (whatever its compression or wrapping) and the Docker layer types."""
    base = _base(media_type)
    return base.startswith(_OCI_LAYER_PREFIX) or _split(base)[0] in _DOCKER_LAYERS


def is_non_distributable(media_type: str) -> bool:
    """Layers a registry does not serve (fetched from their ``urls`` if at all)."""
    base = _base(media_type)
    return base.startswith(
        ("application/vnd.oci.image.layer.nondistributable.", "application/vnd.docker.image.rootfs.foreign.")
    )


def is_schema1(media_type: str) -> bool:
    """Docker's legacy schema 1 manifests, signed or not, which we refuse."""
    return _base(media_type) in _SCHEMA1


def is_known(media_type: str) -> bool:
    """A type this module knows what to do with: index, manifest, config or layer."""
    return is_index(media_type) or is_manifest(media_type) or is_known_config(media_type) or is_layer(media_type)


def diff_compression(media_type: str) -> str:
    """How a layer is compressed: ``gzip``, ``zstd``, ``""`` (none, or wrapped) or ``unknown``.

    ``unknown`` is for Docker's uncompressed types, which tools have been known
    to use for compressed layers, so the reader must sniff.  Raises
    NotImplementedYet for what is not a layer.
    """
    base, ext = _split(media_type)
    if base in (DOCKER_LAYER, DOCKER_FOREIGN_LAYER):
        return "" if ext else "unknown"
    if base in (DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER_GZIP):
        return "" if ext else "gzip"
    if base == DOCKER_LAYER_ZSTD:
        return "" if ext else "zstd"
    if base in (OCI_LAYER, OCI_LAYER_NONDIST):
        if ext and ext[-1] in ("gzip", "zstd"):
            return ext[-1]
        return ""
    raise NotImplementedYet(f"unrecognised layer media type {quote(media_type)}")
