"""Reading a file of a container's root filesystem as the container would see it, without ever leaving it.

The rootfs is hostile input: /etc/passwd may be a symlink to
``/../../etc/shadow``, to an absolute host path, or a device node.  Names
are resolved one component at a time from a file descriptor of the root,
each component opened with ``O_PATH | O_NOFOLLOW`` so that nothing is
followed without being looked at:

* a symlink is read from its own descriptor and its target resolved as in a
  chroot — an absolute target starts again at the root, and ``..`` at the
  root stays at the root (so ``/../../etc/shadow`` is the rootfs's own
  /etc/shadow, never the host's);
* only a regular file is opened for reading, and it is opened through the
  ``O_PATH`` descriptor already checked (``/proc/self/fd``), so a FIFO or a
  device node planted in the image is never opened;
* files larger than the caller's limit are refused rather than read.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Final

from ..errors import InvalidArgument, quote

__all__ = ["read_file_in_root"]

_MAX_LINKS: Final = 40  # symlinks followed in one lookup, as the kernel's ELOOP limit
_PATH_FLAGS: Final = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_MISSING: Final = (errno.ENOENT, errno.ENOTDIR)


def _open_path(root_fd: int, name: str) -> int | None:
    """An ``O_PATH`` descriptor of what ``name`` names inside the root (symlinks followed), or None if missing."""
    todo = list(reversed(name.split("/")))  # a stack: the next component is at the end
    dirs = [root_fd]  # the directories walked through; dirs[0] is the root and never closed here
    links = 0
    try:
        while True:
            while todo and todo[-1] in ("", "."):
                todo.pop()
            if not todo:
                return os.dup(dirs[-1])
            part = todo.pop()
            if part == "..":
                if len(dirs) > 1:
                    os.close(dirs.pop())
                continue
            try:
                fd = os.open(part, _PATH_FLAGS, dir_fd=dirs[-1])
            except OSError as e:
                if e.errno in _MISSING:
                    return None
                raise
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidArgument(f"{quote(name)} in the container's root: too many levels of symbolic links")
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                todo.extend(reversed(target.split("/")))
                continue
            if stat.S_ISDIR(mode):
                dirs.append(fd)
                continue
            if any(p not in ("", ".") for p in todo):  # a file where a directory should be
                os.close(fd)
                return None
            return fd
    finally:
        for fd in dirs[1:]:
            os.close(fd)


def read_file_in_root(root: str | os.PathLike[str], name: str, *, limit: int) -> bytes | None:
    """The bytes of file ``name`` (absolute, as the container sees it) inside ``root``; None if it does not exist.

    Raises InvalidArgument when the name leads to something other than a
    regular file, to a symlink loop, or to a file larger than ``limit`` bytes.
    ``root`` itself is trusted (it is the caller's path, not the image's).
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        path_fd = _open_path(root_fd, name)
    finally:
        os.close(root_fd)
    if path_fd is None:
        return None
    try:
        st = os.fstat(path_fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{quote(name)} in the container's root is not a regular file")
        if st.st_size > limit:
            raise InvalidArgument(f"{quote(name)} in the container's root is larger than {limit} bytes")
        fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(path_fd)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"{quote(name)} in the container's root is larger than {limit} bytes")
    return data
