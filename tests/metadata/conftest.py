from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from pycontainerd.content.local import LocalStore
from pycontainerd.metadata import DB


@pytest.fixture
def db(tmp_path: pathlib.Path) -> Iterator[DB]:
    d = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    yield d
    d.close()
