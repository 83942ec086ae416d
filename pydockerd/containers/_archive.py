"""``docker cp``: a container's files read and written through one directory fd, the way a chroot sees them.

The container's root is a directory file descriptor — its mounted snapshot
when stopped, ``/proc/<pid>/root`` of its init process when running — and
every name below it is reached one component at a time with ``O_NOFOLLOW``.
Symlinks are followed as the container would see them (an absolute target
starts again at the root, ``..`` stops at the root), so no path or link a
container made can lead a read or a write outside its root.

Reads (``GET``/``HEAD /containers/{id}/archive``) stream a tar whose entries
are named after the requested path's last component, with Docker's stat
header (:func:`stat_header`).  Writes (``PUT``) extract a tar below a
directory with :mod:`pycontainerd.diff.apply`'s extractor over an
:class:`~pycontainerd.diff._fsroot.FsRoot` of the same root; entries that
climb out of the destination, device nodes and whiteout names are refused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pycontainerd.client import Client
from pycontainerd.diff._fsroot import FsRoot
from pycontainerd.diff._tarparse import NEED_DATA, EntryType, TarEntry, TarParser
from pycontainerd.diff.apply import WhiteoutMode, _Extractor
from pycontainerd.errors import InvalidArgument, NotFound, quote
from pycontainerd.mount import mounted

from .._errors import Conflict

__all__ = [
    "STAT_HEADER",
    "ContainerRoot",
    "Found",
    "PathStat",
    "Unpacker",
    "go_file_mode",
    "parse_stat_header",
    "pseudo_mounts",
    "rebase_name",
    "stat_header",
]

STAT_HEADER: Final = "X-Docker-Container-Path-Stat"
_MAX_LINKS: Final = 40
_CHUNK: Final = 1 << 20
_PATH: Final = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

# Go's os.FileMode type bits, which the CLI decodes the stat header's mode with.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_GO_SOCKET, _GO_SETUID, _GO_SETGID, _GO_CHAR, _GO_STICKY = 1 << 24, 1 << 23, 1 << 22, 1 << 21, 1 << 20


# -- pure parts -----------------------------------------------------------


def go_file_mode(st_mode: int) -> int:
    """A POSIX ``st_mode`` as Go's ``os.FileMode`` (type bits high, permissions low)."""
    out = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    out |= {
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFLNK: _GO_SYMLINK,
        stat.S_IFIFO: _GO_PIPE,
        stat.S_IFSOCK: _GO_SOCKET,
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHAR,
    }.get(kind, 0)
    if st_mode & stat.S_ISUID:
        out |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        out |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        out |= _GO_STICKY
    return out


