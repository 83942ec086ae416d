"""The commit primitive over a real pycontainerd: a snapshot with a new file becomes an image that runs."""

from __future__ import annotations

import json
from pathlib import Path

from pycontainerd.client import Client
from pycontainerd.mount import mounted
from pydockerd._commit import ImageCommitter
from pydockerd._images import ImageService
from tests.dockerd.buildsupport import pulled_busybox
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.registry import Registry


def test_commit_snapshot(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    ref = pulled_busybox(pydockerd, registry, tmp_path)
    # The test's snapshots are held by a lease, as a container's record holds its own.
    with Client(pydockerd.containerd, namespace="moby") as owner, owner.lease() as client:
        images = ImageService(client)
        view, _, _ = images.resolve(ref)
        committer = ImageCommitter(client)
        base = committer.ensure_unpacked(view)
        sn = client.snapshotter(committer.snapshotter)
        mounts = committer.prepare("commit-test", base)
        try:
            with mounted(mounts) as root:
                (root / "hello.txt").write_text("hi\n")
                (root / "etc" / "hostname").unlink(missing_ok=True)
            config = {**base.config, "Env": ["A=b"], "Cmd": ["cat", "/hello.txt"]}
            committed = committer.commit_snapshot(
                "commit-test", base, config=config, created_by="test commit", comment="made here", author="me"
            )
            # The source snapshot stays, for a container still running on it.
            sn.stat("commit-test")
        finally:
            sn.remove("commit-test")
        assert committed.base.diff_ids[:1] == base.diff_ids
        assert len(committed.base.diff_ids) == 2
        # An unchanged snapshot adds an empty history entry and no layer.
        again = committer.prepare("commit-empty", committed.base)
        assert again
        empty = committer.commit_snapshot("commit-empty", committed.base, created_by="nothing")
        sn.remove("commit-empty")
        assert empty.base.diff_ids == committed.base.diff_ids
        assert empty.base.document["history"][-1]["empty_layer"] is True

        # The new image's top snapshot is there, with the file.
        with mounted(sn.view("commit-check", committed.base.chain_id)) as root:
            assert (root / "hello.txt").read_text() == "hi\n"
            assert (root / "bin" / "busybox").exists()
        sn.remove("commit-check")

    [inspected] = json.loads(pydockerd.docker("image", "inspect", committed.id).stdout)
    assert inspected["RepoTags"] == []
    assert inspected["Config"]["Cmd"] == ["cat", "/hello.txt"]
    assert inspected["Comment"] == "made here"
    assert inspected["Author"] == "me"
    assert len(inspected["RootFS"]["Layers"]) == 2
    history = pydockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", committed.id)
    assert history.stdout.splitlines()[0] == "test commit|made here"
    dangling = pydockerd.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()
    assert committed.id in dangling and empty.id in dangling
