"""Ingests of the local content store: their directory format and the writer.

One ingest is one directory, ``ingest/<sha256 of ref>/``, so any ref, however
hostile, maps to a fixed-length name inside the root::

    ref        the client's ref, to map the directory back and detect collisions
    data       the bytes received so far; its size is the offset, its mtime
               the last update
    startedat  RFC 3339 time the ingest began (containerd writes the same)
    total      expected size in decimal, when the client gave one
    expected   expected digest, when the client gave one (ours only)

A new ingest is assembled in ``ingest/.tmp-*`` and renamed into place, so it
is never seen half-made; the small files are replaced by rename afterwards.
They are not fsynced: if a power cut spoils them the ingest reads as broken
and is started again, which only costs a retransfer.  Only commit syncs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    quote,
)
from ..identifiers import validate_labels
from ._digest import Digester, validate_digest
from ._reader import LocalReaderAt, from_oserror
from ._types import Status

MAX_REF = 1024
TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20
_NS = 1_000_000_000
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")

SetLabels = Callable[[str, Mapping[str, str]], None]


def validate_ref(ref: str) -> str:
    """Refs are free-form but become file contents and log lines; refuse the unusable."""
    if not ref:
        raise InvalidArgument("ref must not be empty")
    if "\x00" in ref:
        raise InvalidArgument("ref must not contain NUL")
    if len(ref.encode()) >= MAX_REF:
        raise InvalidArgument(f"ref {quote(ref[:32])}... longer than {MAX_REF - 1} bytes")
    return ref


def ingest_dir(ingest_root: Path, ref: str) -> Path:
    return ingest_root / hashlib.sha256(ref.encode()).hexdigest()


def blob_path(blobs_root: Path, digest: str) -> Path:
    algo, _, hexpart = validate_digest(digest).partition(":")
    return blobs_root / algo / hexpart


def to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch, exact to the microsecond (float seconds are not)."""
    return datetime.fromtimestamp(ns // _NS, UTC) + timedelta(microseconds=(ns % _NS) // 1000)


def format_time(ns: int) -> str:
    return f"{datetime.fromtimestamp(ns // _NS, UTC):%Y-%m-%dT%H:%M:%S}.{ns % _NS:09d}Z"


def parse_time(text: str) -> int:
    """RFC 3339 with up to nanoseconds, as both we and containerd write it."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"bad timestamp {quote(text)}")
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return int(base.timestamp()) * _NS + int((m.group(2) or "0").ljust(9, "0"))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_small(path: Path, text: str) -> None:
    """Replace a metadata file whole, so a reader never sees it half-written."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


# Which refs are open in this process.  Keyed by the ingest directory, so two
# LocalStore objects on one root share it and different roots do not collide.
_locks: dict[str, int] = {}
_locks_mu = threading.Lock()


def lock_ref(key: str, ref: str) -> None:
    with _locks_mu:
        since = _locks.get(key)
        if since is not None:
            held = (time.time_ns() - since) / _NS
            raise Unavailable(f"ref {ref} locked for {held:.3f}s (since {format_time(since)})")
        _locks[key] = time.time_ns()


def unlock_ref(key: str) -> None:
    with _locks_mu:
        _locks.pop(key, None)


@dataclass
class _Meta:
    ref: str
    started_ns: int
    total: int
    expected: str


def _read_meta(path: Path) -> _Meta:
    """Raises OSError or ValueError when the ingest is missing or broken."""
    total_text = _read_optional(path / "total")
    return _Meta(
        ref=(path / "ref").read_text(),
        started_ns=parse_time((path / "startedat").read_text()),
        total=int(total_text) if total_text else 0,
        expected=_read_optional(path / "expected"),
    )


def _read_optional(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def read_status(path: Path) -> Status:
    """The on-disk status of one ingest; NotFound when it is absent or unreadable."""
    try:
        st = os.stat(path / "data")
        meta = _read_meta(path)
    except (OSError, ValueError) as exc:
        raise NotFound(f"ingest {path.name}: {exc}") from exc
    return Status(
        ref=meta.ref,
        offset=st.st_size,
        total=meta.total,
        expected=meta.expected,
        started_at=to_datetime(meta.started_ns),
        updated_at=to_datetime(st.st_mtime_ns),
    )


def _create(path: Path, ref: str, total: int, expected: str) -> _Meta:
    """Build the ingest aside and rename it in, so it appears complete or not at all."""
    meta = _Meta(ref=ref, started_ns=time.time_ns(), total=total, expected=expected)
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(8)}")
    os.mkdir(tmp, 0o755)
    try:
        (tmp / "ref").write_text(ref)
        (tmp / "startedat").write_text(format_time(meta.started_ns))
        if total:
            (tmp / "total").write_text(str(total))
        if expected:
            (tmp / "expected").write_text(expected)
        (tmp / "data").touch(0o644)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _open_data(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR)
    except PermissionError:
        # Sealed read-only by a commit that was killed before its rename.
        os.chmod(path, 0o644)
        return os.open(path, os.O_RDWR)


def open_ingest(
    path: Path, ref: str, *, total: int, expected: str, blobs_root: Path, set_labels: SetLabels | None
) -> LocalWriter:
    """Resume the ingest at ``path`` or start it; the caller holds the ref lock."""
    try:
        try:
            meta = _read_meta(path)
            if meta.ref != ref or not (path / "data").is_file():
                raise ValueError("ingest does not belong to this ref")
        except (OSError, ValueError):
            # Absent, or left half-made by a crash between commit and cleanup.
            shutil.rmtree(path, ignore_errors=True)
            meta = _create(path, ref, total, expected)
        fd = _open_data(path / "data")
    except OSError as exc:
        raise from_oserror(exc, f"open ingest {quote(ref)}") from exc
    try:
        # A writer in another process keeps its flock; ours lives and dies with fd.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Unavailable(f"ref {ref} locked by another process") from None
    try:
        if total and total != meta.total:
            meta.total = total
            _write_small(path / "total", str(total))
        if expected and expected != meta.expected:
            meta.expected = expected
            _write_small(path / "expected", expected)
    except OSError as exc:
        os.close(fd)
        raise from_oserror(exc, f"update ingest {quote(ref)}") from exc
    try:
        digester = Digester(meta.expected.partition(":")[0] if meta.expected else "sha256")
        offset = 0
        while chunk := os.read(fd, _CHUNK):  # leaves fd at the end: writes append
            digester.update(chunk)
            offset += len(chunk)
        updated_ns = os.fstat(fd).st_mtime_ns
    except OSError as exc:
        os.close(fd)
        raise from_oserror(exc, f"resume ingest {quote(ref)}") from exc
    return LocalWriter(
        path,
        ref,
        fd,
        digester=digester,
        offset=offset,
        meta=meta,
        updated_ns=updated_ns,
        blobs_root=blobs_root,
        set_labels=set_labels,
    )


class LocalWriter:
    """An open ingest.  Not thread-safe: one client stream drives it."""

    def __init__(
        self,
        path: Path,
        ref: str,
        fd: int,
        *,
        digester: Digester,
        offset: int,
        meta: _Meta,
        updated_ns: int,
        blobs_root: Path,
        set_labels: SetLabels | None,
    ) -> None:
        self._path = path
        self._ref = ref
        self._fd = fd
        self._digester = digester
        self._offset = offset
        self._meta = meta
        self._updated_ns = updated_ns
        self._blobs_root = blobs_root
        self._set_labels = set_labels
        self._locked = True

    def reader(self) -> LocalReaderAt:
        """A reader of the data written so far (see :class:`~pycontainerd.content.Following`)."""
        if self._fd < 0:
            raise FailedPrecondition(f"writer for ref {self._ref} is closed")
        return LocalReaderAt(os.open(f"/proc/self/fd/{self._fd}", os.O_RDONLY | os.O_CLOEXEC))

    def write(self, data: bytes) -> int:
        """The ingest hot path: one write(2) and one hash update, no metadata."""
        if self._fd < 0:
            raise FailedPrecondition(f"writer for ref {self._ref} is closed")
        try:
            n = os.write(self._fd, data)
            while n < len(data):  # short writes are rare on regular files
                n += os.write(self._fd, memoryview(data)[n:])
        except OSError as exc:
            # Drop the unhashed tail so the file and the hash agree again.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._offset)
                os.lseek(self._fd, self._offset, os.SEEK_SET)
            raise from_oserror(exc, f"write ref {self._ref}") from exc
        self._digester.update(data)
        self._offset += n
        self._updated_ns = time.time_ns()
        return n

    def digest(self) -> str:
        return self._digester.digest()

    def status(self) -> Status:
        return Status(
            ref=self._ref,
            offset=self._offset,
            total=self._meta.total,
            expected=self._meta.expected,
            started_at=to_datetime(self._meta.started_ns),
            updated_at=to_datetime(self._updated_ns),
        )

    def truncate(self, size: int) -> None:
        if size != 0:
            raise InvalidArgument(f"truncate to {size}: only 0 is supported")
        if self._fd < 0:
            raise FailedPrecondition(f"writer for ref {self._ref} is closed")
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise from_oserror(exc, f"truncate ref {self._ref}") from exc
        self._digester = Digester(self._digester.algorithm)
        self._offset = 0
        self._updated_ns = time.time_ns()

    def commit(self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None) -> str:
        """Check, then rename the data into ``blobs/``; the writer is closed afterwards, whatever happens."""
        if expected:
            validate_digest(expected)
        checked = validate_labels(labels) if labels is not None else None
        if self._fd < 0:
            raise FailedPrecondition(f"cannot commit on closed writer for ref {self._ref}")
        fd, self._fd = self._fd, -1
        try:
            dgst, target = self._seal(fd, size, expected)
            try:
                os.rename(self._path / "data", target)
            except FileNotFoundError as exc:
                raise NotFound(f"ingest ref {quote(self._ref)} was aborted") from exc
            fsync_dir(target.parent)
            shutil.rmtree(self._path, ignore_errors=True)
        except OSError as exc:
            raise from_oserror(exc, f"commit ref {self._ref}") from exc
        finally:
            self._release()
        if checked is not None and self._set_labels is not None:
            self._set_labels(dgst, checked)
        return dgst

    def _seal(self, fd: int, size: int, expected: str) -> tuple[str, Path]:
        """Make the data durable and final in place; closes ``fd``."""
        try:
            os.fsync(fd)
            actual = os.fstat(fd).st_size
            if size > 0 and size != actual:
                raise FailedPrecondition(f"unexpected commit size {actual}, expected {size}")
            dgst = self._digester.digest()
            if expected and expected != dgst:
                raise FailedPrecondition(f"unexpected commit digest {dgst}, expected {expected}")
            target = blob_path(self._blobs_root, dgst)
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(self._path, ignore_errors=True)
                raise AlreadyExists(f"content {dgst}: already exists")
            # Times and mode are set before the rename, so the blob never
            # appears writable or with the ingest's times.
            now = time.time_ns()
            os.utime(fd, ns=(now, now))
            os.fchmod(fd, 0o444)
            return dgst, target
        finally:
            os.close(fd)

    def close(self) -> None:
        """Keep the ingest for a later resume; safe to call twice.

        No fsync: a killed process loses nothing from the page cache, and data
        spoilt by a power cut fails the digest check at commit.
        """
        fd, self._fd = self._fd, -1
        try:
            if fd >= 0:
                os.close(fd)
        finally:
            self._release()

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            unlock_ref(str(self._path))

    def __del__(self) -> None:
        # A dropped client stream must not keep its ref locked for the daemon's life.
        if getattr(self, "_locked", False):
            with contextlib.suppress(Exception):
                self.close()
