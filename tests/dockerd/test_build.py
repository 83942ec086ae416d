"""docker build (DOCKER_BUILDKIT=0) and docker-py's images.build against pydockerd over pycontainerd."""

from __future__ import annotations

import json
from pathlib import Path

from tests.dockerd.buildsupport import docker_build, image_files, pulled_busybox
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
