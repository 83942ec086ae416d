"""Image listing stays exact while records change (the daemon keeps the last unfiltered list)."""

from __future__ import annotations

from pycontainerd.client import Client
from pycontainerd.images import Descriptor, Image
from tests.fixtures.daemon import PycontainerdDaemon

MT = "application/vnd.oci.image.manifest.v1+json"
D = "sha256:" + "ab" * 32


def test_list_follows_every_change(pycontainerd_daemon: PycontainerdDaemon) -> None:
    with Client(pycontainerd_daemon.address) as c:
        assert c.images.list() == []
        c.images.create(Image("a", Descriptor(MT, D, 1)))
        assert [i.name for i in c.images.list()] == ["a"]
        c.images.create(Image("b", Descriptor(MT, D, 1)))
        assert [i.name for i in c.images.list()] == ["a", "b"]
        c.images.update(Image("a", Descriptor(MT, D, 1), {"k": "v"}), ["labels"])
        assert {i.name: dict(i.labels) for i in c.images.list()} == {"a": {"k": "v"}, "b": {}}
        assert [i.name for i in c.images.list(["labels.k==v"])] == ["a"]
        c.images.delete("a")
        assert [i.name for i in c.images.list()] == ["b"]
        other = c.with_namespace("other")
        assert other.images.list() == []
        other.images.create(Image("z", Descriptor(MT, D, 1)))
        assert [i.name for i in other.images.list()] == ["z"]
        assert [i.name for i in c.images.list()] == ["b"]


def test_content_list_follows_every_change(pycontainerd_daemon: PycontainerdDaemon) -> None:
    from pycontainerd.content import Info, write_blob

    with Client(pycontainerd_daemon.address) as c:
        with c.lease(sync=True) as leased:
            assert list(leased.content.walk()) == []
            a = write_blob(leased.content, "a", b"a")
            assert [i.digest for i in leased.content.walk()] == [a]
            b = write_blob(leased.content, "b", b"b")
            assert {i.digest for i in leased.content.walk()} == {a, b}
            info = leased.content.info(a)
            leased.content.update(Info(a, info.size, info.created_at, info.updated_at, {"k": "v"}), ["labels.k"])
            assert {i.digest: dict(i.labels) for i in leased.content.walk()} == {a: {"k": "v"}, b: {}}
            leased.content.delete(b)
            assert [i.digest for i in leased.content.walk()] == [a]
            # Shared into another namespace, under a lease of its own there (leases belong to one namespace):
            # without one, a collection that the delete above scheduled may take the record at any moment.
            with c.with_namespace("other").lease(sync=True) as other:
                assert write_blob(other.content, "x", b"a", expected=a) == a
                assert [i.digest for i in other.content.walk()] == [a]
        # The lease is gone and its content collected: the list says so.
        assert list(c.content.walk()) == []


def test_cached_info_and_small_reads_follow_changes(pycontainerd_daemon: PycontainerdDaemon) -> None:
    """Info and small reads are served from caches; every change and every namespace boundary still shows."""
    import pytest

    from pycontainerd.content import write_blob
    from pycontainerd.content.helpers import read_blob
    from pycontainerd.errors import NotFound

    with Client(pycontainerd_daemon.address) as c:
        data = b'{"hello": "manifest"}'
        with c.lease() as leased:
            digest = write_blob(leased.content, "small", data, labels={"containerd.io/gc.root": "x"})
        for _ in range(3):
            assert c.content.info(digest).labels == {"containerd.io/gc.root": "x"}
            assert read_blob(c.content, digest) == data
        r = c.content.reader_at(digest)
        assert r.read_at(3, 5) == data[3:8]
        assert r.read_at(len(data), 5) == b""
        r.close()
        info = c.content.info(digest)
        c.content.update(type(info)(digest, info.size, info.created_at, info.updated_at, {"k": "v"}), ["labels"])
        assert c.content.info(digest).labels == {"k": "v"}
        other = c.with_namespace("elsewhere")
        with pytest.raises(NotFound):
            other.content.info(digest)
        with pytest.raises(NotFound):
            read_blob(other.content, digest)
        c.content.delete(digest)
        with pytest.raises(NotFound):
            c.content.info(digest)
        with pytest.raises(NotFound):
            read_blob(c.content, digest)
