"""docker build (DOCKER_BUILDKIT=0) and docker-py's images.build against pydockerd over pycontainerd."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import docker
import pytest

from pycontainerd.client import Client
from tests.dockerd.buildsupport import context_tar, docker_build, image_files, pulled_busybox
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.registry import Registry


def _build(pydockerd: Pydockerd, *args: str) -> tuple[int, str]:
    r = docker_build(pydockerd, *args)
    return r.returncode, r.stdout + r.stderr


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, body in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body.encode() if isinstance(body, str) else body)
    return root


def _inspect(pydockerd: Pydockerd, ref: str) -> dict[str, object]:
    [doc] = json.loads(pydockerd.docker("image", "inspect", ref).stdout)
    return doc  # type: ignore[no-any-return]


def test_multistage_build_and_cache(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    base = pulled_busybox(pydockerd, registry, tmp_path)
    ctx = _write(
        tmp_path / "ctx",
        {
            "Dockerfile": f"""
ARG BASE={base}
FROM $BASE AS builder
ARG GREETING=hello
RUN mkdir -p /out && echo "$GREETING from the builder" > /out/greeting && echo built it
COPY app.txt /out/
FROM {base}
ENV APP_HOME=/srv/app MODE=prod
WORKDIR $APP_HOME
COPY --from=builder /out/ ./
USER app
LABEL org.test.stage=final
EXPOSE 8080
CMD ["cat", "greeting"]
""",
            "app.txt": "application\n",
            "ignored.log": "not wanted\n",
            ".dockerignore": "*.log\n",
        },
    )
    code, out = _build(pydockerd, "-t", "built:1", "-t", "built:alias", "--build-arg", "GREETING=hi", str(ctx))
    assert code == 0, out
    assert "Step 1/12 : FROM $BASE AS builder" in out
    assert " ---> Running in " in out
    assert "built it" in out
    assert "Successfully tagged built:1" in out
    assert "Successfully tagged built:alias" in out
    doc = _inspect(pydockerd, "built:1")
    config = doc["Config"]
    assert isinstance(config, dict)
    assert "APP_HOME=/srv/app" in config["Env"] and "MODE=prod" in config["Env"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "app"
    assert config["Labels"] == {"org.test.stage": "final"}
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Cmd"] == ["cat", "greeting"]
    assert sorted(doc["RepoTags"]) == ["built:1", "built:alias"]  # type: ignore[arg-type]
    image_id = str(doc["Id"])
    assert f"Successfully built {image_id[7:19]}" in out

    # The second build takes everything from the cache: the same IDs.
    code, again = _build(pydockerd, "-t", "built:1", "--build-arg", "GREETING=hi", str(ctx))
    assert code == 0, again
    assert again.count(" ---> Using cache") == 10
    assert "\nbuilt it\n" not in again
    assert _inspect(pydockerd, "built:1")["Id"] == image_id
    # A different build argument changes the RUN step and what follows.
    code, other = _build(pydockerd, "-q", "--build-arg", "GREETING=bye", str(ctx))
    assert code == 0, other
    assert other.strip().startswith("sha256:") and other.strip() != image_id
    # --no-cache runs everything again.
    code, fresh = _build(pydockerd, "--no-cache", "-t", "built:fresh", "--build-arg", "GREETING=hi", str(ctx))
    assert code == 0, fresh
    assert "Using cache" not in fresh and "\nbuilt it\n" in fresh
    assert _inspect(pydockerd, "built:fresh")["Id"] != image_id

    # What the image holds, as its layers say: the greeting copied from the builder, no ignored file.
    files = image_files(pydockerd, "built:1", tmp_path)
    assert files["srv/app/greeting"] == b"hi from the builder\n"
    assert files["srv/app/app.txt"] == b"application\n"
    assert not any(name.endswith("ignored.log") for name in files)


def test_scratch_add_archive_and_dockerfile_path(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, body in (("pkg/readme", b"from the archive\n"), ("pkg/bin/tool", b"#!/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid = len(body), 0o755, 1000
            tar.addfile(info, io.BytesIO(body))
    ctx = _write(
        tmp_path / "ctx",
        {
            "sub/Dockerfile": "FROM scratch\nCOPY hello.txt /\nADD pkg.tar.gz /opt/\nCOPY dir /data/\nSTOPSIGNAL SIGINT\n",
            "hello.txt": "hello\n",
            "pkg.tar.gz": archive.getvalue(),
            "dir/a": "a\n",
            "dir/nested/b": "b\n",
        },
    )
    code, out = _build(pydockerd, "-f", str(ctx / "sub" / "Dockerfile"), "-t", "fromscratch", str(ctx))
    assert code == 0, out
    doc = _inspect(pydockerd, "fromscratch")
    assert len(doc["RootFS"]["Layers"]) == 3  # type: ignore[index]
    assert doc["Config"]["StopSignal"] == "SIGINT"  # type: ignore[index]
    files = image_files(pydockerd, "fromscratch", tmp_path)
    assert files == {
        "hello.txt": b"hello\n",
        "opt/pkg/readme": b"from the archive\n",
        "opt/pkg/bin/tool": b"#!/bin/sh\n",
        "data/a": b"a\n",
        "data/nested/b": b"b\n",
    }


def test_build_errors(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    base = pulled_busybox(pydockerd, registry, tmp_path)
    cases = {
        "unknown": (f"FROM {base}\nFOO bar\n", "dockerfile parse error on line 2: unknown instruction: FOO"),
        "outside": (f"FROM {base}\nCOPY ../outside /x\n", "COPY failed: forbidden path outside the build context"),
        "missing": (
            f"FROM {base}\nCOPY missing.txt /x\n",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt",
        ),
        "runfails": (
            f"FROM {base}\nRUN echo before && false\n",
            "The command '/bin/sh -c echo before && false' returned a non-zero code: 1",
        ),
        "nobase": ("FROM 127.0.0.1:1/nothing/here\n", "nothing/here"),
        "target": (f"FROM {base}\n", "failed to reach build target nope in Dockerfile"),
    }
    for name, (dockerfile, message) in cases.items():
        ctx = _write(tmp_path / name, {"Dockerfile": dockerfile})
        args = ["--target", "nope"] if name == "target" else []
        code, out = _build(pydockerd, *args, str(ctx))
        assert code == 1, (name, out)
        assert message in out, (name, out)
    # Nothing half-made: the failed builds left no image, no container, no active snapshot.
    assert pydockerd.docker("images", "-q", "--filter", "dangling=true").stdout.strip() == ""
    with Client(pydockerd.containerd, namespace="moby") as client:
        assert client.containers.list() == []
        active = [i.name for i in client.snapshotter().walk() if i.kind.name == "ACTIVE"]
        assert active == []


def test_docker_py_build(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    base = pulled_busybox(pydockerd, registry, tmp_path)
    c = pydockerd.client()
    dockerfile = f'FROM {base}\nARG WHO\nRUN echo "hi $WHO" > /who\nCMD ["cat", "/who"]\n'
    ctx = context_tar({"Dockerfile": dockerfile}, gz=True)
    image, logs = c.images.build(
        fileobj=io.BytesIO(ctx), custom_context=True, encoding="gzip", tag="pybuilt:1",
        buildargs={"WHO": "there"}, labels={"built.by": "docker-py"}, rm=True,
    )  # fmt: skip
    lines = [entry.get("stream", "") for entry in logs]
    assert any(line.startswith("Successfully built") for line in lines)
    assert image.tags == ["pybuilt:1"]
    assert image.labels == {"built.by": "docker-py"}
    assert image.attrs["Config"]["Cmd"] == ["cat", "/who"]
    assert image_files(pydockerd, "pybuilt:1", tmp_path)["who"] == b"hi there\n"
    history = image.history()
    assert history[0]["Id"] == image.id
    assert any("|1 WHO=there /bin/sh -c echo" in h["CreatedBy"] for h in history)
    # Pruning the cache forgets the steps: the next build runs again.
    pruned = c.api.prune_builds()
    assert pruned["SpaceReclaimed"] > 0
    image2, logs2 = c.images.build(
        fileobj=io.BytesIO(ctx), custom_context=True, encoding="gzip", buildargs={"WHO": "there"}
    )
    assert not any("Using cache" in entry.get("stream", "") for entry in logs2)
    assert image2.id != image.id
    with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 3"):
        c.images.build(
            fileobj=io.BytesIO(context_tar({"Dockerfile": f"FROM {base}\nRUN exit 3\n"})), custom_context=True
        )


def test_hostile_contexts(pydockerd: Pydockerd) -> None:
    def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info, io.BytesIO(b""))
            df = b"FROM scratch\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(df)
            tar.addfile(info, io.BytesIO(df))
        return buf.getvalue()

    cases = {
        "traversal": member("../../escape"),
        "absolute link": member("link", tarfile.SYMTYPE, "/etc"),
        "link out": member("link", tarfile.SYMTYPE, "../../etc"),
        "device": member("dev", tarfile.CHRTYPE),
        "not a tar": b"this is not a tar archive" * 100,
    }
    for name, body in cases.items():
        status, _, answer = pydockerd.request("POST", "/v1.50/build", body=body)
        assert status == 400, (name, answer)
        assert json.loads(answer)["message"].startswith("invalid build context"), (name, answer)
    status, _, answer = pydockerd.request("POST", "/v1.50/build?dockerfile=../Dockerfile", body=member("x"))
    assert status == 400 and b"forbidden path outside the build context" in answer
    status, _, answer = pydockerd.request("POST", "/v1.50/build?buildargs=notjson", body=member("x"))
    assert status == 400 and b"invalid buildargs" in answer
    status, _, answer = pydockerd.request("POST", "/v1.50/build", body=context_tar({"x": "y"}))
    assert status == 400 and b"Cannot locate specified Dockerfile: Dockerfile" in answer
