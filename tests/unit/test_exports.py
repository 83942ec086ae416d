"""The public surface: every package says what it exports, and exports only what exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "pycontainerd",
    "pycontainerd.errors",
    "pycontainerd.content",
    "pycontainerd.filters",
    "pycontainerd.images",
    "pycontainerd.leases",
    "pycontainerd.namespaces",
    "pycontainerd.metadata",
    "pycontainerd.plugin",
    "pycontainerd.client",
    "pycontainerd.api.convert",
    "pycontainerd.services.rpc",
    "pycontainerd.platforms",
    "pycontainerd.reference",
    "pycontainerd.images.mediatypes",
    "pycontainerd.images.manifest",
    "pycontainerd.images.walk",
    "pycontainerd.remotes",
    "pycontainerd.remotes.docker",
    "pycontainerd.transfer",
    "pycontainerd.archive",
    "pycontainerd.streaming",
    "pycontainerd.api.typeurl",
    "pycontainerd.mount",
    "pycontainerd.snapshots",
    "pycontainerd.snapshots.storage",
    "pycontainerd.diff",
    "pycontainerd.diff.differ",
    "pycontainerd.images.identity",
    "pycontainerd.unpack",
    "pycontainerd.oci",
    "pycontainerd.events",
    "pycontainerd.events.exchange",
    "pycontainerd.containers",
    "pycontainerd.tasks",
    "pycontainerd.metrics",
    "pycontainerd.metrics.cgroups",
    "pycontainerd.metrics.exposition",
    "pycontainerd.log",
    "pycontainerd.log.format",
    "pycontainerd.log.levels",
    "pycontainerd.log.stacks",
    "pycontainerd.server.debug",
    "pycontainerd.migrate",
    "pycontainerd.migrate.records",
    "pycontainerd.migrate.dockerstore",
    "pycontainerd.migrate.tarsplit",
    "pycontainerd.migrate.layerstream",
    "pycontainerd.migrate.importer",
    "pycontainerd.migrate.ondemand",
    "pycontainerd.diff.apply",
    "pycontainerd.diff.compare",
    "pycontainerd.diff.compression",
    "pycontainerd._duration",
    "pycontainerd._http1",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr}, which is missing"


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_are_exported(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", name).startswith(name)
        and not isinstance(v, type(importlib))
        and n not in {"annotations", "TYPE_CHECKING"}
        and callable(v)
    }
    assert public <= set(module.__all__), f"{name} exports {sorted(public - set(module.__all__))} without __all__"
