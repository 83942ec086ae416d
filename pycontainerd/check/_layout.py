"""Where a pycontainerd root keeps what the check reads (the daemon's plugin directories)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from .._rootlock import LOCK_FILE

__all__ = ["CONTENT_DIR", "METADATA_DIR", "SNAPSHOTTER_PREFIX", "TASK_DIR", "Layout"]

CONTENT_DIR = "io.containerd.content.v1.content"
METADATA_DIR = "io.containerd.metadata.v1.sqlite"
SNAPSHOTTER_PREFIX = "io.containerd.snapshotter.v1."
TASK_DIR = "io.containerd.runtime.v2.task"


@dataclass(frozen=True)
class Layout:
    """The directories of one daemon: root, state, and each snapshotter's storage by name."""

    root: pathlib.Path
    state: pathlib.Path
    snapshotters: dict[str, pathlib.Path] = field(default_factory=dict)

    @classmethod
    def of(
        cls, root: pathlib.Path, state: pathlib.Path, snapshotter_roots: dict[str, pathlib.Path] | None = None
    ) -> Layout:
        """The layout under ``root``: every ``io.containerd.snapshotter.v1.<name>`` there, then ``snapshotter_roots``."""
        root, state = root.absolute(), state.absolute()
        found: dict[str, pathlib.Path] = {}
        try:
            for entry in sorted(root.iterdir()):
                if entry.name.startswith(SNAPSHOTTER_PREFIX) and entry.is_dir():
                    found[entry.name[len(SNAPSHOTTER_PREFIX) :]] = entry
        except FileNotFoundError:
            pass
        found.update(snapshotter_roots or {})
        return cls(root, state, found)

    @property
    def content(self) -> pathlib.Path:
        return self.root / CONTENT_DIR

    @property
    def blobs(self) -> pathlib.Path:
        return self.content / "blobs"

    @property
    def ingests(self) -> pathlib.Path:
        return self.content / "ingest"

    @property
    def metadata(self) -> pathlib.Path:
        return self.root / METADATA_DIR / "meta.db"

    @property
    def lock_file(self) -> pathlib.Path:
        return self.root / LOCK_FILE

    @property
    def tasks(self) -> pathlib.Path:
        return self.state / TASK_DIR
