"""``docker system df [-v]`` and ``docker container prune`` with the real CLI."""

from __future__ import annotations

import json

from pydockerd._diskusage import layer_usage, prune_chosen
from tests.dockerd._containers_support import bb_image  # noqa: F401 - the bb fixture
from tests.dockerd.conftest import Pydockerd


def test_system_df(pydockerd: Pydockerd, bb: str) -> None:
    d = pydockerd
    d.docker("run", "--name", "sized", bb, "sh", "-c", "echo 0123456789 > /ten")
    d.docker("commit", "sized", "child:1")
    rows = {line.split()[0]: line.split() for line in d.docker("system", "df").stdout.splitlines()[1:]}
    assert rows["Images"][1:3] == ["2", "1"], rows  # total, active
    assert rows["Containers"][1:3] == ["1", "0"], rows
    assert rows["Local"][2:4] == ["0", "0"], rows  # Local Volumes
    assert rows["Build"][2] == "0", rows

    status, _, body = d.request("GET", "/system/df")
    assert status == 200
    doc = json.loads(body)
    assert doc["Volumes"] == [] and doc["BuildCache"] == []
    by_tag = {i["RepoTags"][0]: i for i in doc["Images"]}
    base, child = by_tag[bb], by_tag["child:1"]
    # The base layer is shared by both images; the container uses the base.
    assert base["SharedSize"] > 0 and base["SharedSize"] == child["SharedSize"]
    assert base["Containers"] == 1 and child["Containers"] == 0
    assert doc["LayersSize"] > base["SharedSize"]
    [c] = doc["Containers"]
    assert c["Names"] == ["/sized"] and c["SizeRw"] > 0 and c["SizeRootFs"] >= c["SizeRw"]

    verbose = d.docker("system", "df", "-v").stdout
    assert "Images space usage:" in verbose and "Containers space usage:" in verbose
    assert "child" in verbose and "sized" in verbose
    status, _, body = d.request("GET", "/system/df?type=image")
    assert set(json.loads(body)) == {"LayersSize", "Images"}
    status, _, body = d.request("GET", "/system/df?type=nope")
    assert status == 400
    d.docker("rm", "sized")
    assert "Traceback" not in d.log()


def test_container_prune(pydockerd: Pydockerd, bb: str) -> None:
    d = pydockerd
    keep = d.docker("run", "-d", "--name", "running", bb, "sleep", "300").stdout.strip()
    one = d.docker("create", "--label", "x=1", "--name", "one", bb, "true").stdout.strip()
    d.docker("run", "--label", "x=2", "--name", "two", bb, "sh", "-c", "echo data > /f")
    two = d.docker("inspect", "--format", "{{.Id}}", "two").stdout.strip()
    try:
        out = d.docker("container", "prune", "-f", "--filter", "label=x=1").stdout
        assert out.splitlines()[:2] == ["Deleted Containers:", one], out
        assert "Total reclaimed space:" in out  # the empty upper directory's block
        out = d.docker("container", "prune", "-f", "--filter", "until=1h").stdout
        assert "Deleted Containers:" not in out  # made less than an hour ago
        out = d.docker("container", "prune", "-f").stdout
        assert out.splitlines()[:2] == ["Deleted Containers:", two], out
        assert "Total reclaimed space:" in out
        assert d.docker("ps", "-aq", "--no-trunc").stdout.split() == [keep]
        r = d.docker("container", "prune", "-f", "--filter", "nope=1", ok=False)
        assert r.returncode == 1 and "invalid filter 'nope'" in r.stderr, r.stderr
    finally:
        d.docker("rm", "-f", "running")
    assert "Traceback" not in d.log()


def test_pure_rules() -> None:
    total, shared = layer_usage({"a": [("l1", 10), ("l2", 5)], "b": [("l1", 10), ("l3", 7)], "c": []})
    assert total == 22 and shared == {"a": 10, "b": 10, "c": 0}
    filters = {"label": ["x"], "label!": ["y=1"]}
    assert prune_chosen({"x": "1"}, 5, filters, None)
    assert not prune_chosen({"x": "1", "y": "1"}, 5, filters, None)
    assert not prune_chosen({}, 5, filters, None)
    assert not prune_chosen({"x": ""}, 10, filters, 10)
