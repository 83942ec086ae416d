"""Records and role protocols of the content store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Info:
    """What is known about one committed blob."""

    digest: str
    size: int
    created_at: datetime
    updated_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    """Progress of one ingest."""

    ref: str
    offset: int
    total: int
    expected: str
    started_at: datetime
    updated_at: datetime


@runtime_checkable
class ReaderAt(Protocol):
    """Random access to one blob; close it when done."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset``; fewer only at the end of the blob."""
        ...

    def close(self) -> None: ...


class Provider(Protocol):
    def reader_at(self, digest: str) -> ReaderAt:
        """Open a committed blob.  Raises NotFound."""
        ...


class Manager(Protocol):
    def info(self, digest: str) -> Info:
        """Raises NotFound."""
        ...

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Replace labels: all of them, or only ``labels`` / ``labels.<key>`` paths given."""
        ...

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        """Every blob matching any of ``filters`` (containerd filter syntax)."""
        ...

    def delete(self, digest: str) -> None:
        """Raises NotFound."""
        ...


class Writer(Protocol):
    """An open ingest.  Exactly one writer may hold a ref at a time."""

    def write(self, data: bytes) -> int: ...

    def digest(self) -> str:
        """The digest of what has been written so far."""
        ...

    def status(self) -> Status: ...

    def truncate(self, size: int) -> None:
        """Only ``0`` is supported: restart the ingest from scratch."""
        ...

    def commit(self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None) -> str:
        """Turn the ingest into a blob; returns its digest.

        ``size``/``expected`` of 0/"" skip the check.  Raises FailedPrecondition
        when they do not match (the ingest is kept: reopen it with ``writer(ref)``
        to resume, or abort it) and AlreadyExists when the blob is already there
        (the ingest is removed).  Whatever the outcome, the writer is closed.
        """
        ...

    def close(self) -> None:
        """Release the ref; the ingest stays and can be resumed."""
        ...


@runtime_checkable
class Following(Protocol):
    """A writer whose data can be read while it is being written (a local ingest file).

    The reader sees what has been written so far and nothing is checked
    yet: only for consumers that verify what they read themselves (an
    unpack checks each layer's diffID).
    """

    def reader(self) -> ReaderAt:
        """A reader of the ingest's data as it grows; its ``size`` is meaningless."""
        ...


class Ingester(Protocol):
    def writer(self, ref: str, total: int = 0, expected: str = "") -> Writer:
        """Open (or resume) the ingest ``ref``.

        Raises Unavailable when another writer holds ``ref`` and AlreadyExists
        when ``expected`` is already a committed blob.
        """
        ...


class IngestManager(Protocol):
    def status(self, ref: str) -> Status:
        """Raises NotFound."""
        ...

    def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]: ...

    def abort(self, ref: str) -> None:
        """Remove the ingest; raises NotFound."""
        ...


class Store(Provider, Manager, Ingester, IngestManager, Protocol):
    """All four roles together."""
