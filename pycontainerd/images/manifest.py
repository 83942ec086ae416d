"""Parsing image documents (indexes, manifests, configs) that arrive from outside.

Registries and archives are hostile: sizes are capped before parsing, every
field is type-checked, a document must be the kind its descriptor says (its
own ``mediaType``, when present, must agree), and every failure is one
:class:`~pycontainerd.errors.InvalidArgument` saying what is wrong, or
NotImplementedYet for Docker schema 1 — never a KeyError from deep inside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import platforms
from ..content import validate_digest
from ..errors import InvalidArgument, NotImplementedYet, quote
from ..limits import Limits, current, exceeded
from . import Descriptor
from . import mediatypes as mt

__all__ = [
    "MAX_CONFIG_SIZE",
    "MAX_MANIFEST_SIZE",
    "ImageConfig",
    "Index",
    "Manifest",
    "parse_config",
    "parse_descriptor",
    "parse_index",
    "parse_manifest",
]

# The default bounds (pycontainerd.limits.Limits, configurable): containerd's limit on manifests and
# indexes from a registry (remotes/docker.MaxManifestSize: "4 * 1048 * 1048", so a little over 4 MiB),
# checked before a document is read whole; containerd sets none for configs, ours keeps a hostile one
# from filling memory.  The parsers apply the limits in force (pycontainerd.limits.current()).
MAX_MANIFEST_SIZE = Limits.max_manifest_size
MAX_CONFIG_SIZE = Limits.max_config_size
_MAX_SIZE = (1 << 63) - 1  # a Go int64, what every other implementation reads sizes into


@dataclass(frozen=True)
class Index:
    """An OCI image index or Docker manifest list: one manifest (or index) per platform."""

    schema_version: int
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """An OCI image manifest or Docker schema2 manifest: a config and layers, bottom first."""

    schema_version: int
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageConfig:
    """What the store needs of an image config; ``raw`` keeps the whole document for the rest."""

    platform: platforms.Platform
    diff_ids: tuple[str, ...]
    raw: Mapping[str, Any]


def _schema1(detail: str) -> NotImplementedYet:
    return NotImplementedYet(f"Docker schema 1 manifests are not supported: {detail}")


def _check_text(doc: object, what: str) -> None:
    """Refuse lone UTF-16 surrogates (``"\\ud800"``), which JSON allows and nothing downstream can encode."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument(f"{what}: a string is not valid Unicode") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _load(data: bytes, what: str, key: str) -> dict[str, Any]:
    limit: int = getattr(current(), key)
    if len(data) > limit:
        raise exceeded(f"{what}: {len(data)} bytes", key, limit)
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what}: not UTF-8") from None
    except RecursionError:
        raise InvalidArgument(f"{what}: JSON nested too deeply") from None
    except ValueError as e:
        raise InvalidArgument(f"{what}: malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: expected a JSON object, got {type(doc).__name__}")
    _check_text(doc, what)
    return doc


def _annotations(obj: Any, what: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise InvalidArgument(f"{what}: annotations must map strings to strings")
    return dict(obj)


def _list(doc: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{what}: {key} must be a list, not {type(value).__name__}")
    return value


def parse_descriptor(obj: Any, what: str = "descriptor") -> Descriptor:
    """An OCI descriptor object; ``what`` names it in errors (``manifest layer 3``)."""
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    media_type, digest, size = obj.get("mediaType", ""), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str):
        raise InvalidArgument(f"{what}: mediaType must be a string")
    if not isinstance(digest, str):
        raise InvalidArgument(f"{what}: digest must be a string")
    try:
        validate_digest(digest)
    except InvalidArgument as e:
        raise InvalidArgument(f"{what}: {e}") from None
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_SIZE:
        raise InvalidArgument(f"{what}: size must be an integer from 0 to 2^63-1")
    platform = None
    if obj.get("platform") is not None:
        try:
            platform = platforms.from_oci(obj["platform"])
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e}") from None
    urls = _list(obj, "urls", what)
    if not all(isinstance(u, str) for u in urls):
        raise InvalidArgument(f"{what}: urls must be a list of strings")
    return Descriptor(media_type, digest, size, _annotations(obj.get("annotations"), what), platform, tuple(urls))


