"""The content store contract, for every implementation of ``content.Store``.

Subclass :class:`ContentStoreSuite` and provide a ``store`` fixture returning a
fresh, empty store that keeps labels::

    class TestLocal(ContentStoreSuite):
        @pytest.fixture
        def store(self, tmp_path):
            return LocalStore(tmp_path, MemoryLabelStore())

The tests use only the protocol and :mod:`pycontainerd.errors`, so the local
store, the metadata wrapper and the gRPC proxy are held to the same behaviour.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pycontainerd import errors
from pycontainerd.content import Store, Writer, write_blob

# Timestamps come from file systems and other processes with coarse clocks.
SLACK = timedelta(seconds=1)
MiB = 1 << 20
EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BAD_DIGESTS = [
    "",
    "sha256",
    "sha256:",
    "sha256:abc",
    "sha256:" + "A" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha256:../../../../etc/passwd",
    "sha256:" + "0" * 63 + "/",
]


def content(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 7919 + size).randbytes(size)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def assert_between(t: datetime, lo: datetime, hi: datetime) -> None:
    assert lo - SLACK <= t <= hi + SLACK, f"{t} not within [{lo}, {hi}]"


def write_chunks(w: Writer, data: bytes, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        assert w.write(data[i : i + chunk]) == len(data[i : i + chunk])


def commit(store: Store, ref: str, data: bytes, labels: dict[str, str] | None = None) -> str:
    w = store.writer(ref, total=len(data), expected=sha(data))
    try:
        write_chunks(w, data, 4096)
        return w.commit(len(data), sha(data), labels=labels)
    finally:
        w.close()


def read_all(store: Store, digest: str, chunk: int = MiB) -> bytes:
    r = store.reader_at(digest)
    try:
        return b"".join(r.read_at(off, chunk) for off in range(0, r.size, chunk))
    finally:
        r.close()


class ContentStoreSuite:
    """Tests every ``content.Store`` must pass; subclasses supply ``store``."""

    @pytest.fixture
    def opened(self) -> Iterator[list[Writer]]:
        """Writers a test opens; closed at the end even when the test fails."""
        ws: list[Writer] = []
        yield ws
        for w in ws:
            w.close()

    # -- write, commit, read ---------------------------------------------------

    def test_round_trip(self, store: Store) -> None:
        data = content(10_000)
        labels = {"containerd.io/gc.root": "2024-01-01T00:00:00Z", "k": "v"}
        w = store.writer("round-trip", total=len(data), expected=sha(data))
        write_chunks(w, data, 1000)
        assert w.digest() == sha(data)
        before = now()
        assert w.commit(len(data), sha(data), labels=labels) == sha(data)
        after = now()
        w.close()
        assert w.digest() == sha(data)

        info = store.info(sha(data))
        assert (info.digest, info.size, dict(info.labels)) == (sha(data), len(data), labels)
        assert_between(info.created_at, before, after)
        assert_between(info.updated_at, before, after)
        assert read_all(store, sha(data)) == data
        with pytest.raises(errors.NotFound):
            store.status("round-trip")
        assert store.list_statuses() == []

    @pytest.mark.parametrize(
        ("give_total", "give_expected"), [(False, False), (True, False), (False, True), (True, True)]
    )
    def test_writer_descriptor_optional(self, store: Store, give_total: bool, give_expected: bool) -> None:
        data = content(256, seed=give_total + 2 * give_expected)
        w = store.writer("opt", total=len(data) if give_total else 0, expected=sha(data) if give_expected else "")
        write_chunks(w, data, 32)
        assert w.commit() == sha(data)
        w.close()
        assert store.info(sha(data)).size == len(data)
        assert dict(store.info(sha(data)).labels) == {}

    def test_empty_blob(self, store: Store) -> None:
        w = store.writer("empty", expected=EMPTY)
        assert w.digest() == EMPTY
        assert w.commit(0, EMPTY) == EMPTY
        w.close()
        assert store.info(EMPTY).size == 0
        r = store.reader_at(EMPTY)
        try:
            assert r.size == 0
            assert r.read_at(0, 10) == b""
        finally:
            r.close()

    def test_large_blob(self, store: Store) -> None:
        chunk = content(MiB, seed=20)
        h = hashlib.sha256()
        w = store.writer("large", total=20 * MiB)
        for i in range(20):
            part = bytes([i]) + chunk[1:]
            h.update(part)
            w.write(part)
        dgst = "sha256:" + h.hexdigest()
        assert w.status().offset == 20 * MiB
        assert w.commit(20 * MiB, dgst) == dgst
        w.close()
        r = store.reader_at(dgst)
        try:
            assert r.size == 20 * MiB
            back = hashlib.sha256()
            for off in range(0, r.size, 3 * MiB):
                back.update(r.read_at(off, 3 * MiB))
            assert "sha256:" + back.hexdigest() == dgst
        finally:
            r.close()

    # -- status ----------------------------------------------------------------

    def test_status_tracks_writes(self, store: Store, opened: list[Writer]) -> None:
        data = content(256)
        before = now()
        w = store.writer("st", total=256, expected=sha(data))
        opened.append(w)
        started = now()
        st = w.status()
        assert (st.ref, st.offset, st.total, st.expected) == ("st", 0, 256, sha(data))
        assert_between(st.started_at, before, started)
        assert w.digest() == EMPTY
        for start, end in ((0, 64), (64, 192), (192, 256)):
            w.write(data[start:end])
            st = w.status()
            assert st.offset == end
            assert w.digest() == sha(data[:end])
            # What a writer has written is visible to status() on the store.
            assert store.status("st").offset == end
        on_store = store.status("st")
        assert (on_store.ref, on_store.total, on_store.expected) == ("st", 256, sha(data))
        assert_between(on_store.started_at, before, started)
        assert_between(on_store.updated_at, before, now())

    def test_list_statuses_filters(self, store: Store, opened: list[Writer]) -> None:
        for ref in ("alpha", "beta", "gamma"):
            w = store.writer(ref)
            opened.append(w)
            w.write(ref.encode())
        assert sorted(s.ref for s in store.list_statuses()) == ["alpha", "beta", "gamma"]
        assert [s.ref for s in store.list_statuses(["ref==beta"])] == ["beta"]
        assert [s.offset for s in store.list_statuses(["ref==beta"])] == [4]
        assert sorted(s.ref for s in store.list_statuses(["ref==alpha", "ref==gamma"])) == ["alpha", "gamma"]
        assert store.list_statuses(["ref==delta"]) == []
        with pytest.raises(errors.InvalidArgument):
            store.list_statuses(["ref=="])

    def test_status_missing(self, store: Store) -> None:
        with pytest.raises(errors.NotFound):
            store.status("nope")

    # -- commit failures -------------------------------------------------------

    def test_commit_size_mismatch_keeps_ingest(self, store: Store) -> None:
        data = content(300)
        w = store.writer("size")
        w.write(data)
        with pytest.raises(errors.FailedPrecondition, match="size"):
            w.commit(len(data) + 1)
        w.close()
        assert store.status("size").offset == len(data)
        w = store.writer("size")
        try:
            assert w.status().offset == len(data)
            assert w.digest() == sha(data)
            w.write(b"!")
            assert w.commit(len(data) + 1) == sha(data + b"!")
        finally:
            w.close()
        assert read_all(store, sha(data + b"!")) == data + b"!"

    def test_commit_digest_mismatch_keeps_ingest(self, store: Store) -> None:
        data = content(300)
        w = store.writer("digest")
        w.write(data)
        with pytest.raises(errors.FailedPrecondition, match="digest"):
            w.commit(len(data), sha(b"something else"))
        w.close()
        assert store.status("digest").offset == len(data)
        with pytest.raises(errors.NotFound):
            store.info(sha(data))
        store.abort("digest")
        with pytest.raises(errors.NotFound):
            store.status("digest")
        w = store.writer("digest")
        try:
            assert w.status().offset == 0
            assert w.digest() == EMPTY
        finally:
            w.close()

    @pytest.mark.parametrize("with_expected", [True, False])
    def test_commit_existing_blob(self, store: Store, with_expected: bool) -> None:
        data = content(256)
        commit(store, "first", data)
        w = store.writer("second")
        try:
            w.write(data)
            with pytest.raises(errors.AlreadyExists):
                w.commit(len(data), sha(data) if with_expected else "")
        finally:
            w.close()
        with pytest.raises(errors.NotFound):
            store.status("second")
        w = store.writer("second")  # the ref is free again and starts over
        try:
            assert w.status().offset == 0
        finally:
            w.close()

    def test_writer_for_existing_blob(self, store: Store) -> None:
        data = content(64)
        commit(store, "exists", data)
        with pytest.raises(errors.AlreadyExists):
            store.writer("again", total=len(data), expected=sha(data))
        # The refusal must not leave the ref locked.
        store.writer("again").close()

    # -- resume ----------------------------------------------------------------

    @pytest.mark.parametrize("size", [500, 50_000])
    @pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 1.0])
    def test_resume_after_close(self, store: Store, size: int, fraction: float) -> None:
        data = content(size)
        limit = int(size * fraction)
        w = store.writer("resume", total=size, expected=sha(data))
        write_chunks(w, data[:limit], 1024)
        w.close()
        assert store.status("resume").offset == limit
        w = store.writer("resume", total=size, expected=sha(data))
        try:
            st = w.status()
            assert (st.offset, st.total) == (limit, size)
            assert w.digest() == sha(data[:limit])
            write_chunks(w, data[limit:], 1024)
            assert w.commit(size, sha(data)) == sha(data)
        finally:
            w.close()
        assert read_all(store, sha(data)) == data

    def test_resume_truncate(self, store: Store) -> None:
        data = content(5000)
        w = store.writer("trunc", total=len(data))
        w.write(b"garbage that is not part of the blob")
        w.close()
        w = store.writer("trunc", total=len(data))
        try:
            assert w.status().offset > 0
            w.truncate(0)
            assert w.status().offset == 0
            assert w.digest() == EMPTY
            assert store.status("trunc").offset == 0
            write_chunks(w, data, 1000)
            assert w.commit(len(data), sha(data)) == sha(data)
        finally:
            w.close()
        assert read_all(store, sha(data)) == data

    # -- one writer per ref ------------------------------------------------------

    def test_second_writer_unavailable(self, store: Store, opened: list[Writer]) -> None:
        w = store.writer("busy")
        opened.append(w)
        w.write(b"abc")
        with pytest.raises(errors.Unavailable):
            store.writer("busy")
        other = store.writer("other")  # other refs are not affected
        opened.append(other)
        w.close()
        w2 = store.writer("busy")
        opened.append(w2)
        assert w2.status().offset == 3
        with pytest.raises(errors.Unavailable):
            store.writer("busy")

    def test_ref_free_after_commit_and_failed_commit(self, store: Store) -> None:
        w = store.writer("cycle")
        w.write(b"abc")
        with pytest.raises(errors.FailedPrecondition):
            w.commit(1)
        w.close()
        w = store.writer("cycle")
        assert w.commit(3) == sha(b"abc")
        w.close()
        store.writer("cycle").close()

    # -- abort -----------------------------------------------------------------

    def test_abort(self, store: Store) -> None:
        w = store.writer("ab", total=10)
        w.write(b"12345")
        w.close()
        store.abort("ab")
        with pytest.raises(errors.NotFound):
            store.status("ab")
        assert store.list_statuses() == []
        w = store.writer("ab")
        try:
            st = w.status()
            assert (st.offset, st.total) == (0, 0)
        finally:
            w.close()

    def test_abort_missing(self, store: Store) -> None:
        with pytest.raises(errors.NotFound):
            store.abort("never-started")

    # -- labels ----------------------------------------------------------------

    def test_labels_update(self, store: Store) -> None:
        data = content(256)
        root = {"containerd.io/gc.root": "now"}
        dgst = commit(store, "labels", data, labels={"k1": "v1", "k2": "v2", **root})
        info = store.info(dgst)
        assert dict(info.labels) == {"k1": "v1", "k2": "v2", **root}

        before = now()
        new = store.update(replace(info, labels={"k1": "newvalue", "k3": "v3", **root}))
        assert dict(new.labels) == {"k1": "newvalue", "k3": "v3", **root}
        assert_between(new.updated_at, before, now())
        got = store.info(dgst)
        assert dict(got.labels) == dict(new.labels)
        assert_between(got.updated_at, before, now())
        assert got.created_at <= info.created_at + SLACK

        # Only the named keys change; a key absent from info is removed.
        new = store.update(replace(info, labels={"k1": "v1", "k2": "ignored"}), ["labels.k3", "labels.k1"])
        assert dict(new.labels) == {"k1": "v1", **root}
        assert dict(store.info(dgst).labels) == {"k1": "v1", **root}

        new = store.update(replace(info, labels={"only": "this"}), ["labels"])
        assert dict(store.info(dgst).labels) == {"only": "this"}

        store.update(replace(info, labels={}))
        assert dict(store.info(dgst).labels) == {}

    def test_update_errors(self, store: Store) -> None:
        dgst = commit(store, "ue", b"update errors")
        info = store.info(dgst)
        with pytest.raises(errors.InvalidArgument):
            store.update(info, ["size"])
        with pytest.raises(errors.NotFound):
            store.update(replace(info, digest=sha(b"missing")), ["labels"])

    # -- walk ------------------------------------------------------------------

    def test_walk_filters(self, store: Store) -> None:
        a = commit(store, "a", b"blob a", labels={"x": "1", "group": "one"})
        b = commit(store, "b", b"blob b", labels={"x": "2"})
        c = commit(store, "c", b"blob c")

        def walk(*filters: str) -> set[str]:
            return {i.digest for i in store.walk(filters)}

        assert walk() == {a, b, c}
        assert walk(f"digest=={b}") == {b}
        assert walk("labels.x==1") == {a}
        assert walk("labels.x") == {a, b}
        assert walk("labels.group==one", f"digest=={c}") == {a, c}
        assert walk("labels.x!=1") == {b, c}
        assert walk("labels.nothing") == set()
        infos = {i.digest: i for i in store.walk()}
        assert dict(infos[a].labels) == {"x": "1", "group": "one"}
        assert infos[c].size == len(b"blob c")
        with pytest.raises(errors.InvalidArgument):
            list(store.walk(["digest=="]))

    # -- delete ----------------------------------------------------------------

    def test_delete(self, store: Store) -> None:
        dgst = commit(store, "del", b"to be deleted", labels={"k": "v"})
        store.delete(dgst)
        with pytest.raises(errors.NotFound):
            store.info(dgst)
        with pytest.raises(errors.NotFound):
            store.reader_at(dgst)
        with pytest.raises(errors.NotFound):
            store.delete(dgst)
        assert list(store.walk()) == []
        # A blob written again after delete does not inherit the old labels.  A store
        # whose blobs outlive the record until GC (the metadata wrapper) may answer
        # AlreadyExists and restore the record; write_blob takes that as success.
        assert write_blob(store, "del", b"to be deleted", expected=dgst) == dgst
        assert dict(store.info(dgst).labels) == {}

    # -- reader_at -------------------------------------------------------------

    def test_reader_at(self, store: Store) -> None:
        data = content(1000)
        dgst = commit(store, "ra", data)
        r = store.reader_at(dgst)
        try:
            assert r.size == 1000
            assert r.read_at(0, 10) == data[:10]
            assert r.read_at(500, 100) == data[500:600]
            assert r.read_at(990, 100) == data[990:]
            assert r.read_at(0, 5000) == data
            assert r.read_at(1000, 10) == b""
            assert r.read_at(0, 0) == b""
            try:
                assert r.read_at(2000, 10) == b""
            except errors.OutOfRange:
                pass  # a remote store may refuse a read past the end
        finally:
            r.close()

    # -- validation --------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_DIGESTS)
    def test_invalid_digest(self, store: Store, bad: str) -> None:
        with pytest.raises(errors.InvalidArgument):
            store.info(bad)
        with pytest.raises(errors.InvalidArgument):
            store.reader_at(bad)
        with pytest.raises(errors.InvalidArgument):
            store.delete(bad)
        if bad:  # "" means "no expectation" for writers
            with pytest.raises(errors.InvalidArgument):
                store.writer("bad-expected", expected=bad)
            w = store.writer("bad-commit")
            try:
                w.write(b"x")
                with pytest.raises(errors.InvalidArgument):
                    w.commit(1, bad)
            finally:
                w.close()

    def test_invalid_ref(self, store: Store) -> None:
        with pytest.raises(errors.InvalidArgument):
            store.writer("")
