"""Docker's view of a containerd image record: the platform in use, its config, and the documents read.

A record's target may be an index of many platforms; the one in use is
resolved once per view (see :meth:`ImageService._resolve_target`).  The
documents on the way are read through a cache keyed by digest, good for
ever since digests name content.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pycontainerd import platforms
from pycontainerd.content import Provider, ReaderAt, read_blob
from pycontainerd.errors import InvalidArgument
from pycontainerd.images import Descriptor, Image
from pycontainerd.images.manifest import Manifest
from pycontainerd.reference import Reference

from ._refs import is_dangling, parse_docker

__all__ = ["Documents", "Group", "ImageView", "Resolved", "config_labels", "parse_time", "rfc3339"]

_ZERO_TIME = "0001-01-01T00:00:00Z"


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]

    def close(self) -> None:
        pass


class Documents:
    """The content store as a Provider that keeps the documents it reads (indexes, manifests, configs).

    Blobs are named by digest, so a copy is good for ever; what is missing is
    asked again each time, as a later pull may bring it.
    """

    def __init__(self, store: Provider, budget: int = 64 << 20) -> None:
        self._store = store
        self._budget = budget
        self._used = 0
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def read(self, digest: str) -> bytes:
        with self._lock:
            data = self._blobs.get(digest)
        if data is None:
            data = read_blob(self._store, digest)
            with self._lock:
                if self._used + len(data) > self._budget:
                    self._blobs.clear()
                    self._used = 0
                self._blobs[digest] = data
                self._used += len(data)
        return data

    def forget(self, digest: str) -> None:
        """Drop a blob this daemon deleted itself (one platform of an image), so it is asked for again."""
        with self._lock:
            data = self._blobs.pop(digest, None)
            if data is not None:
                self._used -= len(data)

    def reader_at(self, digest: str) -> ReaderAt:
        return _BytesReader(self.read(digest))


@dataclass(frozen=True)
class Resolved:
    """What a target shows on the platform in use."""

    manifest_desc: Descriptor
    manifest: Manifest
    config_digest: str
    config: Mapping[str, Any]
    platform: platforms.Platform
    size: int


@dataclass(frozen=True)
class ImageView:
    """One image record as Docker sees it."""

    record: Image
    resolved: Resolved

    @property
    def id(self) -> str:
        return self.resolved.config_digest

    @property
    def dangling(self) -> bool:
        return is_dangling(self.record.name, self.record.target.digest)

    @property
    def reference(self) -> Reference | None:
        if self.dangling:
            return None
        try:
            return parse_docker(self.record.name)
        except InvalidArgument:
            return None


@dataclass
class Group:
    """The records sharing one image ID."""

    views: list[ImageView] = field(default_factory=list)

    @property
    def first(self) -> ImageView:
        return self.views[0]

    @property
    def named(self) -> list[ImageView]:
        return [v for v in self.views if v.reference is not None]


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time from an image config (nanoseconds cut to what Python keeps)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rfc3339(t: datetime | None) -> str:
    if t is None:
        return _ZERO_TIME
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def config_labels(config: Mapping[str, Any]) -> dict[str, str]:
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, Mapping) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}