@dataclass(frozen=True)
class PathStat:
    """What ``docker cp`` learns of a path before copying: Docker's ``container.PathStat``."""

    name: str
    size: int
    mode: int  # Go FileMode
    mtime_ns: int
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & _GO_DIR)

    def to_json(self) -> dict[str, Any]:
        t = datetime.fromtimestamp(self.mtime_ns // 1_000_000_000, UTC)
        frac = self.mtime_ns % 1_000_000_000
        mtime = t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"
        return {"name": self.name, "size": self.size, "mode": self.mode, "mtime": mtime, "linkTarget": self.link_target}


def stat_header(ps: PathStat) -> str:
    """The ``X-Docker-Container-Path-Stat`` value: base64 of the stat's JSON."""
    return base64.b64encode(json.dumps(ps.to_json(), separators=(",", ":")).encode()).decode()


def parse_stat_header(value: str) -> dict[str, Any]:
    doc = json.loads(base64.b64decode(value))
    if not isinstance(doc, dict):
        raise ValueError("the path stat is not a JSON object")
    return doc


def clean_path(path: str) -> str:
    """``path`` as an absolute container path, ``..`` stopping at ``/``; a trailing ``/`` or ``/.`` kept.

    Docker cleans the path this way first (``filepath.Join("/", path)``),
    keeping the trailing separator or dot that asks for a directory's contents.
    """
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
        else:
            parts.append(p)
    out = "/" + "/".join(parts)
    if path.endswith("/.") or path == ".":
        out = out.rstrip("/") + "/."
    elif path.endswith("/") and out != "/":
        out += "/"
    return out


def rebase_name(path: str) -> str:
    """The name a GET's tar gives the requested path: its last component (``.`` for ``dir/.``), ``/`` as ``.``."""
    cleaned = clean_path(path)
    if cleaned.endswith("/."):
        return "."
    base = cleaned.rstrip("/").rsplit("/", 1)[-1]
    return base or "."


_PSEUDO_FS: Final = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs"})


def pseudo_mounts(mountinfo: str) -> set[str]:
    """The mount points of kernel file systems (``/proc``, ``/sys``...) in a ``/proc/<pid>/mountinfo``.

    A running container's root shows them; Docker's view of a container's
    files (its root file system and volumes) does not, so cp leaves them out.
    """
    out: set[str] = set()
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split(" ", 1)[0]
        if fstype in _PSEUDO_FS:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            if point != "/":
                out.add(point)
    return out


def dest_entry_parts(dest: list[str], name: str) -> list[str]:
    """A PUT entry's components below the root: ``dest`` + ``name``; InvalidArgument when it climbs out of dest."""
    out = list(dest)
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if len(out) <= len(dest):
                where = "/" + "/".join(dest)
                raise InvalidArgument(f"invalid tar entry {quote(name)}: it is outside of {quote(where)}")
            out.pop()
        else:
            out.append(p)
    return out


# -- the root ---------------------------------------------------------------


@dataclass
class Found:
    """A resolved path: the directory holding it (an fd the caller closes), its name there, its lstat.

    ``name`` is ``"."`` when the path is a directory reached as a whole (the
    root, or a symlink's target); ``st`` is None when the name does not exist.
    """

    dir_fd: int
    name: str
    phys: list[str]  # components of the holding directory below the root, symlinks resolved
    st: os.stat_result | None

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    @property
    def container_path(self) -> str:
        parts = self.phys if self.name == "." else [*self.phys, self.name]
        return "/" + "/".join(parts)


class ContainerRoot:
    """A container's root directory, held by fd; resolves names inside it as a chroot does."""

    def __init__(self, root_fd: int, stack: contextlib.ExitStack | None = None, hidden: set[str] | None = None) -> None:
        self.fd = root_fd
        self._stack = stack or contextlib.ExitStack()
        self.hidden = hidden or set()  # container paths left out: kernel file systems mounted there

    @classmethod
    def open(cls, client: Client, snapshotter: str, key: str, pid: int) -> ContainerRoot:
        """The root of a running container (init ``pid``) or of a stopped one's snapshot ``key``, mounted.

        Blocks; the mount (on a private temporary directory) lasts until :meth:`close`.
        """
        if pid:
            try:
                fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise Conflict(f"the container's root is not reachable: {e.strerror}") from None
            try:
                with open(f"/proc/{pid}/mountinfo") as f:
                    hidden = pseudo_mounts(f.read())
            except OSError as e:
                os.close(fd)
                raise Conflict(f"the container's mounts are not readable: {e.strerror}") from None
            return cls(fd, hidden=hidden)
        stack = contextlib.ExitStack()
        try:
            mounts = client.snapshotter(snapshotter).mounts(key)
            root = stack.enter_context(mounted(mounts))
            return cls(os.open(root, _PATH), stack)
        except BaseException:
            stack.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._stack.close()

    def resolve(self, path: str, *, follow_last: bool) -> Found:
        """Walk ``path`` from the root; NotFound when a directory on the way is missing.

        The last component is followed when it is a symlink only with
        ``follow_last`` (Docker follows it when the path ends in ``/`` or ``/.``).
        """
        todo = list(reversed([p for p in path.split("/") if p not in ("", ".")]))
        stack = [os.dup(self.fd)]
        phys: list[str] = []
        links = 0
        try:
            while todo:
                part = todo.pop()
                if part == "..":
                    if phys:
                        phys.pop()
                        os.close(stack.pop())
                    continue
                last = not todo
                try:
                    st: os.stat_result | None = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is None:
                    if last:
                        return Found(os.dup(stack[-1]), part, list(phys), None)
                    raise NotFound(f"no such directory: {'/'.join([*phys, part])}")
                if stat.S_ISLNK(st.st_mode) and (not last or follow_last):
                    links += 1
                    if links > _MAX_LINKS:
                        raise InvalidArgument(f"{path}: too many levels of symbolic links")
                    target = os.readlink(part, dir_fd=stack[-1])
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                        phys.clear()
                    todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
                if last:
                    return Found(os.dup(stack[-1]), part, list(phys), st)
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidArgument(f"{'/'.join([*phys, part])} is not a directory")
                if "/" + "/".join([*phys, part]) in self.hidden:
                    raise NotFound(f"{'/'.join([*phys, part])} is not part of the container's files")
                stack.append(os.open(part, _PATH, dir_fd=stack[-1]))
                phys.append(part)
            here = os.stat(".", dir_fd=stack[-1], follow_symlinks=False)
            return Found(os.dup(stack[-1]), ".", list(phys), here)
        except NotADirectoryError:
            raise InvalidArgument(f"{path}: not a directory") from None
        finally:
            for fd in stack:
                os.close(fd)

    def stat(self, path: str) -> tuple[PathStat, Found]:
        """Docker's stat of ``path`` and where it is.

        The caller closes the Found; NotFound when there is nothing at the path.
        """
        cleaned = clean_path(path)
        follow = cleaned.endswith("/") or cleaned.endswith("/.")
        found = self.resolve(cleaned, follow_last=follow)
        if found.st is None:
            found.close()
            raise NotFound(path)
        st = found.st
        link = ""
        if stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(NotFound, InvalidArgument, OSError):
                target = self.resolve(found.container_path, follow_last=True)
                link = target.container_path
                target.close()
        name = "/" if cleaned in ("/", "/.") else rebase_name(cleaned)
        return PathStat(name, st.st_size, go_file_mode(st.st_mode), st.st_mtime_ns, link), found

    # -- reading ----------------------------------------------------------

    def tar(self, found: Found, rebase: str) -> Iterator[bytes]:
        """The tar of what ``found`` names, its entries under ``rebase``; ends with the two zero blocks."""
        links: dict[tuple[int, int], str] = {}
        buf = bytearray()
        where = found.container_path
        for piece in self._entries(found.dir_fd, found.name, rebase, where, links):
            buf += piece
            if len(buf) >= _CHUNK:
                yield bytes(buf)
                buf.clear()
        buf += bytes(2 * tarfile.BLOCKSIZE)
        yield bytes(buf)

    def _entries(
        self, dir_fd: int, name: str, arcname: str, where: str, links: dict[tuple[int, int], str]
    ) -> Iterator[bytes]:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return  # gone while we walked (a running container)
        kind = stat.S_IFMT(st.st_mode)
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = st.st_mtime_ns // 1_000_000_000
        if kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
            if not info.name.endswith("/"):
                info.name += "/"
            yield _header(info)
            if where in self.hidden:
                return
            try:
                fd = os.open(name, _LIST, dir_fd=dir_fd)
            except OSError:
                return  # replaced or unreadable meanwhile: the directory alone
            try:
                children = sorted(os.listdir(fd))
                for child in children:
                    yield from self._entries(fd, child, info.name + child, f"{where.rstrip('/')}/{child}", links)
            finally:
                os.close(fd)
            return
        if kind == stat.S_IFLNK:
            info.type = tarfile.SYMTYPE
            try:
                info.linkname = os.readlink(name, dir_fd=dir_fd)
            except OSError:
                return
            yield _header(info)
            return
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            info.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}.get(kind, tarfile.FIFOTYPE)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield _header(info)
            return
        if kind != stat.S_IFREG:
            return  # sockets are not archived, as tar leaves them out
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            first = links.get(key)
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
                yield _header(info)
                return
            links[key] = arcname
        try:
            fd = os.open(name, _READ, dir_fd=dir_fd)
        except (FileNotFoundError, OSError):
            return  # replaced by a symlink or removed meanwhile: left out
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != key or not stat.S_ISREG(now.st_mode):
                return
            info.size = st.st_size
            yield _header(info)
            left = st.st_size
            while left:
                try:
                    data = os.read(fd, min(left, _CHUNK))
                except OSError:
                    data = b""
                if not data:  # shrank while we read, or unreadable: the header promised its size
                    yield bytes(left)
                    break
                left -= len(data)
                yield data
            yield bytes(-st.st_size % tarfile.BLOCKSIZE)
        finally:
            os.close(fd)

    # -- writing ----------------------------------------------------------

    def unpacker(self, path: str, *, no_overwrite_dir_non_dir: bool, owner: tuple[int, int] | None) -> Unpacker:
        """An extractor of a tar below the directory ``path``: NotFound if missing, 400 if not a directory."""
        found = self.resolve(clean_path(path), follow_last=True)
        try:
            if found.st is None:
                raise NotFound(path)
            if not stat.S_ISDIR(found.st.st_mode):
                raise InvalidArgument("extraction point is not a directory")
            dest = found.phys if found.name == "." else [*found.phys, found.name]
        finally:
            found.close()
        return Unpacker(self.fd, dest, no_overwrite_dir_non_dir, owner)

    def user_ids(self, user: str) -> tuple[int, int]:
        """The uid and gid of a container's ``User`` (``name``, ``uid``, ``name:group``...), read in its /etc."""
        name, _, group = user.partition(":")
        uid = gid = 0
        if name:
            if name.isdigit():
                uid = int(name)
                row = self._lookup("/etc/passwd", lambda f: f[2] == name)
                gid = int(row[3]) if row and row[3].isdigit() else 0
            else:
                row = self._lookup("/etc/passwd", lambda f: f[0] == name)
                if row is None or not row[2].isdigit():
                    raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
                uid, gid = int(row[2]), int(row[3]) if row[3].isdigit() else 0
        if group:
            if group.isdigit():
                gid = int(group)
            else:
                grow = self._lookup("/etc/group", lambda f: f[0] == group)
                if grow is None or not grow[2].isdigit():
                    raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
                gid = int(grow[2])
        return uid, gid

    def _lookup(self, path: str, match: Any) -> list[str] | None:
        try:
            found = self.resolve(path, follow_last=True)
        except (NotFound, InvalidArgument):
            return None
        try:
            if found.st is None or not stat.S_ISREG(found.st.st_mode):
                return None
            fd = os.open(found.name, _READ, dir_fd=found.dir_fd)
            with os.fdopen(fd, "rb") as f:
                text = f.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            return None
        finally:
            found.close()
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and match(fields):
                return fields
        return None


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _FdRoot(FsRoot):
    """An FsRoot on a directory already open (a ``/proc/<pid>/root`` has no path to open it by again)."""

    def __init__(self, root_fd: int) -> None:
        super().__init__(Path("/"))
        os.close(self.root_fd)
        self.root_fd = os.open(".", _LIST, dir_fd=root_fd)


