"""The ``X-Registry-Auth`` header: base64url-encoded JSON credentials the client sends with a pull or push."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from pycontainerd.errors import InvalidArgument
from pycontainerd.remotes.docker import remember

__all__ = ["AuthConfig", "decode_auth"]


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
    username, password = str(doc.get("username") or ""), str(doc.get("password") or "")
    auth = str(doc.get("auth") or "")
    if auth and not username:
        try:
            username, _, password = _b64(auth).decode().partition(":")
        except UnicodeDecodeError:
            raise InvalidArgument("invalid X-Registry-Auth header: bad auth field") from None
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
