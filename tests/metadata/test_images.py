from __future__ import annotations

import pytest

from pycontainerd import errors
from pycontainerd.content import Digester
from pycontainerd.images import Descriptor, Image
from pycontainerd.metadata import DB

MT = "application/vnd.oci.image.manifest.v1+json"
D1 = Digester.of(b"one")
D2 = Digester.of(b"two")


def img(name: str, digest: str = D1, **labels: str) -> Image:
    return Image(name, Descriptor(MT, digest, 3, {"ann": "x"}), labels)


def test_crud(db: DB) -> None:
    s = db.images("default")
    created = s.create(img("docker.io/library/a:1", foo="bar"))
    assert created.created_at is not None and created.created_at == created.updated_at
    got = s.get("docker.io/library/a:1")
    assert got.target == Descriptor(MT, D1, 3, {"ann": "x"})
    assert got.labels == {"foo": "bar"}
    with pytest.raises(errors.AlreadyExists):
        s.create(img("docker.io/library/a:1"))
    s.delete("docker.io/library/a:1")
    with pytest.raises(errors.NotFound):
        s.get("docker.io/library/a:1")
    with pytest.raises(errors.NotFound):
        s.delete("docker.io/library/a:1")


@pytest.mark.parametrize(
    "bad",
    [
        Image("", Descriptor(MT, D1, 3)),
        Image("x", Descriptor(MT, "sha256:zz", 3)),
        Image("x", Descriptor(MT, "md5:" + "0" * 32, 3)),
        Image("x", Descriptor(MT, D1, 0)),
        Image("x", Descriptor("", D1, 3)),
        Image("x", Descriptor(MT, D1, 3), {"": "v"}),
        Image("x", Descriptor(MT, D1, 3), {"k": "v" * 5000}),
    ],
)
def test_validation(db: DB, bad: Image) -> None:
    with pytest.raises(errors.InvalidArgument):
        db.images("default").create(bad)
    assert db.images("default").list() == []


def test_update_fieldpaths(db: DB) -> None:
    s = db.images("default")
    s.create(img("a", a="1", b="2"))
    u = s.update(Image("a", Descriptor(MT, D1, 3), {"a": "9", "c": "3"}), ["labels.a"])
    assert u.labels == {"a": "9", "b": "2"}
    u = s.update(Image("a", Descriptor(MT, D1, 3), {}), ["labels.b"])
    assert u.labels == {"a": "9"}
    u = s.update(Image("a", Descriptor(MT, D2, 3, {"n": "1"}), {}), ["target"])
    assert u.target.digest == D2 and u.labels == {"a": "9"} and u.target.annotations == {"n": "1"}
    u = s.update(img("a", D1), [])
    assert u.target.digest == D1 and u.labels == {}
    with pytest.raises(errors.InvalidArgument):
        s.update(img("a"), ["name"])
    with pytest.raises(errors.NotFound):
        s.update(img("zzz"), ["labels"])
    assert u.updated_at is not None and u.created_at is not None and u.updated_at >= u.created_at


def test_list_filters(db: DB) -> None:
    s = db.images("default")
    s.create(img("r/a:1", D1, env="prod"))
    s.create(img("r/b:1", D2, env="dev"))
    s.create(img("r/c:1", D2))
    names = lambda fs: [i.name for i in s.list(fs)]  # noqa: E731
    assert names([]) == ["r/a:1", "r/b:1", "r/c:1"]
    assert names(["name==r/b:1"]) == ["r/b:1"]
    assert names([f"target.digest=={D2}"]) == ["r/b:1", "r/c:1"]
    assert names(["labels.env==prod", "labels.env==dev"]) == ["r/a:1", "r/b:1"]
    assert names(["labels.env"]) == ["r/a:1", "r/b:1"]
    assert names(["name~=^r/[ab],labels.env!=prod"]) == ["r/b:1"]
    with pytest.raises(errors.InvalidArgument):
        s.list(["name=="])


def test_generation_changes_with_every_write(db: DB) -> None:
    s = db.images("default")
    seen = {db.generation("images", "default")}
    s.create(img("g"))
    seen.add(db.generation("images", "default"))
    s.update(img("g", a="1"), ["labels"])
    seen.add(db.generation("images", "default"))
    s.delete("g")
    seen.add(db.generation("images", "default"))
    assert len(seen) == 4
    assert db.generation("images", "other") == 0
    with pytest.raises(errors.NotFound):
        s.delete("g")
    assert db.generation("images", "default") in seen
