"""docker image prune through pydockerd (CLI and docker-py), and removal of images containers use."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pydockerd._errors import Conflict
from pydockerd._images import ImageService
from tests.distribution.support import seed
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image


def test_cli_prune(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    old = image([busybox_files(), {"etc/v": b"1\n"}], config={"Cmd": ["/bin/sh"]})
    new = image([busybox_files(), {"etc/v": b"2\n"}], config={"Cmd": ["/bin/sh"], "Labels": {"keep": "yes"}})
    other = image([busybox_files(), {"etc/o": b"o\n"}], config={"Cmd": ["/bin/sh"]})
    ref, other_ref = f"{registry.host}/prune/app:1", f"{registry.host}/prune/other:1"
    seed(registry, old, "prune/app:1", tmp_path)
    pydockerd.docker("pull", ref)
    seed(registry, new, "prune/app:1", tmp_path)
    pydockerd.docker("pull", ref)  # the old one is now dangling
    seed(registry, other, "prune/other:1", tmp_path)
    pydockerd.docker("pull", other_ref)
    old_id = str(old.manifest["config"]["digest"])  # type: ignore[index]
    assert pydockerd.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split() == [old_id]

    # Nothing is old enough for until=1h.
    out = pydockerd.docker("image", "prune", "-f", "--filter", "until=1h").stdout
    assert "Total reclaimed space: 0B" in out

    out = pydockerd.docker("image", "prune", "-f").stdout
    assert f"untagged: moby-dangling@{old.digest}" in out
    for blob in (old.digest, old_id, old.manifest["layers"][1]["digest"]):  # type: ignore[index]
        assert f"deleted: {blob}" in out
    assert old.manifest["layers"][0]["digest"] not in out  # type: ignore[index]  # busybox's layer is shared
    assert "Total reclaimed space:" in out and "Total reclaimed space: 0B" not in out
    assert sorted(pydockerd.docker("images", "--format", "{{.Repository}}").stdout.split()) == [
        f"{registry.host}/prune/app", f"{registry.host}/prune/other",
    ]  # fmt: skip

    # -a, but not what carries the label.
    out = pydockerd.docker("image", "prune", "-a", "-f", "--filter", "label!=keep=yes").stdout
    assert f"untagged: {other_ref}" in out
    assert pydockerd.docker("images", "--format", "{{.Repository}}").stdout.split() == [f"{registry.host}/prune/app"]

    # docker-py: everything unused, with the numbers.
    c = pydockerd.client()
    report = c.images.prune(filters={"dangling": False})
    assert report["ImagesDeleted"][0] == {"Untagged": ref}
    assert {"Deleted": new.digest} in report["ImagesDeleted"]
    assert report["SpaceReclaimed"] >= sum(len(b) for b in new.blobs.values())
    assert c.images.list() == []
    assert c.images.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    status, _, body = pydockerd.request(
        "POST", "/images/prune?filters=" + urllib.parse.quote(json.dumps({"nope": ["x"]}))
    )
    assert status == 400
    assert json.loads(body) == {"message": "invalid filter 'nope'"}

    until = str(int(time.time()) + 1)
    events = pydockerd.docker("events", "--since", "0", "--until", until, "--filter", "event=prune",
                              "--format", "{{.Actor.Attributes.reclaimed}}").stdout.split()  # fmt: skip
    assert len(events) == 5
    assert events[0] == "0" and int(events[1]) > 0


@pytest.fixture
def service(
    pycontainerd_daemon: PycontainerdDaemon,
) -> Iterator[tuple[ImageService, dict[str, list[tuple[str, bool]]]]]:
    """An ImageService over the real pycontainerd whose containers are a table the test fills."""
    users: dict[str, list[tuple[str, bool]]] = {}
    client = Client(pycontainerd_daemon.address, namespace="moby")
    yield ImageService(client, users=lambda image_id: users.get(image_id, [])), users
    client.close()


@pytest.fixture
def by_ids(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[tuple[ImageService, dict[str, list[str]], set[str]]]:
    """The same with the container service's shapes: image ID -> container IDs, and the set of running ones."""
    users: dict[str, list[str]] = {}
    up: set[str] = set()
    client = Client(pycontainerd_daemon.address, namespace="moby")
    yield ImageService(client, users=lambda i: users.get(i, []), running=lambda c: c in up), users, up
    client.close()


def test_remove_image_in_use(
    service: tuple[ImageService, dict[str, list[tuple[str, bool]]]], registry: Registry, tmp_path: Path
) -> None:
    svc, users = service
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    seed(registry, img, "used/app:1", tmp_path)
    ref = f"{registry.host}/used/app:1"
    svc.pull(svc.prepare_pull(ref, "", "", None), lambda _msg: None)
    image_id = str(img.manifest["config"]["digest"])  # type: ignore[index]
    short = image_id[7:19]
    running, stopped = "a" * 64, "b" * 64

    users[image_id] = [(running, True)]
    with pytest.raises(
        Conflict,
        match=rf"unable to delete {short} \(cannot be forced\) - image is being used by running container aaaaaaaaaaaa",
    ):
        svc.delete(image_id, force=True)
    with pytest.raises(
        Conflict,
        match=rf'unable to remove repository reference "{ref}" \(must force\) - container aaaaaaaaaaaa is using its referenced image {short}',
    ):
        svc.delete(ref, force=False)
    users[image_id] = [(stopped, False)]
    with pytest.raises(
        Conflict,
        match=rf"unable to delete {short} \(must be forced\) - image is being used by stopped container bbbbbbbbbbbb",
    ):
        svc.delete(image_id[7:19], force=False)
    # Another name may go: the image keeps one.
    svc.tag(ref, "second", "1")
    assert svc.delete("second:1", force=False) == [{"Untagged": "second:1"}]
    # Forced by name: untagged, the content kept as a dangling image for the container.
    assert svc.delete(ref, force=True) == [{"Untagged": ref}]
    [dangling] = svc.summaries({"dangling": ["true"]}, "1.50")
    assert dangling["Id"] == image_id
    # Nor does a prune take it while it is used.
    assert svc.prune({}, None) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    users.clear()
    report = svc.prune({}, None)
    assert report["ImagesDeleted"][0] == {"Untagged": f"moby-dangling@{img.digest}"}
    assert svc.summaries({}, "1.50") == []
    # Forced by ID, a stopped container's image goes (the container keeps its own snapshot).
    svc.pull(svc.prepare_pull(ref, "", "", None), lambda _msg: None)
    users[image_id] = [(stopped, False)]
    assert svc.delete(image_id, force=True) == [{"Untagged": ref}, {"Deleted": image_id}]


def test_users_as_container_ids(
    by_ids: tuple[ImageService, dict[str, list[str]], set[str]], registry: Registry, tmp_path: Path
) -> None:
    svc, users, up = by_ids
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    seed(registry, img, "used/ids:1", tmp_path)
    ref = f"{registry.host}/used/ids:1"
    svc.pull(svc.prepare_pull(ref, "", "", None), lambda _msg: None)
    image_id = str(img.manifest["config"]["digest"])  # type: ignore[index]
    users[image_id] = ["c" * 64]
    up.add("c" * 64)
    with pytest.raises(Conflict, match="cannot be forced"):
        svc.delete(image_id, force=True)
    up.clear()
    with pytest.raises(Conflict, match="must be forced"):
        svc.delete(image_id, force=False)
