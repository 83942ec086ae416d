"""Registry credentials: from the Docker CLI's ``config.json``, and kept out of every message.

:func:`redact` is the one place where text that may carry a credential is
cleaned before anyone sees it: a registry's own error messages (which may
echo the Authorization header they got) and the daemon's log lines.  It
removes every secret this process has used (:func:`remember`: passwords,
identity tokens, bearer tokens, and the base64 forms a Basic header makes of
them) and, whatever their origin, ``Basic``/``Bearer`` header values and
JWTs.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

__all__ = ["RedactingFilter", "credentials_from_docker_config", "redact", "remember"]

REDACTED = "<redacted>"
_KEPT = 256  # secrets remembered at most (the most recently used)
_MIN_SECRET = 4  # shorter strings would blank out ordinary words
_HEADER = re.compile(r"\b(Basic|Bearer)(\s+)([A-Za-z0-9._~+/-]+=*)(?![=\w])")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


class _Secrets:
    """The secrets this process has used, most recent last, and one pattern matching them all."""

    def __init__(self) -> None:
        self._known: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, forms: list[str]) -> None:
        with self._lock:
            for form in forms:
                if len(form) >= _MIN_SECRET:
                    self._known[form] = None
                    self._known.move_to_end(form)
            while len(self._known) > _KEPT:
                self._known.popitem(last=False)
            self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._known:
                longest_first = sorted(self._known, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in longest_first))
            return self._pattern


_secrets = _Secrets()


def remember(user: str, secret: str) -> None:
    """Note a credential in use, so that :func:`redact` removes it wherever it shows up."""
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    _secrets.add([secret, basic, base64.b64encode(secret.encode()).decode()])


def redact(text: str) -> str:
    """``text`` without any remembered secret, Authorization header value or JWT."""
    pattern = _secrets.pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _HEADER.sub(_header_value, text)
    return _JWT.sub(REDACTED, text)


def _header_value(m: re.Match[str]) -> str:
    """An Authorization value is cut; words that merely follow "Basic" or "Bearer" in prose are kept."""
    value = m[3]
    if m[1] == "Basic":
        try:
            secret = b":" in base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            secret = False
    else:
        secret = len(value) >= 16 and not value.isalpha()
    return f"{m[1]}{m[2]}{REDACTED}" if secret else m[0]


class RedactingFilter(logging.Filter):
    """A handler filter that passes every record's message through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


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
