"""A pure in-memory model of what a sequence of OCI layers means, to check apply_layer against.

Layers are lists of operations on a small alphabet of paths.  ``normalize``
turns generated operations into a well-formed layer (each path once, every
parent directory present as an entry before its children, hard links to
files of the same layer) as image builders write them; ``Model.apply``
follows the OCI image spec's rules; ``LayerSpec.tar`` writes the layer
with Python's tarfile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .layers import LayerTar
from .treecmp import Entry

__all__ = ["Model", "Op", "normalize"]


@dataclass(frozen=True)
class Op:
    kind: str  # "file", "dir", "symlink", "hardlink", "whiteout", "opaque"; "char", "fifo" (written, not modelled)
    path: str
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""  # symlink target, hard link target
    xattr: bytes | None = None  # value of user.test
    dev: tuple[int, int] = (0, 0)  # a device's major and minor


@dataclass
class _Node:
    kind: str  # "file", "dir", "symlink"
    mode: int
    uid: int
    gid: int
    mtime: int
    data: bytes = b""
    target: str = ""
    xattr: bytes | None = None
    inode: int = 0


@dataclass
class Model:
    nodes: dict[str, _Node] = field(default_factory=dict)
    _inodes: int = 0

    def _drop(self, path: str) -> None:
        self.nodes.pop(path, None)
        for p in [p for p in self.nodes if p.startswith(path + "/")]:
            del self.nodes[p]

    def apply(self, layer: list[tuple[Op, int]]) -> None:
        """Apply a normalized layer: (operation, mtime) pairs in tar order."""
        for op, _ in layer:
            if op.kind == "opaque" and op.path in self.nodes and self.nodes[op.path].kind == "dir":
                for p in [p for p in self.nodes if p.startswith(op.path + "/")]:
                    del self.nodes[p]
        for op, mtime in layer:
            old = self.nodes.get(op.path)
            if op.kind == "whiteout":
                self._drop(op.path)
            elif op.kind == "opaque":
                continue
            elif op.kind == "dir":
                if old is not None and old.kind == "dir":
                    old.mode, old.uid, old.gid, old.mtime = op.mode, op.uid, op.gid, mtime
                else:
                    self._drop(op.path)
                    self.nodes[op.path] = _Node("dir", op.mode, op.uid, op.gid, mtime)
            elif op.kind == "hardlink":
                self._drop(op.path)
                self.nodes[op.path] = self.nodes[op.target]
            else:
                self._drop(op.path)
                self._inodes += 1
                self.nodes[op.path] = _Node(
                    op.kind, op.mode, op.uid, op.gid, mtime, op.data, op.target, op.xattr, self._inodes
                )

    def snapshot(self) -> dict[str, Entry]:
        """What treecmp.snapshot_tree would see of this tree."""
        groups: dict[int, set[str]] = {}
        for path, n in self.nodes.items():
            if n.kind == "file":
                groups.setdefault(id(n), set()).add(path)
        out: dict[str, Entry] = {}
        for path, n in self.nodes.items():
            out[path] = Entry(
                type=n.kind,
                mode=n.mode if n.kind != "symlink" else 0o777,
                uid=n.uid,
                gid=n.gid,
                size=len(n.data) if n.kind == "file" else 0,
                sha256=hashlib.sha256(n.data).hexdigest() if n.kind == "file" else "",
                link=n.target if n.kind == "symlink" else "",
                xattrs={"user.test": n.xattr} if n.xattr is not None else {},
                mtime_ns=n.mtime * 1_000_000_000,
                hardlinks=frozenset(groups[id(n)] - {path}) if n.kind == "file" else frozenset(),
            )
        return out


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def normalize(ops: list[Op], model: Model, base_mtime: int) -> list[tuple[Op, int]]:
    """A well-formed layer from ``ops``, against the tree ``model`` holds before it."""
    used: dict[str, str] = {}  # path -> kind, for this layer
    out: list[tuple[Op, int]] = []
    files: list[str] = []

    def add(op: Op) -> None:
        used[op.path] = op.kind
        out.append((op, base_mtime + len(out)))

    opaque = {op.path for op in ops if op.kind == "opaque"}
    for generated in ops:
        op = generated
        if op.path in used or any(used.get(a, "dir") != "dir" for a in _ancestors(op.path)):
            continue
        if op.kind == "whiteout" and (op.path not in model.nodes or opaque.intersection(_ancestors(op.path))):
            # builders whiteout only what a lower layer has and an opaque directory does not hide already;
            # overlayfs lists whiteouts in a directory that is not merged with a lower one
            continue
        if op.kind == "hardlink":
            live = [f for f in files if used.get(f) == "file"]
            if not live:
                continue
            op = Op("hardlink", op.path, target=live[len(op.path) % len(live)])
        for a in _ancestors(op.path):
            if a not in used:
                old = model.nodes.get(a)
                if old is not None and old.kind == "dir":
                    used[a] = "dir"
                    out.append((Op("dir", a, mode=old.mode, uid=old.uid, gid=old.gid), old.mtime))
                else:
                    add(Op("dir", a, mode=0o755))
        if op.kind == "opaque":
            add(Op("dir", op.path, mode=0o755))
            out.append((op, 0))
            continue
        add(op)
        if op.kind == "file":
            files.append(op.path)
    return out


def layer_tar(layer: list[tuple[Op, int]]) -> bytes:
    t = LayerTar()
    for op, mtime in layer:
        common = {"mode": op.mode, "uid": op.uid, "gid": op.gid, "mtime": mtime}
        if op.kind == "file":
            xattrs = {"user.test": op.xattr.decode()} if op.xattr is not None else None
            t.file(op.path, op.data, xattrs=xattrs, **common)
        elif op.kind == "dir":
            t.dir(op.path, **common)
        elif op.kind == "symlink":
            t.symlink(op.path, op.target, uid=op.uid, gid=op.gid, mtime=mtime)
        elif op.kind == "hardlink":
            t.hardlink(op.path, op.target)
        elif op.kind == "whiteout":
            t.whiteout(op.path)
        elif op.kind == "char":
            t.char(op.path, *op.dev, **common)
        elif op.kind == "fifo":
            t.fifo(op.path, **common)
        else:
            t.opaque(op.path)
    return t.bytes()