def _open(data: bytes, media_type: str, what: str, kind: str) -> tuple[dict[str, Any], str]:
    """The document as an object after the checks indexes and manifests share; and its media type."""
    if mt.is_schema1(media_type):
        raise _schema1(media_type)
    wanted = mt.is_index if kind == "index" else mt.is_manifest
    a_kind = "an index" if kind == "index" else "a manifest"
    if media_type and not wanted(media_type):
        raise InvalidArgument(f"{what}: {quote(media_type)} is not {a_kind} media type")
    doc = _load(data, what, "max_manifest_size")
    declared = doc.get("mediaType", "")
    if not isinstance(declared, str):
        raise InvalidArgument(f"{what}: mediaType must be a string")
    version = doc.get("schemaVersion")
    if mt.is_schema1(declared):
        raise _schema1(declared)
    if "fsLayers" in doc:
        raise _schema1(f"the {what} has fsLayers")
    if version == 1 and not isinstance(version, bool):
        raise _schema1(f"the {what} has schemaVersion 1")
    base = media_type.split(";", 1)[0].strip()
    if declared and media_type and declared.split(";", 1)[0].strip() != base:
        raise InvalidArgument(
            f"{what}: the document says mediaType {quote(declared)}, its descriptor {quote(media_type)}"
        )
    if declared and not media_type and not wanted(declared):
        raise InvalidArgument(f"{what}: the document's mediaType {quote(declared)} is not {a_kind} media type")
    if kind == "manifest" and "manifests" in doc:
        raise InvalidArgument(f"{what}: expected a manifest but found an index")
    if kind == "index" and ("config" in doc or "layers" in doc):
        raise InvalidArgument(f"{what}: expected an index but found a manifest")
    if version != 2 or isinstance(version, bool):
        raise InvalidArgument(f"{what}: schemaVersion must be 2, not {json.dumps(version)}")
    return doc, base or declared


def parse_index(data: bytes, media_type: str) -> Index:
    """An OCI index or Docker manifest list described as ``media_type`` ("" to trust the document)."""
    what = "index"
    doc, media_type = _open(data, media_type, what, "index")
    entries = _list(doc, "manifests", what)
    manifests = tuple(parse_descriptor(e, f"{what} entry {i}") for i, e in enumerate(entries))
    return Index(2, media_type, manifests, _annotations(doc.get("annotations"), what))


def parse_manifest(data: bytes, media_type: str) -> Manifest:
    """An OCI image manifest or Docker schema2 manifest described as ``media_type`` ("" to trust the document)."""
    what = "manifest"
    doc, media_type = _open(data, media_type, what, "manifest")
    if doc.get("config") is None:
        raise InvalidArgument(f"{what}: no config")
    config = parse_descriptor(doc["config"], f"{what} config")
    layers = tuple(parse_descriptor(x, f"{what} layer {i}") for i, x in enumerate(_list(doc, "layers", what)))
    return Manifest(2, media_type, config, layers, _annotations(doc.get("annotations"), what))


def parse_config(data: bytes) -> ImageConfig:
    """The parts of an image config the store needs: its platform and the layers' diff ids."""
    what = "image config"
    doc = _load(data, what, "max_config_size")
    try:
        platform = platforms.from_oci(doc)
    except InvalidArgument as e:
        raise InvalidArgument(f"{what}: {e}") from None
    rootfs = doc.get("rootfs")
    if rootfs is None:
        rootfs = {}
    if not isinstance(rootfs, dict):
        raise InvalidArgument(f"{what}: rootfs must be an object")
    diff_ids = _list(rootfs, "diff_ids", f"{what} rootfs")
    for i, d in enumerate(diff_ids):
        if not isinstance(d, str):
            raise InvalidArgument(f"{what}: rootfs.diff_ids must be a list of digests")
        try:
            validate_digest(d)
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: diff id {i}: {e}") from None
    return ImageConfig(platform, tuple(diff_ids), doc)
