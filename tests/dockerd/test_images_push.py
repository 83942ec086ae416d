"""docker push through pydockerd to real registries, judged by skopeo; X-Registry-Auth; errors."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import docker
import pytest

from pycontainerd.client import Client
from tests.distribution.support import raw_manifest, seed, two_platforms
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.registry import PASSWORD, USER, Registry, RegistryFactory
from tests.ocibuild import busybox_files, image


def _skopeo_digest(registry: Registry, ref: str) -> str:
    creds = ["--creds", f"{USER}:{PASSWORD}"] if registry.mode == "htpasswd" else []
    r = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *creds, f"docker://{registry.host}/{ref}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return str(json.loads(r.stdout)["Digest"])


def test_cli_push_then_skopeo(pydockerd: Pydockerd, registry_factory: RegistryFactory, tmp_path: Path) -> None:
    source, other = registry_factory("plain"), registry_factory("plain")
    img = image([busybox_files(), {"etc/pushed": b"yes\n"}], config={"Cmd": ["/bin/sh"]})
    seed(source, img, "src/app:1", tmp_path)
    pydockerd.docker("pull", f"{source.host}/src/app:1")

    # To another registry: every layer uploaded.
    dest = f"{other.host}/dst/app:v1"
    pydockerd.docker("tag", f"{source.host}/src/app:1", dest)
    out = pydockerd.docker("push", dest).stdout
    assert f"The push refers to repository [{other.host}/dst/app]" in out
    layers = [layer["digest"][7:19] for layer in img.manifest["layers"]]  # type: ignore[index]
    for short in layers:
        assert f"{short}: Pushed" in out
    assert f"v1: digest: {img.digest} size: {len(img.manifest_bytes)}" in out
    assert _skopeo_digest(other, "dst/app:v1") == img.digest

    # Again: the registry has every layer.
    out = pydockerd.docker("push", dest).stdout
    for short in layers:
        assert f"{short}: Layer already exists" in out

    # Pushed, the blobs are labelled with the repository they are now in, beside the one they came from.
    c = Client(pydockerd.containerd, namespace="moby")
    try:
        labels = c.content.info(img.manifest["layers"][0]["digest"]).labels  # type: ignore[index]
    finally:
        c.close()
    assert labels["containerd.io/distribution.source.127.0.0.1"] == "src/app,dst/app"

    # To another repository of the registry it came from: mounted, not uploaded.
    same = f"{source.host}/copy/app:v2"
    pydockerd.docker("tag", f"{source.host}/src/app:1", same)
    out = pydockerd.docker("push", same).stdout
    for short in layers:
        assert f"{short}: Mounted from src/app" in out
    assert _skopeo_digest(source, "copy/app:v2") == img.digest

    # The events Docker publishes for a push: the familiar tag, named by its repository.
    events = pydockerd.docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "event=push",
                              "--format", "{{.Actor.ID}} {{.Actor.Attributes.name}}").stdout  # fmt: skip
    assert events.splitlines() == [f"{dest} {other.host}/dst/app"] * 2 + [f"{same} {source.host}/copy/app"]


def test_push_partial_multi_platform(pydockerd: Pydockerd, registry_factory: RegistryFactory, tmp_path: Path) -> None:
    """An index with one platform's content here is pushed as that platform's manifest, as Docker does."""
    source, other = registry_factory("plain"), registry_factory("plain")
    target = two_platforms()
    seed(source, target, "multi/app:1", tmp_path)
    pydockerd.docker("pull", "--platform", "linux/arm64", f"{source.host}/multi/app:1")
    dest = f"{other.host}/multi/arm:1"
    pydockerd.docker("tag", f"{source.host}/multi/app:1", dest)
    out = pydockerd.docker("push", dest).stdout
    arm = target.images[1]
    assert f"1: digest: {arm.digest} size: {len(arm.manifest_bytes)}" in out
    assert raw_manifest(other, "multi/arm:1") == arm.manifest_bytes


def test_dockerpy_push_with_auth(
    pydockerd: Pydockerd, registry: Registry, htpasswd_registry: Registry, tmp_path: Path
) -> None:
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    seed(registry, img, "src/app:1", tmp_path)
    c = pydockerd.client()
    c.images.pull(f"{registry.host}/src/app", tag="1").tag(f"{htpasswd_registry.host}/auth/app", "1")
    repo = f"{htpasswd_registry.host}/auth/app"

    # No credentials: the registry's refusal ends the stream.
    lines = list(c.api.push(repo, tag="1", stream=True, decode=True))
    assert "error" in lines[-1]
    assert "credentials" in lines[-1]["error"]

    lines = list(
        c.api.push(repo, tag="1", stream=True, decode=True, auth_config={"username": USER, "password": PASSWORD})
    )
    assert not [x for x in lines if "error" in x], lines
    [aux] = [x["aux"] for x in lines if "aux" in x]
    assert aux == {"Tag": "1", "Digest": img.digest, "Size": len(img.manifest_bytes)}
    assert _skopeo_digest(htpasswd_registry, "auth/app:1") == img.digest


def test_push_unknown(pydockerd: Pydockerd, registry: Registry) -> None:
    r = pydockerd.docker("push", f"{registry.host}/nosuch/app:1", ok=False)
    assert r.returncode == 1
    assert f"tag does not exist: {registry.host}/nosuch/app:1" in r.stderr
    c = pydockerd.client()
    with pytest.raises(docker.errors.NotFound) as e:
        c.api.push(f"{registry.host}/nosuch/app", tag="1")
    assert e.value.status_code == 404
    status, _, body = pydockerd.request("POST", f"/images/{registry.host}/nosuch/app/push")
    assert status == 404
    assert json.loads(body) == {"message": f"An image does not exist locally with the tag: {registry.host}/nosuch/app"}
    assert "Traceback" not in pydockerd.log()
