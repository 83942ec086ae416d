"""Where a registry's name leads: containerd's hosts directory (``certs.d``) and its ``hosts.toml``.

A registry ``name[:port]`` is configured by the first of ``<dir>/<name>_<port>_``,
``<dir>/<name[:port]>`` and ``<dir>/_default`` that exists.  Its ``hosts.toml``
lists the hosts to try, in order::

    server = "https://registry.example.com"      # the registry itself, tried last

    [host."http://127.0.0.1:5001"]                # a mirror, tried first
      capabilities = ["pull", "resolve"]          # what it may serve (default: all three)
      ca = "mirror-ca.pem"                        # a path or a list, relative to the directory
      client = [["client.cert", "client.key"]]    # TLS client certificates
      skip_verify = false
      override_path = false                       # true: the URL's path is the API root (no /v2)
      dial_timeout = "5s"
      [host."http://127.0.0.1:5001".header]
        X-Mirror = "yes"

Top-level keys other than ``server`` and ``host`` configure the server.
Without ``server``, the registry's own name is the server, reached over the
client's default scheme with every capability, as containerd does.  Names
without a scheme mean HTTPS.  ``*.crt`` files in the directory are CAs of the
server, and ``*.cert`` files (with a ``.key`` of the same name, if any) its
client certificates.  Unknown keys are ignored, as containerd ignores them.

:func:`parse_hosts` is the pure parser; :func:`registry_hosts` finds and
reads the files.
"""

from __future__ import annotations

import posixpath
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..._duration import parse_duration
from ...errors import InvalidArgument

__all__ = [
    "ALL_CAPABILITIES",
    "PULL",
    "PUSH",
    "RESOLVE",
    "HostConfig",
    "host_config",
    "host_directory",
    "parse_hosts",
    "registry_hosts",
]

PULL, RESOLVE, PUSH = "pull", "resolve", "push"
ALL_CAPABILITIES = frozenset({PULL, RESOLVE, PUSH})


@dataclass(frozen=True)
class HostConfig:
    """One host a registry's content may come from: a mirror, or (last in a list) the registry's server.

    ``host`` "" is the registry's own name, reached with the client's
    default scheme (``scheme`` "").  ``path`` is the API root, ``/v2`` unless
    ``override_path`` said otherwise.
    """

    scheme: str = ""
    host: str = ""
    path: str = "/v2"
    capabilities: frozenset[str] = ALL_CAPABILITIES
    ca_files: tuple[str, ...] = ()
    client_pairs: tuple[tuple[str, str], ...] = ()  # (certificate, key); key "" when the certificate file holds it
    skip_verify: bool | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    dial_timeout: float | None = None  # seconds


