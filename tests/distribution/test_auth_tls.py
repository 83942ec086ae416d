"""Registries that ask for credentials (htpasswd, bearer tokens) or speak HTTPS with a private CA.

Credentials travel the way containerd's Transfer service wants: the daemon
asks pyctr for them over a stream when the registry challenges it.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from pycontainerd.client import Client, RegistryOptions
from pycontainerd.errors import Unavailable
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import PASSWORD, USER, RegistryFactory
from tests.ocibuild import busybox_files, image

from .support import one_line_error, pyctr, raw_manifest, seed


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_credentials(
    mode: str, pycontainerd_daemon: PycontainerdDaemon, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    registry = registry_factory(mode)
    img = image([busybox_files()])
    seed(registry, img, "private/busybox:1", tmp_path)
    ref = f"{registry.host}/private/busybox:1"
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}

    line = one_line_error(pyctr(d, "images", "pull", "-q", ref, ok=False, env=env))
    assert "credentials" in line or "authentication" in line, line
    line = one_line_error(pyctr(d, "images", "pull", "-q", "--user", f"{USER}:wrong", ref, ok=False, env=env))
    assert "refused" in line, line
    with Client(d.address) as c:
        assert c.images.list() == []

    out = pyctr(d, "images", "pull", "-q", "--user", f"{USER}:{PASSWORD}", ref, env=env)
    assert out.stdout.split() == [ref, img.digest]

    # The Docker CLI's config file works as well, for pull and push.
    config = tmp_path / "docker-config"
    config.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    env["DOCKER_CONFIG"] = str(config)
    pyctr(d, "images", "push", "-q", f"{registry.host}/private/copy:2", ref, env=env)
    assert raw_manifest(registry, "private/copy:2") == img.manifest_bytes
    if registry.tokens is not None:
        assert any("scope=repository" in r for r in registry.tokens.requests)


def test_tls_with_a_private_ca(
    pycontainerd_daemon: PycontainerdDaemon, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    registry = registry_factory("tls")
    assert registry.ca_path is not None
    img = image([busybox_files()])
    seed(registry, img, "tls/busybox:1", tmp_path)
    ref = f"{registry.host}/tls/busybox:1"
    # 127.0.0.1 is local, so plain HTTP would be tried: this registry needs HTTPS, which hosts.toml asks for.
    line = one_line_error(pyctr(d, "images", "pull", "-q", ref, ok=False))
    assert registry.host in line, line

    hosts = tmp_path / "certs.d"
    (hosts / registry.host).mkdir(parents=True)
    (hosts / registry.host / "ca.crt").write_bytes(registry.ca_path.read_bytes())
    (hosts / registry.host / "hosts.toml").write_text(f'server = "https://{registry.host}"\n')
    out = pyctr(d, "images", "pull", "-q", "--hosts-dir", str(hosts), ref)
    assert out.stdout.split() == [ref, img.digest]

    # Without the CA, the TLS failure is one clear error.
    (hosts / registry.host / "ca.crt").unlink()
    with Client(d.address) as c, pytest.raises(Unavailable, match="TLS"):
        c.pull(ref, registry=RegistryOptions(hosts_dir=str(hosts)), local=True)
