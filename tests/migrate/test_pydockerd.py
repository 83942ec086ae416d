"""``pydockerd --migrate-from``: Docker's images served by pydockerd from its first start, through the docker CLI.

pydockerd runs in local mode (its own embedded pycontainerd, as users start
it) on an empty directory, with the session's Docker root (conftest.py) to
migrate before it serves.  ``docker images`` must list every tag with
Docker's image id, ``docker run`` must run a migrated image, and a second
start with the same flag must find everything present.  The images are
stored without layer blobs: ``docker push`` and ``docker save`` make them
on demand (:mod:`pycontainerd.migrate.ondemand`), with the image id and
diff ids Docker had.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from pycontainerd.images import mediatypes as mt
from tests.dockerd import conftest as dockerd_conftest
from tests.dockerd._engines import LocalPydockerd
from tests.dockerd.buildsupport import docker_build
from tests.fixtures._shims import private_dir
from tests.fixtures.registry import Registry
from tests.migrate.conftest import Filled

START_TIMEOUT = 120.0  # the migration runs before the socket answers


class MigratingPydockerd(LocalPydockerd):
    def __init__(self, base: Path, root: Path) -> None:
        super().__init__(base)
        self.docker_root = root

    def command(self) -> list[str]:
        return [*super().command(), "--migrate-from", str(self.docker_root)]

    def start(self) -> MigratingPydockerd:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dockerd_conftest, "START_TIMEOUT", START_TIMEOUT)
            super().start()
        return self


@pytest.fixture(scope="module")
def pydockerd(filled: Filled) -> Iterator[MigratingPydockerd]:
    with private_dir("pddm-") as base:
        d = MigratingPydockerd(base, filled.root)
        try:
            yield d.start()
        finally:
            d.stop()


def _listed(d: MigratingPydockerd) -> dict[str, str]:
    out = d.docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_docker_images_lists_every_tag_with_dockers_id(pydockerd: MigratingPydockerd, filled: Filled) -> None:
    listed = _listed(pydockerd)
    assert {t: listed.get(t) for t in filled.tags} == filled.tags
    log = pydockerd.log()
    assert "migrating the images of the Docker root" in log
    assert f"{len(set(filled.tags.values())) + 1} image(s) migrated" in log  # and the dangling first stage


def test_docker_run_of_a_migrated_image(pydockerd: MigratingPydockerd) -> None:
    r = pydockerd.docker("run", "--rm", "built:1", "/bin/busybox", "cat", "/etc/copied", "/x/hard")
    assert r.stdout == "built\nz\n"
    app2 = next(t for t in _listed(pydockerd) if t.endswith("/app2:1"))
    r = pydockerd.docker("run", "--rm", app2, "/bin/busybox", "cat", "/app/two", "/etc/a")
    assert r.stdout == "two\na\n"


def test_docker_run_of_every_migrated_tag(pydockerd: MigratingPydockerd, filled: Filled) -> None:
    for tag in sorted(filled.tags):
        r = pydockerd.docker("run", "--rm", tag, "/bin/busybox", "cat", "/etc/a")
        assert r.stdout == "a\n", tag


def test_a_restart_with_the_flag_writes_nothing(pydockerd: MigratingPydockerd, filled: Filled) -> None:
    before = _listed(pydockerd)
    pydockerd.stop()
    pydockerd.log_path.write_text("")
    pydockerd.start()
    assert _listed(pydockerd) == before
    log = pydockerd.log()
    assert "0 image(s) migrated" in log and "0 layer(s) written" in log


def test_a_root_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    d = MigratingPydockerd(tmp_path, tmp_path / "no-such-root")
    with pytest.raises(RuntimeError, match="did not start"):
        d.start()
    assert d.proc is not None and d.proc.wait(10) == 1
    assert "--migrate-from" in d.log() and "no-such-root" in d.log()


def test_docker_inspect_and_history_of_a_migrated_image(pydockerd: MigratingPydockerd, filled: Filled) -> None:
    inspect = json.loads(pydockerd.docker("image", "inspect", "built:1").stdout)[0]
    assert inspect["Id"] == filled.built and inspect["RootFS"]["Layers"] == filled.diff_ids[filled.built]
    history = pydockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "built:1").stdout
    assert "busybox rm /etc/b" in history


def test_docker_push_of_a_migrated_image(pydockerd: MigratingPydockerd, filled: Filled) -> None:
    registry = Registry().start()
    try:
        remote = f"{registry.host}/pushed/built:1"
        pydockerd.docker("tag", "built:1", remote)
        out = pydockerd.docker("push", remote).stdout
        assert "Compressed" in out and "Pushed" in out
        raw = _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{remote}")
        manifest = json.loads(raw)
        assert manifest["config"]["digest"] == filled.built
        assert {layer["mediaType"] for layer in manifest["layers"]} == {mt.OCI_LAYER_GZIP}
        config = json.loads(_skopeo("inspect", "--tls-verify=false", "--config", f"docker://{remote}"))
        assert config["rootfs"]["diff_ids"] == filled.diff_ids[filled.built]
        assert f"digest: sha256:{hashlib.sha256(raw.encode()).hexdigest()}" in out
        # Both names are the image, by Docker's id still; a second push finds every layer there.
        assert _listed(pydockerd)["built:1"] == filled.built
        out = pydockerd.docker("push", remote).stdout
        assert "Compress" not in out and "Layer already exists" in out
    finally:
        registry.stop()


def test_docker_save_of_a_migrated_image(pydockerd: MigratingPydockerd, filled: Filled, tmp_path: Path) -> None:
    app1 = next(t for t in filled.tags if t.endswith("/app1:1"))
    archive = tmp_path / "app1.tar"
    pydockerd.docker("save", "-o", str(archive), app1)
    with tarfile.open(archive) as tar:
        entry = json.load(_member(tar, "manifest.json"))[0]
        assert entry["Config"] == "blobs/sha256/" + filled.tags[app1].split(":")[1]
        streams = [_gunzip_digest(_member(tar, path)) for path in entry["Layers"]]
    assert streams == filled.diff_ids[filled.tags[app1]]


def test_an_image_built_on_a_migrated_one_saves_whole(
    pydockerd: MigratingPydockerd, filled: Filled, tmp_path: Path
) -> None:
    """Its manifest lists the base's absent layers with the records that rebuild them; the cache finds it again."""
    app2 = next(t for t in filled.tags if t.endswith("/app2:1"))  # not pushed nor saved: no blob of it is made yet
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f'FROM {app2}\nSHELL ["/bin/busybox", "sh", "-c"]\nRUN echo on > /on\n')
    for _ in range(2):
        r = docker_build(pydockerd, "-t", "on-migrated:1", "--network", "none", str(context))
        assert r.returncode == 0, r.stderr
    assert "Using cache" in r.stdout
    archive = tmp_path / "on.tar"
    pydockerd.docker("save", "-o", str(archive), "on-migrated:1")
    with tarfile.open(archive) as tar:
        entry = json.load(_member(tar, "manifest.json"))[0]
        streams = [_gunzip_digest(_member(tar, path)) for path in entry["Layers"]]
        config = json.load(_member(tar, entry["Config"]))
    assert streams == config["rootfs"]["diff_ids"]
    assert streams[:-1] == filled.diff_ids[filled.tags[app2]]


def _gunzip_digest(f: IO[bytes]) -> str:
    sha = hashlib.sha256()
    with gzip.open(f) as layer:
        while chunk := layer.read(1 << 20):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    f = tar.extractfile(name)
    assert f is not None, name
    return f


def _skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout
