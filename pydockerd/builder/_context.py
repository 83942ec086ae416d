"""The build context: the request body (a tar, maybe compressed) unpacked into a private directory.

The body is hostile.  It is spooled to a temporary file (at most
:data:`MAX_UPLOAD` bytes), then extracted with Python's safe tar filter and
checks of our own: no member may land outside the directory (absolute
names, ``..``, writing through a symlink), links may not point outside it,
device and FIFO members are refused, and the extracted bytes and members
are bounded.  Any of these ends the build before it starts with one 400
"invalid build context" error, and the directory is removed.  Modes are
kept as sent (set-id bits included, as Docker copies them); owners are
not: the builder decides who owns what it copies.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pycontainerd.errors import InvalidArgument

from ._ignore import IgnoreMatcher, clean_path, parse_dockerignore

__all__ = ["MAX_UPLOAD", "BuildContext", "ContextError", "extract_context"]

MAX_UPLOAD = 4 << 30
MAX_EXTRACTED = 8 << 30
MAX_MEMBERS = 1_000_000
MAX_IGNORE_FILE = 1 << 20


class ContextError(InvalidArgument):
    pass


@dataclass
class BuildContext:
    """An extracted context: its directory (ours to remove) and its ``.dockerignore`` rules."""

    root: Path
    ignore: IgnoreMatcher

    def excluded(self, rel: str) -> bool:
        rel = clean_path(rel)
        return rel not in (".", "Dockerfile", ".dockerignore") and self.ignore.excluded(rel)

    def read_dockerfile(self, name: str) -> bytes:
        """The Dockerfile named by ``dockerfile`` (a path inside the context); NotFound-style 400 when absent."""
        rel = clean_path(name or "Dockerfile")
        if rel.startswith("../") or rel == ".." or os.path.isabs(rel):
            raise ContextError(f"forbidden path outside the build context: {name} ()")
        path = self.root / rel
        try:
            if path.is_symlink() or not path.is_file():
                raise FileNotFoundError
            with open(path, "rb") as f:
                return f.read(4 << 20 | 1)
        except OSError:
            raise ContextError(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}") from None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _Checker:
    def __init__(self) -> None:
        self.total = 0
        self.members = 0

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise ContextError(f"invalid build context: more than {MAX_MEMBERS} entries")
        if member.isdev() or member.isfifo():
            raise ContextError(f"invalid build context: {member.name}: device and FIFO entries are not allowed")
        self.total += max(member.size, 0)
        if self.total > MAX_EXTRACTED:
            raise ContextError(f"invalid build context: more than {MAX_EXTRACTED} bytes once extracted")
        try:
            checked = tarfile.data_filter(member, dest)
        except tarfile.FilterError as e:
            raise ContextError(f"invalid build context: {e}") from None
        if checked is None:
            return None
        keep = {"uid": None, "gid": None, "uname": None, "gname": None}
        if member.isreg() or member.isdir():
            return checked.replace(mode=member.mode & 0o7777, deep=False, **keep)  # type: ignore[arg-type]
        return checked.replace(deep=False, **keep)  # type: ignore[arg-type]


def extract_context(upload: BinaryIO) -> BuildContext:
    """Unpack the spooled body ``upload`` (tar, gzip, bzip2 or xz) into a new private directory."""
    root = Path(tempfile.mkdtemp(prefix="pydockerd-build-"))
    try:
        upload.seek(0)
        head = upload.read(512)
        upload.seek(0)
        if head:
            try:
                with tarfile.open(fileobj=upload, mode="r:*") as tar:
                    tar.extractall(root, filter=_Checker())
            except tarfile.TarError as e:
                raise ContextError(f"invalid build context: not a tar archive: {e}") from None
            except (OSError, EOFError) as e:
                raise ContextError(f"invalid build context: {e}") from None
        ignore = IgnoreMatcher([])
        ig = root / ".dockerignore"
        if ig.is_file() and not ig.is_symlink():
            with open(ig, "rb") as f:
                ignore = parse_dockerignore(f.read(MAX_IGNORE_FILE))
        return BuildContext(root, ignore)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
