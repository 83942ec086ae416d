"""Registry credentials given to pydockerd (X-Registry-Auth) never reach its log, its errors or the CLI's output."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.distribution.support import seed
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import PASSWORD, USER, Registry
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
