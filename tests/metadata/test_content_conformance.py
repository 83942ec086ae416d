"""The content store contract, held by the metadata wrapper (one namespace, with and without a lease)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from pycontainerd.content import Store
from pycontainerd.content.local import LocalStore
from pycontainerd.metadata import DB
from tests.conformance.content import ContentStoreSuite


class TestMetadataContent(ContentStoreSuite):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> Iterator[Store]:
        db = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
        yield db.content("default")
        db.close()


class TestMetadataContentLeased(ContentStoreSuite):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> Iterator[Store]:
        db = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
        db.leases("other").create("l")
        yield db.content("other", lease="l")
        db.close()
