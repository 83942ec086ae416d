"""A migrated image's layer blobs made on demand, against a real daemon, on images made here.

Each image is stored as the migration stores one: committed snapshots
applied by the daemon from tars made here (whose blobs are then deleted),
each layer's tar-split record (made by the tests' ``disassemble``) as a
blob labelled with its diff id, a config, and an OCI manifest of
uncompressed layers labelled with the records.  :func:`materialize` must
turn that into gzip blobs whose streams are the diff ids, under a new
manifest that every record of the image then names; and refuse, in one
line and without leaving anything behind, damaged records and changed files.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import secrets
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from pycontainerd import images as images_api
from pycontainerd import platforms
from pycontainerd.client import Client
from pycontainerd.content import open_blob, read_blob, write_blob
from pycontainerd.content.helpers import ensure_labels
from pycontainerd.content.proxy import ContentStore
from pycontainerd.diff.proxy import ProxyDiffer
from pycontainerd.errors import Canceled, ContainerdError, InvalidArgument, NotFound
from pycontainerd.images import Descriptor, Image
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.identity import chain_ids
from pycontainerd.images.manifest import parse_manifest
from pycontainerd.migrate.importer import DANGLING_PREFIX
from pycontainerd.migrate.labels import LABEL_DIFF_ID, tar_split_label
from pycontainerd.migrate.ondemand import (
    COMPRESSED,
    COMPRESSING,
    KEY_PREFIX,
    Stores,
    _read_only,
    _record_entries,
    find_tar_split,
    materialize,
    needs_blobs,
    tar_split_labels,
)
from pycontainerd.mount import Mount
from pycontainerd.snapshots import Snapshotter, exists
from pycontainerd.transfer import Progress
from pydockerd._imagesave import prepare_save
from tests.fixtures.daemon import PycontainerdDaemon, private_daemon
from tests.migrate.test_tarsplit import disassemble, info, make_tar

UNCOMPRESSED = "containerd.io/uncompressed"

BASE = [
    (info("bin/", tarfile.DIRTYPE), b""),
    (info("bin/tool"), b"#!/bin/sh\necho tool\n" * 50),
    (info("bin/same", tarfile.LNKTYPE, "bin/tool"), b""),
    (info("bin/sym", tarfile.SYMTYPE, "tool"), b""),
    (info("etc/", tarfile.DIRTYPE), b""),
    (info("etc/a"), b"a\n"),
    (info("etc/empty"), b""),
    (info("opt/", tarfile.DIRTYPE), b""),
    (info("opt/old"), b"old\n"),
]
TOP = [
    (info("etc/", tarfile.DIRTYPE), b""),
    (info("etc/.wh.a"), b""),
    (info("opt/", tarfile.DIRTYPE), b""),
    (info("opt/.wh..wh..opq"), b""),
    (info("opt/new"), b"new\n"),
    (info("x/y/", tarfile.DIRTYPE), b""),
    (info("x/y/big"), os.urandom(3 << 20)),
    (info("x/hard", tarfile.LNKTYPE, "x/y/big"), b""),
]


@pytest.fixture(scope="module")
def daemon() -> Iterator[PycontainerdDaemon]:
    with private_daemon() as d:
        yield d.start()


@pytest.fixture
def client(daemon: PycontainerdDaemon) -> Iterator[Client]:
    """A client in a namespace of its own: every test starts from nothing."""
    with Client(daemon.address, namespace=f"t{secrets.token_hex(4)}") as c:
        yield c


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put(content: ContentStore, ref: str, data: bytes, digest: str, labels: dict[str, str] | None = None) -> str:
    """Store a blob with its labels (a blob another namespace has is shared into this one without them)."""
    write_blob(content, ref, data, digest, labels)
    ensure_labels(content, digest, labels or {})
    return digest


@dataclass(frozen=True)
class Migrated:
    image: Image
    tars: list[bytes]
    diff_ids: list[str]
    records: list[str]
    snapshotter: str

    @property
    def chains(self) -> list[str]:
        return chain_ids(self.diff_ids)


def migrated(client: Client, name: str, layers: list[bytes], snapshotter: str = "overlayfs") -> Migrated:
    """An image stored as the migration stores one: snapshots and tar-split records, no layer blobs."""
    diff_ids = [_digest(t) for t in layers]
    chains = chain_ids(diff_ids)
    p = platforms.default()
    config = json.dumps(
        {"architecture": p.architecture, "os": p.os, "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    with client.lease() as leased:
        sn = leased.snapshotter(snapshotter)
        records = []
        for i, tar in enumerate(layers):
            record = disassemble(tar)
            records.append(put(leased.content, f"r-{i}", record, _digest(record), {LABEL_DIFF_ID: diff_ids[i]}))
            if exists(sn, chains[i]):
                continue  # another image's layer
            desc = Descriptor(mt.OCI_LAYER, diff_ids[i], len(tar))
            put(leased.content, f"l-{i}", tar, desc.digest)
            key = f"apply {chains[i]}"
            mounts = sn.prepare(key, chains[i - 1] if i else "")
            assert ProxyDiffer(leased.connection).apply(desc, mounts).digest == diff_ids[i]
            sn.commit(chains[i], key)
            leased.content.delete(desc.digest)  # as the migration leaves it: only the snapshot holds the files
        put(
            leased.content,
            "config",
            config,
            _digest(config),
            {f"containerd.io/gc.ref.snapshot.{snapshotter}": chains[-1]},
        )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": _digest(config), "size": len(config)},
                "layers": [
                    {"mediaType": mt.OCI_LAYER, "digest": d, "size": len(t)}
                    for d, t in zip(diff_ids, layers, strict=True)
                ],
            },
            separators=(",", ":"),
        ).encode()
        labels = {"containerd.io/gc.ref.content.config": _digest(config)}
        labels.update({tar_split_label(i): r for i, r in enumerate(records)})
        target = Descriptor(mt.OCI_MANIFEST, _digest(manifest), len(manifest))
        put(leased.content, "manifest", manifest, target.digest, labels)
        image = leased.images.create(Image(name=name, target=target))
    return Migrated(image, layers, diff_ids, records, snapshotter)


def two_layers(client: Client, name: str = "docker.io/library/m:1", snapshotter: str = "overlayfs") -> Migrated:
    return migrated(client, name, [make_tar(BASE), make_tar(TOP)], snapshotter)


def state(client: Client, snapshotter: str = "overlayfs") -> dict[str, object]:
    """Everything a failed materialize must leave as it was, after a collection."""
    held = client.leases.create_expiring(timedelta(minutes=1))
    client.leases.delete(held.id, sync=True)  # waits for a collection: what no one holds is gone
    return {
        "content": sorted(i.digest for i in client.content.walk()),
        "ingests": sorted(s.ref for s in client.content.list_statuses()),
        "images": sorted((i.name, i.target.digest) for i in client.images.list()),
        "snapshots": sorted(i.name for i in client.snapshotter(snapshotter).walk()),
        "leases": sorted(lease.id for lease in client.leases.list()),
    }


def _stream(client: Client, layer: Descriptor) -> bytes:
    with open_blob(client.content, layer.digest) as f:
        return gzip.decompress(f.read())


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_blobs_are_made_and_every_record_names_them(client: Client, snapshotter: str) -> None:
    m = two_layers(client, snapshotter=snapshotter)
    other = client.images.create(Image(name="docker.io/library/m:other", target=m.image.target))
    assert needs_blobs(client.content, m.image.target)
    old = parse_manifest(read_blob(client.content, m.image.target.digest), m.image.target.media_type)

    image = materialize(client, m.image)

    assert image.name == m.image.name and image.target.digest != m.image.target.digest
    assert client.images.get(other.name).target == image.target
    manifest = parse_manifest(read_blob(client.content, image.target.digest), image.target.media_type)
    assert manifest.config == old.config  # the image id stays Docker's
    assert [layer.media_type for layer in manifest.layers] == [mt.OCI_LAYER_GZIP] * 2
    for layer, tar, diff_id in zip(manifest.layers, m.tars, m.diff_ids, strict=True):
        assert _stream(client, layer) == tar  # byte for byte: the diff id
        blob = client.content.info(layer.digest)
        assert blob.labels[UNCOMPRESSED] == diff_id and blob.size == layer.size
    labels = client.content.info(image.target.digest).labels
    assert labels["containerd.io/gc.ref.content.config"] == manifest.config.digest
    assert [labels[f"containerd.io/gc.ref.content.l.{i}"] for i in range(2)] == [d.digest for d in manifest.layers]
    assert [labels[tar_split_label(i)] for i in range(2)] == m.records  # still held
    assert not needs_blobs(client.content, image.target)
    assert not [s for s in client.snapshotter(snapshotter).walk() if s.name.startswith(KEY_PREFIX)]


def test_a_second_call_changes_nothing(client: Client) -> None:
    m = two_layers(client)
    image = materialize(client, m.image)
    before = state(client)
    again = materialize(client, image)
    assert again == image
    assert materialize(client, m.image) == image  # a stale record object: the record as it is now
    assert state(client) == before


def test_a_layer_already_compressed_is_taken_as_it_is(client: Client) -> None:
    first = two_layers(client, "docker.io/library/first:1")
    made = materialize(client, first.image)
    # Another image on the same base layer: its blob is found by its diff id, nothing is rebuilt for it.
    second = migrated(client, "docker.io/library/second:1", [make_tar(BASE)])
    events: list[Progress] = []
    image = materialize(client, second.image, progress=events.append)
    base = parse_manifest(read_blob(client.content, made.target.digest), mt.OCI_MANIFEST).layers[0]
    assert parse_manifest(read_blob(client.content, image.target.digest), mt.OCI_MANIFEST).layers == (base,)
    assert not [e for e in events if e.event == COMPRESSING]


def test_progress_per_layer(client: Client) -> None:
    m = two_layers(client)
    events: list[Progress] = []
    lock = threading.Lock()

    def hear(p: Progress) -> None:
        with lock:
            events.append(p)

    materialize(client, m.image, progress=hear)
    for diff_id, tar in zip(m.diff_ids, m.tars, strict=True):
        mine = [e for e in events if e.name == f"layer-{diff_id}"]
        assert [mine[0].event, mine[-1].event] == ["waiting", COMPRESSED]
        assert all(e.total == len(tar) for e in mine)
        assert all(e.event == COMPRESSING and 0 <= e.progress <= len(tar) for e in mine[1:-1])
    assert any(e.event == COMPRESSING for e in events)


def test_unpack_and_the_record_lookups_on_absent_blobs(client: Client) -> None:
    m = two_layers(client)
    # The snapshots are there: an unpack (pyctr run's) finds them and labels no absent blob.
    result = client.unpack(m.image)
    assert result.chain_id == m.chains[-1] and result.applied == 0
    assert find_tar_split(client.content, m.diff_ids[1]) == m.records[1]
    assert find_tar_split(client.content, _digest(b"no such layer")) is None
    layers = [Descriptor(mt.OCI_LAYER, d, len(t)) for d, t in zip(m.diff_ids, m.tars, strict=True)]
    assert tar_split_labels(client.content, layers, m.diff_ids) == {
        tar_split_label(i): r for i, r in enumerate(m.records)
    }
    # A manifest made on the migrated layers (a commit) carries the records: it materializes too.
    p = platforms.default()
    config = json.dumps(
        {"architecture": p.architecture, "os": p.os, "rootfs": {"type": "layers", "diff_ids": m.diff_ids}}
    ).encode()
    labels = {f"containerd.io/gc.ref.snapshot.{m.snapshotter}": m.chains[-1]}
    doc = json.loads(read_blob(client.content, m.image.target.digest))
    doc["config"] = {"mediaType": mt.OCI_CONFIG, "digest": _digest(config), "size": len(config)}
    data = json.dumps(doc).encode()
    mlabels = {"containerd.io/gc.ref.content.config": _digest(config)}
    mlabels |= tar_split_labels(client.content, layers, m.diff_ids)
    with client.lease() as leased:  # until the record holds them
        put(leased.content, "c2", config, _digest(config), labels)
        put(leased.content, "m2", data, _digest(data), mlabels)
        target = Descriptor(mt.OCI_MANIFEST, _digest(data), len(data))
        child = leased.images.create(Image("docker.io/library/child:1", target))
    made = materialize(client, child)
    layer = parse_manifest(read_blob(client.content, made.target.digest), mt.OCI_MANIFEST).layers[1]
    assert _stream(client, layer) == m.tars[1]


def test_an_image_with_its_blobs_is_left_alone(client: Client) -> None:
    tar, config = make_tar(BASE), b"{}"
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": mt.OCI_LAYER, "digest": _digest(tar), "size": len(tar)}],
    }
    data = json.dumps(doc).encode()
    with client.lease() as leased:
        put(leased.content, "l", tar, _digest(tar))
        put(leased.content, "c", config, _digest(config))
        labels = {
            "containerd.io/gc.ref.content.config": _digest(config),
            "containerd.io/gc.ref.content.l.0": _digest(tar),
        }
        put(leased.content, "m", data, _digest(data), {**labels, tar_split_label(0): _digest(b"x")})
        target = Descriptor(mt.OCI_MANIFEST, _digest(data), len(data))
        image = leased.images.create(Image("docker.io/library/whole:1", target))
    assert not needs_blobs(client.content, image.target)
    assert materialize(client, image) == image


# -- hostile input and damage: one line, nothing left behind -------------------------


def _fails(client: Client, m: Migrated, error: type[ContainerdError], *words: str) -> str:
    before = state(client, m.snapshotter)
    with pytest.raises(error) as caught:
        materialize(client, m.image, max_concurrent=1)
    message = str(caught.value)
    assert "\n" not in message and m.image.name in message
    for word in words:
        assert word in message
    assert state(client, m.snapshotter) == before
    return message


def _replace_record(client: Client, m: Migrated, index: int, record: bytes, diff_id: str = "") -> None:
    with client.lease() as leased:  # until the manifest holds it
        labels = {LABEL_DIFF_ID: diff_id or m.diff_ids[index]}
        digest = put(leased.content, "bad", record, _digest(record), labels)
        info = leased.content.info(m.image.target.digest)
        leased.content.update(dataclasses.replace(info, labels={**info.labels, tar_split_label(index): digest}))


def test_a_damaged_record(client: Client) -> None:
    m = two_layers(client)
    good = read_blob(client.content, m.records[1])
    _replace_record(client, m, 1, good[: len(good) // 2])  # truncated gzip
    _fails(client, m, InvalidArgument, "layer 1", m.diff_ids[1], "gzip")


def test_a_record_that_is_not_json(client: Client) -> None:
    m = two_layers(client)
    _replace_record(client, m, 0, gzip.compress(b"{not json\n"))
    _fails(client, m, InvalidArgument, "layer 0", "tar-split line 1")


def test_a_record_of_another_layer(client: Client) -> None:
    m = two_layers(client)
    other = make_tar([(info("opt/new"), b"new\n")])  # a file the layer has, in another stream
    _replace_record(client, m, 1, disassemble(other))
    _fails(client, m, InvalidArgument, "layer 1", "not the layer's")


def test_a_record_labelled_for_another_layer(client: Client) -> None:
    m = two_layers(client)
    _replace_record(client, m, 1, read_blob(client.content, m.records[0]), diff_id=m.diff_ids[0])
    _fails(client, m, InvalidArgument, "layer 1", "labelled for", m.diff_ids[0])


def test_a_record_that_expands_without_end(client: Client) -> None:
    m = migrated(client, "docker.io/library/small:1", [make_tar([(info("a"), b"a\n")])])
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb") as gz:
        gz.write(b'{"type":2,"payload":"')
        for _ in range(8):
            gz.write(b"A" * (1 << 20))  # one line that never ends: only the bound on the record stops it
    _replace_record(client, m, 0, bomb.getvalue())
    _fails(client, m, InvalidArgument, "layer 0", "expands past")


def test_a_cancel_stops_it(client: Client) -> None:
    m = two_layers(client)
    before = state(client)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Canceled, match="canceled"):
        materialize(client, m.image, cancel=cancel)
    assert state(client) == before


def test_a_missing_record(client: Client) -> None:
    m = two_layers(client)
    client.content.delete(m.records[0])
    _fails(client, m, NotFound, "layer 0", m.records[0], "not in the content store")


def test_a_snapshot_that_is_gone(client: Client) -> None:
    m = two_layers(client)
    client.snapshotter(m.snapshotter).remove(m.chains[1])  # and the collector takes the one below with it
    _fails(client, m, NotFound, "layer 0", m.chains[0], "is gone")


def _layer_dir(daemon: PycontainerdDaemon, m: Migrated, index: int) -> Path:
    """The directory of layer ``index``'s committed snapshot: overlayfs's holds its own files, native's all of them.

    Found by the file only that layer has (a view would not do: native's is a copy).
    """
    with tarfile.open(fileobj=io.BytesIO(m.tars[index])) as tar:
        unique = next(member.name for member in tar if member.name.startswith("unique-"))
    snapshots = daemon.root / f"io.containerd.snapshotter.v1.{m.snapshotter}" / "snapshots"
    found = [d for d in snapshots.iterdir() if (d / "fs" / unique).exists() or (d / unique).exists()]
    assert len(found) == 1, found
    return found[0] / "fs" if (found[0] / "fs").is_dir() else found[0]


def marked(client: Client, snapshotter: str = "overlayfs") -> Migrated:
    """Two layers, each with a file no other image has, so that its snapshot's directory can be found."""
    tars = [make_tar([*layer, (info(f"unique-{secrets.token_hex(8)}"), b"u\n")]) for layer in (BASE, TOP)]
    return migrated(client, "docker.io/library/marked:1", tars, snapshotter)


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_a_file_changed_in_the_snapshot_is_named(daemon: PycontainerdDaemon, client: Client, snapshotter: str) -> None:
    m = marked(client, snapshotter)
    # The same size: only the stream's digest tells, then the record's CRCs name the file.
    (_layer_dir(daemon, m, 1) / "opt" / "new").write_bytes(b"NEW\n")
    _fails(client, m, InvalidArgument, "layer 1", "opt/new", "CRC")


def test_a_file_grown_in_the_snapshot_is_named(daemon: PycontainerdDaemon, client: Client) -> None:
    m = marked(client)
    with open(_layer_dir(daemon, m, 0) / "bin" / "tool", "ab") as f:
        f.write(b"more")
    _fails(client, m, InvalidArgument, "layer 0", "bin/tool", "longer on disk")


# -- races and bounds: held blobs, renamed records, entries, stops, copies ------------


def _layers(client: Client, image: Image) -> tuple[Descriptor, ...]:
    return parse_manifest(read_blob(client.content, image.target.digest), image.target.media_type).layers


def _collect(client: Client) -> None:
    """Wait for a collection: what no one holds is gone after it."""
    held = client.leases.create_expiring(timedelta(minutes=1))
    client.leases.delete(held.id, sync=True)


def test_a_blob_taken_from_another_image_is_held_until_the_manifest_is(client: Client) -> None:
    first = two_layers(client, "docker.io/library/a:1")
    base = _layers(client, materialize(client, first.image))[0]
    second = migrated(client, "docker.io/library/b:1", [make_tar(BASE), make_tar([(info("z"), b"z\n" * 100)])])
    deleted: list[str] = []

    def meanwhile(p: Progress) -> None:
        # The base layer's blob is taken from a:1: a docker rmi of it and a collection then must not lose it.
        if p.event == COMPRESSED and p.name == f"layer-{second.diff_ids[0]}" and not deleted:
            client.images.delete("docker.io/library/a:1")
            deleted.append("a:1")
            _collect(client)

    image = materialize(client, second.image, progress=meanwhile, max_concurrent=1)
    assert deleted and _layers(client, image)[0] == base
    _collect(client)
    assert client.content.info(base.digest).labels[UNCOMPRESSED] == second.diff_ids[0]
    assert not needs_blobs(client.content, image.target)
    with open_blob(client.content, base.digest) as f:
        assert gzip.decompress(f.read()) == second.tars[0]


@pytest.mark.parametrize("docker_types", [False, True])
def test_a_compressed_layer_whose_blob_is_lost_is_made_again(client: Client, docker_types: bool) -> None:
    m = two_layers(client)
    image = materialize(client, m.image)
    if docker_types:  # a manifest of Docker's media types, as a push or a pull may leave one
        doc = json.loads(read_blob(client.content, image.target.digest))
        doc["mediaType"] = mt.DOCKER_MANIFEST
        doc["config"]["mediaType"] = mt.DOCKER_CONFIG
        for layer in doc["layers"]:
            layer["mediaType"] = mt.DOCKER_LAYER_GZIP
        data = json.dumps(doc).encode()
        labels = dict(client.content.info(image.target.digest).labels)
        target = Descriptor(mt.DOCKER_MANIFEST, _digest(data), len(data))
        with client.lease() as leased:
            put(leased.content, "docker", data, target.digest, labels)
            image = leased.images.update(dataclasses.replace(image, target=target), ["target"])
    kept, lost = _layers(client, image)
    client.content.delete(lost.digest)  # an earlier call's blob, taken by a collection
    assert needs_blobs(client.content, image.target)

    healed = materialize(client, image)

    layers = _layers(client, healed)
    assert _stream(client, layers[1]) == m.tars[1]
    assert layers[0] == kept  # the present one as it was
    expected = mt.DOCKER_LAYER_GZIP if docker_types else mt.OCI_LAYER_GZIP
    assert [layer.media_type for layer in layers] == [expected] * 2
    assert not needs_blobs(client.content, healed.target)


def test_a_lost_compressed_blob_with_a_record_of_another_layer_is_refused(client: Client) -> None:
    m = two_layers(client)
    image = materialize(client, m.image)
    client.content.delete(_layers(client, image)[1].digest)
    m = dataclasses.replace(m, image=image)
    _replace_record(client, m, 1, read_blob(client.content, m.records[0]), diff_id=m.diff_ids[0])
    _fails(client, m, InvalidArgument, "layer 1", "not the uncompressed layer", m.diff_ids[1])


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_the_views_are_read_only_nodev_nosuid_noexec(client: Client, snapshotter: str) -> None:
    m = two_layers(client, snapshotter=snapshotter)
    with client.lease() as leased:  # as materialize holds its views: a collection meanwhile leaves them
        sn = leased.snapshotter(snapshotter)
        key = f"{KEY_PREFIX}test {m.chains[1]}"
        mounts = sn.view(key, m.chains[1])
        try:
            with _read_only(mounts) as root:
                flags = os.statvfs(root).f_flag
                assert (root / "opt" / "new").read_bytes() == b"new\n"
        finally:
            sn.remove(key)
    for flag in (os.ST_RDONLY, os.ST_NODEV, os.ST_NOSUID, os.ST_NOEXEC):
        assert flags & flag, flag


def test_options_that_would_undo_them_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"f")
    with _read_only([Mount("bind", str(tmp_path), ("rbind", "rw", "dev", "suid", "exec"))]) as root:
        flags = os.statvfs(root).f_flag
    assert flags & (os.ST_RDONLY | os.ST_NODEV | os.ST_NOSUID | os.ST_NOEXEC) == (
        os.ST_RDONLY | os.ST_NODEV | os.ST_NOSUID | os.ST_NOEXEC
    )


