"""A file system of its own for each pull, so that no pull pays for what an earlier one left.

Deleting a pulled image frees tens of thousands of inodes, and ext4 without
a journal (as on these machines) will not hand out an inode freed less than
60 s ago — 360 s while its inode table block is dirty — scanning past each
such candidate's deletion time on every file creation (``recently_deleted``
in the kernel's ``fs/ext4/ialloc.c``).  On one shared disk a pull was thus
timed with an aged file system whose state depended on what ran before it:
waiting out the window narrowed that but did not remove it.

Here each pull gets a new ext4 made the same way (no journal, inode tables
written at ``mkfs`` time so no lazy-init thread writes behind the
measurement) on a sparse file of the same disk, loop-mounted; the daemon
under test starts with its root there and is gone, with the file system,
before the next pull.  Both daemons are treated alike.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SIZE", "fresh_fs"]

SIZE = "12G"  # sparse: room for the large image's content and tree with margin


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=300)


@contextlib.contextmanager
def fresh_fs(size: str = SIZE) -> Iterator[Path]:
    """A newly made, empty ext4 mounted on a private directory; unmounted and deleted on the way out."""
    work = Path(tempfile.mkdtemp(prefix="bench-fs-"))
    image, mnt = work / "fs.img", work / "mnt"
    mnt.mkdir()
    mounted = False
    try:
        _run("truncate", "-s", size, str(image))
        _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=0,nodiscard", str(image))
        _run("mount", "-o", "loop", str(image), str(mnt))
        mounted = True
        yield mnt
    finally:
        if mounted:
            # Whatever a daemon left mounted below goes with the lazy unmount; the loop device is freed with it.
            subprocess.run(["umount", "-R", "-l", str(mnt)], capture_output=True, timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)
