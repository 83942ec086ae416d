from __future__ import annotations

import pytest

from pycontainerd import errors
from pycontainerd.content import Digester
from pycontainerd.leases import Resource
from pycontainerd.metadata import DB

D = Digester.of(b"x")


def test_crud_and_resources(db: DB) -> None:
    m = db.leases("default")
    lease = m.create("l1", {"k": "v"})
    assert lease.id == "l1" and lease.labels == {"k": "v"}
    with pytest.raises(errors.AlreadyExists):
        m.create("l1")
    m.create("l2")
    assert [x.id for x in m.list()] == ["l1", "l2"]
    assert [x.id for x in m.list(["labels.k==v"])] == ["l1"]
    assert [x.id for x in m.list(["id==l2"])] == ["l2"]
    m.add_resource("l1", Resource(D, "content"))
    m.add_resource("l1", Resource("ref-1", "ingests"))
    m.add_resource("l1", Resource("key", "snapshots/overlayfs"))
    m.add_resource("l1", Resource(D, "content"))  # idempotent
    assert m.list_resources("l1") == [
        Resource(D, "content"),
        Resource("ref-1", "ingests"),
        Resource("key", "snapshots/overlayfs"),
    ]
    m.delete_resource("l1", Resource("ref-1", "ingests"))
    assert len(m.list_resources("l1")) == 2
    m.delete("l1")
    with pytest.raises(errors.NotFound):
        m.list_resources("l1")
    with pytest.raises(errors.NotFound):
        m.delete("l1")
    with pytest.raises(errors.NotFound):
        m.add_resource("nope", Resource(D, "content"))


@pytest.mark.parametrize(
    "res",
    [Resource("", "content"), Resource("notadigest", "content"), Resource("x", "bogus"), Resource("x", "snapshots/")],
)
def test_bad_resources(db: DB, res: Resource) -> None:
    db.leases("default").create("l")
    with pytest.raises(errors.InvalidArgument):
        db.leases("default").add_resource("l", res)


@pytest.mark.parametrize("lease_id", ["", "nul\x00", "a" * 1025])
def test_bad_ids(db: DB, lease_id: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        db.leases("default").create(lease_id)


@pytest.mark.parametrize("lease_id", ["557125747-Iht-", "with space", "../x", "a" * 80])
def test_ids_containerd_clients_make_are_accepted(db: DB, lease_id: str) -> None:
    assert db.leases("default").create(lease_id).id == lease_id


def test_write_under_missing_lease_is_refused(db: DB) -> None:
    with pytest.raises(errors.NotFound, match="lease"):
        db.content("default", lease="missing").writer("ref")
    assert db.content("default").list_statuses() == []