def parse_hosts(text: str, directory: str = "", source: str = "hosts.toml") -> tuple[HostConfig, ...]:
    """The hosts a ``hosts.toml`` lists, in order, its server last.

    Relative file names are taken from ``directory``; ``source`` names the
    file in errors (InvalidArgument, naming the key at fault).
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{source}: not valid TOML: {e}") from None
    hosts: list[HostConfig] = []
    table = doc.get("host", {})
    if not isinstance(table, dict):
        raise InvalidArgument(f'{source}: host: must be a table of [host."<url>"] tables')
    for name, entry in table.items():
        where = f'{source}: host."{name}"'
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where}: must be a table")
        hosts.append(_entry(entry, where, directory, name))
    server = doc.get("server", "")
    if not isinstance(server, str):
        raise InvalidArgument(f"{source}: server: must be a URL string")
    if server:
        hosts.append(_entry(doc, source, directory, server, key="server"))
    else:  # the registry's own name, with every capability and the standard API root (containerd ignores them)
        own = _entry({k: v for k, v in doc.items() if k not in ("capabilities", "override_path")}, source, directory)
        hosts.append(own)
    return tuple(hosts)


def _where(where: str, key: str) -> str:
    """A key's name in errors: ``file: key`` at the top, ``file: host."<url>".key`` in a host's table."""
    return f"{where}.{key}" if where.endswith('"') else f"{where}: {key}"


def _entry(t: Mapping[str, Any], where: str, directory: str, url: str = "", *, key: str = "") -> HostConfig:
    override = t.get("override_path", False)
    if not isinstance(override, bool):
        raise InvalidArgument(f"{_where(where, 'override_path')}: must be true or false")
    scheme, host, path = _split_url(url, override, _where(where, key) if key else where) if url else ("", "", "/v2")
    return HostConfig(
        scheme=scheme,
        host=host,
        path=path,
        capabilities=_capabilities(t, where),
        ca_files=tuple(_paths(t.get("ca"), directory, _where(where, "ca"))),
        client_pairs=_client(t.get("client"), directory, _where(where, "client")),
        skip_verify=_optional_bool(t, "skip_verify", where),
        headers=_headers(t.get("header", {}), _where(where, "header")),
        dial_timeout=_duration(t, "dial_timeout", where),
    )


def _split_url(url: str, override_path: bool, where: str) -> tuple[str, str, str]:
    """(scheme, host, API root) of a server or host name; HTTPS when it has no scheme, as in containerd."""
    u = urlsplit(url if "://" in url else f"https://{url}")
    if u.scheme not in ("http", "https"):
        raise InvalidArgument(f"{where}: {url!r}: the scheme must be http or https")
    if not u.netloc or u.query or u.fragment:
        raise InvalidArgument(f"{where}: {url!r} is not a registry URL (scheme://host[:port][/path])")
    path = posixpath.normpath(u.path) if u.path else ""
    path = "" if path == "/" else path
    if not override_path and not path.endswith("/v2"):
        path += "/v2"
    return u.scheme, u.netloc, path


def _capabilities(t: Mapping[str, Any], where: str) -> frozenset[str]:
    caps = t.get("capabilities")
    if caps is None:
        return ALL_CAPABILITIES
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise InvalidArgument(f'{_where(where, "capabilities")}: must be a list such as ["pull", "resolve"]')
    out = frozenset(c.lower() for c in caps)
    unknown = sorted(out - ALL_CAPABILITIES)
    if unknown:
        raise InvalidArgument(
            f"{_where(where, 'capabilities')}: unknown capability {unknown[0]!r} (known: pull, resolve, push)"
        )
    return out


def _paths(value: object, directory: str, where: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(p, str) and p for p in items):
        raise InvalidArgument(f"{where}: must be a file name or a list of file names")
    return [_absolute(p, directory) for p in items]


def _absolute(p: str, directory: str) -> str:
    return p if posixpath.isabs(p) or not directory else posixpath.join(directory, p)


def _client(value: object, directory: str, where: str) -> tuple[tuple[str, str], ...]:
    """``"both.pem"``, ``["a.pem", ...]`` or ``[["a.cert", "a.key"], ...]``, mixed as containerd allows."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidArgument(f"{where}: must be a file, a list of files or a list of [certificate, key] pairs")
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str) and item:
            pairs.append((_absolute(item, directory), ""))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(p, str) and p for p in item):
            pairs.append((_absolute(item[0], directory), _absolute(item[1], directory)))
        else:
            raise InvalidArgument(f"{where}: {item!r} is neither a file nor a [certificate, key] pair")
    return tuple(pairs)


def _optional_bool(t: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = t.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"{_where(where, key)}: must be true or false")
    return value


def _headers(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: must be a table of header names and values")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, str):
            out[k] = v
        elif isinstance(v, list) and all(isinstance(s, str) for s in v):
            out[k] = ", ".join(v)
        else:
            raise InvalidArgument(f"{where}.{k}: must be a string or a list of strings")
    return out


def _duration(t: Mapping[str, Any], key: str, where: str) -> float | None:
    value = t.get(key)
    if value is None:
        return None
    try:
        seconds = parse_duration(value) if isinstance(value, str) else -1.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise InvalidArgument(f'{_where(where, key)}: must be a duration such as "5s", not {value!r}')
    return seconds


# -- the files ----------------------------------------------------------------


def host_directory(hosts_dir: str, host: str) -> Path | None:
    """The directory configuring ``host`` (``name[:port]``) under ``hosts_dir``, or None."""
    if not hosts_dir:
        return None
    base = Path(hosts_dir)
    name, sep, port = host.rpartition(":")
    names = [f"{name}_{port}_"] if sep and name and not host.endswith("]") else []
    for candidate in (*names, host, "_default"):
        d = base / candidate
        if d.is_dir():
            return d
    return None


def registry_hosts(hosts_dir: str, host: str) -> tuple[HostConfig, ...]:
    """The hosts to try for registry ``host``, its server last; the registry alone when nothing configures it."""
    directory = host_directory(hosts_dir, host)
    if directory is None:
        return (HostConfig(),)
    toml = directory / "hosts.toml"
    hosts: tuple[HostConfig, ...] = (HostConfig(),)
    if toml.is_file():
        try:
            text = toml.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"{toml}: cannot read it: {e}") from None
        hosts = parse_hosts(text, str(directory), str(toml))
    server = hosts[-1]
    cas = tuple(sorted(str(p) for p in directory.glob("*.crt")))
    pairs = tuple(
        (str(cert), str(cert.with_suffix(".key")) if cert.with_suffix(".key").is_file() else "")
        for cert in sorted(directory.glob("*.cert"))
    )
    if cas or pairs:
        server = replace(server, ca_files=cas + server.ca_files, client_pairs=pairs + server.client_pairs)
    return (*hosts[:-1], server)


def host_config(hosts_dir: str, host: str) -> HostConfig:
    """The settings of ``host``'s own server under ``hosts_dir``; empty when there are none."""
    return registry_hosts(hosts_dir, host)[-1]
