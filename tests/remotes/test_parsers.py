"""The pure parts of the registry client: challenges, docker config credentials, endpoint choice."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.remotes.docker import HostOptions, credentials_from_docker_config, parse_challenges, registry_host
from pycontainerd.remotes.docker._session import endpoint, is_local


def test_bearer_challenge_with_commas_and_quotes() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push", error="insufficient_scope"'
    )
    [c] = parse_challenges(header)
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }


def test_several_challenges_and_token_values() -> None:
    cs = parse_challenges('Basic realm="Registry Realm", Bearer realm="https://t.example/token" ,service=s')
    assert [(c.scheme, dict(c.params)) for c in cs] == [
        ("basic", {"realm": "Registry Realm"}),
        ("bearer", {"realm": "https://t.example/token", "service": "s"}),
    ]
    assert parse_challenges('BEARER Realm="x\\\\y\\"z"')[0].params == {"realm": 'x\\y"z'}
    assert [c.scheme for c in parse_challenges("Negotiate, Basic")] == ["negotiate", "basic"]
    assert parse_challenges("   ") == []


@given(st.text(alphabet=' ,="\\abcBearerBasic=realm', max_size=60))
def test_challenge_parser_never_raises(header: str) -> None:
    for c in parse_challenges(header):
        assert c.scheme == c.scheme.lower()


def _config(tmp_path: Path, auths: dict[str, object]) -> Path:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"auths": auths}))
    return p


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config_credentials(tmp_path: Path) -> None:
    creds = credentials_from_docker_config(
        _config(
            tmp_path,
            {
                "https://index.docker.io/v1/": {"auth": _b64("hub:pw:with:colons")},
                "localhost:5000": {"username": "u", "password": "p"},
                "https://r.example.com": {"auth": _b64("ru:rp")},
                "broken.example.com": {"auth": "!!!"},
                "id.example.com": {"identitytoken": "tok"},
            },
        )
    )
    assert creds("docker.io") == ("hub", "pw:with:colons")
    assert creds("registry-1.docker.io") == ("hub", "pw:with:colons")
    assert creds("localhost:5000") == ("u", "p")
    assert creds("r.example.com") == ("ru", "rp")
    assert creds("broken.example.com") is None
    assert creds("id.example.com") == ("<token>", "tok")
    assert creds("other.example.com") is None


def test_docker_config_missing_or_garbage(tmp_path: Path) -> None:
    assert credentials_from_docker_config(tmp_path / "absent.json")("docker.io") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert credentials_from_docker_config(tmp_path / "bad.json")("docker.io") is None


def test_docker_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, {"r.io": {"auth": _b64("a:b")}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials_from_docker_config()("r.io") == ("a", "b")


@pytest.mark.parametrize(
    ("host", "plain", "tls", "want"),
    [
        ("registry-1.docker.io", False, False, ("https", False)),
        ("r.example.com:5000", True, False, ("http", False)),
        ("r.example.com:5000", False, True, ("https", False)),
        ("localhost:5000", False, False, ("http", False)),
        ("127.0.0.1:5000", False, True, ("https", True)),
        ("[::1]:5000", False, False, ("http", False)),
        ("::1", False, False, ("https", False)),
        ("localhost", False, False, ("https", False)),
        ("localhost:443", False, True, ("https", False)),
        ("localhost:80", False, True, ("http", False)),
    ],
)
def test_endpoint(host: str, plain: bool, tls: bool, want: tuple[str, bool]) -> None:
    assert endpoint(host, plain, tls) == want
    assert endpoint(host, plain, tls, "https") == ("https", False)


def test_hosts() -> None:
    assert registry_host("docker.io") == registry_host("index.docker.io") == "registry-1.docker.io"
    assert registry_host("localhost:5000") == "localhost:5000"
    assert is_local("127.0.0.1:1") and is_local("[::1]:1") and not is_local("r.io")
    assert HostOptions().scheme("localhost:5000") == "http"
    assert HostOptions(ca_file="/ca.pem").scheme("localhost:5000") == "https"
