"""Fixtures of the layer tests: a target directory beside a sentinel that nothing may touch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .treecmp import Entry, differences, snapshot_tree


@dataclass
class Target:
    root: Path
    sentinel: Path
    before: dict[str, Entry]

    def assert_sentinel_untouched(self) -> None:
        after = snapshot_tree(self.sentinel)
        assert differences(self.before, after) == []
        assert sorted(p.name for p in self.root.parent.iterdir()) == ["root", "sentinel"]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """``root`` to apply layers to; ``sentinel``, its sibling, with files a hostile layer would aim at."""
    if os.geteuid() != 0:
        pytest.skip("applying layers needs root (chown, device nodes, trusted.* attributes)")
    root = tmp_path / "root"
    root.mkdir()
    sentinel = tmp_path / "sentinel"
    (sentinel / "etc").mkdir(parents=True)
    (sentinel / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (sentinel / "file").write_bytes(b"precious")
    os.utime(sentinel / "file", (1, 1))
    t = Target(root, sentinel, snapshot_tree(sentinel))
    yield t
    t.assert_sentinel_untouched()
