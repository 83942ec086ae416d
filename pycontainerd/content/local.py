"""The local content store: blobs as files in one directory tree.

This is the physical store under the daemon's
``<root>/io.containerd.content.v1.content/``, laid out as containerd's so the
two can read each other's blobs::

    blobs/<algorithm>/<hex>   committed blobs, mode 0444, mtime = created,
                              atime = updated (only our utime moves it: we
                              read with O_NOATIME)
    ingest/<sha256 of ref>/   one ingest in progress (see ``_ingest``)

Crash safety comes from rename: data is fsynced in the ingest, then renamed
into ``blobs/`` and the directory fsynced, so a kill at any point leaves a
whole blob or a resumable ingest, never a partial blob.

The store has no namespaces, leases or garbage collection; the metadata
wrapper adds those.  Labels are kept only when a :class:`LabelStore` is given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, quote
from ..filters import Adaptor, adapt_labels, parse
from ..identifiers import validate_labels
from ._digest import validate_digest
from ._ingest import (
    TMP_PREFIX,
    LocalWriter,
    blob_path,
    ingest_dir,
    lock_ref,
    open_ingest,
    read_status,
    to_datetime,
    unlock_ref,
    validate_ref,
)
from ._reader import LocalReaderAt, from_oserror
from ._types import Info, Status

__all__ = ["LabelStore", "LocalReaderAt", "LocalStore", "LocalWriter", "MemoryLabelStore"]

_ALGORITHMS = ("sha256", "sha384", "sha512")
_STALE_TMP_SECONDS = 3600


class LabelStore(Protocol):
    """Where the local store keeps blob labels, which the files cannot hold."""

    def get(self, digest: str) -> dict[str, str]:
        """The labels of ``digest``; empty when it has none."""
        ...

    def set(self, digest: str, labels: Mapping[str, str]) -> None:
        """Replace all labels of ``digest``."""
        ...

    def delete(self, digest: str) -> None:
        """Forget ``digest``; no error when it had no labels."""
        ...


class MemoryLabelStore:
    """Labels in a dict: for tests and stores that need not survive a restart."""

    def __init__(self) -> None:
        self._labels: dict[str, dict[str, str]] = {}
        self._mu = threading.Lock()

    def get(self, digest: str) -> dict[str, str]:
        with self._mu:
            return dict(self._labels.get(digest, {}))

    def set(self, digest: str, labels: Mapping[str, str]) -> None:
        with self._mu:
            if labels:
                self._labels[digest] = dict(labels)
            else:
                self._labels.pop(digest, None)

    def delete(self, digest: str) -> None:
        with self._mu:
            self._labels.pop(digest, None)


class LocalStore:
    """A :class:`~pycontainerd.content.Store` on a local directory."""

    def __init__(self, root: Path, labels: LabelStore | None = None) -> None:
        self.root = Path(root).absolute()
        self._blobs = self.root / "blobs"
        self._ingests = self.root / "ingest"
        self._labels = labels
        try:
            self._blobs.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._ingests.mkdir(mode=0o755, exist_ok=True)
        except OSError as exc:
            raise from_oserror(exc, f"create content store at {self.root}") from exc
        self.remove_stale_tmp()

    def remove_stale_tmp(self, older_than: float = _STALE_TMP_SECONDS) -> None:
        """Ingests half-made by a killed process; old ones only, unless the caller knows no other process writes here."""
        cutoff = time.time() - older_than
        with contextlib.suppress(OSError), os.scandir(self._ingests) as entries:
            for e in entries:
                if e.name.startswith(TMP_PREFIX) and e.stat(follow_symlinks=False).st_mtime < cutoff:
                    shutil.rmtree(e.path, ignore_errors=True)

    # -- Provider and Manager -------------------------------------------------

    def info(self, digest: str) -> Info:
        return self._info(digest, self._stat(digest))

    def _stat(self, digest: str) -> os.stat_result:
        try:
            return os.stat(blob_path(self._blobs, digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        except OSError as exc:
            raise from_oserror(exc, f"content {digest}") from exc

    def _info(self, digest: str, st: os.stat_result, labels: Mapping[str, str] | None = None) -> Info:
        if labels is None:
            labels = self._labels.get(digest) if self._labels is not None else {}
        return Info(
            digest=digest,
            size=st.st_size,
            created_at=to_datetime(st.st_mtime_ns),
            updated_at=to_datetime(st.st_atime_ns),
            labels=labels,
        )

    def reader_at(self, digest: str) -> LocalReaderAt:
        path = blob_path(self._blobs, digest)
        try:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
            except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
                fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        except OSError as exc:
            raise from_oserror(exc, f"open blob {digest}") from exc
        return LocalReaderAt(fd)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Labels only, as containerd: they are the one mutable part of a blob."""
        if self._labels is None:
            raise FailedPrecondition("update not supported on immutable content store")
        new = validate_labels(info.labels)
        st = self._stat(info.digest)
        if not fieldpaths:
            labels = new
        else:
            labels = self._labels.get(info.digest)
            for fp in fieldpaths:
                if fp == "labels":
                    labels = dict(new)
                elif fp.startswith("labels."):
                    key = fp[len("labels.") :]
                    labels.pop(key, None)
                    if new.get(key):
                        labels[key] = new[key]
                else:
                    raise InvalidArgument(f"cannot update {quote(fp)} field on content info {quote(info.digest)}")
        labels = {k: v for k, v in labels.items() if v}
        self._labels.set(info.digest, labels)
        now = time.time_ns()
        with contextlib.suppress(OSError):
            os.utime(blob_path(self._blobs, info.digest), ns=(now, st.st_mtime_ns))
        return Info(
            digest=info.digest,
            size=st.st_size,
            created_at=to_datetime(st.st_mtime_ns),
            updated_at=to_datetime(now),
            labels=labels,
        )

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        """Lazily, so a walk over a large store streams; bad filters fail at the call."""
        flt = parse(filters)

        def gen() -> Iterator[Info]:
            for algo in _ALGORITHMS:
                try:
                    entries = sorted(os.scandir(self._blobs / algo), key=lambda e: e.name)
                except FileNotFoundError:
                    continue
                for e in entries:
                    digest = f"{algo}:{e.name}"
                    try:
                        validate_digest(digest)
                        st = e.stat(follow_symlinks=False)
                    except (InvalidArgument, FileNotFoundError):
                        continue  # a stray file, or deleted while we walked
                    info = self._info(digest, st)
                    if flt.match(_info_adaptor(info)):
                        yield info

        return gen()

    def totals(self) -> tuple[int, int]:
        """How many blobs the store holds and their bytes on disk (for metrics; no digest is checked)."""
        count = size = 0
        for algo in _ALGORITHMS:
            try:
                entries = os.scandir(self._blobs / algo)
            except FileNotFoundError:
                continue
            with entries:
                for e in entries:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    count += 1
                    size += st.st_size
        return count, size

    def delete(self, digest: str) -> None:
        path = blob_path(self._blobs, digest)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        except OSError as exc:
            raise from_oserror(exc, f"delete content {digest}") from exc
        if self._labels is not None:
            self._labels.delete(digest)

    # -- Ingester and IngestManager ---------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str = "") -> LocalWriter:
        validate_ref(ref)
        if expected:
            validate_digest(expected)
        if total < 0:
            raise InvalidArgument(f"negative total {total} for ref {ref}")
        path = ingest_dir(self._ingests, ref)
        lock_ref(str(path), ref)
        try:
            if expected and blob_path(self._blobs, expected).exists():
                raise AlreadyExists(f"content {expected}: already exists")
            return open_ingest(
                path, ref, total=total, expected=expected, blobs_root=self._blobs, set_labels=self._set_labels
            )
        except BaseException:
            unlock_ref(str(path))
            raise

    def _set_labels(self, digest: str, labels: Mapping[str, str]) -> None:
        if self._labels is not None:
            self._labels.set(digest, labels)

    def status(self, ref: str) -> Status:
        return read_status(ingest_dir(self._ingests, validate_ref(ref)))

    def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]:
        flt = parse(filters)
        out: list[Status] = []
        try:
            entries = sorted(os.scandir(self._ingests), key=lambda e: e.name)
        except OSError as exc:
            raise from_oserror(exc, "list ingests") from exc
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                st = read_status(Path(e.path))
            except NotFound:
                continue  # committed or aborted while we listed, or broken
            if flt.match(_status_adaptor(st)):
                out.append(st)
        return out

    def abort(self, ref: str) -> None:
        """Remove the ingest even while a writer holds it, as containerd does; its commit then fails."""
        path = ingest_dir(self._ingests, validate_ref(ref))
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            raise NotFound(f"ingest ref {quote(ref)}: not found") from None
        except OSError as exc:
            raise from_oserror(exc, f"abort ingest {quote(ref)}") from exc


def _info_adaptor(info: Info) -> Adaptor:
    """Filter fields of a blob: ``digest``, ``size``, ``labels.<key>``."""

    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "digest":
            return info.digest
        if path[0] == "size":
            return str(info.size)
        if path[0] == "labels":
            return adapt_labels(path[1:], info.labels)
        return None

    return field


def _status_adaptor(st: Status) -> Adaptor:
    """Filter fields of an ingest: ``ref`` and ``expected``."""

    def field(path: Sequence[str]) -> str | None:
        if len(path) != 1:
            return None
        if path[0] == "ref":
            return st.ref
        if path[0] == "expected":
            return st.expected or None
        return None

    return field