class Unpacker:
    """Extracts a streamed tar below ``dest`` (components under the root), fed chunk by chunk.

    Uses the layer extractor (ownership, modes, times, xattrs, hard links
    inside the tree) with entries renamed below ``dest``; what Docker's cp
    would refuse or what a container should not get from a copy is refused
    with a 400, a directory/non-directory clash with a 409 when asked.
    """

    def __init__(self, root_fd: int, dest: list[str], no_overwrite_dir_non_dir: bool, owner: tuple[int, int] | None):
        self.dest = dest
        self.no_overwrite = no_overwrite_dir_non_dir
        self.owner = owner
        self.fs = _FdRoot(root_fd)
        self.ex = _Extractor(self.fs, WhiteoutMode.DELETE)
        self.parser = TarParser()
        self.skipping = False

    def close(self) -> None:
        self.ex.close()
        self.fs.close()

    def feed(self, chunk: bytes) -> None:
        if self.parser.done or not chunk:
            return
        self.parser.feed(chunk)
        while True:
            ev = self.parser.next_event()
            if ev is NEED_DATA:
                return
            if isinstance(ev, memoryview):
                if not self.skipping:
                    self.ex.data(ev)
            elif isinstance(ev, TarEntry):
                self._entry(ev)

    def finish(self) -> None:
        self.parser.end_of_input()
        self.ex.finish()

    def _entry(self, e: TarEntry) -> None:
        self.skipping = False
        if e.type in (EntryType.CHAR, EntryType.BLOCK):
            raise InvalidArgument(f"tar entry {quote(e.name)}: device nodes cannot be copied into a container")
        parts = dest_entry_parts(self.dest, e.name)
        if len(parts) == len(self.dest):
            self.skipping = True  # the destination itself ("./"): it keeps its own owner and mode
            return
        if parts[-1].startswith(".wh."):
            raise InvalidArgument(f"tar entry {quote(e.name)}: names starting with .wh. are reserved for layers")
        if e.type is EntryType.LINK:
            e.linkname = "/".join(dest_entry_parts(self.dest, e.linkname))
        if self.no_overwrite:
            self._check_overwrite(e, parts)
        if self.owner is not None:
            e.uid, e.gid = self.owner
        e.name = "/".join(parts)
        self.ex.entry(e)

    def _check_overwrite(self, e: TarEntry, parts: list[str]) -> None:
        self.fs.release()
        found = self.fs.directory(parts[:-1], create=False, entry=e.name)
        if found is None:
            return
        try:
            st = os.stat(parts[-1], dir_fd=found[0], follow_symlinks=False)
        except FileNotFoundError:
            return
        where = "/" + "/".join(parts)
        if stat.S_ISDIR(st.st_mode) and e.type is not EntryType.DIR:
            raise Conflict(f'cannot overwrite directory "{where}" with non-directory "{e.name}"')
        if not stat.S_ISDIR(st.st_mode) and e.type is EntryType.DIR:
            raise Conflict(f'cannot overwrite non-directory "{where}" with directory "{e.name}"')
