"""Registry credentials from the Docker CLI's ``config.json``."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["credentials_from_docker_config"]

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def _config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _host_of(key: str) -> str:
    return key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]


def credentials_from_docker_config(path: Path | None = None) -> Callable[[str], tuple[str, str] | None]:
    """A credentials function reading ``auths`` of the config (re-read per call: the user may log in meanwhile)."""
    where = path or _config_path()

    def credentials(host: str) -> tuple[str, str] | None:
        try:
            doc = json.loads(where.read_text())
        except (OSError, ValueError):
            return None
        auths = doc.get("auths") if isinstance(doc, dict) else None
        if not isinstance(auths, dict):
            return None
        keys = _DOCKER_HUB_KEYS if host in ("docker.io", "registry-1.docker.io") else (host,)
        for key, entry in auths.items():
            if not isinstance(entry, dict) or (key not in keys and _host_of(key) not in keys):
                continue
            if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
                return "<token>", entry["identitytoken"]
            auth = entry.get("auth")
            if isinstance(auth, str) and auth:
                try:
                    user, sep, password = base64.b64decode(auth).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    continue
                if sep:
                    return user, password
            name, secret = entry.get("username"), entry.get("password")
            if isinstance(name, str) and isinstance(secret, str) and name:
                return name, secret
        return None

    return credentials
