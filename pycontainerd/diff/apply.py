"""Apply a layer (a tar change set, compressed or not) to a directory.

:func:`apply_layer` streams the blob once: it decompresses it, hashes the
uncompressed bytes (every byte, end blocks and trailing padding included, so
the digest is the layer's diffID) and extracts each entry as the
:class:`~pycontainerd.diff._tarparse.TarParser` yields it.

Whiteouts follow the OCI image spec.  In :attr:`WhiteoutMode.DELETE` the
target holds the lower layers' files: ``.wh.<name>`` removes ``<name>``, and
``.wh..wh..opq`` empties its directory of everything this layer did not put
there (wherever in the tar the marker comes).  In
:attr:`WhiteoutMode.OVERLAY` the target is a fresh overlayfs upper directory:
whiteouts become 0/0 character devices and opaque markers the
``trusted.overlay.opaque=y`` attribute, and ``parents`` (the lower
directories, highest first) are read to resolve names through the merged
view.

Nothing outside the root is ever created or changed; see
:mod:`pycontainerd.diff._fsroot` for how names are resolved.  Metadata is
applied in the order that keeps it: owner, then extended attributes
(``chown`` drops ``security.capability``), then mode (``chown`` drops
setuid), then times; directories' times last of all, after their contents.
Hard links take no metadata of their own: they share their target's inode.
"""

from __future__ import annotations

import enum
import errno
import io
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, cast

from ..errors import ContainerdError, FailedPrecondition, InvalidArgument, ResourceExhausted, quote
from ..limits import Limits, current, exceeded
from ._fsroot import OPAQUE_XATTR, FsRoot, split_name
from ._prefetch import Prefetcher
from ._tarparse import NEED_DATA, EntryType, TarEntry, TarParser
from .compression import Compression, decompressed_chunks, from_media_type, sniff

__all__ = ["ApplyResult", "WhiteoutMode", "apply_layer"]

WHITEOUT_PREFIX: Final = ".wh."
OPAQUE_MARKER: Final = ".wh..wh..opq"
_CHUNK: Final = 1 << 20
_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class WhiteoutMode(enum.Enum):
    DELETE = "delete"
    OVERLAY = "overlay"


@dataclass(frozen=True)
class ApplyResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # bytes of the uncompressed tar
    compressed_size: int | None = None  # of the blob as read, when it was compressed


class _Counting(io.RawIOBase):
    """A reader of ``head`` (bytes already read from ``raw``) then of ``raw``, counting it all.

    The compressed blob is not hashed here: the content store checked its
    digest when it was written, and the diffID check covers what is applied.
    """

    def __init__(self, raw: BinaryIO, head: bytes = b"") -> None:
        self.raw = raw
        self.head = head
        self.size = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.head:
            data, self.head = self.head[: len(buffer)], self.head[len(buffer) :]
            n = len(data)
            buffer[:n] = data
            return n
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.size += n
        return n


