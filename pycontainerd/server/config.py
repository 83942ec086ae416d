"""The daemon's configuration: containerd's TOML layout, checked before anything starts.

A config file is optional; command-line flags override it.  Keys containerd
knows but pycontainerd does not implement, and keys nobody knows, produce a
warning (a typo should not stop a daemon, but should be seen).  A value of
the wrong type or out of range refuses the start, naming the key, because
running with a setting silently replaced by a default is worse.

Plugin sections (``[plugins."io.containerd.gc.v1.scheduler"]``) are kept raw
here and decoded against each plugin's own config dataclass by
:func:`decode_plugin_config`, which the server calls for every plugin before
initialising any.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from .._duration import format_duration, parse_duration

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_CONFIG",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_ROOT",
    "DEFAULT_STATE",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "DebugConfig",
    "Duration",
    "GRPCConfig",
    "MetricsConfig",
    "decode_plugin_config",
    "format_duration",
    "load",
    "parse_duration",
]

DEFAULT_ROOT = pathlib.Path("/var/lib/pycontainerd")
DEFAULT_STATE = pathlib.Path("/run/pycontainerd")
DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
DEFAULT_CONFIG = pathlib.Path("/etc/pycontainerd/config.toml")
DEFAULT_MAX_MESSAGE = 16 << 20
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
LOG_FORMATS = ("text", "json")


class _DurationText:
    """Marks a float field that the config file writes as a Go duration."""


#: A plugin config field holding a Go-style duration ("100ms", "1h30m"), decoded to seconds.
Duration = Annotated[float, _DurationText]

# Top-level keys containerd has and pycontainerd accepts without acting on them.
_IGNORED_TOP = frozenset(
    {
        "temp",
        "plugin_dir",
        "ttrpc",
        "oom_score",
        "cgroup",
        "proxy_plugins",
        "timeouts",
        "imports",
        "stream_processors",
    }
)
_IGNORED_GRPC = frozenset({"tcp_address", "tcp_tls_ca", "tcp_tls_cert", "tcp_tls_key"})


class ConfigError(Exception):
    """A configuration the daemon refuses to start with; the message names the key."""


@dataclass
class GRPCConfig:
    """``[grpc]``; uid/gid own the socket, None leaving it to the daemon's own ids."""

    address: str = DEFAULT_ADDRESS
    uid: int | None = None
    gid: int | None = None
    max_recv_message_size: int = DEFAULT_MAX_MESSAGE
    max_send_message_size: int = DEFAULT_MAX_MESSAGE


@dataclass
class DebugConfig:
    """``[debug]``: the debug socket (off when address is empty) and the log's level and format."""

    address: str = ""
    uid: int | None = None
    gid: int | None = None
    level: str = "info"
    format: str = "text"


@dataclass
class MetricsConfig:
    """``[metrics]``: the Prometheus endpoint, ``host:port`` (off when empty)."""

    address: str = ""
    grpc_histogram: bool = False


