from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd import errors
from pycontainerd.content import Info, write_blob
from pycontainerd.images import Descriptor, Image
from pycontainerd.leases import LABEL_EXPIRE, LABEL_FLAT
from pycontainerd.metadata import DB
from pycontainerd.metadata.gc import UNLEASED_INGEST_TTL, Node, mark, parse_expiry, references

MT = "application/vnd.oci.image.manifest.v1+json"


def blob(db: DB, data: bytes, ns: str = "default", lease: str | None = None, **labels: str) -> str:
    return write_blob(db.content(ns, lease), f"ref-{data.hex()}", data, labels=labels)


def present(db: DB, digest: str, ns: str = "default") -> bool:
    try:
        db.content(ns).info(digest)
    except errors.NotFound:
        return False
    return True


def in_backend(db: DB, digest: str) -> bool:
    try:
        db.backend.info(digest)
    except errors.NotFound:
        return False
    return True


def test_unreferenced_removed_and_referenced_kept(db: DB) -> None:
    layer = blob(db, b"layer")
    config = blob(db, b"config")
    manifest = blob(
        db,
        json.dumps({"c": config, "l": layer}).encode(),
        **{"containerd.io/gc.ref.content.config": config, "containerd.io/gc.ref.content.l.0": layer},
    )
    orphan = blob(db, b"orphan")
    db.images("default").create(Image("img", Descriptor(MT, manifest, 10)))
    stats = db.collect_garbage()
    assert all(present(db, d) for d in (layer, config, manifest))
    assert not present(db, orphan) and not in_backend(db, orphan)
    assert stats.content_removed == 1 and stats.blobs_removed == 1
    db.images("default").delete("img")
    db.collect_garbage()
    assert not any(in_backend(db, d) for d in (layer, config, manifest))


def test_gc_root_label(db: DB) -> None:
    child = blob(db, b"child")
    root = blob(db, b"root", **{"containerd.io/gc.root": "2026-11-22T00:00:00Z", "containerd.io/gc.ref.content": child})
    db.collect_garbage()
    assert present(db, root) and present(db, child)
    db.content("default").update(Info(root, 0, datetime.now(UTC), datetime.now(UTC), {}), ["labels"])
    db.collect_garbage()
    assert not present(db, root) and not present(db, child)


def test_lease_protects_until_deleted(db: DB) -> None:
    db.leases("default").create("pull")
    d = blob(db, b"leased", lease="pull")
    db.collect_garbage()
    assert present(db, d)
    db.leases("default").delete("pull")
    db.collect_garbage()
    assert not in_backend(db, d)


def test_lease_expiry(db: DB) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    db.leases("default").create("old", {LABEL_EXPIRE: past})
    db.leases("default").create("new", {LABEL_EXPIRE: future})
    a = blob(db, b"a", lease="old")
    b = blob(db, b"b", lease="new")
    stats = db.collect_garbage()
    assert stats.leases_removed == 1
    assert [x.id for x in db.leases("default").list()] == ["new"]
    assert not present(db, a) and present(db, b)


def test_flat_lease_does_not_follow_refs(db: DB) -> None:
    child = blob(db, b"c")
    parent = blob(db, b"p", **{"containerd.io/gc.ref.content": child})
    db.leases("default").create("flat", {LABEL_FLAT: "true"})
    db.leases("default").create("deep")
    from pycontainerd.leases import Resource

    db.leases("default").add_resource("flat", Resource(parent, "content"))
    db.collect_garbage()
    assert present(db, parent) and not present(db, child)


def test_shared_blob_lives_while_any_namespace_holds_it(db: DB) -> None:
    d = blob(db, b"shared", ns="one")
    db.images("one").create(Image("i", Descriptor(MT, d, 6)))
    # Second namespace gets the blob by the sharing policy: writer() with the expected digest.
    with pytest.raises(errors.AlreadyExists):
        db.content("two").writer("r", expected=d)
    assert present(db, d, "two")
    db.images("two").create(Image("i", Descriptor(MT, d, 6)))
    db.images("one").delete("i")
    db.collect_garbage()
    assert not present(db, d, "one") and present(db, d, "two") and in_backend(db, d)
    db.images("two").delete("i")
    db.collect_garbage()
    assert not in_backend(db, d)


