"""Per-registry TLS and header settings from a hosts directory, as containerd's ``certs.d`` layout has them.

``<dir>/<host[:port]>/hosts.toml`` may set ``server`` (whose scheme is used), ``ca`` (a file or a list of files,
relative to the host's directory), ``skip_verify``, ``dial_timeout`` (a Go duration such as
``"5s"``, the limit on connecting) and a ``[header]`` table;
any ``*.crt`` file in the host's directory is a CA as well.  ``<dir>/_default``
applies to hosts without a directory of their own.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InvalidArgument

__all__ = ["HostConfig", "host_config", "parse_duration"]


@dataclass(frozen=True)
class HostConfig:
    scheme: str = ""  # from ``server``: "https" makes even a local registry use TLS
    ca_files: tuple[str, ...] = ()
    skip_verify: bool | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    dial_timeout: float | None = None  # seconds


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``"1m30s"``, ``"500ms"``) in seconds; ValueError when it is not one."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r}")
    return total


def _parse(directory: Path) -> HostConfig:
    cas = sorted(str(p) for p in directory.glob("*.crt"))
    skip: bool | None = None
    scheme = ""
    headers: dict[str, str] = {}
    dial: float | None = None
    toml = directory / "hosts.toml"
    if toml.is_file():
        try:
            doc = tomllib.loads(toml.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"{toml}: {e}") from None
        server = doc.get("server", "")
        if server:
            if not isinstance(server, str) or not server.startswith(("http://", "https://")):
                raise InvalidArgument(f"{toml}: server must be an http:// or https:// URL")
            scheme = server.split("://", 1)[0]
        ca = doc.get("ca", [])
        for item in [ca] if isinstance(ca, str) else ca if isinstance(ca, list) else []:
            if not isinstance(item, str):
                raise InvalidArgument(f"{toml}: ca must be a path or a list of paths")
            cas.append(str(directory / item))
        if "skip_verify" in doc:
            if not isinstance(doc["skip_verify"], bool):
                raise InvalidArgument(f"{toml}: skip_verify must be true or false")
            skip = doc["skip_verify"]
        if "dial_timeout" in doc:
            try:
                dial = parse_duration(str(doc["dial_timeout"]))
            except ValueError:
                raise InvalidArgument(f'{toml}: dial_timeout must be a duration such as "5s"') from None
        table = doc.get("header", {})
        if not isinstance(table, dict):
            raise InvalidArgument(f"{toml}: header must be a table")
        for k, v in table.items():
            headers[k] = ", ".join(v) if isinstance(v, list) else str(v)
    return HostConfig(scheme, tuple(cas), skip, headers, dial)


def host_config(hosts_dir: str, host: str) -> HostConfig:
    """The settings for ``host`` (``name[:port]``) under ``hosts_dir``; empty when there are none."""
    if not hosts_dir:
        return HostConfig()
    base = Path(hosts_dir)
    for name in (host, "_default"):
        d = base / name
        if d.is_dir():
            return _parse(d)
    return HostConfig()