def _read_head(raw: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        more = raw.read(n - len(head))
        if not more:
            break
        head += more
    return head


def _fs_error(name: str, e: OSError) -> ContainerdError:
    what = f"apply layer: {quote(name)}: {e.strerror or e}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE):
        return ResourceExhausted(what)
    return FailedPrecondition(what)


class _Extractor:
    """Applies entries, one call per event of the parser."""

    def __init__(self, fs: FsRoot, mode: WhiteoutMode) -> None:
        self.fs = fs
        self.mode = mode
        self.dirs: list[tuple[list[str], int, int]] = []  # directory times, applied at the end
        self.unpacked: set[tuple[str, ...]] = set()  # physical paths this layer wrote, and their ancestors
        self.file_fd = -1
        self.file_entry: TarEntry | None = None
        self.file_chown = True  # whether the open file still needs its owner set
        self.file_chmod = True  # ... and its mode
        self.left = 0  # data bytes the current entry still expects
        # A new file is created with its final mode where the umask leaves it whole, and not chowned when it
        # is already ours: two system calls fewer for most files.  A setgid directory hands its group to new
        # files, so whether each directory is one is remembered (by physical path, forgotten on removals).
        self.umask = _umask()
        self.owner = (os.geteuid(), os.getegid())
        self.setgid: dict[tuple[str, ...], bool] = {}

    # -- driving -----------------------------------------------------------

    def entry(self, e: TarEntry) -> None:
        try:
            self._entry(e)
        except OSError as err:
            raise _fs_error(e.name, err) from None

    def data(self, chunk: memoryview) -> None:
        self.left -= len(chunk)
        if self.file_fd >= 0:
            entry = self.file_entry
            assert entry is not None
            try:
                while chunk:
                    n = os.write(self.file_fd, chunk)
                    chunk = chunk[n:]
                if not self.left:
                    self._finish_file()  # forgets the entry, and may still fail (a refused xattr)
            except OSError as err:
                raise _fs_error(entry.name, err) from None

    def close(self) -> None:
        if self.file_fd >= 0:
            os.close(self.file_fd)
            self.file_fd = -1

    def finish(self) -> None:
        """Set the directories' times, now that nothing more is written into them."""
        for parts, atime, mtime in self.fs.copied_up + self.dirs:
            name = "/".join(parts)
            self.fs.release()
            try:
                found = self.fs.directory(parts[:-1], create=False, entry=name)
                if found is None:
                    continue
                st = os.stat(parts[-1], dir_fd=found[0], follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.utime(parts[-1], ns=(atime, mtime), dir_fd=found[0], follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed by a later entry
            except OSError as err:
                raise _fs_error(name, err) from None

    # -- entries -----------------------------------------------------------

    def _entry(self, e: TarEntry) -> None:
        self.left = e.size
        self.fs.release()
        parts = split_name(e.name)
        if not parts:
            return  # the root itself: its metadata belongs to whoever made the target
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(e, parts)
            return
        found = self.fs.directory(parts[:-1], create=True, entry=e.name)
        assert found is not None
        dir_fd, phys = found
        if self.mode is WhiteoutMode.DELETE:
            self._mark((*phys, base))
        t = e.type
        if t is EntryType.REG:
            self._regular(e, dir_fd, base, phys)
            return
        if t is EntryType.DIR:
            self._directory(e, dir_fd, base, parts)
            self.setgid.pop((*phys, base), None)  # its mode is the entry's now
            return
        if t is EntryType.LINK:
            self._hardlink(e, dir_fd, base, parts)
            return
        self._replace(dir_fd, base)  # invalidates the cache if what it removed could lie on a resolution
        if t is EntryType.SYMLINK:
            os.symlink(e.linkname, base, dir_fd=dir_fd)
        elif t is EntryType.FIFO:
            os.mkfifo(base, 0o600, dir_fd=dir_fd)
        else:
            kind = stat.S_IFCHR if t is EntryType.CHAR else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(e.devmajor, e.devminor), dir_fd=dir_fd)
        self._metadata(e, dir_fd, base, symlink=t is EntryType.SYMLINK)

    def _mark(self, path: tuple[str, ...]) -> None:
        unpacked = self.unpacked
        while path and path not in unpacked:
            unpacked.add(path)
            path = path[:-1]

    def _replace(self, dir_fd: int, base: str) -> None:
        """Clear the way for a new non-directory ``base``."""
        self._remove(dir_fd, base)

    def _remove(self, dir_fd: int, name: str) -> None:
        self.fs.remove(dir_fd, name)
        self.setgid.clear()  # a directory removed may come back with other bits

    def _in_setgid(self, dir_fd: int, phys: tuple[str, ...]) -> bool:
        known = self.setgid.get(phys)
        if known is None:
            known = self.setgid[phys] = bool(os.fstat(dir_fd).st_mode & stat.S_ISGID)
        return known

    def _regular(self, e: TarEntry, dir_fd: int, base: str, phys: tuple[str, ...]) -> None:
        # Special bits must come after the owner (chown drops them), and the umask would cut others short.
        exact = not (e.mode & ~0o777 or e.mode & self.umask)
        mode = e.mode if exact else 0o600
        try:
            fd = os.open(base, _FILE_FLAGS, mode, dir_fd=dir_fd)
        except FileExistsError:
            self._replace(dir_fd, base)
            fd = os.open(base, _FILE_FLAGS, mode, dir_fd=dir_fd)
        self.file_fd = fd
        self.file_entry = e
        self.file_chmod = not exact
        self.file_chown = (e.uid, e.gid) != self.owner or self._in_setgid(dir_fd, phys)
        if not e.size:
            self._finish_file()

    def _finish_file(self) -> None:
        fd, e = self.file_fd, self.file_entry
        assert e is not None
        self.file_fd = -1
        self.file_entry = None
        try:
            if self.file_chown:
                os.fchown(fd, e.uid, e.gid)
            for key, value in e.xattrs.items():
                os.setxattr(fd, key, value)
            if self.file_chmod:
                os.fchmod(fd, e.mode)
            atime = e.mtime_ns if e.atime_ns is None else e.atime_ns
            os.utime(fd, ns=(atime, e.mtime_ns))
        finally:
            os.close(fd)

    def _directory(self, e: TarEntry, dir_fd: int, base: str, parts: list[str]) -> None:
        try:
            # A name that did not exist lies on no cached resolution: nothing to invalidate.
            os.mkdir(base, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self._replace(dir_fd, base)
                os.mkdir(base, 0o700, dir_fd=dir_fd)
                self.fs.invalidate()
                if self.mode is WhiteoutMode.OVERLAY and _is_whiteout(st):
                    # this layer whited the name out and made it again: nothing below shows through
                    os.setxattr(f"/proc/self/fd/{dir_fd}/{base}", OPAQUE_XATTR, b"y", follow_symlinks=False)
        self._metadata(e, dir_fd, base, directory=True)
        atime = e.mtime_ns if e.atime_ns is None else e.atime_ns
        self.dirs.append((parts, atime, e.mtime_ns))

    def _hardlink(self, e: TarEntry, dir_fd: int, base: str, parts: list[str]) -> None:
        target = split_name(e.linkname)
        if not target:
            raise InvalidArgument(f"tar entry {quote(e.name)}: hard link to the root directory")
        if target == parts:
            raise InvalidArgument(f"tar entry {quote(e.name)}: hard link to itself")
        found = self.fs.directory(target[:-1], create=False, entry=e.name)
        st = None
        if found is not None:
            try:
                st = os.stat(target[-1], dir_fd=found[0], follow_symlinks=False)
            except FileNotFoundError:
                pass
        if (found is None or st is None) and self.mode is WhiteoutMode.OVERLAY:
            # Only a lower layer has it: copied up, as a link through the mounted overlay would.  The fds
            # handed out for this entry stay open until the next one, whatever the copy-up's walk retires.
            copied = self._copy_up(e, target)
            if copied is not None:
                found, st = (copied[0], ()), copied[1]
        if found is None or st is None or (self.mode is WhiteoutMode.OVERLAY and _is_whiteout(st)):
            raise InvalidArgument(
                f"tar entry {quote(e.name)}: hard link target {quote(e.linkname)} does not exist in the layer"
            )
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"tar entry {quote(e.name)}: hard link target {quote(e.linkname)} is a directory")
        try:
            os.link(target[-1], base, src_dir_fd=found[0], dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            self._replace(dir_fd, base)
            os.link(target[-1], base, src_dir_fd=found[0], dst_dir_fd=dir_fd, follow_symlinks=False)

    def _copy_up(self, e: TarEntry, target: list[str]) -> tuple[int, os.stat_result] | None:
        """Copy a lower layer's file into the upper directory, so a hard link can share it (as overlayfs would).

        Returns the upper directory's fd and the copy's lstat; None when no
        lower layer shows the name.  Regular files and symlinks only.
        """
        lower = self.fs.lower_entry(target, e.name)
        if lower is None:
            return None
        dir_fd, lower_dir, lst = lower
        name = target[-1]
        try:
            if stat.S_ISREG(lst.st_mode):
                src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=lower_dir)
                try:
                    dst = os.open(name, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
                    try:
                        left = lst.st_size
                        while left > 0:
                            n = os.copy_file_range(src, dst, min(left, 1 << 30))
                            if n == 0:
                                break
                            left -= n
                        os.fchown(dst, lst.st_uid, lst.st_gid)
                        _copy_xattrs(src, dst)
                        os.fchmod(dst, stat.S_IMODE(lst.st_mode))
                        os.utime(dst, ns=(lst.st_atime_ns, lst.st_mtime_ns))
                    finally:
                        os.close(dst)
                finally:
                    os.close(src)
            elif stat.S_ISLNK(lst.st_mode):
                os.symlink(os.readlink(name, dir_fd=lower_dir), name, dir_fd=dir_fd)
                os.chown(name, lst.st_uid, lst.st_gid, dir_fd=dir_fd, follow_symlinks=False)
                os.utime(name, ns=(lst.st_atime_ns, lst.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
            else:
                raise InvalidArgument(
                    f"tar entry {quote(e.name)}: hard link target {quote(e.linkname)} in a lower layer "
                    "is neither a file nor a symlink"
                )
        finally:
            os.close(lower_dir)
        return dir_fd, os.stat(name, dir_fd=dir_fd, follow_symlinks=False)

    def _metadata(self, e: TarEntry, dir_fd: int, base: str, *, symlink: bool = False, directory: bool = False) -> None:
        os.chown(base, e.uid, e.gid, dir_fd=dir_fd, follow_symlinks=False)
        if e.xattrs:
            path = f"/proc/self/fd/{dir_fd}/{base}"
            for key, value in e.xattrs.items():
                try:
                    os.setxattr(path, key, value, follow_symlinks=False)
                except PermissionError:
                    # user.* attributes exist only on files and directories
                    if not (key.startswith("user.") and not directory):
                        raise
        if not symlink:
            os.chmod(base, e.mode, dir_fd=dir_fd)
            if directory:
                return
        atime = e.mtime_ns if e.atime_ns is None else e.atime_ns
        os.utime(base, ns=(atime, e.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    # -- whiteouts ---------------------------------------------------------

    def _whiteout(self, e: TarEntry, parts: list[str]) -> None:
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX) and base != OPAQUE_MARKER:
            return  # aufs bookkeeping (.wh..wh.plnk and the like): nothing to apply
        overlay = self.mode is WhiteoutMode.OVERLAY
        if base == OPAQUE_MARKER:
            found = self.fs.directory(parts[:-1], create=True, entry=e.name)
            assert found is not None
            dir_fd, phys = found
            if overlay:
                os.setxattr(dir_fd, OPAQUE_XATTR, b"y")
                self.fs.invalidate()
            else:
                self._mark(phys)
                self._empty_lower(dir_fd, phys)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"tar entry {quote(e.name)}: invalid whiteout")
        found = self.fs.directory(parts[:-1], create=overlay, entry=e.name)
        if found is None:
            return  # nothing there to delete
        dir_fd, phys = found
        # A whiteout hides what lower layers have, never what this layer itself put at the name
        # (whichever comes first in the tar): what this layer made there stays, emptied of the rest.
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False) if _exists(name, dir_fd) else None
        if overlay:
            if st is None:
                os.mknod(name, stat.S_IFCHR, 0, dir_fd=dir_fd)
                self.fs.invalidate()
            elif stat.S_ISDIR(st.st_mode):
                os.setxattr(f"/proc/self/fd/{dir_fd}/{name}", OPAQUE_XATTR, b"y", follow_symlinks=False)
                self.fs.invalidate()
            return
        path = (*phys, name)
        if path not in self.unpacked:
            self._remove(dir_fd, name)
        elif st is not None and stat.S_ISDIR(st.st_mode):
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                self._empty_lower(sub, path)
            finally:
                os.close(sub)

    def _empty_lower(self, dir_fd: int, phys: tuple[str, ...]) -> None:
        """Remove what is in the directory but was not written by this layer (an opaque marker, DELETE mode)."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            with os.scandir(fd) as it:
                children = [(d.name, d.is_dir(follow_symlinks=False)) for d in it]
            for name, is_dir in children:
                path = (*phys, name)
                if path not in self.unpacked:
                    self._remove(fd, name)
                elif is_dir:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    try:
                        self._empty_lower(sub, path)
                    finally:
                        os.close(sub)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: every mode is set explicitly


def _copy_xattrs(src: int, dst: int) -> None:
    """Extended attributes of file ``src`` onto ``dst``, but overlayfs' own."""
    for key in os.listxattr(src):
        if not key.startswith("trusted.overlay."):
            os.setxattr(dst, key, os.getxattr(src, key))


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def apply_layer(
    root: Path,
    layer: BinaryIO | Iterable[bytes],
    *,
    media_type: str = "",
    whiteouts: WhiteoutMode = WhiteoutMode.DELETE,
    parents: Sequence[Path] = (),
    expected_diff_id: str | None = None,
    limits: Limits | None = None,
) -> ApplyResult:
    """Extract the layer blob ``layer`` into the directory ``root``; the diffID and sizes read.

    The compression comes from ``media_type``, or from the blob's first
    bytes when the type does not say.  ``layer`` may also be an iterable of
    an *uncompressed* tar stream's chunks (a stream made here, not read from
    a store), consumed on the reader thread as they come, with no copy.

    Raises InvalidArgument for a damaged or hostile layer (naming the
    entry) and when the diffID is not ``expected_diff_id``; FailedPrecondition / ResourceExhausted when the
    file system refuses a change; ResourceExhausted when the layer oversteps
    ``limits`` (default: the process's, :func:`pycontainerd.limits.current`).
    On error the target is left part-applied: the caller removes it.
    """
    lim = limits or current()
    counted: _Counting | None = None
    source: BinaryIO | Iterator[bytes]
    head = b""
    compression = Compression.NONE
    if not hasattr(layer, "read"):
        source, first = iter(layer), b""
    else:
        layer = cast(BinaryIO, layer)
        named = from_media_type(media_type)
        if named is None:
            head = _read_head(layer, 4)
        compression = named if named is not None else sniff(head)
        source, first = layer, head
    if compression is not Compression.NONE:
        layer = cast(BinaryIO, layer)
        counted = _Counting(layer, head)
        source, first = decompressed_chunks(cast(BinaryIO, counted), compression), b""
    parser = TarParser(lim)
    max_size, max_ratio, floor, size = lim.max_layer_size, lim.max_ratio, lim.ratio_floor, 0
    with (
        FsRoot(root, parents, overlay=whiteouts is WhiteoutMode.OVERLAY) as fs,
        Prefetcher(source, first) as chunks,
    ):
        ex = _Extractor(fs, whiteouts)
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    raise exceeded(f"layer: more than {max_size} bytes uncompressed", "max_layer_size", max_size)
                if max_ratio and counted is not None and size > floor and size > max_ratio * counted.size:
                    raise exceeded(
                        f"layer: {size} bytes uncompressed from {counted.size} compressed", "max_ratio", max_ratio
                    )
                if parser.done:
                    continue  # the end blocks are behind us; the rest is only hashed
                parser.feed(chunk)
                while True:
                    ev = parser.next_event()
                    if ev is NEED_DATA:
                        break
                    if isinstance(ev, memoryview):
                        ex.data(ev)
                    elif isinstance(ev, TarEntry):
                        ex.entry(ev)
            parser.end_of_input()
            ex.finish()
        finally:
            ex.close()
    if counted is not None:
        while counted.read(_CHUNK):
            pass  # whatever follows the compressed stream still belongs to the blob
    diff_id = "sha256:" + chunks.hash.hexdigest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise InvalidArgument(f"diffID mismatch: expected {expected_diff_id}, got {diff_id}")
    if counted is None:
        return ApplyResult(diff_id=diff_id, size=chunks.size)
    return ApplyResult(diff_id=diff_id, size=chunks.size, compressed_size=counted.size)