def _dangling(client: Client) -> tuple[Migrated, Image]:
    """A migrated image known only by its dangling record, as the migration names an untagged one."""
    m = two_layers(client, "tmp:1")
    stale = client.images.create(dataclasses.replace(m.image, name=DANGLING_PREFIX + m.image.target.digest))
    client.images.delete("tmp:1")
    return m, stale


def test_a_dangling_record_renamed_by_an_earlier_call(client: Client) -> None:
    m, stale = _dangling(client)
    old = read_blob(client.content, m.image.target.digest)
    with client.lease() as held:  # the old manifest stays readable, as while a concurrent call plans on it
        put(held.content, "old", old, m.image.target.digest)
        first = materialize(client, stale)
        assert first.name == DANGLING_PREFIX + first.target.digest
        assert materialize(client, stale) == first  # docker save <id> <id>: the name is gone, the image is not
    assert [i.name for i in client.images.list()] == [first.name]


def test_a_dangling_record_renamed_by_a_concurrent_call(client: Client) -> None:
    m, stale = _dangling(client)
    inner: list[Image] = []

    def meanwhile(p: Progress) -> None:
        # The other call runs to its end after this one has made its blobs: it renames the record first.
        if p.event == COMPRESSED and p.name == f"layer-{m.diff_ids[1]}" and not inner:
            inner.append(materialize(client, stale))

    outer = materialize(client, stale, progress=meanwhile, max_concurrent=1)
    assert inner == [outer] and outer.name == DANGLING_PREFIX + outer.target.digest
    assert [i.name for i in client.images.list()] == [outer.name]


