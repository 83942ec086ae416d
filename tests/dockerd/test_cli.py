"""The real docker CLI against pydockerd: version, info, pull, images, inspect, tag, rmi, events."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.distribution.support import seed, two_platforms
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image


def test_version_and_info(pydockerd: Pydockerd) -> None:
    out = pydockerd.docker("version").stdout
    assert "Server: pydockerd" in out
    assert "API version:      1.50 (minimum version 1.41)" in out
    r = pydockerd.docker("info")
    assert "Images: 0" in r.stdout
    assert "Storage Driver: overlayfs" in r.stdout
    assert "ERROR" not in r.stdout + r.stderr
    info = json.loads(pydockerd.docker("info", "--format", "{{json .}}").stdout)
    assert info["OSType"] == "linux"
    assert info["Containerd"]["Namespaces"]["Containers"] == "moby"


def test_pull_images_inspect_tag_rmi(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"], "Labels": {"org.test": "yes"}})
    seed(registry, img, "test/busybox:1", tmp_path)
    ref = f"{registry.host}/test/busybox:1"
    config_digest = str(img.manifest["config"]["digest"])  # type: ignore[index]

    out = pydockerd.docker("pull", ref).stdout
    assert "1: Pulling from test/busybox" in out
    assert "Pull complete" in out
    assert f"Digest: {img.digest}" in out
    assert f"Status: Downloaded newer image for {ref}" in out
    assert f"Status: Image is up to date for {ref}" in pydockerd.docker("pull", ref).stdout

    rows = pydockerd.docker("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}").stdout.splitlines()
    assert rows == [f"{registry.host}/test/busybox 1 {config_digest[7:19]}"]

    [inspected] = json.loads(pydockerd.docker("image", "inspect", ref).stdout)
    assert inspected["Id"] == config_digest
    assert inspected["RepoTags"] == [ref]
    assert inspected["RepoDigests"] == [f"{registry.host}/test/busybox@{img.digest}"]
    assert inspected["Config"]["Labels"] == {"org.test": "yes"}
    assert inspected["Architecture"] == "amd64"
    assert inspected["Os"] == "linux"
    assert len(inspected["RootFS"]["Layers"]) == 1
    # By ID and by ID prefix, as docker accepts them.
    assert json.loads(pydockerd.docker("image", "inspect", config_digest[7:19]).stdout)[0]["Id"] == config_digest

    pydockerd.docker("tag", ref, "mybox:v1")
    pydockerd.docker("tag", "mybox:v1", "team/app")
    tags = pydockerd.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(tags) == sorted([ref, "mybox:v1", "team/app:latest"])
    filtered = pydockerd.docker("images", "--format", "{{.Repository}}", "--filter", "reference=team/*").stdout
    assert filtered.split() == ["team/app"]

    assert pydockerd.docker("rmi", "mybox:v1").stdout.strip() == "Untagged: mybox:v1"
    r = pydockerd.docker("rmi", config_digest[7:19], ok=False)
    assert r.returncode == 1
    assert "image is referenced in multiple repositories" in r.stderr
    assert "(must be forced)" in r.stderr
    out = pydockerd.docker("rmi", "-f", config_digest[7:19]).stdout
    assert f"Untagged: {ref}" in out
    assert "Untagged: team/app:latest" in out
    assert f"Deleted: {config_digest}" in out
    assert pydockerd.docker("images", "-q").stdout.strip() == ""

    # What happened, as `docker events` replays it.  The CLI sends whole seconds, so the window ends at the
    # next one; then the stream ends too.
    until = str(int(time.time()) + 1)
    out = pydockerd.docker("events", "--since", "0", "--until", until, "--format", "{{.Type}} {{.Action}}").stdout
    assert out.splitlines() == [
        "image pull", "image pull", "image tag", "image tag", "image untag",
        "image untag", "image untag", "image delete",
    ]  # fmt: skip
    out = pydockerd.docker("events", "--since", "0", "--until", until, "--filter", "event=tag",
                           "--format", "{{.Actor.Attributes.name}}").stdout  # fmt: skip
    assert out.split() == ["mybox:v1", "team/app:latest"]


def test_pull_platform(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    target = two_platforms()
    seed(registry, target, "test/multi:latest", tmp_path)
    ref = f"{registry.host}/test/multi:latest"
    out = pydockerd.docker("pull", "--platform", "linux/arm64", ref).stdout
    assert f"Digest: {target.digest}" in out
    arm = target.images[1]
    fmt = "{{.Id}} {{.Os}}/{{.Architecture}}/{{.Variant}}"
    inspected = pydockerd.docker("image", "inspect", "--format", fmt, ref).stdout.strip()
    assert inspected == f"{arm.manifest['config']['digest']} linux/arm64/v8"  # type: ignore[index]
    # The host's platform as well: new content, so "newer", and it is the one in use.
    assert "Downloaded newer image" in pydockerd.docker("pull", ref).stdout
    amd = target.images[0]
    inspected = pydockerd.docker("image", "inspect", "--format", "{{.Id}} {{.Architecture}}", ref).stdout.strip()
    assert inspected == f"{amd.manifest['config']['digest']} amd64"  # type: ignore[index]


def test_cli_errors(pydockerd: Pydockerd, registry: Registry) -> None:
    r = pydockerd.docker("image", "inspect", "nosuch", ok=False)
    assert r.returncode == 1
    assert "No such image: nosuch:latest" in r.stderr
    r = pydockerd.docker("rmi", "nosuch:1", ok=False)
    assert "Error response from daemon: No such image: nosuch:1" in r.stderr
    r = pydockerd.docker("tag", "nosuch", "other", ok=False)
    assert "No such image: nosuch:latest" in r.stderr
    r = pydockerd.docker("pull", f"{registry.host}/test/nosuch:1", ok=False)
    assert r.returncode == 1
    assert "not found" in r.stderr
    assert "Traceback" not in pydockerd.log()
