"""Registry credentials given to pydockerd (X-Registry-Auth) never reach its log, its errors or the CLI's output."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.distribution.support import seed
from tests.dockerd.conftest import DOCKER, Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import PASSWORD, USER, Registry, RegistryFactory
from tests.ocibuild import busybox_files, image

WRONG = "not-the-pw-7Q2x"


class DebugPydockerd(Pydockerd):
    def command(self) -> list[str]:
        return [*super().command(), "--debug"]


@pytest.fixture
def debug_pydockerd(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[DebugPydockerd]:
    with tempfile.TemporaryDirectory(prefix="pydockerd-cred-") as base:
        d = DebugPydockerd(Path(base), pycontainerd_daemon.address)
        try:
            yield d.start()
        finally:
            d.stop()


def _forms(secret: str) -> list[str]:
    """A secret as it may travel: plain, and inside the base64 of user:secret (both alphabets)."""
    pair = f"{USER}:{secret}".encode()
    return [secret, base64.b64encode(pair).decode(), base64.urlsafe_b64encode(pair).decode().rstrip("=")]


def test_credentials_stay_out_of_log_errors_and_output(
    debug_pydockerd: DebugPydockerd,
    pycontainerd_daemon: PycontainerdDaemon,
    registry: Registry,
    htpasswd_registry: Registry,
    tmp_path: Path,
) -> None:
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    seed(registry, img, "src/app:1", tmp_path)
    c = debug_pydockerd.client()
    repo = f"{htpasswd_registry.host}/auth/app"
    c.images.pull(f"{registry.host}/src/app", tag="1").tag(repo, "1")
    seen: list[str] = []

    # Push with the right password, then pull back with it and with a wrong one.
    lines = list(
        c.api.push(repo, tag="1", stream=True, decode=True, auth_config={"username": USER, "password": PASSWORD})
    )
    assert not [x for x in lines if "error" in x], lines
    seen.append(repr(lines))
    c.images.remove(f"{repo}:1")
    c.images.pull(repo, tag="1", auth_config={"username": USER, "password": PASSWORD})
    c.images.remove(f"{repo}:1")
    with pytest.raises(docker.errors.APIError) as e:
        c.images.pull(repo, tag="1", auth_config={"username": USER, "password": WRONG})
    seen.append(str(e.value))
    assert "credentials" in str(e.value) or "unauthorized" in str(e.value).lower()

    text = "\n".join([*seen, debug_pydockerd.log(), pycontainerd_daemon.log()])
    assert "PUT /v2/auth/app/manifests/1" in debug_pydockerd.log()  # the debug log does record the authorized calls
    leaks = [f for secret in (PASSWORD, WRONG) for f in _forms(secret) if f in text]
    assert leaks == [], f"credential forms found: {leaks}"


def _cli(d: Pydockerd, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.cli_config))
    return subprocess.run(
        [DOCKER, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_docker_login_then_pull_with_the_stored_credentials(
    mode: str, pydockerd: Pydockerd, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    reg = registry_factory(mode)
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    seed(reg, img, "auth/app:1", tmp_path)

    # A wrong password: one line from the CLI, nothing stored.
    r = _cli(pydockerd, "login", "-u", USER, "--password-stdin", reg.host, stdin=WRONG + "\n")
    assert r.returncode == 1
    assert r.stderr.startswith("Error response from daemon: ") and "refused" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert (
        not (pydockerd.cli_config / "config.json").exists()
        or reg.host not in (pydockerd.cli_config / "config.json").read_text()
    )

    # Logged in, the CLI's stored credentials carry the pull.
    r = _cli(pydockerd, "login", "-u", USER, "--password-stdin", reg.host, stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "Login Succeeded" in r.stdout
    r = _cli(pydockerd, "pull", f"{reg.host}/auth/app:1")
    assert r.returncode == 0, r.stderr
    assert f"Digest: {img.digest}" in r.stdout
    assert _cli(pydockerd, "logout", reg.host).returncode == 0

    # docker-py's login goes the same way.
    c = pydockerd.client()
    assert c.login(username=USER, password=PASSWORD, registry=reg.host)["Status"] == "Login Succeeded"
    with pytest.raises(docker.errors.APIError) as e:
        c.login(username=USER, password=WRONG, registry=reg.host, reauth=True)
    assert e.value.status_code == 401
    leaks = [f for s in (PASSWORD, WRONG) for f in _forms(s) if f in pydockerd.log()]
    assert leaks == []


def test_auth_refuses_bad_bodies(pydockerd: Pydockerd) -> None:
    for body, message in (
        (b"{not json", "invalid JSON body"),
        (b"[1]", "want an auth config object"),
        (b'{"serveraddress": "bad host name/v2/"}', "invalid registry address"),
        (b'{"auth": "//4="}', "bad auth field"),
    ):
        status, _, out = pydockerd.request("POST", "/auth", body=body)
        assert status == 400, (body, out)
        assert message in json.loads(out)["message"], out
    # A registry nobody answers at: 503 with the reason, quickly.
    status, _, out = pydockerd.request(
        "POST",
        "/auth",
        body=json.dumps({"username": USER, "password": PASSWORD, "serveraddress": "127.0.0.1:9"}).encode(),
    )
    assert status in (502, 503), out
    assert PASSWORD not in out.decode()
