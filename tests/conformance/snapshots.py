"""The snapshotter contract, for every implementation of ``snapshots.Snapshotter``.

Subclass :class:`SnapshotterSuite` and provide a ``snapshotter`` fixture
returning a fresh, empty snapshotter.  Trees are checked through real
mounts of the lists the snapshotter returns, so the overlay and native
backends, the metadata wrapper and the gRPC proxy are held to the same
filesystem behaviour as to the same records and errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pycontainerd import errors
from pycontainerd.mount import Mount, mounted
from pycontainerd.snapshots import Info, Kind, Snapshotter

SLACK = timedelta(seconds=1)


def now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def tree(mounts: list[Mount]) -> Iterator[pathlib.Path]:
    with mounted(mounts) as root:
        yield root


def listing(root: pathlib.Path) -> dict[str, str]:
    """path -> content (files), "<dir>" or "-> target" (symlinks)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in list(dirnames):
            p = pathlib.Path(dirpath, d)
            if p.is_symlink():
                out[str(p.relative_to(root))] = "-> " + os.readlink(p)
                dirnames.remove(d)
            else:
                out[str(p.relative_to(root))] = "<dir>"
        for f in filenames:
            p = pathlib.Path(dirpath, f)
            rel = str(p.relative_to(root))
            out[rel] = "-> " + os.readlink(p) if p.is_symlink() else p.read_text()
    return out


def layer(sn: Snapshotter, name: str, parent: str, change: Callable[[pathlib.Path], None]) -> None:
    key = f"{name}-active"
    with tree(sn.prepare(key, parent)) as root:
        change(root)
    sn.commit(name, key)


def write(rel: str, text: str) -> Callable[[pathlib.Path], None]:
    def change(root: pathlib.Path) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return change


