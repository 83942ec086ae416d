"""docker-py against pydockerd: the image flows with assertions on what the API returns, and bad input."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import docker
import pytest

from tests.distribution.support import seed
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image


def test_image_flows(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    first = image([busybox_files()], config={"Cmd": ["/bin/sh"], "Labels": {"stage": "one"}})
    seed(registry, first, "app/web:1", tmp_path)
    repo = f"{registry.host}/app/web"
    c = pydockerd.client()
    assert c.ping() is True
    assert c.version()["ApiVersion"] == "1.50"

    pulled = c.images.pull(repo, tag="1")
    config_digest = first.manifest["config"]["digest"]  # type: ignore[index]
    assert pulled.id == config_digest
    assert pulled.tags == [f"{repo}:1"]
    assert pulled.labels == {"stage": "one"}
    attrs = pulled.attrs
    assert attrs["RepoDigests"] == [f"{repo}@{first.digest}"]
    assert attrs["Architecture"] == "amd64"
    assert attrs["Size"] > len(busybox_files()["bin/busybox"]) // 2

    [summary] = c.api.images()
    assert summary["Id"] == config_digest
    assert summary["RepoTags"] == [f"{repo}:1"]
    assert summary["RepoDigests"] == [f"{repo}@{first.digest}"]
    assert isinstance(summary["Created"], int) and summary["Created"] > 0
    assert summary["Size"] == attrs["Size"]
    assert summary["Labels"] == {"stage": "one"}
    assert summary["Containers"] == -1

    assert pulled.tag("local/web", "stable") is True
    assert sorted(c.images.get("local/web:stable").tags) == sorted([f"{repo}:1", "local/web:stable"])
    assert [i.id for i in c.images.list(filters={"label": "stage=one"})] == [config_digest]
    assert c.images.list(filters={"label": "stage=two"}) == []
    # The summary lists only the names the reference filter matched.
    assert [i["RepoTags"] for i in c.api.images(filters={"reference": "local/*"})] == [["local/web:stable"]]

    # A new image under the same tag: the old one keeps its other name, and loses it on removal.
    second = image([busybox_files(), {"etc/stage": b"two\n"}], config={"Cmd": ["/bin/sh"], "Labels": {"stage": "two"}})
    seed(registry, second, "app/web:1", tmp_path)
    assert c.images.pull(repo, tag="1").id == second.manifest["config"]["digest"]  # type: ignore[index]
    assert c.images.get(config_digest).tags == ["local/web:stable"]
    assert c.images.list(filters={"dangling": True}) == []
    assert c.api.remove_image("local/web:stable") == [{"Untagged": "local/web:stable"}, {"Deleted": config_digest}]

    # Re-pulled over its last name, an image stays as a dangling one, as in Docker.
    seed(registry, first, "app/web:1", tmp_path)
    c.images.pull(repo, tag="1")
    dangling = c.api.images(filters={"dangling": True})
    assert [(d["Id"], d["RepoTags"]) for d in dangling] == [(second.manifest["config"]["digest"], [])]  # type: ignore[index]
    assert len(c.images.list()) == 2
    c.images.remove(dangling[0]["Id"])
    assert c.images.list(filters={"dangling": True}) == []

    history = c.images.get(f"{repo}:1").history()
    assert history[0]["Id"] == config_digest
    assert history[0]["Tags"] == [f"{repo}:1"]


def test_bad_input(pydockerd: Pydockerd) -> None:
    c = pydockerd.client()
    with pytest.raises(docker.errors.ImageNotFound, match="No such image: nosuch:latest"):
        c.images.get("nosuch")
    with pytest.raises(docker.errors.ImageNotFound) as e:
        c.images.remove("nosuch:2")
    assert e.value.status_code == 404
    with pytest.raises(docker.errors.APIError) as e:
        c.api.pull("Bad_Repo", tag="1")
    assert e.value.status_code == 400
    assert "invalid reference format" in e.value.explanation
    with pytest.raises(docker.errors.APIError) as e:
        c.images.list(filters={"color": "red"})
    assert e.value.status_code == 400
    assert e.value.explanation == "invalid filter 'color'"

    for version, word in (("1.99", "new"), ("1.24", "old")):
        old = docker.APIClient(base_url=pydockerd.host, version=version)
        try:
            with pytest.raises(docker.errors.APIError) as e:
                old.version(api_version=True)
        finally:
            old.close()
        assert e.value.status_code == 400
        assert f"client version {version} is too {word}" in e.value.explanation


def test_http_conventions(pydockerd: Pydockerd) -> None:
    status, headers, body = pydockerd.request("HEAD", "/_ping")
    assert status == 200 and body == b""
    assert headers["api-version"] == "1.50"
    assert headers["ostype"] == "linux"
    assert headers["docker-experimental"] == "false"
    assert headers["builder-version"] == "1"
    status, _, body = pydockerd.request("GET", "/v1.41/_ping")
    assert (status, body) == (200, b"OK")
    status, _, body = pydockerd.request("GET", "/v1.41/version")
    assert status == 200 and json.loads(body)["MinAPIVersion"] == "1.41"
    status, headers, body = pydockerd.request("GET", "/v1.50/no/such/path")
    assert status == 404 and json.loads(body) == {"message": "page not found"}
    assert headers["content-type"] == "application/json"
    status, _, body = pydockerd.request("GET", "/images/json?filters=%7Bnot-json")
    assert status == 400 and json.loads(body)["message"].startswith("invalid filter")
    status, _, body = pydockerd.request("PUT", "/images/json")
    assert status == 405

    # Bytes that are not HTTP: a 400 with Docker's body, then the connection closes.
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(pydockerd.socket)
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "message" in json.loads(body)
    assert pydockerd.answers()
    assert "Traceback" not in pydockerd.log()
