"""The local content store: the conformance suite, plus what only a directory store can show."""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.content import Info, Store
from pycontainerd.content._ingest import format_time, parse_time
from pycontainerd.content.local import LocalStore, MemoryLabelStore
from tests.conformance.content import EMPTY, ContentStoreSuite, commit, content, read_all, sha


class TestLocalStore(ContentStoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return LocalStore(tmp_path / "content", MemoryLabelStore())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "content"


@pytest.fixture
def store(root: Path) -> LocalStore:
    return LocalStore(root, MemoryLabelStore())


def ingest_of(root: Path, ref: str) -> Path:
    return root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()


# -- layout ------------------------------------------------------------------


def test_ingest_layout(root: Path, store: LocalStore) -> None:
    data = content(100)
    w = store.writer("layout", total=100, expected=sha(data))
    try:
        w.write(data[:40])
        path = ingest_of(root, "layout")
        assert sorted(p.name for p in path.iterdir()) == ["data", "expected", "ref", "startedat", "total"]
        assert (path / "ref").read_text() == "layout"
        assert (path / "total").read_text() == "100"
        assert (path / "expected").read_text() == sha(data)
        assert (path / "data").read_bytes() == data[:40]
        assert abs(parse_time((path / "startedat").read_text()) - time.time_ns()) < 10 * 10**9
        assert not [p for p in (root / "ingest").iterdir() if p.name.startswith(".")]
    finally:
        w.close()


def test_blob_layout_and_mode(root: Path, store: LocalStore) -> None:
    data = content(100)
    dgst = commit(store, "blob", data)
    blob = root / "blobs" / "sha256" / dgst.removeprefix("sha256:")
    assert blob.read_bytes() == data
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    assert list((root / "ingest").iterdir()) == []


def test_sha512_expected_goes_to_its_own_directory(root: Path, store: LocalStore) -> None:
    data = b"five twelve"
    d512 = "sha512:" + hashlib.sha512(data).hexdigest()
    w = store.writer("512", expected=d512)
    w.write(data)
    assert w.commit(len(data), d512) == d512
    assert (root / "blobs" / "sha512" / d512.removeprefix("sha512:")).read_bytes() == data
    assert read_all(store, d512) == data


def test_walk_skips_stray_files(root: Path, store: LocalStore) -> None:
    dgst = commit(store, "w", b"walk")
    (root / "blobs" / "sha256" / "not-a-digest").write_text("x")
    (root / "blobs" / "md5").mkdir()
    (root / "blobs" / "md5" / ("0" * 32)).write_text("x")
    assert [i.digest for i in store.walk()] == [dgst]


def test_timestamps_round_trip_containerd_format() -> None:
    ns = 1_700_000_000_123_456_789
    assert parse_time(format_time(ns)) == ns
    assert parse_time("2023-11-14T22:13:20.5+01:00") == (1_700_000_000 - 3600) * 10**9 + 500_000_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000 * 10**9


def test_reads_ingest_written_by_containerd(root: Path, store: LocalStore) -> None:
    path = ingest_of(root, "from-go")
    path.mkdir()
    (path / "ref").write_text("from-go")
    (path / "startedat").write_text("2023-11-14T23:13:20.123456789+01:00")
    (path / "updatedat").write_text("2023-11-14T23:13:20.123456789+01:00")
    (path / "data").write_bytes(b"partial")
    st = store.status("from-go")
    assert (st.ref, st.offset, st.total, st.expected) == ("from-go", 7, 0, "")
    assert st.started_at.timestamp() == pytest.approx(1_700_000_000.123456)
    w = store.writer("from-go")
    try:
        assert w.status().offset == 7
        assert w.digest() == sha(b"partial")
    finally:
        w.close()


def test_broken_ingest_is_skipped_then_restarted(root: Path, store: LocalStore) -> None:
    w = store.writer("broken")
    w.write(b"abc")
    w.close()
    (ingest_of(root, "broken") / "startedat").unlink()
    assert store.list_statuses() == []
    with pytest.raises(errors.NotFound):
        store.status("broken")
    w = store.writer("broken")
    try:
        assert w.status().offset == 0
    finally:
        w.close()


def test_stale_tmp_dirs_removed_on_open(root: Path, store: LocalStore) -> None:
    old = root / "ingest" / ".tmp-old"
    new = root / "ingest" / ".tmp-new"
    old.mkdir()
    new.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    LocalStore(root)
    assert not old.exists()
    assert new.exists()  # might be another process's ingest being built


# -- refs ----------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["../../escape", "/etc/passwd", "..", "a/../../../b", ".", "x\ny", "ü" * 300])
def test_ref_cannot_escape_root(tmp_path: Path, ref: str) -> None:
    store = LocalStore(tmp_path / "content")
    w = store.writer(ref)
    try:
        w.write(b"data")
        assert store.status(ref).ref == ref
    finally:
        w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content"]
    assert [p.name for p in (tmp_path / "content" / "ingest").iterdir()] == [hashlib.sha256(ref.encode()).hexdigest()]
    store.abort(ref)


@pytest.mark.parametrize("ref", ["", "nul\x00", "x" * 1024])
def test_invalid_refs(store: LocalStore, ref: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        store.writer(ref)


def test_longest_ref(store: LocalStore) -> None:
    store.writer("x" * 1023).close()


# -- writer state --------------------------------------------------------------


def test_resume_takes_new_total_and_expected(store: LocalStore) -> None:
    data = content(50)
    w = store.writer("change", total=10, expected=sha(b"old"))
    w.write(data[:5])
    w.close()
    w = store.writer("change", total=50, expected=sha(data))
    try:
        st = w.status()
        assert (st.offset, st.total, st.expected) == (5, 50, sha(data))
    finally:
        w.close()
    st = store.status("change")
    assert (st.total, st.expected) == (50, sha(data))
    w = store.writer("change")  # zero values keep what is stored
    try:
        assert (w.status().total, w.status().expected) == (50, sha(data))
    finally:
        w.close()


def test_closed_writer_refuses(store: LocalStore) -> None:
    w = store.writer("closed")
    w.write(b"abc")
    assert w.commit() == sha(b"abc")
    with pytest.raises(errors.FailedPrecondition):
        w.commit()
    with pytest.raises(errors.FailedPrecondition):
        w.write(b"more")
    with pytest.raises(errors.FailedPrecondition):
        w.truncate(0)
    w.close()
    w.close()


def test_truncate_only_to_zero(store: LocalStore) -> None:
    w = store.writer("t")
    try:
        w.write(b"abc")
        with pytest.raises(errors.InvalidArgument):
            w.truncate(1)
    finally:
        w.close()


def test_abort_while_writing_fails_commit(store: LocalStore) -> None:
    w = store.writer("race")
    try:
        w.write(b"abc")
        store.abort("race")
        with pytest.raises(errors.Unavailable):
            store.writer("race")  # the open writer still holds the ref
        with pytest.raises(errors.NotFound):
            w.commit()
    finally:
        w.close()
    store.writer("race").close()


def test_lock_shared_by_stores_on_one_root(root: Path, store: LocalStore) -> None:
    w = store.writer("shared")
    try:
        with pytest.raises(errors.Unavailable, match="ref shared locked"):
            LocalStore(root).writer("shared")
    finally:
        w.close()


def test_dropped_writer_releases_ref(store: LocalStore) -> None:
    store.writer("dropped").write(b"x")
    gc.collect()
    w = store.writer("dropped")
    try:
        assert w.status().offset == 1
    finally:
        w.close()


# -- without labels --------------------------------------------------------------


def test_without_label_store(root: Path) -> None:
    store = LocalStore(root)
    dgst = commit(store, "nolabels", b"data", labels={"k": "v"})
    info = store.info(dgst)
    assert dict(info.labels) == {}
    with pytest.raises(errors.FailedPrecondition):
        store.update(Info(dgst, info.size, info.created_at, info.updated_at, {"k": "v"}))


# -- readers -----------------------------------------------------------------------


def test_reader_survives_delete_and_keeps_atime(store: LocalStore) -> None:
    data = content(4096)
    dgst = commit(store, "r", data)
    before = store.info(dgst).updated_at
    time.sleep(0.01)
    r = store.reader_at(dgst)
    try:
        assert r.read_at(0, 4096) == data
        assert store.info(dgst).updated_at == before  # reading is not an update
        store.delete(dgst)
        assert r.read_at(4000, 200) == data[4000:]
        with pytest.raises(errors.InvalidArgument):
            r.read_at(-1, 1)
    finally:
        r.close()
    with pytest.raises(errors.FailedPrecondition):
        r.read_at(0, 1)


# -- crashes ---------------------------------------------------------------------------

CHUNK = 64 << 10

_WRITER = """
import os, sys
from pathlib import Path
from pycontainerd.content.local import LocalStore
store = LocalStore(Path(sys.argv[1]))
w = store.writer("crash", total=int(sys.argv[2]))
i = 0
while True:
    w.write(bytes([i % 256]) * {chunk})
    i += 1
    if i == 40:
        print("ready", flush=True)
"""


def stream(n: int) -> bytes:
    return b"".join(bytes([i % 256]) * CHUNK for i in range(n))


@pytest.fixture
def killed_writer(root: Path) -> Iterator[subprocess.Popen[str]]:
    """A process in the middle of a long ingest of ``stream``, killed when the test says."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WRITER).format(chunk=CHUNK), str(root), str(1 << 40)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_ingest_survives_sigkill(root: Path, killed_writer: subprocess.Popen[str]) -> None:
    store = LocalStore(root)
    with pytest.raises(errors.Unavailable, match="another process"):
        store.writer("crash")
    os.kill(killed_writer.pid, signal.SIGKILL)
    killed_writer.wait()

    st = store.status("crash")
    assert st.offset >= 40 * CHUNK
    assert st.total == 1 << 40
    n = st.offset // CHUNK + 1
    full = stream(n)
    w = store.writer("crash", total=len(full), expected=sha(full))
    try:
        assert w.status().offset == st.offset
        assert w.digest() == sha(full[: st.offset])  # the data on disk is a prefix of the stream
        w.write(full[st.offset :])
        assert w.commit(len(full), sha(full)) == sha(full)
    finally:
        w.close()
    assert read_all(LocalStore(root), sha(full)) == full


_COMMITTER = """
import os, signal, sys
from pathlib import Path
from pycontainerd.content.local import LocalStore
real_rename = os.rename
def rename(src, dst):
    if "/blobs/" in str(dst) and sys.argv[2] == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_rename(src, dst)
    if "/blobs/" in str(dst) and sys.argv[2] == "after":
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
w = LocalStore(Path(sys.argv[1])).writer("crash")
w.write(bytes(range(256)) * 4096)
w.commit()
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_no_partial_blob_after_crash_in_commit(root: Path, when: str) -> None:
    data = bytes(range(256)) * 4096
    proc = subprocess.run([sys.executable, "-c", _COMMITTER, str(root), when], check=False)
    assert proc.returncode == -signal.SIGKILL
    store = LocalStore(root, MemoryLabelStore())
    blobs = list((root / "blobs").rglob("*"))
    for blob in (b for b in blobs if b.is_file()):
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == f"sha256:{blob.name}"
    if when == "before":
        assert [i.digest for i in store.walk()] == []
        w = store.writer("crash")
        assert w.status().offset == len(data)
        assert w.commit(len(data), sha(data)) == sha(data)
    else:
        assert [i.digest for i in store.walk()] == [sha(data)]
        assert stat.S_IMODE((root / "blobs" / "sha256" / sha(data)[7:]).stat().st_mode) == 0o444
        assert store.list_statuses() == []  # the leftover ingest directory has no data
        with pytest.raises(errors.AlreadyExists):
            store.writer("crash", expected=sha(data))
        w = store.writer("crash")
        assert (w.status().offset, w.digest()) == (0, EMPTY)
        w.close()
    assert read_all(store, sha(data)) == data
