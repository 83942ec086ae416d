from __future__ import annotations

import pytest

from pycontainerd import errors
from pycontainerd.content import write_blob
from pycontainerd.images import Descriptor, Image
from pycontainerd.metadata import DB

MT = "application/vnd.oci.image.manifest.v1+json"


def test_create_list_labels(db: DB) -> None:
    ns = db.namespaces()
    ns.create("alpha", {"a": "1"})
    ns.create("beta", {})
    assert ns.list() == ["alpha", "beta"]
    assert ns.labels("alpha") == {"a": "1"}
    ns.set_label("alpha", "b", "2")
    ns.set_label("alpha", "a", "")
    assert ns.labels("alpha") == {"b": "2"}
    with pytest.raises(errors.AlreadyExists):
        ns.create("alpha", {})
    with pytest.raises(errors.NotFound):
        ns.labels("gamma")


@pytest.mark.parametrize("name", ["", "-x", "a..b", "version", "x" * 77, "a/b", "a b"])
def test_invalid_names(db: DB, name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        db.namespaces().create(name, {})


def test_implicit_namespace_on_first_object(db: DB) -> None:
    write_blob(db.content("implicit"), "r", b"data")
    assert "implicit" in db.namespaces().list()


def test_delete_refuses_non_empty(db: DB) -> None:
    ns = db.namespaces()
    ns.create("full", {})
    dgst = write_blob(db.content("full"), "r", b"hello")
    db.images("full").create(Image("img", Descriptor(MT, dgst, 5)))
    db.leases("full").create("l1")
    with pytest.raises(errors.FailedPrecondition, match="images, blobs, leases"):
        ns.delete("full")
    db.images("full").delete("img")
    db.content("full").delete(dgst)
    db.leases("full").delete("l1")
    ns.delete("full")
    assert "full" not in ns.list()
    with pytest.raises(errors.NotFound):
        ns.delete("full")


def test_isolation(db: DB) -> None:
    a, b = db.content("a"), db.content("b")
    dgst = write_blob(a, "r", b"only in a")
    with pytest.raises(errors.NotFound):
        b.info(dgst)
    assert [i.digest for i in a.walk()] == [dgst]
    assert list(b.walk()) == []
    db.images("a").create(Image("x", Descriptor(MT, dgst, 9)))
    assert db.images("b").list() == []
    with pytest.raises(errors.NotFound):
        db.images("b").get("x")
    db.leases("a").create("la")
    assert db.leases("b").list() == []
