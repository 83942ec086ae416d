"""``pydockerd --migrate-from``: Docker's images served by pydockerd from its first start, through the docker CLI.

pydockerd runs in local mode (its own embedded pycontainerd, as users start
it) on an empty directory, with the session's Docker root (conftest.py) to
migrate before it serves.  ``docker images`` must list every tag with
Docker's image id, ``docker run`` must run a migrated image, and a second
start with the same flag must find everything present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dockerd import conftest as dockerd_conftest
from tests.dockerd._engines import LocalPydockerd
from tests.fixtures._shims import private_dir
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
