"""The native snapshotter: every snapshot a full copy of its parent.

Works on any filesystem, at the price of copying the parent's tree on each
Prepare and View; it is the fallback where overlayfs is not available.  The
copy is coreutils' ``cp -a --reflink=auto``, which keeps ownership, modes,
times, xattrs, device nodes and hard links, and shares blocks where the
filesystem can.
"""

from __future__ import annotations

import pathlib
import subprocess

from ..errors import Unknown
from ..mount import Mount
from ._local import LocalSnapshotter
from ._types import Kind
from .storage import Snapshot

__all__ = ["NativeSnapshotter"]


class NativeSnapshotter(LocalSnapshotter):
    """Snapshots as plain directories, bind-mounted."""

    def _populate(self, snap: Snapshot, path: pathlib.Path) -> None:
        if not snap.parent_ids:
            path.chmod(0o755)
            return
        parent = self._dir(snap.parent_ids[0])
        proc = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", f"{parent}/.", f"{path}/"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise Unknown(f"copying snapshot {snap.parent_ids[0]}: {proc.stderr.strip()}")

    def _upper(self, id_: str) -> pathlib.Path:
        return self._dir(id_)

    def _mounts_of(self, snap: Snapshot) -> list[Mount]:
        mode = "ro" if snap.kind == Kind.VIEW else "rw"
        return [Mount(type="bind", source=str(self._dir(snap.id)), options=(mode, "rbind"))]
