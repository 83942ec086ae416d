"""Parsing image documents (indexes, manifests, configs) that arrive from outside.

Registries and archives are hostile: every field is type-checked, sizes are
capped, a document's own ``mediaType`` must agree with the descriptor that
led to it, and every failure is one :class:`~pycontainerd.errors.InvalidArgument`
(or NotImplementedYet for Docker schema 1) saying what is wrong, never a
KeyError from deep inside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import platforms
from ..content import validate_digest
from ..errors import ContainerdError, InvalidArgument, NotImplementedYet
from . import Descriptor
from . import mediatypes as mt

__all__ = [
    "MAX_MANIFEST_SIZE",
    "ImageConfig",
    "Index",
    "Manifest",
    "parse_config",
    "parse_descriptor",
    "parse_index",
    "parse_manifest",
]

# containerd refuses manifests and indexes over 4 MiB; so do we, before reading them whole.
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 16 << 20


@dataclass(frozen=True)
class Index:
    schema_version: int
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageConfig:
    platform: platforms.Platform
    diff_ids: tuple[str, ...]
    raw: Mapping[str, Any]


def _load(data: bytes, what: str, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise InvalidArgument(f"{what}: {len(data)} bytes, over the limit of {limit}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what}: malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    return doc


def _str_map(obj: Any, what: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items()):
        raise InvalidArgument(f"{what}: annotations must map strings to strings")
    return dict(obj)


def parse_descriptor(obj: Any, what: str = "descriptor") -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what}: expected an object")
    media_type, digest, size = obj.get("mediaType", ""), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str):
        raise InvalidArgument(f"{what}: mediaType must be a string")
    if not isinstance(digest, str):
        raise InvalidArgument(f"{what}: digest must be a string")
    try:
        validate_digest(digest)
    except ContainerdError as e:
        raise InvalidArgument(f"{what}: {e}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{what}: size must be a non-negative integer")
    platform = None
    if obj.get("platform") is not None:
        try:
            platform = platforms.from_oci(obj["platform"])
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e}") from None
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidArgument(f"{what}: urls must be a list of strings")
    return Descriptor(media_type, digest, size, _str_map(obj.get("annotations"), what), platform, tuple(urls))


def _check_type(doc: dict[str, Any], media_type: str, what: str) -> str:
    declared = doc.get("mediaType", "")
    if not isinstance(declared, str):
        raise InvalidArgument(f"{what}: mediaType must be a string")
    if declared and media_type and mt.is_schema1(declared):
        raise NotImplementedYet(f"{what}: Docker schema 1 manifests are not supported")
    if declared and media_type and declared.split(";")[0] != media_type.split(";", maxsplit=1)[0]:
        raise InvalidArgument(f"{what}: the document says mediaType {declared!r}, its descriptor {media_type!r}")
    version = doc.get("schemaVersion")
    if version == 1:
        raise NotImplementedYet(f"{what}: Docker schema 1 manifests are not supported")
    if version != 2:
        raise InvalidArgument(f"{what}: schemaVersion must be 2, not {version!r}")
    return declared or media_type


def parse_index(data: bytes, media_type: str) -> Index:
    """An OCI index or Docker manifest list."""
    what = "index"
    if mt.is_schema1(media_type):
        raise NotImplementedYet(f"{media_type}: Docker schema 1 manifests are not supported")
    doc = _load(data, what, MAX_MANIFEST_SIZE)
    declared = _check_type(doc, media_type, what)
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"{what}: manifests must be a list")
    manifests = tuple(parse_descriptor(e, f"{what} entry {i}") for i, e in enumerate(entries))
    return Index(2, declared, manifests, _str_map(doc.get("annotations"), what))


def parse_manifest(data: bytes, media_type: str) -> Manifest:
    """An OCI image manifest or Docker schema2 manifest."""
    what = "manifest"
    if mt.is_schema1(media_type):
        raise NotImplementedYet(f"{media_type}: Docker schema 1 manifests are not supported")
    doc = _load(data, what, MAX_MANIFEST_SIZE)
    declared = _check_type(doc, media_type, what)
    if "config" not in doc:
        raise InvalidArgument(f"{what}: no config")
    config = parse_descriptor(doc["config"], f"{what} config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"{what}: layers must be a list")
    parsed = tuple(parse_descriptor(x, f"{what} layer {i}") for i, x in enumerate(layers))
    return Manifest(2, declared, config, parsed, _str_map(doc.get("annotations"), what))


def parse_config(data: bytes) -> ImageConfig:
    """The parts of an image config the store needs: platform and layer diff ids."""
    what = "image config"
    doc = _load(data, what, MAX_CONFIG_SIZE)
    try:
        platform = platforms.from_oci(doc)
    except InvalidArgument as e:
        raise InvalidArgument(f"{what}: {e}") from None
    rootfs = doc.get("rootfs") or {}
    if not isinstance(rootfs, dict):
        raise InvalidArgument(f"{what}: rootfs must be an object")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidArgument(f"{what}: rootfs.diff_ids must be a list of digests")
    return ImageConfig(platform, tuple(diff_ids), doc)
