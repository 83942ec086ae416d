"""Credentials (htpasswd basic auth, bearer tokens, docker's config.json) and HTTPS with a private CA."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pycontainerd.errors import Unauthenticated, Unavailable
from pycontainerd.remotes.docker import DockerResolver, HostOptions, credentials_from_docker_config
from tests.fixtures.registry import PASSWORD, USER, Registry

from .support import busybox_image, push_image


def _good(host: str) -> tuple[str, str] | None:
    return (USER, PASSWORD)


def _wrong(host: str) -> tuple[str, str] | None:
    return (USER, "wrong")


def _round_trip(registry: Registry, resolver: DockerResolver, repo: str = "private/busybox:1") -> None:
    img = busybox_image()
    ref = f"{registry.host}/{repo}"
    assert push_image(resolver.pusher(ref), img) == ["pushed"] * 3
    _, root = resolver.resolve(ref)
    assert root.digest == img.digest
    with resolver.fetcher(ref).fetch(root) as s:
        assert s.read() == img.manifest_bytes


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_credentials_accepted(mode: str, registry_factory: object) -> None:
    registry = registry_factory(mode)  # type: ignore[operator]
    with DockerResolver(credentials=_good) as r:
        _round_trip(registry, r)
    if registry.tokens is not None:
        scopes = [q for q in registry.tokens.requests if "scope=" in q]
        assert any("repository%3Aprivate%2Fbusybox%3Apull%2Cpush" in q for q in scopes), scopes
        assert all("service=pycontainerd-test-registry" in q for q in scopes)
        assert len(registry.tokens.requests) <= 3, "tokens are cached per scope"


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_wrong_password_is_one_clear_error(mode: str, registry_factory: object) -> None:
    registry = registry_factory(mode)  # type: ignore[operator]
    ref = f"{registry.host}/private/busybox:1"
    with DockerResolver(credentials=_wrong, retries=0) as r, pytest.raises(Unauthenticated) as e:
        r.resolve(ref)
    msg = str(e.value)
    assert "\n" not in msg and registry.host in msg and "refused" in msg, msg
    assert e.value.grpc_code.name == "UNAUTHENTICATED" and e.value.http_status == 401


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_no_credentials(mode: str, registry_factory: object) -> None:
    registry = registry_factory(mode)  # type: ignore[operator]
    with DockerResolver() as r, pytest.raises(Unauthenticated) as e:
        r.resolve(f"{registry.host}/private/busybox:1")
    assert registry.host in str(e.value)


def test_docker_config_credentials(token_registry: Registry, tmp_path: Path) -> None:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {token_registry.host: {"auth": auth}}}))
    with DockerResolver(credentials=credentials_from_docker_config(tmp_path / "config.json")) as r:
        _round_trip(token_registry, r)


def test_https_with_a_private_ca(tls_registry: Registry) -> None:
    assert tls_registry.ca_path is not None
    with DockerResolver(HostOptions(ca_file=str(tls_registry.ca_path))) as r:
        _round_trip(tls_registry, r)
    # Per-host options, as a function of the registry's name.
    with DockerResolver(lambda host: HostOptions(ca_file=str(tls_registry.ca_path))) as r:
        assert r.resolve(f"{tls_registry.host}/private/busybox:1")[1].digest == busybox_image().digest
    with DockerResolver(HostOptions(skip_verify=True)) as r:
        assert r.resolve(f"{tls_registry.host}/private/busybox:1")[1].digest == busybox_image().digest


def test_https_without_the_ca_fails_clearly(tls_registry: Registry, tmp_path: Path) -> None:
    hosts = tmp_path / "certs.d" / tls_registry.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(f'server = "https://{tls_registry.host}"\n')
    with DockerResolver(HostOptions(hosts_dir=str(tmp_path / "certs.d"))) as r, pytest.raises(Unavailable) as e:
        r.resolve(f"{tls_registry.host}/x/y:1")
    msg = str(e.value)
    assert "\n" not in msg and "TLS" in msg and tls_registry.host in msg and "certificate verify failed" in msg, msg
    # A local registry without TLS settings is spoken to in plain HTTP, which this one refuses.
    with DockerResolver(retries=0) as r, pytest.raises(Exception) as e2:
        r.resolve(f"{tls_registry.host}/x/y:1")
    assert tls_registry.host in str(e2.value) and "\n" not in str(e2.value)


def test_ca_configured_local_registry_falls_back_to_http(registry: Registry, tls_registry: Registry) -> None:
    """As containerd does: with TLS configured, a local registry is tried over HTTPS first, then HTTP."""
    assert tls_registry.ca_path is not None
    with DockerResolver(HostOptions(ca_file=str(tls_registry.ca_path))) as r:
        _round_trip(registry, r)
