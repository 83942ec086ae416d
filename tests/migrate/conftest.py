"""The Docker root every migration test reads, filled once per session.

A real dockerd (Debian's 20.10, private directories) pulls from a local
registry three images that share their base layers, one of them under three
tags, and builds a classic-builder multi-stage image whose last RUN deletes
files from lower layers (a whiteout and an opaque directory) and makes a
hard link; then it is stopped and its root is left to be read.  Tests never
write it: those that damage a root damage a copy.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.distribution.support import seed
from tests.fixtures.dockerd import running_dockerd
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image

BASE_FILES = {"etc/a": b"a\n", "etc/b": b"bb\n", "opt/d/f1": b"f1\n", "opt/d/f2": b""}

DOCKERFILE = """\
FROM {base} AS build
SHELL ["/bin/busybox", "sh", "-c"]
RUN echo built > /etc/c && busybox ln /etc/c /etc/d && busybox rm /etc/a
FROM {base}
COPY --from=build /etc/c /etc/copied
SHELL ["/bin/busybox", "sh", "-c"]
RUN busybox rm /etc/b && busybox mkdir -p /x/y && echo z > /x/y/z && busybox ln /x/y/z /x/hard \\
    && busybox rm -rf /opt/d && busybox mkdir /opt/d && echo n > /opt/d/new && busybox touch /x/empty
"""


@dataclass(frozen=True)
class Filled:
    """A stopped dockerd's data root, and what dockerd said about its images before it stopped."""

    root: Path
    tags: dict[str, str]  # repository:tag -> image id
    diff_ids: dict[str, list[str]]  # image id -> RootFS.Layers
    built: str  # image id of the multi-stage build


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    tmp = tmp_path_factory.mktemp("migrate")
    registry = Registry().start()
    try:
        with running_dockerd() as d:
            base_layers = [busybox_files(), BASE_FILES]
            seed(registry, image(base_layers), "base:1", tmp)
            seed(registry, image([*base_layers, {"app/one": b"one\n"}]), "app1:1", tmp)
            seed(registry, image([*base_layers, {"app/two": b"two\n"}], config={"Cmd": ["/app/two"]}), "app2:1", tmp)
            for tag in ("latest", "stable"):
                subprocess.run(
                    ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                     f"docker://{registry.host}/base:1", f"docker://{registry.host}/base:{tag}"],
                    check=True, capture_output=True, timeout=120,
                )  # fmt: skip
            for ref in ("base:1", "base:latest", "base:stable", "app1:1", "app2:1"):
                d.docker("pull", "-q", f"{registry.host}/{ref}")
            context = tmp / "context"
            context.mkdir()
            (context / "Dockerfile").write_text(DOCKERFILE.format(base=f"{registry.host}/base:1"))
            d.docker("build", "-q", "--network", "none", "-t", "built:1", str(context), env={"DOCKER_BUILDKIT": "0"})
            tags: dict[str, str] = {}
            for line in d.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "--no-trunc").split("\n"):
                if line.strip() and "<none>" not in line:
                    name, image_id = line.split()
                    tags[name] = image_id
            diff_ids = {
                i: json.loads(d.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", i))
                for i in set(tags.values())
            }
            d.stop()
            yield Filled(d.root, tags, diff_ids, tags["built:1"])
    finally:
        registry.stop()
