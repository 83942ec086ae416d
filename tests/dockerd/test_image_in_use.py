"""Removing an image that containers use, with the real docker CLI: Docker's conflicts, then what -f does."""

from __future__ import annotations

from tests.dockerd._containers_support import bb_image  # noqa: F401 - the bb fixture
from tests.dockerd.conftest import Pydockerd


def test_rmi_of_an_image_in_use(pydockerd: Pydockerd, bb: str) -> None:
    image_id = pydockerd.docker("image", "inspect", "--format", "{{.Id}}", bb).stdout.strip()
    short = image_id.removeprefix("sha256:")[:12]
    cid = pydockerd.docker("run", "-d", "--name", "busy", bb, "sleep", "300").stdout.strip()

    r = pydockerd.docker("rmi", bb, ok=False)
    assert r.returncode == 1
    assert f"container {cid[:12]} is using its referenced image {short}" in r.stderr, r.stderr
    r = pydockerd.docker("rmi", "-f", image_id, ok=False)
    assert r.returncode == 1
    assert f"image is being used by running container {cid[:12]}" in r.stderr, r.stderr
    assert pydockerd.docker("images", "-q").stdout.split() == [short]

    pydockerd.docker("stop", "-t", "1", "busy")
    r = pydockerd.docker("rmi", bb, ok=False)
    assert r.returncode == 1 and "(must force)" in r.stderr, r.stderr
    # Forced: the name goes, the image stays (dangling) for the stopped container, which still starts.
    assert pydockerd.docker("rmi", "-f", bb).stdout.strip() == f"Untagged: {bb}"
    assert pydockerd.docker("images", "-q").stdout.split() == [short]
    assert pydockerd.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == ["<none>:<none>"]
    pydockerd.docker("start", "busy")
    pydockerd.docker("rm", "-f", "busy")
    assert pydockerd.docker("rmi", short).stdout.strip() == f"Deleted: {image_id}"
    assert pydockerd.docker("images", "-q").stdout.strip() == ""