class SnapshotterSuite:
    """Every test gets a fresh snapshotter from the ``snapshotter`` fixture."""

    #: True for snapshotters whose snapshots are full copies, so usage includes the parents' files.
    COPIES_PARENTS = False

    # Records and kinds

    def test_prepare_commit_view(self, snapshotter: Snapshotter) -> None:
        t0 = now()
        with tree(snapshotter.prepare("a-active")) as root:
            (root / "hello").write_text("world")
            (root / "dir").mkdir()
            (root / "dir" / "f").write_text("x")
        info = snapshotter.stat("a-active")
        assert (info.name, info.kind, info.parent) == ("a-active", Kind.ACTIVE, "")
        snapshotter.commit("a", "a-active")
        with pytest.raises(errors.NotFound):
            snapshotter.stat("a-active")
        info = snapshotter.stat("a")
        assert (info.name, info.kind, info.parent) == ("a", Kind.COMMITTED, "")
        assert t0 - SLACK <= info.created_at <= now() + SLACK
        with tree(snapshotter.view("a-view", "a")) as root:
            assert listing(root) == {"hello": "world", "dir": "<dir>", "dir/f": "x"}
        assert snapshotter.stat("a-view").kind == Kind.VIEW
        assert snapshotter.stat("a-view").parent == "a"

    def test_root_of_a_new_snapshot_is_0755(self, snapshotter: Snapshotter) -> None:
        with tree(snapshotter.prepare("k")) as root:
            assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
            assert not os.listdir(root)

    def test_chain_sees_every_layer_and_its_changes(self, snapshotter: Snapshotter) -> None:
        def second(root: pathlib.Path) -> None:
            (root / "a").write_text("a2")
            (root / "b").unlink()
            (root / "d" / "sub").mkdir()
            (root / "d" / "sub" / "c").write_text("c")
            os.symlink("a", root / "link")

        def first(root: pathlib.Path) -> None:
            (root / "a").write_text("a1")
            (root / "b").write_text("b1")
            (root / "d").mkdir()
            (root / "gone").mkdir()
            (root / "gone" / "x").write_text("x")

        def third(root: pathlib.Path) -> None:
            import shutil

            shutil.rmtree(root / "gone")
            os.rename(root / "a", root / "moved")

        layer(snapshotter, "l1", "", first)
        layer(snapshotter, "l2", "l1", second)
        layer(snapshotter, "l3", "l2", third)
        with tree(snapshotter.view("v", "l3")) as root:
            assert listing(root) == {
                "moved": "a2",
                "d": "<dir>",
                "d/sub": "<dir>",
                "d/sub/c": "c",
                "link": "-> a",
            }
        with tree(snapshotter.view("v1", "l1")) as root:
            assert listing(root) == {"a": "a1", "b": "b1", "d": "<dir>", "gone": "<dir>", "gone/x": "x"}

    def test_active_on_a_parent_writes_only_to_itself(self, snapshotter: Snapshotter) -> None:
        layer(snapshotter, "base", "", write("f", "base"))
        with tree(snapshotter.prepare("c1", "base")) as root:
            (root / "f").write_text("changed")
        with tree(snapshotter.prepare("c2", "base")) as root:
            assert (root / "f").read_text() == "base"
        with tree(snapshotter.mounts("c1")) as root:
            assert (root / "f").read_text() == "changed"

    def test_view_is_read_only(self, snapshotter: Snapshotter) -> None:
        layer(snapshotter, "base", "", write("f", "base"))
        layer(snapshotter, "top", "base", write("g", "top"))
        for key, parent in (("v-one", "base"), ("v-two", "top"), ("v-none", "")):
            with tree(snapshotter.view(key, parent)) as root:
                with pytest.raises(OSError) as e:
                    (root / "new").write_text("x")
                assert e.value.errno == errno.EROFS

    def test_ownership_and_modes_survive_commit(self, snapshotter: Snapshotter) -> None:
        def change(root: pathlib.Path) -> None:
            (root / "d").mkdir(mode=0o700)
            os.chmod(root / "d", 0o1777)
            (root / "f").write_text("x")
            os.chown(root / "f", 1234, 5678)
            os.chmod(root / "f", 0o4755)

        layer(snapshotter, "l", "", change)
        with tree(snapshotter.prepare("c", "l")) as root:
            st = os.stat(root / "f")
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
            assert stat.S_IMODE(os.stat(root / "d").st_mode) == 0o1777

    def test_root_owner_carries_up_the_chain(self, snapshotter: Snapshotter) -> None:
        """A root remapped for a user namespace stays remapped in the snapshots above it (and views of them)."""
        layer(snapshotter, "l", "", lambda root: os.chown(root, 100000, 100001))
        layer(snapshotter, "m", "l", write("f", "x"))
        for mounts in (snapshotter.prepare("c", "m"), snapshotter.view("v", "m")):
            with tree(mounts) as root:
                st = os.stat(root)
                assert (st.st_uid, st.st_gid) == (100000, 100001)

    def test_deep_chain_mounts(self, snapshotter: Snapshotter) -> None:
        parent = ""
        for i in range(130):
            layer(snapshotter, f"layer-with-a-rather-long-name-{i:03}", parent, write(f"f{i}", str(i)))
            parent = f"layer-with-a-rather-long-name-{i:03}"
        with tree(snapshotter.prepare("top", parent)) as root:
            assert len(os.listdir(root)) == 130
            assert (root / "f0").read_text() == "0"
            assert (root / "f129").read_text() == "129"

    # Errors

    def test_key_space_is_shared(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("k")
        with pytest.raises(errors.AlreadyExists):
            snapshotter.prepare("k")
        with pytest.raises(errors.AlreadyExists):
            snapshotter.view("k")
        snapshotter.commit("n", "k")
        snapshotter.prepare("k2")
        with pytest.raises(errors.AlreadyExists):
            snapshotter.commit("n", "k2")
        with pytest.raises(errors.AlreadyExists):
            snapshotter.prepare("n")

    def test_parent_must_exist_and_be_committed(self, snapshotter: Snapshotter) -> None:
        with pytest.raises(errors.NotFound):
            snapshotter.prepare("k", "missing")
        snapshotter.prepare("active")
        with pytest.raises(errors.InvalidArgument):
            snapshotter.prepare("k", "active")
        snapshotter.view("v")
        with pytest.raises(errors.InvalidArgument):
            snapshotter.view("k", "v")
        # a failed prepare leaves no record behind
        with pytest.raises(errors.NotFound):
            snapshotter.stat("k")

    def test_commit_needs_an_active_snapshot(self, snapshotter: Snapshotter) -> None:
        with pytest.raises(errors.NotFound):
            snapshotter.commit("n", "missing")
        snapshotter.view("v")
        with pytest.raises(errors.FailedPrecondition):
            snapshotter.commit("n", "v")
        snapshotter.prepare("a")
        snapshotter.commit("c", "a")
        with pytest.raises(errors.FailedPrecondition):
            snapshotter.commit("n", "c")

    def test_mounts_only_for_active_and_views(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("a")
        assert snapshotter.mounts("a")
        snapshotter.commit("c", "a")
        with pytest.raises(errors.FailedPrecondition):
            snapshotter.mounts("c")
        with pytest.raises(errors.NotFound):
            snapshotter.mounts("missing")

    def test_remove(self, snapshotter: Snapshotter) -> None:
        layer(snapshotter, "p", "", write("f", "x"))
        snapshotter.prepare("child", "p")
        with pytest.raises(errors.FailedPrecondition):
            snapshotter.remove("p")
        snapshotter.remove("child")
        snapshotter.remove("p")
        with pytest.raises(errors.NotFound):
            snapshotter.remove("p")
        with pytest.raises(errors.NotFound):
            snapshotter.stat("p")
        # the key is free again, and the new snapshot starts empty
        with tree(snapshotter.prepare("p")) as root:
            assert not os.listdir(root)

    def test_stat_missing(self, snapshotter: Snapshotter) -> None:
        with pytest.raises(errors.NotFound):
            snapshotter.stat("missing")
        with pytest.raises(errors.NotFound):
            snapshotter.usage("missing")

    @pytest.mark.parametrize("key", ["", "a\x00b", "x" * 4097])
    def test_bad_keys(self, snapshotter: Snapshotter, key: str) -> None:
        with pytest.raises(errors.InvalidArgument):
            snapshotter.prepare(key)

    # Labels

    def test_labels_on_create_and_commit(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("a", labels={"x": "1", "containerd.io/snapshot/y": "2"})
        assert snapshotter.stat("a").labels == {"x": "1", "containerd.io/snapshot/y": "2"}
        snapshotter.commit("c", "a", labels={"z": "3"})
        assert snapshotter.stat("c").labels == {"z": "3"}

    def test_update_labels(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("a", labels={"x": "1", "y": "2"})
        before = snapshotter.stat("a")
        info = snapshotter.update(Info("a", labels={"y": "20", "z": "3"}), ["labels.y"])
        assert info.labels == {"x": "1", "y": "20"}
        assert info.updated_at >= before.updated_at
        assert info.created_at == before.created_at
        info = snapshotter.update(Info("a", labels={"q": "9"}))
        assert info.labels == {"q": "9"}
        assert snapshotter.stat("a").labels == {"q": "9"}
        info = snapshotter.update(Info("a", labels={}), ["labels.q"])
        assert info.labels == {}
        with pytest.raises(errors.InvalidArgument):
            snapshotter.update(Info("a", labels={}), ["parent"])
        with pytest.raises(errors.NotFound):
            snapshotter.update(Info("missing", labels={"a": "b"}))

    def test_label_size_is_bounded(self, snapshotter: Snapshotter) -> None:
        with pytest.raises(errors.InvalidArgument):
            snapshotter.prepare("a", labels={"k": "v" * 5000})

    # Walk and usage

    def test_walk_with_filters(self, snapshotter: Snapshotter) -> None:
        layer(snapshotter, "base", "", write("f", "x"))
        snapshotter.prepare("act", "base", labels={"color": "red"})
        snapshotter.view("vw", "base", labels={"color": "blue"})
        assert {i.name for i in snapshotter.walk()} == {"base", "act", "vw"}
        assert [i.name for i in snapshotter.walk(["kind==committed"])] == ["base"]
        assert {i.name for i in snapshotter.walk(["parent==base"])} == {"act", "vw"}
        assert [i.name for i in snapshotter.walk(["labels.color==red"])] == ["act"]
        assert {i.name for i in snapshotter.walk(["kind==view", "kind==active"])} == {"act", "vw"}
        by = {i.name: i for i in snapshotter.walk()}
        assert by["act"].kind == Kind.ACTIVE and by["act"].parent == "base"

    def test_usage(self, snapshotter: Snapshotter) -> None:
        with tree(snapshotter.prepare("a")) as root:
            (root / "big").write_bytes(b"\1" * (1 << 20))
            (root / "d").mkdir()
        live = snapshotter.usage("a")
        assert live.size >= 1 << 20
        assert live.inodes >= 2
        snapshotter.commit("c", "a")
        assert snapshotter.usage("c") == live
        snapshotter.prepare("child", "c")
        child = snapshotter.usage("child")
        if not self.COPIES_PARENTS:
            assert child.size < 1 << 20  # a snapshot's usage leaves its parents out
