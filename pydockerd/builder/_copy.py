"""COPY and ADD: sources found in the context (or another stage's tree) and copied into a mounted rootfs.

Docker's rules for sources and destination:

* a source is cleaned relative to its tree; one that leaves it is
  "forbidden path outside the build context"; wildcards (``*``, ``?``,
  ``[...]``) match within path elements; context files ``.dockerignore``
  excludes are not there;
* a directory source copies its contents, not itself; a file goes to
  ``dest/<name>`` when ``dest`` ends in ``/`` or is a directory, else to
  ``dest``; several sources need a directory destination ending in ``/``;
* a relative destination is under the working directory; the destination is
  resolved inside the rootfs as a chroot would (its symlinks never lead out);
* everything copied is owned by root, or by ``--chown`` (names looked up in
  the rootfs's /etc/passwd and /etc/group); modes and times are kept;
* ADD extracts a local tar archive (plain, gzip, bzip2, xz) into the
  destination; remote URLs are refused (nothing is fetched from the network).

:func:`source_digest` hashes what a step would copy, for the layer cache.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pycontainerd.errors import InvalidArgument
from pycontainerd.oci import parse_group, parse_passwd
from pycontainerd.oci._rootfs import read_file_in_root

from ._ignore import _regex, clean_path

__all__ = ["CopyError", "Source", "copy_sources", "find_sources", "resolve_chown", "scoped", "source_digest"]

_MAX_LINKS = 40
_GLOB = set("*?[")


class CopyError(InvalidArgument):
    pass


def scoped(root: Path, path: str) -> Path:
    """``path`` inside ``root`` with symlinks resolved as if ``root`` were ``/``; the host path."""
    todo = [p for p in reversed(path.split("/")) if p]
    parts: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        here = root.joinpath(*parts, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            parts.append(part)
            continue
        except NotADirectoryError:
            raise CopyError(f"{path}: not a directory") from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise CopyError(f"{path}: too many levels of symbolic links")
            target = os.readlink(here)
            if target.startswith("/"):
                parts = []
            todo.extend(p for p in reversed(target.split("/")) if p)
            continue
        parts.append(part)
    return root.joinpath(*parts)


@dataclass(frozen=True)
class Source:
    """One thing to copy: its host path and the name a file keeps at a directory destination."""

    path: Path
    rel: str
    is_dir: bool


def _walk_rel(root: Path, excluded: Callable[[str], bool]) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            rel = name if base == "." else f"{base}/{name}"
            if not excluded(rel):
                yield rel


def find_sources(root: Path, patterns: list[str], excluded: Callable[[str], bool], *, context: bool) -> list[Source]:
    """The sources ``patterns`` name in the tree ``root`` (the context, or a stage's rootfs)."""
    out: list[Source] = []
    for raw in patterns:
        rel = clean_path(raw.lstrip("/") or ".") if context else clean_path(raw).lstrip("/") or "."
        if rel == ".." or rel.startswith("../"):
            raise CopyError(f"forbidden path outside the build context: {raw} ()")
        if any(c in _GLOB for c in rel):
            regex = _regex(rel)
            matches = [r for r in _walk_rel(root, excluded) if regex.match(r)]
            if not matches:
                raise CopyError("no source files were specified" if not raw else _missing(raw))
            for m in matches:
                path = root / m if context else scoped(root, m)
                out.append(Source(path, m, path.is_dir() and not path.is_symlink()))
            continue
        path = root / rel if context else scoped(root, rel)
        if context and rel != "." and excluded(rel):
            raise CopyError(_missing(raw))
        try:
            st = os.lstat(path)
        except OSError:
            raise CopyError(_missing(raw)) from None
        if context and stat.S_ISLNK(st.st_mode) and rel != ".":
            # A named symlink is followed, within the context.
            path = scoped(root, rel)
            if not path.exists():
                raise CopyError(_missing(raw))
            st = os.lstat(path)
        out.append(Source(path, rel, stat.S_ISDIR(st.st_mode)))
    return out


def _missing(raw: str) -> str:
    return f"file not found in build context or excluded by .dockerignore: stat {raw}: file does not exist"


def _under(prefix: str, excluded: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda rel: excluded(prefix + rel)


def source_digest(sources: list[Source], excluded: Callable[[str], bool]) -> str:
    """``file:<hex>``, ``dir:<hex>`` or ``multi:<hex>``: the content a COPY would copy, for its cache key."""
    h = hashlib.sha256()
    for src in sources:
        h.update(f"\0src {src.rel}\0".encode())
        entries = [src.path]
        if src.is_dir:
            prefix = "" if src.rel == "." else f"{src.rel}/"
            entries += [src.path / r for r in _walk_rel(src.path, _under(prefix, excluded))]
        for p in entries:
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, src.path)}\0{st.st_mode:o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
    kind = "multi" if len(sources) > 1 else ("dir" if sources and sources[0].is_dir else "file")
    return f"{kind}:{h.hexdigest()}"


def resolve_chown(root: Path, spec: str) -> tuple[int, int]:
    """``--chown=user[:group]`` as ids, names looked up in the rootfs."""
    user, _, group = spec.partition(":")
    uid = gid = -1
    passwd = None
    if user.isdigit():
        uid = int(user)
    else:
        passwd = parse_passwd(read_file_in_root(root, "/etc/passwd", limit=1 << 20) or b"")
        found = next((e for e in passwd if e.name == user), None)
        if found is None:
            raise CopyError(
                "unable to convert uid/gid chown string to host mapping: "
                f"can't find uid for user {user}: no such user: {user}"
            )
        uid, gid = found.uid, found.gid
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            groups = parse_group(read_file_in_root(root, "/etc/group", limit=1 << 20) or b"")
            g = next((e for e in groups if e.name == group), None)
            if g is None:
                raise CopyError(
                    "unable to convert uid/gid chown string to host mapping: "
                    f"can't find gid for group {group}: no such group: {group}"
                )
            gid = g.gid
    elif gid < 0:
        gid = uid
    return uid, gid


def _is_archive(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _archive_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    try:
        checked = tarfile.tar_filter(member, dest)
    except tarfile.FilterError as e:
        raise CopyError(f"failed to extract archive: {e}") from None
    if checked is None:
        return None
    return checked.replace(mode=member.mode, deep=False) if member.isreg() or member.isdir() else checked


class _Copier:
    def __init__(self, owner: tuple[int, int]) -> None:
        self.uid, self.gid = owner

    def _own(self, dst: Path) -> None:
        os.lchown(dst, self.uid, self.gid)

    def entry(self, src: Path, dst: Path) -> None:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                dst.unlink()
            if not dst.exists():
                dst.mkdir()
            for child in sorted(os.listdir(src)):
                self.entry(src / child, dst / child)
        else:
            if dst.is_dir() and not dst.is_symlink():
                raise CopyError(f"cannot overwrite directory {dst.name!r} with non-directory")
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                os.mknod(dst, st.st_mode, st.st_rdev)
            else:
                return  # sockets: nothing to copy
        self._own(dst)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _make_dirs(root: Path, dst: Path) -> None:
    """Create ``dst`` and its missing parents (0755, root) inside the rootfs."""
    missing = []
    p = dst
    while not p.exists() and p != root:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o755)


def copy_sources(
    rootfs: Path,
    sources: list[Source],
    dest: str,
    workdir: str,
    owner: tuple[int, int],
    *,
    extract: bool = False,
    excluded: Callable[[str], bool] = lambda _rel: False,
) -> None:
    """Copy ``sources`` to ``dest`` inside the mounted ``rootfs`` (ADD's archives extracted with ``extract``)."""
    to_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    if len(sources) > 1 and not to_dir:
        raise CopyError(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
        )
    full = posixpath.join(workdir or "/", dest)
    target = scoped(rootfs, full)
    copier = _Copier(owner)
    for src in sources:
        try:
            if src.is_dir:
                _make_dirs(rootfs, target)
                for child in sorted(os.listdir(src.path)):
                    rel = child if src.rel == "." else f"{src.rel}/{child}"
                    if not excluded(rel):
                        _copy_tree(copier, src.path / child, target / child, rel, excluded)
                continue
            if extract and _is_archive(src.path):
                _make_dirs(rootfs, target)
                with tarfile.open(src.path, mode="r:*") as tar:
                    tar.extractall(target, filter=_archive_filter, numeric_owner=True)
                continue
            if to_dir or target.is_dir():
                _make_dirs(rootfs, target)
                copier.entry(src.path, target / posixpath.basename(src.rel))
            else:
                _make_dirs(rootfs, target.parent)
                copier.entry(src.path, target)
        except tarfile.TarError as e:
            raise CopyError(f"failed to extract {src.rel}: {e}") from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise
            raise CopyError(f"failed to copy files: {e.strerror or e}: {src.rel}") from None


def _copy_tree(copier: _Copier, src: Path, dst: Path, rel: str, excluded: Callable[[str], bool]) -> None:
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        copier.entry(src, dst)
        return
    if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
        dst.unlink()
    if not dst.exists():
        dst.mkdir()
    for child in sorted(os.listdir(src)):
        child_rel = f"{rel}/{child}"
        if not excluded(child_rel):
            _copy_tree(copier, src / child, dst / child, child_rel, excluded)
    copier._own(dst)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
