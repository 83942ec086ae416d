"""A migrated image pushed with ``pyctr images push`` to a real registry, read back by skopeo and pulled by dockerd.

The session's Docker root (conftest.py) is migrated into a pycontainerd of
this module's; its images go to a docker-registry on 127.0.0.1 as they are
stored, uncompressed layers and all (see :mod:`pycontainerd.migrate.importer`).
skopeo must accept the manifest and give back Docker's config digest and
diff ids, a copy of every blob must check out, and a fresh dockerd must pull
the image with the same image id and run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def _run(*argv: str) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stdout}{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def pushed(filled: Filled) -> Iterator[Pushed]:
    with private_daemon() as d:
        yield from _push(d, filled)


def _push(d: PycontainerdDaemon, filled: Filled) -> Iterator[Pushed]:
    registry = Registry().start()
    pyctr = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", str(d.address), "-n", NS]
    try:
        d.start()
        _run(*pyctr, "migrate", "docker", "-q", "--from", str(filled.root))
        refs = {}
        for tag in ("built:1", next(t for t in filled.tags if t.endswith("/app2:1"))):
            remote = f"{registry.host}/migrated/{tag.rsplit('/', 1)[-1]}"
            _run(*pyctr, "images", "push", "-q", "--plain-http", remote, str(parse_normalized(tag)))
            refs[tag] = remote
        yield Pushed(registry, refs)
    finally:
        registry.stop()


def _skopeo(*args: str) -> str:
    return _run("skopeo", *args)


def test_skopeo_reads_dockers_config_and_diff_ids(pushed: Pushed, filled: Filled) -> None:
    for tag, remote in pushed.refs.items():
        image_id = filled.tags[tag]
        manifest = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{remote}"))
        assert manifest["mediaType"] == mt.OCI_MANIFEST and manifest["schemaVersion"] == 2
        assert manifest["config"]["digest"] == image_id
        assert [layer["digest"] for layer in manifest["layers"]] == filled.diff_ids[image_id]
        assert {layer["mediaType"] for layer in manifest["layers"]} == {mt.OCI_LAYER}
        config = json.loads(_skopeo("inspect", "--tls-verify=false", "--config", f"docker://{remote}"))
        assert config["rootfs"]["diff_ids"] == filled.diff_ids[image_id]


def test_skopeo_copies_every_blob_back(pushed: Pushed, filled: Filled, tmp_path: Path) -> None:
    # dir: keeps blobs as the registry serves them (oci: would compress the layers on the way)
    tag, remote = next(iter(pushed.refs.items()))
    copy = tmp_path / "copy"
    _skopeo("copy", "--src-tls-verify=false", f"docker://{remote}", f"dir:{copy}")
    manifest = json.loads((copy / "manifest.json").read_text())
    image_id = filled.tags[tag]
    assert manifest["config"]["digest"] == image_id
    assert [layer["digest"] for layer in manifest["layers"]] == filled.diff_ids[image_id]
    for blob in [manifest["config"], *manifest["layers"]]:
        # skopeo checked each digest on the way; sha256sum checks what it wrote
        path = copy / blob["digest"].split(":")[1]
        assert "sha256:" + _run("sha256sum", str(path)).split()[0] == blob["digest"]
        assert path.stat().st_size == blob["size"]


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