def test_a_save_naming_a_dangling_image_twice(client: Client) -> None:
    _, stale = _dangling(client)
    job = prepare_save(client, lambda name: (stale, True), [stale.target.digest] * 2, None)
    (record,) = client.images.list()
    assert job.targets == [record.target.digest] * 2
    assert not needs_blobs(client.content, record.target)


def _with_empty_segments(record: bytes, count: int) -> bytes:
    return gzip.compress(b'{"type":2,"payload":null}\n' * count + gzip.decompress(record))


def test_a_record_with_more_entries_than_its_layer_can_hold(client: Client) -> None:
    m = two_layers(client)
    # Entries that add nothing to the stream: the stream is still the layer's, but the record is not a layer's.
    count = 2 * len(m.tars[0]) // 512 + 20
    _replace_record(client, m, 0, _with_empty_segments(read_blob(client.content, m.records[0]), count))
    _fails(client, m, InvalidArgument, "layer 0", "entries")


def test_entries_that_make_no_bytes_still_hear_a_cancel() -> None:
    record = gzip.compress(b'{"type":2,"payload":null}\n' * 1000)
    checks: list[int] = []

    def check() -> None:
        checks.append(1)
        if len(checks) > 10:
            raise Canceled("canceled")

    with pytest.raises(Canceled):
        for _ in _record_entries(io.BytesIO(record), 1 << 20, 10_000, check):
            pass
    assert len(checks) == 11


