"""The ``X-Registry-Auth`` header: base64url-encoded JSON credentials the client sends with a pull or push."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from pycontainerd.errors import InvalidArgument
from pycontainerd.remotes.docker import remember

__all__ = ["AuthConfig", "auth_from_json", "decode_auth", "login_host"]


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    server_address: str = ""

    def credentials(self) -> tuple[str, str] | None:
        """What the registry client answers an auth challenge with; an identity token goes with no user name."""
        if self.identity_token:
            return "", self.identity_token
        if self.username or self.password:
            return self.username, self.password
        return None


def _b64(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError) as e:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {e}") from None


def decode_auth(header: str) -> AuthConfig | None:
    """The credentials in ``header``; None when it is empty or carries none; 400 when it is malformed."""
    header = header.strip()
    if not header:
        return None
    try:
        doc = json.loads(_b64(header))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: want a JSON object")
    return auth_from_json(doc, "X-Registry-Auth header")


def auth_from_json(doc: dict[str, object], what: str = "auth config") -> AuthConfig | None:
    """Docker's AuthConfig object (the header's JSON, the body of ``POST /auth``); None when it carries no secret."""
    username, password = str(doc.get("username") or ""), str(doc.get("password") or "")
    auth = str(doc.get("auth") or "")
    if auth and not username:
        try:
            username, _, password = _b64(auth).decode().partition(":")
        except UnicodeDecodeError:
            raise InvalidArgument(f"invalid {what}: bad auth field") from None
    config = AuthConfig(
        username=username,
        password=password,
        identity_token=str(doc.get("identitytoken") or ""),
        server_address=str(doc.get("serveraddress") or ""),
    )
    creds = config.credentials()
    if creds is None:
        return None
    remember(*creds)  # from here on this secret is cut out of every log line and error pydockerd writes
    return config


_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_HUB = frozenset({"", "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


def login_host(server_address: str) -> str:
    """The registry a login names: its scheme and path dropped, Docker Hub's many spellings as ``docker.io``."""
    host = server_address.strip()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    host = host.split("/", 1)[0].lower()
    if host in _HUB:
        return "docker.io"
    if not _HOST.match(host):
        raise InvalidArgument(f"invalid registry address {server_address!r}")
    return host
