"""A migrated image pushed with ``pyctr images push`` to a real registry, read back by skopeo and pulled by dockerd.

The session's Docker root (conftest.py) is migrated into a pycontainerd of
this module's, which stores no layer blobs; a push makes them on demand
(:mod:`pycontainerd.migrate.ondemand`): gzip blobs rebuilt from the
snapshots and tar-split records, under a new manifest the records then
name, made in the daemon (its Transfer service) or, with ``--local``, by
the client.  skopeo must accept the manifest and give back Docker's config
digest and diff ids, a copy of every blob must check out, and a fresh
dockerd must pull the image with the same image id and run it.  An export
makes the blobs the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.images import mediatypes as mt
from pycontainerd.reference import parse_normalized
from tests.fixtures.daemon import PycontainerdDaemon, private_daemon
from tests.fixtures.dockerd import running_dockerd
from tests.fixtures.registry import Registry
from tests.migrate.conftest import Filled

NS = "moby"


@dataclass
class Pushed:
    registry: Registry
    refs: dict[str, str]  # Docker's tag -> where it was pushed
    targets: dict[str, str]  # Docker's tag -> the record's target digest: before, after the push, after another
    daemon: PycontainerdDaemon


def _run(*argv: str) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stdout}{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def pushed(filled: Filled) -> Iterator[Pushed]:
    with private_daemon() as d:
        yield from _push(d, filled)


def _pyctr(d: PycontainerdDaemon) -> list[str]:
    return [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", str(d.address), "-n", NS]


def _target(d: PycontainerdDaemon, tag: str) -> str:
    with Client(d.address, namespace=NS) as c:
        return c.images.get(str(parse_normalized(tag))).target.digest


def _push(d: PycontainerdDaemon, filled: Filled) -> Iterator[Pushed]:
    registry = Registry().start()
    pyctr = _pyctr(d)
    try:
        d.start()
        _run(*pyctr, "migrate", "docker", "-q", "--from", str(filled.root))
        refs, targets = {}, {}
        app1, app2 = (next(t for t in filled.tags if t.endswith(name)) for name in ("/app1:1", "/app2:1"))
        # In the daemon, then by the client (--local): both make the blobs where the snapshots are.
        for tag, local in (("built:1", ()), (app2, ()), (app1, ("--local",))):
            before = _target(d, tag)
            remote = f"{registry.host}/migrated/{tag.rsplit('/', 1)[-1]}"
            _run(*pyctr, "images", "push", "-q", "--plain-http", *local, remote, str(parse_normalized(tag)))
            _run(*pyctr, "images", "push", "-q", "--plain-http", *local, remote, str(parse_normalized(tag)))
            refs[tag] = remote
            targets[tag] = before
        yield Pushed(registry, refs, targets, d)
    finally:
        registry.stop()


def _skopeo(*args: str) -> str:
    return _run("skopeo", *args)


def test_skopeo_reads_dockers_config_and_diff_ids(pushed: Pushed, filled: Filled) -> None:
    for tag, remote in pushed.refs.items():
        image_id = filled.tags[tag]
        raw = _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{remote}")
        manifest = json.loads(raw)
        assert manifest["mediaType"] == mt.OCI_MANIFEST and manifest["schemaVersion"] == 2
        assert manifest["config"]["digest"] == image_id
        assert len(manifest["layers"]) == len(filled.diff_ids[image_id])
        assert {layer["mediaType"] for layer in manifest["layers"]} == {mt.OCI_LAYER_GZIP}
        config = json.loads(_skopeo("inspect", "--tls-verify=false", "--config", f"docker://{remote}"))
        assert config["rootfs"]["diff_ids"] == filled.diff_ids[image_id]
        # The record names the manifest pushed: made by the first push, found by the second.
        after = _target(pushed.daemon, tag)
        assert after != pushed.targets[tag] and after == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def test_skopeo_copies_every_blob_back(pushed: Pushed, filled: Filled, tmp_path: Path) -> None:
    # dir: keeps blobs as the registry serves them
    for tag, remote in pushed.refs.items():
        copy = tmp_path / tag.rsplit("/", 1)[-1]
        _skopeo("copy", "--src-tls-verify=false", f"docker://{remote}", f"dir:{copy}")
        manifest = json.loads((copy / "manifest.json").read_text())
        image_id = filled.tags[tag]
        assert manifest["config"]["digest"] == image_id
        for blob in [manifest["config"], *manifest["layers"]]:
            # skopeo checked each digest on the way; sha256sum checks what it wrote
            path = copy / blob["digest"].split(":")[1]
            assert "sha256:" + _run("sha256sum", str(path)).split()[0] == blob["digest"]
            assert path.stat().st_size == blob["size"]
        streams = [_gunzip_digest(copy / layer["digest"].split(":")[1]) for layer in manifest["layers"]]
        assert streams == filled.diff_ids[image_id]  # each layer's exact tar stream, as Docker had it


def _gunzip_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def test_an_export_makes_the_blobs_too(pushed: Pushed, filled: Filled, tmp_path: Path) -> None:
    base = next(t for t in filled.tags if t.endswith("/base:stable"))  # one not pushed, sharing its layers
    archive = tmp_path / "base.tar"
    r = subprocess.run(
        [*_pyctr(pushed.daemon), "images", "export", str(archive), str(parse_normalized(base))],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert ": compressed" in r.stderr  # each layer's row (its blob made with the pushes of images on it)
    # The three tags of the image name the manifest that lists the blobs now.
    base_tags = [t for t in filled.tags if filled.tags[t] == filled.tags[base]]
    assert len(base_tags) == 3 and len({_target(pushed.daemon, t) for t in base_tags}) == 1
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    assert manifest["config"]["digest"] == filled.tags[base]
    streams = [_gunzip_digest(layout / "blobs" / "sha256" / layer["digest"][7:]) for layer in manifest["layers"]]
    assert streams == filled.diff_ids[filled.tags[base]]


def test_a_fresh_dockerd_pulls_and_runs_it(pushed: Pushed, filled: Filled) -> None:
    with running_dockerd() as d:
        for tag, remote in pushed.refs.items():
            d.docker("pull", "-q", remote)
            inspect = json.loads(d.docker("image", "inspect", remote))[0]
            assert inspect["Id"] == filled.tags[tag]
            assert inspect["RootFS"]["Layers"] == filled.diff_ids[filled.tags[tag]]
        built = pushed.refs["built:1"]
        out = d.docker("run", "--rm", "--network", "none", built, "/bin/busybox", "cat", "/etc/copied", "/x/hard")
        assert out == "built\nz\n"


def test_migrating_again_after_the_pushes_changes_nothing(pushed: Pushed, filled: Filled) -> None:
    """The pushed images' records now name the manifests the pushes made: still Docker's images, left as they are."""
    with Client(pushed.daemon.address, namespace=NS) as c:

        def state() -> tuple[object, ...]:
            records = sorted((i.name, i.target.digest) for i in c.images.list())
            return records, sorted(i.digest for i in c.content.walk()), sorted(s.name for s in c.snapshotter().walk())

        before = state()
        dry = subprocess.run(
            [*_pyctr(pushed.daemon), "migrate", "docker", "--dry-run", "--from", str(filled.root)],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert not [line for line in dry.stdout.splitlines() if line.startswith("would migrate")], dry.stdout
        again = subprocess.run(
            [*_pyctr(pushed.daemon), "migrate", "docker", "--from", str(filled.root)],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to do in namespace moby" in again.stdout
        assert state() == before