def test_a_failed_layer_stops_the_others_at_once(client: Client) -> None:
    big = make_tar([(info("big"), os.urandom(8 << 20))])
    m = migrated(client, "docker.io/library/big:1", [big, make_tar(BASE)])
    client.content.delete(m.records[1])  # layer 1 fails at once
    events: list[Progress] = []

    def slow(p: Progress) -> None:
        first = p.event == COMPRESSING and not [e for e in events if e.event == COMPRESSING]
        events.append(p)
        if first and p.name == f"layer-{m.diff_ids[0]}":
            time.sleep(0.5)  # layer 1 has failed long before layer 0 goes on

    with pytest.raises(NotFound, match="layer 1"):
        materialize(client, m.image, progress=slow, max_concurrent=2)
    assert not [e for e in events if e.event == COMPRESSED]


class _Views:
    """How many views are open at once, at most; each view waits a moment for a second one to open."""

    def __init__(self) -> None:
        self.open = self.most = 0
        self._cond = threading.Condition()

    def opened(self) -> None:
        with self._cond:
            self.open += 1
            self.most = max(self.most, self.open)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.open > 1, timeout=0.5)

    def closed(self) -> None:
        with self._cond:
            self.open -= 1


class _CountedSnapshotter:
    def __init__(self, inner: Snapshotter, views: _Views) -> None:
        self._inner = inner
        self._views = views

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def view(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        mounts = self._inner.view(key, parent, labels)
        self._views.opened()
        return mounts

    def remove(self, key: str) -> None:
        self._views.closed()
        self._inner.remove(key)


class _Counted:
    """The client's stores, with views counted."""

    def __init__(self, inner: Client, views: _Views) -> None:
        self._inner = inner
        self.views = views

    @property
    def content(self) -> ContentStore:
        return self._inner.content

    @property
    def images(self) -> images_api.Store:
        return self._inner.images

    def snapshotter(self, name: str = "") -> _CountedSnapshotter:
        return _CountedSnapshotter(self._inner.snapshotter(name), self.views)

    @contextmanager
    def lease(self) -> Iterator[_Counted]:
        with self._inner.lease() as leased:
            yield _Counted(leased, self.views)


@pytest.mark.parametrize(("snapshotter", "most"), [("native", 1), ("overlayfs", 2)])
def test_views_that_are_copies_are_made_one_at_a_time(client: Client, snapshotter: str, most: int) -> None:
    m = two_layers(client, snapshotter=snapshotter)
    stores = _Counted(client, _Views())
    image = materialize(cast(Stores, stores), m.image, max_concurrent=4)
    assert stores.views.most == most
    assert [_stream(client, layer) for layer in _layers(client, image)] == m.tars
