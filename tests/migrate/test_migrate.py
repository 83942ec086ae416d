"""``pyctr migrate docker`` end to end: a real dockerd's overlay2 root into a real pycontainerd.

The Docker root is the session's (conftest.py: shared base layers, three
tags of one image, a classic multi-stage build with whiteouts and hard
links).  One daemon serves the module: a dry run first (nothing written),
then a run killed by SIGKILL after its first layer and a rerun, which must
end where a clean run into another namespace ends; then the images are
checked through the client, ``pyctr run``, ``ctr`` and a second run.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.content import read_blob
from pycontainerd.errors import NotFound
from pycontainerd.images.identity import chain_ids
from pycontainerd.migrate.importer import DANGLING_PREFIX, LEASE_ID, Event, MigrateOptions, migrate_docker
from pycontainerd.migrate.labels import LABEL_DIFF_ID, tar_splits
from pycontainerd.migrate.ondemand import materialize
from pycontainerd.reference import parse_normalized
from tests.fixtures.daemon import PycontainerdDaemon, private_daemon
from tests.migrate.conftest import Filled
from tests.migrate.tree import checksum_tree

CTR = "/usr/bin/ctr"
NS = "moby"
CLEAN_NS = "clean"


def pyctr(d: PycontainerdDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Migrated:
    daemon: PycontainerdDaemon
    client: Client
    root: Path
    before: str  # the Docker root's checksum tree before anything ran
    dry_run: subprocess.CompletedProcess[str]
    killed_state: dict[str, object]
    rerun: subprocess.CompletedProcess[str]
    clean: subprocess.CompletedProcess[str]


def _state(client: Client) -> dict[str, object]:
    """Everything a namespace holds: image records, blobs with labels, snapshots with labels, leases."""
    return {
        "images": sorted((i.name, i.target.digest) for i in client.images.list()),
        "content": sorted((i.digest, i.size, tuple(sorted(i.labels.items()))) for i in client.content.walk()),
        "snapshots": sorted(
            (s.name, s.parent, s.kind.name, tuple(sorted(s.labels.items()))) for s in client.snapshotter().walk()
        ),
        "leases": sorted(lease.id for lease in client.leases.list()),
    }


def _kill_after_first_layer(d: PycontainerdDaemon, root: Path) -> None:
    argv = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, "migrate", "docker", "--from", str(root)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("layer ") and line.rstrip().split(": ")[1].startswith("done"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def migrated(filled: Filled) -> Iterator[Migrated]:
    before = checksum_tree(filled.root)
    with private_daemon() as d:
        d.start()
        with Client(d.address, namespace=NS) as client:
            dry = pyctr(d, "migrate", "docker", "--from", str(filled.root), "--dry-run")
            empty = _state(client)
            assert empty == {"images": [], "content": [], "snapshots": [], "leases": []}, dry.stdout
            _kill_after_first_layer(d, filled.root)
            killed = _state(client)
            rerun = pyctr(d, "migrate", "docker", "--from", str(filled.root))
            clean = pyctr(d, "-n", CLEAN_NS, "migrate", "docker", "-q", "--from", str(filled.root))
            yield Migrated(d, client, filled.root, before, dry, killed, rerun, clean)


def _name(tag: str) -> str:
    return str(parse_normalized(tag))


def test_dry_run_verifies_and_writes_nothing(migrated: Migrated, filled: Filled) -> None:
    r = migrated.dry_run
    assert r.returncode == 0, r.stderr
    assert "would be migrated" in r.stdout and "nothing written" in r.stdout
    images = set(filled.tags.values())
    assert sum(1 for line in r.stdout.splitlines() if line.startswith("would migrate")) >= len(images)
    assert "verified" in r.stderr


def test_a_killed_run_is_completed_by_the_next(migrated: Migrated) -> None:
    killed = migrated.killed_state
    assert killed["leases"] == [LEASE_ID]  # the work in progress, held
    assert any(kind == "COMMITTED" for _, _, kind, _ in killed["snapshots"])  # type: ignore[attr-defined]
    assert migrated.rerun.returncode == 0, migrated.rerun.stdout + migrated.rerun.stderr
    assert migrated.clean.returncode == 0, migrated.clean.stdout + migrated.clean.stderr
    assert migrated.clean.stderr == ""  # -q
    resumed = _state(migrated.client)
    clean = _state(migrated.client.with_namespace(CLEAN_NS))
    assert resumed["leases"] == [] and clean["leases"] == []
    assert resumed == clean
    # nothing half made is left: no active snapshot, no ingest
    assert all(kind == "COMMITTED" for _, _, kind, _ in resumed["snapshots"])  # type: ignore[attr-defined]
    assert migrated.client.content.list_statuses() == []


def test_every_tag_with_dockers_image_id_and_diff_ids(migrated: Migrated, filled: Filled) -> None:
    c = migrated.client
    sn = c.snapshotter()
    for tag, image_id in filled.tags.items():
        record = c.images.get(_name(tag))
        manifest = json.loads(read_blob(c.content, record.target.digest))
        assert manifest["config"]["digest"] == image_id
        config = json.loads(read_blob(c.content, image_id))
        diff_ids = filled.diff_ids[image_id]
        assert config["rootfs"]["diff_ids"] == diff_ids
        assert [layer["digest"] for layer in manifest["layers"]] == diff_ids
        # the layer blobs are not stored; each layer's tar-split record is, held by the manifest
        records = tar_splits(c.content.info(record.target.digest).labels)
        assert sorted(records) == list(range(len(diff_ids)))
        for i, layer in enumerate(manifest["layers"]):
            with pytest.raises(NotFound):
                c.content.info(layer["digest"])
            assert c.content.info(records[i]).labels[LABEL_DIFF_ID] == layer["digest"]
            with gzip.open(io.BytesIO(read_blob(c.content, records[i]))) as split:
                entries = [json.loads(line) for line in split]
            assert sum(e.get("size", 0) if e["type"] == 1 else len(base64.b64decode(e["payload"])) for e in entries) \
                == layer["size"]  # fmt: skip
        chains = chain_ids(diff_ids)
        for chain in chains:
            assert sn.stat(chain).labels["containerd.io/snapshot.ref"] == chain
        labels = c.content.info(image_id).labels
        assert labels["containerd.io/gc.ref.snapshot.overlayfs"] == chains[-1]
    names = {i.name for i in c.images.list()}
    # pulled digests are kept as names; the first stage of the build is dangling, as Docker shows it
    assert any("@sha256:" in n and not n.startswith("moby-dangling@") for n in names)
    assert len([n for n in names if n.startswith("moby-dangling@")]) == 1
    assert "intermediate image(s) of classic builds" in migrated.rerun.stdout


def test_nothing_is_collected(migrated: Migrated) -> None:
    c = migrated.client
    before = _state(c)
    lease = c.leases.create_expiring(timedelta(minutes=1))
    c.leases.delete(lease.id, sync=True)  # a synchronous collection
    assert _state(c) == before


def test_pyctr_run_on_every_image(migrated: Migrated, filled: Filled) -> None:
    d = migrated.daemon
    script = "for f in /etc/a /etc/b /etc/c /etc/copied /app/one /app/two /x/hard /opt/d/f1 /opt/d/new; do " \
        "[ -e $f ] && echo $f; done; /bin/busybox stat -c %h /x/hard 2>/dev/null; true"  # fmt: skip
    seen = {}
    for i, tag in enumerate(sorted(filled.tags)):
        r = pyctr(d, "-n", NS, "run", "--rm", _name(tag), f"m{i}", "/bin/busybox", "sh", "-c", script)
        assert r.returncode == 0, r.stderr
        seen[tag.split("/")[-1]] = r.stdout.split()
    base = ["/etc/a", "/etc/b", "/opt/d/f1"]
    assert seen["base:1"] == seen["base:latest"] == seen["base:stable"] == base
    assert seen["app1:1"] == [*base[:2], "/app/one", base[2]]
    assert seen["app2:1"] == [*base[:2], "/app/two", base[2]]
    # the build: /etc/b whited out, /opt/d made opaque, /x/hard a second link to /x/y/z
    assert seen["built:1"] == ["/etc/a", "/etc/copied", "/x/hard", "/opt/d/new", "2"]


def test_ctr_lists_the_images(migrated: Migrated, filled: Filled) -> None:
    r = subprocess.run(
        [CTR, "-a", migrated.daemon.address, "-n", NS, "images", "ls", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {_name(t) for t in filled.tags} <= set(r.stdout.split())


def test_a_second_run_changes_nothing(migrated: Migrated) -> None:
    before = _state(migrated.client)
    r = pyctr(migrated.daemon, "migrate", "docker", "--from", str(migrated.root))
    assert r.returncode == 0, r.stderr
    assert "nothing to do in namespace moby" in r.stdout
    assert "migrated " not in r.stdout
    assert _state(migrated.client) == before


def test_the_docker_root_is_unchanged(migrated: Migrated) -> None:
    assert checksum_tree(migrated.root) == migrated.before


def test_a_damaged_layer_costs_only_its_images(migrated: Migrated, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    subprocess.run(["cp", "-a", str(migrated.root), str(copy)], check=True)
    [victim] = list(copy.glob("overlay2/*/diff/x/y/z"))
    victim.write_bytes(victim.read_bytes().upper())  # same size: only the digest (and the file's CRC) can tell
    r = pyctr(migrated.daemon, "-n", "damaged", "migrate", "docker", "--from", str(copy))
    assert r.returncode == 1
    failed = [line for line in r.stdout.splitlines() if line.startswith("not migrated")]
    assert len(failed) == 1 and "docker.io/library/built:1" in failed[0]
    # the CRC pass run after the digest failed names the file (the tar holds the contents under either link)
    assert "contents differ from the tar-split's CRC-64" in failed[0]
    assert 'file "x/y/z"' in failed[0] or 'file "x/hard"' in failed[0]
    assert "4 image(s) migrated into namespace damaged" in r.stdout
    c = migrated.client.with_namespace("damaged")
    assert "docker.io/library/built:1" not in {i.name for i in c.images.list()}
    assert c.leases.list() == [] and all(s.kind.name == "COMMITTED" for s in c.snapshotter().walk())


def test_a_dangling_image_made_complete_is_not_migrated_twice(migrated: Migrated) -> None:
    """Its blobs made (as a push or save makes them), the dangling record is renamed after the new manifest: a rerun finds it."""
    c = migrated.client
    [dangling] = [i for i in c.images.list() if i.name.startswith(DANGLING_PREFIX)]
    after = materialize(c, dangling)
    assert after.name != dangling.name and after.name.startswith(DANGLING_PREFIX)
    lease = c.leases.create_expiring(timedelta(minutes=1))
    c.leases.delete(lease.id, sync=True)  # a synchronous collection: the manifest no record names goes now
    before = _state(c)
    r = pyctr(migrated.daemon, "migrate", "docker", "--from", str(migrated.root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to do in namespace moby" in r.stdout
    assert _state(c) == before


def test_what_a_rerun_finds_for_an_image_without_records_is_held(migrated: Migrated) -> None:
    """Records removed, a rerun finds the layers the collector may take: it holds them before it counts on them."""
    c = migrated.client.with_namespace("held")
    migrate_docker(c, migrated.root)
    made = _state(c)
    for record in c.images.list():
        c.images.delete(record.name)
    collected = []

    def collect_at_first_find(event: Event) -> None:
        if event.kind == "layer" and event.state == "already present" and not collected:
            lease = c.leases.create_expiring(timedelta(minutes=1))
            c.leases.delete(lease.id, sync=True)  # a collection between the look and the record
            collected.append(event.subject)

    report = migrate_docker(c, migrated.root, MigrateOptions(progress=collect_at_first_find))
    assert collected and report.ok
    assert _state(c) == made
