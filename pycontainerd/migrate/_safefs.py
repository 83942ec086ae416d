"""Read-only access to a directory tree that may have been tampered with.

A Docker data root is hostile input: any name inside it may be a symbolic
link, a device, a huge file, or a path that climbs out.  :class:`SafeDir`
holds a directory by file descriptor and reaches everything below it one
component at a time with ``O_NOFOLLOW``, so no symbolic link is ever
followed and no ``..`` is ever taken; files are opened ``O_RDONLY`` (and
``O_NOATIME`` where allowed), so reading leaves the tree as it was.  Every
failure is a :mod:`pycontainerd.errors` error whose message names the path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

from ..errors import ContainerdError, InvalidArgument, NotFound, PermissionDenied, Unknown, quote

__all__ = ["SafeDir", "clean_name", "os_error"]

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_NOATIME: Final = getattr(os, "O_NOATIME", 0)


def os_error(path: Path | str, exc: OSError) -> ContainerdError:
    """One of our errors for ``exc`` met at ``path``: symbolic links and missing files said plainly."""
    where = quote(str(path))
    if exc.errno == errno.ELOOP:
        return InvalidArgument(f"{where}: is a symbolic link")
    if exc.errno == errno.ENOTDIR:
        return InvalidArgument(f"{where}: a component is not a directory (or is a symbolic link)")
    if exc.errno == errno.ENOENT:
        return NotFound(f"{where}: no such file or directory")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{where}: permission denied")
    return Unknown(f"{where}: {exc.strerror or exc}")


def clean_name(name: bytes | str) -> tuple[str, ...]:
    """The components of a relative name, ``.`` and empty ones dropped and ``..`` resolved lexically.

    A leading ``/`` means the top of the tree, as tar-split's file getter
    treats it.  :class:`InvalidArgument` when ``..`` would climb above the top
    or a component holds a NUL byte.
    """
    raw = os.fsdecode(name)
    if "\0" in raw:
        raise InvalidArgument(f"{quote(raw)}: a NUL byte in a path")
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArgument(f"{quote(raw)}: escapes its directory")
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


class SafeDir:
    """A directory held open read-only; ``path`` is only for messages.

    Close it (or use it as a context manager) to release the descriptor.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def open(cls, path: Path) -> SafeDir:
        """``path`` itself may be reached through links (the user named it); nothing below it is."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise os_error(path, exc) from exc
        return cls(fd, path)

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def where(self, parts: tuple[str, ...]) -> Path:
        return self.path.joinpath(*parts)

    def _walk(self, parts: tuple[str, ...]) -> int:
        """A new descriptor of the directory ``parts`` (the caller closes it)."""
        fd = os.dup(self._fd)
        try:
            for i, part in enumerate(parts):
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise os_error(self.where(parts[: i + 1]), exc) from exc
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def subdir(self, *parts: str) -> SafeDir:
        """The directory ``parts`` below this one, held open on its own."""
        return SafeDir(self._walk(parts), self.where(parts))

    def exists(self, *parts: str) -> bool:
        """Whether ``parts`` names anything (a link counts; nothing is followed; a missing directory on the way: no)."""
        try:
            parent = self._walk(parts[:-1])
        except NotFound:
            return False
        try:
            os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise os_error(self.where(parts), exc) from exc
        finally:
            os.close(parent)
        return True

    def lstat(self, *parts: str) -> os.stat_result:
        parent = self._walk(parts[:-1])
        try:
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise os_error(self.where(parts), exc) from exc
        finally:
            os.close(parent)

    def is_dir(self, *parts: str) -> bool:
        """True for a real directory; False when missing; a link or any other type is False too."""
        try:
            return stat.S_ISDIR(self.lstat(*parts).st_mode)
        except NotFound:
            return False

    def listdir(self, *parts: str) -> list[str]:
        """The names in directory ``parts``, sorted (so reports come out in a stable order)."""
        fd = self._walk(parts)
        try:
            return sorted(os.listdir(fd))
        except OSError as exc:
            raise os_error(self.where(parts), exc) from exc
        finally:
            os.close(fd)

    def open_file(self, *parts: str) -> int:
        """A read-only descriptor of the regular file ``parts``; anything else is :class:`InvalidArgument`."""
        if not parts:
            raise InvalidArgument(f"{quote(str(self.path))}: is a directory")
        parent = self._walk(parts[:-1])
        try:
            return self.open_file_in(parent, parts)
        finally:
            os.close(parent)

    def walk(self, *parts: str) -> int:
        """A new descriptor of the directory ``parts``, reached as :meth:`open_file` reaches one (the caller closes it).

        For a reader of many files in few directories: one walk per
        directory, then :meth:`open_file_in` for each file in it.
        """
        return self._walk(parts)

    def open_file_in(self, parent: int, parts: tuple[str, ...]) -> int:
        """:meth:`open_file` of ``parts``, whose directory the caller holds open as ``parent`` (from :meth:`walk`).

        The name is looked at before it is opened: opening a device node can
        act on the device (as opening a FIFO can hang, which ``O_NONBLOCK``
        prevents), so anything but a regular file is refused unopened.  The
        descriptor is checked again after the open, for a name replaced
        between the two.
        """
        name = parts[-1]
        try:
            kind = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
            if stat.S_ISLNK(kind):
                raise InvalidArgument(f"{quote(str(self.where(parts)))}: is a symbolic link")
            if not stat.S_ISREG(kind):
                raise InvalidArgument(f"{quote(str(self.where(parts)))}: not a regular file")
            try:
                fd = os.open(name, _FILE_FLAGS | _NOATIME, dir_fd=parent)
            except PermissionError:
                fd = os.open(name, _FILE_FLAGS, dir_fd=parent)  # O_NOATIME needs ownership or CAP_FOWNER
        except OSError as exc:
            raise os_error(self.where(parts), exc) from exc
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise InvalidArgument(f"{quote(str(self.where(parts)))}: not a regular file")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_small(self, *parts: str, limit: int) -> bytes:
        """The whole of a regular file of at most ``limit`` bytes."""
        fd = self.open_file(*parts)
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise InvalidArgument(f"{quote(str(self.where(parts)))}: {size} bytes, more than the {limit} allowed")
            chunks = []
            got = 0
            while chunk := os.read(fd, min(1 << 20, limit + 1 - got)):
                chunks.append(chunk)
                got += len(chunk)
                if got > limit:
                    raise InvalidArgument(f"{quote(str(self.where(parts)))}: grew past the {limit} bytes allowed")
            return b"".join(chunks)
        except OSError as exc:
            raise os_error(self.where(parts), exc) from exc
        finally:
            os.close(fd)
