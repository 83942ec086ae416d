"""The overlayfs snapshotter: each snapshot holds only its own changes.

A snapshot's directory has ``fs`` (its upper tree, later a lower one for its
children) and, for active snapshots, ``work`` (overlayfs' scratch space).
Mount lists follow containerd's, so containerd's clients mount them alike:

* nothing below: a bind mount of ``fs`` (read-write, or read-only for a view);
* a view of a single parent: a read-only bind mount of the parent's ``fs``;
* otherwise an overlay of the parents' ``fs`` directories, nearest first,
  with ``upperdir`` and ``workdir`` for an active snapshot.

Directory names are the records' small integer ids, so the options stay
short; :mod:`pycontainerd.mount` shortens them further when a chain is deep.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

from ..errors import FailedPrecondition
from ..mount import Mount, mount_all, unmount
from ._local import LocalSnapshotter
from ._types import Kind
from .storage import Snapshot

__all__ = ["OverlaySnapshotter", "check_overlay"]

_INDEX_PARAM = pathlib.Path("/sys/module/overlay/parameters/index")


def check_overlay(root: pathlib.Path) -> None:
    """Mount a two-lower overlay under ``root``; FailedPrecondition when the kernel or filesystem cannot."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="overlay-check-", dir=root) as tmp:
        t = pathlib.Path(tmp)
        for d in ("lower1", "lower2", "upper", "work", "merged"):
            (t / d).mkdir()
        m = Mount(
            type="overlay",
            source="overlay",
            options=(f"workdir={t / 'work'}", f"upperdir={t / 'upper'}", f"lowerdir={t / 'lower2'}:{t / 'lower1'}"),
        )
        try:
            mount_all([m], t / "merged")
        except Exception as e:
            raise FailedPrecondition(f"overlayfs is not usable on {root}: {e}") from None
        unmount(t / "merged")


class OverlaySnapshotter(LocalSnapshotter):
    """Snapshots as overlayfs layers."""

    def __init__(self, root: pathlib.Path, *, async_remove: bool = False) -> None:
        super().__init__(root, async_remove=async_remove)
        # Without an index, overlayfs does not insist that lower directories stay on one upper for life.
        self._index_off = _INDEX_PARAM.exists()

    def _populate(self, snap: Snapshot, path: pathlib.Path) -> None:
        fs = path / "fs"
        fs.mkdir(mode=0o755)
        if snap.parent_ids:
            # The mount's root takes its owner from the upper directory: keep the parent's, so a root
            # remapped for a user namespace stays remapped in every snapshot above it.
            st = self._upper(snap.parent_ids[0]).stat()
            if (st.st_uid, st.st_gid) != (0, 0):
                os.lchown(fs, st.st_uid, st.st_gid)
        if snap.kind == Kind.ACTIVE:
            (path / "work").mkdir(mode=0o711)

    def _upper(self, id_: str) -> pathlib.Path:
        return self._dir(id_) / "fs"

    def _mounts_of(self, snap: Snapshot) -> list[Mount]:
        if not snap.parent_ids:
            mode = "ro" if snap.kind == Kind.VIEW else "rw"
            return [Mount(type="bind", source=str(self._upper(snap.id)), options=(mode, "rbind"))]
        if snap.kind == Kind.VIEW and len(snap.parent_ids) == 1:
            return [Mount(type="bind", source=str(self._upper(snap.parent_ids[0])), options=("ro", "rbind"))]
        options: list[str] = ["index=off"] if self._index_off else []
        if snap.kind == Kind.ACTIVE:
            options += [f"workdir={self._dir(snap.id) / 'work'}", f"upperdir={self._upper(snap.id)}"]
        options.append("lowerdir=" + ":".join(str(self._upper(p)) for p in snap.parent_ids))
        return [Mount(type="overlay", source="overlay", options=tuple(options))]