def test_ingests(db: DB) -> None:
    db.leases("default").create("l")
    w1 = db.content("default", "l").writer("leased-ingest")
    w1.write(b"partial")
    w1.close()
    w2 = db.content("default").writer("free-ingest")
    w2.write(b"partial")
    w2.close()
    db.collect_garbage()
    assert {s.ref for s in db.content("default").list_statuses()} == {"leased-ingest", "free-ingest"}
    db.leases("default").delete("l")
    stats = db.collect_garbage()
    assert [s.ref for s in db.content("default").list_statuses()] == ["free-ingest"]
    assert stats.ingests_removed == 1
    assert [s.ref for s in db.backend.list_statuses()] == ["default/free-ingest"]


def test_unleased_ingests_expire_after_a_day(db: DB) -> None:
    for ref in ("old-ingest", "new-ingest"):
        w = db.content("default").writer(ref)
        w.write(b"partial")
        w.close()
    day_ago = time.time_ns() - int(UNLEASED_INGEST_TTL * 1e9) - 1
    with db.write() as conn:
        conn.execute("UPDATE ingests SET created_ns = ? WHERE ref = 'old-ingest'", (day_ago,))
    stats = db.collect_garbage()
    assert [s.ref for s in db.content("default").list_statuses()] == ["new-ingest"]
    assert stats.ingests_removed == 1
    assert [s.ref for s in db.backend.list_statuses()] == ["default/new-ingest"]


def test_scheduler_runs_after_delete(db: DB) -> None:
    db.scheduler.start()  # recovers first: collects what nothing references, so the blob comes after
    d = blob(db, b"soon gone")
    db.content("default").delete(d)
    deadline = time.monotonic() + 10
    while (in_backend(db, d) or db.scheduler.runs < 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not in_backend(db, d)
    assert db.scheduler.runs >= 1


def test_references_parsing() -> None:
    labels = {
        "containerd.io/gc.ref.content": "sha256:a",
        "containerd.io/gc.ref.content.l.0": "sha256:b",
        "containerd.io/gc.ref.snapshot.overlayfs": "key1",
        "containerd.io/gc.ref.snapshot.native/1": "key2",
        "containerd.io/gc.ref.contentish": "sha256:nope",
        "other": "x",
    }
    assert set(references("ns", labels)) == {
        ("content", "ns", "sha256:a"),
        ("content", "ns", "sha256:b"),
        ("snapshots/overlayfs", "ns", "key1"),
        ("snapshots/native", "ns", "key2"),
    }


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-01-02T03:04:05Z", True),
        ("2026-01-02T03:04:05.123456789Z", True),
        ("2026-01-02T03:04:05+02:00", True),
        ("2026-01-02T03:04:05", False),
        ("tomorrow", False),
        ("", False),
    ],
)
def test_parse_expiry(text: str, ok: bool) -> None:
    assert (parse_expiry(text) is not None) == ok


nodes = st.tuples(st.just("content"), st.just("ns"), st.sampled_from("abcdefgh"))


@given(st.lists(nodes, max_size=4), st.dictionaries(nodes, st.lists(nodes, max_size=3)))
def test_mark_is_reachability(roots: list[Node], graph: dict[Node, list[Node]]) -> None:
    live = mark(roots, lambda n: graph.get(n, []))
    assert set(roots) <= live
    for n in live:
        assert set(graph.get(n, [])) <= live
    # Minimality: every live node is reachable by a path from a root.
    reach: set[Node] = set(roots)
    changed = True
    while changed:
        new = {m for n in reach for m in graph.get(n, [])} - reach
        changed = bool(new)
        reach |= new
    assert live == reach