@dataclass
class Config:
    """The whole daemon configuration after file and flags are merged."""

    version: int = 2
    root: pathlib.Path = DEFAULT_ROOT
    state: pathlib.Path = DEFAULT_STATE
    grpc: GRPCConfig = field(default_factory=GRPCConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    disabled_plugins: list[str] = field(default_factory=list)
    required_plugins: list[str] = field(default_factory=list)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def plugin_section(self, type_: str, id_: str) -> tuple[str, dict[str, Any]]:
        """The key and raw table configuring one plugin (version 1 files key them by id)."""
        key = f"{type_}.{id_}" if self.version >= 2 else id_
        return key, self.plugins.get(key, {})


def load(path: pathlib.Path | None) -> Config:
    """Read ``path`` (None: defaults only).  Raises ConfigError."""
    cfg = Config()
    if path is None:
        return cfg
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    _apply(cfg, raw)
    return cfg


def _apply(cfg: Config, raw: Mapping[str, Any]) -> None:
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version not in (1, 2):
        raise ConfigError(f"version: unsupported config version {version!r} (expected 1 or 2)")
    cfg.version = version
    if version == 1:
        cfg.warnings.append("config version 1 is deprecated; plugin sections are keyed by plugin id")
    for key, value in raw.items():
        if key == "version":
            continue
        if key in ("root", "state"):
            setattr(cfg, key, _path(key, value))
        elif key == "grpc":
            _apply_grpc(cfg.grpc, _table(key, value), cfg.warnings)
        elif key == "debug":
            _apply_debug(cfg.debug, _table(key, value), cfg.warnings)
        elif key == "metrics":
            _apply_metrics(cfg.metrics, _table(key, value), cfg.warnings)
        elif key in ("disabled_plugins", "required_plugins"):
            setattr(cfg, key, _plugin_uris(key, value, version))
        elif key == "plugins":
            plugins = _table(key, value)
            for name, section in plugins.items():
                if version >= 2 and len(name.split(".")) < 4:
                    raise ConfigError(
                        f'plugins."{name}": invalid plugin key, expected io.containerd.<kind>.<version>.<id>'
                    )
                cfg.plugins[name] = dict(_table(f'plugins."{name}"', section))
        elif key in _IGNORED_TOP:
            cfg.warnings.append(f"{key}: not supported by pycontainerd, ignored")
        else:
            cfg.warnings.append(f"{key}: unknown configuration key, ignored")


def _apply_grpc(grpc: GRPCConfig, raw: Mapping[str, Any], warnings: list[str]) -> None:
    for key, value in raw.items():
        where = f"grpc.{key}"
        if key == "address":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: must be a non-empty string")
            grpc.address = value
        elif key in ("uid", "gid"):
            setattr(grpc, key, _int(where, value, minimum=0))
        elif key in ("max_recv_message_size", "max_send_message_size"):
            setattr(grpc, key, _int(where, value, minimum=0) or DEFAULT_MAX_MESSAGE)
        elif key in _IGNORED_GRPC:
            warnings.append(f"{where}: not supported by pycontainerd, ignored")
        else:
            warnings.append(f"{where}: unknown configuration key, ignored")


def _apply_debug(debug: DebugConfig, raw: Mapping[str, Any], warnings: list[str]) -> None:
    for key, value in raw.items():
        where = f"debug.{key}"
        if key == "level":
            if value:
                debug.level = check_log_level(where, value)
        elif key == "format":
            if value:
                debug.format = check_log_format(where, value)
        elif key == "address":
            if not isinstance(value, str):
                raise ConfigError(f"{where}: must be a string (a unix socket path)")
            debug.address = value
        elif key in ("uid", "gid"):
            setattr(debug, key, _int(where, value, minimum=0))
        else:
            warnings.append(f"{where}: unknown configuration key, ignored")


def _apply_metrics(metrics: MetricsConfig, raw: Mapping[str, Any], warnings: list[str]) -> None:
    for key, value in raw.items():
        where = f"metrics.{key}"
        if key == "address":
            if not isinstance(value, str):
                raise ConfigError(f"{where}: must be a string (host:port)")
            if value:
                check_tcp_address(where, value)
            metrics.address = value
        elif key == "grpc_histogram":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: must be true or false, not {value!r}")
            metrics.grpc_histogram = value
        else:
            warnings.append(f"{where}: unknown configuration key, ignored")


def check_tcp_address(where: str, value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6, an empty host meaning every address); raises ConfigError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: {value!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def check_log_format(where: str, value: object) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_FORMATS:
        raise ConfigError(f"{where}: invalid log format {value!r} (one of {', '.join(LOG_FORMATS)})")
    return value.lower()


def check_log_level(where: str, value: object) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise ConfigError(f"{where}: invalid log level {value!r} (one of {', '.join(LOG_LEVELS)})")
    return value.lower()


def _table(where: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")
    return value


def _path(where: str, value: object) -> pathlib.Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty path")
    return pathlib.Path(value)


def _int(where: str, value: object, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: must be at least {minimum}, not {value}")
    return value


def _plugin_uris(where: str, value: object, version: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of plugin names")
    if version >= 2:
        for v in value:
            if len(v.split(".")) < 4:
                raise ConfigError(f"{where}: invalid plugin URI {v!r}, expected io.containerd.<kind>.<version>.<id>")
    return list(value)


def decode_plugin_config(where: str, raw: Mapping[str, Any], spec: type[Any]) -> tuple[dict[str, Any], list[str]]:
    """Check ``raw`` against the dataclass ``spec``; returns field values and warnings.

    Fields typed :data:`Duration` accept Go duration strings (or numbers of
    seconds); ints accept ints, floats accept ints and floats, strs strs,
    bools bools.  ``spec(**values)`` is then built so that its
    ``__post_init__`` can refuse values (raising ValueError ``"key: why"``).
    Raises ConfigError naming ``where.key``.
    """
    hints = typing.get_type_hints(spec, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(spec)}
    values: dict[str, Any] = {name: _default(f) for name, f in fields.items()}
    warnings: list[str] = []
    for key, value in raw.items():
        if key not in fields:
            warnings.append(f"{where}.{key}: unknown configuration key, ignored")
            continue
        values[key] = _coerce(f"{where}.{key}", value, hints[key])
    try:
        spec(**values)
    except ValueError as e:
        raise ConfigError(f"{where}.{e}") from None
    return values, warnings


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"plugin config field {f.name} needs a default")


def _coerce(where: str, value: object, hint: object) -> Any:
    if hint == Duration:
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise ConfigError(f'{where}: must be a duration such as "100ms", not {value!r}')
        if seconds < 0:
            raise ConfigError(f"{where}: must not be negative")
        return seconds
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, not {value!r}")
        return value
    if hint is int:
        return _int(where, value)
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, not {value!r}")
        return value
    raise TypeError(f"{where}: unsupported plugin config type {hint!r}")
