"""``docker commit`` with the real CLI and docker-py: a container's file in a new layer, changes, comment, history."""

from __future__ import annotations

import json
import time

import pytest

from pycontainerd.errors import InvalidArgument
from pydockerd._containercommit import commit_config, parse_changes
from tests.dockerd._containers_support import bb_image  # noqa: F401 - the bb fixture
from tests.dockerd.conftest import Pydockerd


def test_commit_then_run(pydockerd: Pydockerd, bb: str) -> None:
    d = pydockerd
    d.docker("run", "--name", "writer", bb, "sh", "-c", "echo hello > /data")
    out = d.docker(
        "commit",
        "-c",
        'CMD ["cat","/data"]',
        "-c",
        "ENV MODE=committed",
        "-m",
        "wrote data",
        "-a",
        "me",
        "writer",
        "img:1",
    )
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:")
    assert d.docker("run", "--rm", "img:1").stdout == "hello\n"
    [inspected] = json.loads(d.docker("image", "inspect", "img:1").stdout)
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Cmd"] == ["cat", "/data"]
    assert "MODE=committed" in inspected["Config"]["Env"]
    assert inspected["Config"]["Labels"] == {"from": "image"}
    assert inspected["Comment"] == "wrote data" and inspected["Author"] == "me"
    assert len(inspected["RootFS"]["Layers"]) == 2
    rows = d.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}|{{.Size}}", "img:1").stdout
    top = rows.splitlines()[0].split("|")
    assert top[0] == "sh -c echo hello > /data" and top[1] == "wrote data" and top[2] != "0B", rows

    # A container never started has no changes: no new layer, an empty history entry.
    d.docker("create", "--name", "fresh", bb, "true")
    d.docker("commit", "fresh", "img:0")
    [fresh] = json.loads(d.docker("image", "inspect", "img:0").stdout)
    assert len(fresh["RootFS"]["Layers"]) == 1
    assert d.docker("history", "--format", "{{.Size}}", "img:0").stdout.split()[0] == "0B"
    d.docker("rm", "fresh")

    # A running container keeps running (paused only during the commit).
    d.docker("run", "-d", "--name", "idle", bb, "sleep", "300")
    try:
        d.docker("commit", "idle", "img:2")
        [second] = json.loads(d.docker("image", "inspect", "img:2").stdout)
        assert second["Config"]["Cmd"] == ["sleep", "300"]
        state = json.loads(d.docker("inspect", "--format", "{{json .State}}", "idle").stdout)
        assert state["Running"] and not state["Paused"]
        events = d.docker(
            "events",
            "--since",
            "0",
            "--until",
            str(int(time.time()) + 1),
            "--filter",
            "event=commit",
            "--format",
            "{{.Actor.Attributes.name}}",
        )
        assert events.stdout.split() == ["writer", "fresh", "idle"]
    finally:
        d.docker("rm", "-f", "idle")

    r = d.docker("commit", "-c", "RUN true", "writer", "img:3", ok=False)
    assert r.returncode == 1 and "run is not a valid change command" in r.stderr, r.stderr
    r = d.docker("commit", "nosuch", "img:3", ok=False)
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr, r.stderr
    r = d.docker("commit", "writer", "Bad:Name", ok=False)
    assert r.returncode == 1 and "invalid reference format" in r.stderr, r.stderr
    d.docker("rm", "writer")
    assert "Traceback" not in d.log()


def test_dockerpy_commit(pydockerd: Pydockerd, bb: str) -> None:
    client = pydockerd.client()
    c = client.containers.run(bb, ["sh", "-c", "echo py > /py.txt"], detach=True)
    try:
        c.wait()
        image = c.commit(repository="pyimg", tag="v1", message="from py", changes=["LABEL made=py", "WORKDIR /srv"])
        assert image.id.startswith("sha256:") and "pyimg:v1" in image.tags
        assert image.labels == {"from": "image", "made": "py"}
        assert image.attrs["Config"]["WorkingDir"] == "/srv"
        out = client.containers.run("pyimg:v1", ["cat", "/py.txt"], remove=True)
        assert out == b"py\n"
    finally:
        c.remove(force=True)


def test_commit_config_rules() -> None:
    container = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "Labels": {"x": "1"}, "Hostname": "abc", "Image": "bb"}
    out = commit_config(container, None, parse_changes(['ENV A=2 B="$A"', "EXPOSE 80 53/udp", "ENTRYPOINT top"]))
    assert out["Env"] == ["PATH=/bin", "A=2", "B=1"]
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert out["Entrypoint"] == ["/bin/sh", "-c", "top"] and out["Cmd"] == ["sh"]
    assert "Hostname" not in out and "Image" not in out
    body = {"Cmd": ["true"], "Labels": {"y": "2"}}
    assert commit_config(container, body, []) == {
        "Cmd": ["true"],
        "Env": ["PATH=/bin", "A=1"],
        "Labels": {"x": "1", "y": "2"},
    }
    with pytest.raises(InvalidArgument, match="copy is not a valid change command"):
        parse_changes(["COPY a b"])
    with pytest.raises(InvalidArgument):
        parse_changes(["NOPE x"])
    with pytest.raises(InvalidArgument):
        commit_config(container, ["not", "an", "object"], [])
