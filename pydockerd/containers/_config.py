"""A create request's ``Config`` and ``HostConfig``, checked and merged with the image's config.

The body comes from any client, so every field is type-checked and a bad
one is a 400 with dockerd's wording where it has one.  What pydockerd does
not implement is refused (a restart policy, a named volume, another
container's network, privileged mode) rather than ignored; fields that only
describe (ExposedPorts, Volumes of the image) are kept as given.  Pure: no
I/O.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pycontainerd import oci
from pycontainerd.errors import InvalidArgument

__all__ = [
    "HostSettings",
    "MountSpec",
    "argv_of",
    "check_config",
    "check_host_config",
    "merge_image_config",
    "parse_host_config",
    "valid_name",
]

NAME_RE: Final = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MIN_MEMORY: Final = 6 * 1024 * 1024
_BIND_MODES: Final = frozenset({"ro", "rw", "z", "Z", "nocopy"})
_PROPAGATIONS: Final = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
_NETWORK_MODES: Final = frozenset({"", "default", "bridge", "none", "host"})


def valid_name(name: str) -> str:
    """A container name as Docker stores it (``/name``); 400 for one Docker would refuse."""
    if not NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name if name.startswith("/") else "/" + name


def _bool(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgument(f"{key} must be a boolean")
    return value


def _int(doc: Mapping[str, Any], key: str, lo: int = 0) -> int:
    value = doc.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be an integer")
    if value < lo:
        raise InvalidArgument(f"invalid {key} {value}: must be at least {lo}")
    return value


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string")
    return value


def _strs(doc: Mapping[str, Any], key: str) -> list[str] | None:
    """A string list field; Docker's StrSlice also takes a single string.  None when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return list(value)


def _str_map(doc: Mapping[str, Any], key: str) -> dict[str, str]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{key} must be an object of strings")
    return {str(k): v for k, v in value.items()}


def check_config(doc: object) -> dict[str, Any]:
    """The body's container config, type-checked, with lists and maps normalised; 400 when it is wrong."""
    if not isinstance(doc, dict):
        raise InvalidArgument("Config cannot be empty in order to create a container")
    out = dict(doc)
    out.pop("HostConfig", None)
    out.pop("NetworkingConfig", None)
    if not _str(out, "Image"):
        raise InvalidArgument("No image was specified")
    for key in ("Hostname", "Domainname", "User", "WorkingDir", "StopSignal", "MacAddress"):
        out[key] = _str(out, key)
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce", "NetworkDisabled"):
        out[key] = _bool(out, key)
    for key in ("Cmd", "Entrypoint", "Env", "Shell", "OnBuild"):
        out[key] = _strs(out, key)
    for env in out["Env"] or []:
        if env.partition("=")[0] == "":
            raise InvalidArgument(f"invalid environment variable: {env}")
    out["Labels"] = _str_map(out, "Labels")
    if out["WorkingDir"] and not out["WorkingDir"].startswith("/"):
        raise InvalidArgument(
            f"the working directory '{out['WorkingDir']}' is invalid, it needs to be an absolute path"
        )
    if out["StopSignal"]:
        try:
            oci.parse_signal(out["StopSignal"])
        except InvalidArgument:
            raise InvalidArgument(f"Invalid signal: {out['StopSignal']}") from None
    timeout = out.get("StopTimeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
        raise InvalidArgument("StopTimeout must be an integer")
    for key in ("ExposedPorts", "Volumes"):
        if out.get(key) is not None and not isinstance(out[key], Mapping):
            raise InvalidArgument(f"{key} must be an object")
    return out


@dataclass(frozen=True)
class MountSpec:
    """A bind or tmpfs mount of the container, from Binds, Mounts or Tmpfs."""

    type: str  # "bind" or "tmpfs"
    source: str
    target: str
    read_only: bool = False
    options: tuple[str, ...] = ()
    create_source: bool = False  # Binds make a missing host directory; Mounts refuse it
    propagation: str = "rprivate"

    def to_spec(self) -> dict[str, Any]:
        if self.type == "bind":
            opts = ["rbind", self.propagation, *(("ro",) if self.read_only else ())]
            return {"destination": self.target, "type": "bind", "source": self.source, "options": opts}
        opts = ["nosuid", "nodev", *self.options, *(("ro",) if self.read_only else ())]
        return {"destination": self.target, "type": "tmpfs", "source": "tmpfs", "options": opts}

    def inspect(self) -> dict[str, Any]:
        """The entry of inspect's ``Mounts``."""
        if self.type == "bind":
            return {
                "Type": "bind",
                "Source": self.source,
                "Destination": self.target,
                "Mode": "ro" if self.read_only else "",
                "RW": not self.read_only,
                "Propagation": self.propagation,
            }
        return {"Type": "tmpfs", "Source": "", "Destination": self.target, "Mode": "", "RW": not self.read_only,
                "Propagation": ""}  # fmt: skip


@dataclass(frozen=True)
class HostSettings:
    """What pydockerd acts on in a HostConfig."""

    mounts: tuple[MountSpec, ...] = ()
    network_mode: str = "bridge"
    memory: int = 0
    nano_cpus: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpu_shares: int = 0
    auto_remove: bool = False
    console_size: tuple[int, int] = (0, 0)
    extra_env: tuple[str, ...] = field(default_factory=tuple)


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount config: {what} path must be absolute: {path!r}")
    return os.path.normpath(path)


def _bind(spec: str) -> MountSpec:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    if not source.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': named volumes are not supported")
    modes = parts[2].split(",") if len(parts) == 3 else []
    propagation = "rprivate"
    for m in modes:
        if m in _PROPAGATIONS:
            propagation = m
        elif m not in _BIND_MODES:
            raise InvalidArgument(f"invalid mode: {m}")
    if "ro" in modes and "rw" in modes:
        raise InvalidArgument(f"invalid mode: {parts[2]}")
    return MountSpec(
        "bind", _absolute(source, "source"), _absolute(target, "destination"), "ro" in modes, (), True, propagation
    )


def _tmpfs_options(text: str) -> tuple[str, ...]:
    opts = tuple(o.strip() for o in text.split(",") if o.strip())
    for o in opts:
        if not re.match(r"^[a-z0-9_]+(=[A-Za-z0-9_.:+-]+)?$", o):
            raise InvalidArgument(f"invalid tmpfs option {o!r}")
    return opts


def _mount(doc: object) -> MountSpec:
    if not isinstance(doc, Mapping):
        raise InvalidArgument("Mounts entries must be objects")
    kind, source, target = _str(doc, "Type"), _str(doc, "Source"), _str(doc, "Target")
    if not target:
        raise InvalidArgument("invalid mount config: Target must not be empty")
    read_only = _bool(doc, "ReadOnly")
    if kind == "bind":
        if not source:
            raise InvalidArgument('invalid mount config for type "bind": field Source must not be empty')
        bind_opts = doc.get("BindOptions") or {}
        propagation = _str(bind_opts, "Propagation") if isinstance(bind_opts, Mapping) else ""
        if propagation and propagation not in _PROPAGATIONS:
            raise InvalidArgument(f"invalid propagation mode: {propagation}")
        return MountSpec(
            "bind", _absolute(source, "source"), _absolute(target, "destination"), read_only, (), False,
            propagation or "rprivate",
        )  # fmt: skip
    if kind == "tmpfs":
        if source:
            raise InvalidArgument('invalid mount config for type "tmpfs": field Source must not be specified')
        topts = doc.get("TmpfsOptions") or {}
        if not isinstance(topts, Mapping):
            raise InvalidArgument("TmpfsOptions must be an object")
        opts: list[str] = []
        if size := _int(topts, "SizeBytes"):
            opts.append(f"size={size}")
        if mode := _int(topts, "Mode"):
            opts.append(f"mode={mode:o}")
        return MountSpec("tmpfs", "", _absolute(target, "destination"), read_only, tuple(opts))
    raise InvalidArgument(f"mount type {kind!r} is not supported (bind and tmpfs are)")


def check_host_config(doc: object, ncpu: int) -> dict[str, Any]:
    """The HostConfig as kept and shown by inspect: checked (see :func:`parse_host_config`), mode normalised."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidArgument("HostConfig must be an object")
    out = dict(doc)
    if out.get("NetworkMode") in (None, "", "default"):
        out["NetworkMode"] = "bridge"
    parse_host_config(out, ncpu)
    return out


def parse_host_config(doc: Mapping[str, Any], ncpu: int) -> HostSettings:
    """The settings of a HostConfig; 400 for a wrong or unsupported one."""
    mounts: list[MountSpec] = [_bind(b) for b in _strs(doc, "Binds") or []]
    mounts += [_mount(m) for m in doc.get("Mounts") or []] if isinstance(doc.get("Mounts") or [], list) else []
    if doc.get("Mounts") is not None and not isinstance(doc.get("Mounts"), list):
        raise InvalidArgument("Mounts must be a list")
    for target, opts in _str_map(doc, "Tmpfs").items():
        mounts.append(
            MountSpec("tmpfs", "", _absolute(target, "destination"), False, ("noexec", *_tmpfs_options(opts)))
        )
    seen: set[str] = set()
    for m in mounts:
        if m.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        if m.target == "/":
            raise InvalidArgument("invalid specification: destination can't be '/'")
        seen.add(m.target)
    mode = _str(doc, "NetworkMode")
    if mode not in _NETWORK_MODES:
        raise InvalidArgument(f"network mode {mode!r} is not supported (none, host and bridge are)")
    memory = _int(doc, "Memory")
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    nano = _int(doc, "NanoCpus")
    quota, period, shares = _int(doc, "CpuQuota", -1), _int(doc, "CpuPeriod"), _int(doc, "CpuShares")
    if nano and (quota > 0 or period):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and nano > ncpu * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    policy = doc.get("RestartPolicy") or {}
    if not isinstance(policy, Mapping):
        raise InvalidArgument("RestartPolicy must be an object")
    name = _str(policy, "Name")
    if name not in ("", "no"):
        raise InvalidArgument(f'restart policy {name!r} is not supported (only "no" is)')
    if _bool(doc, "Privileged"):
        raise InvalidArgument("privileged containers are not supported")
    size = doc.get("ConsoleSize") or [0, 0]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
        raise InvalidArgument("ConsoleSize must be [height, width]")
    return HostSettings(
        mounts=tuple(mounts),
        network_mode="bridge" if mode in ("", "default") else mode,
        memory=memory,
        nano_cpus=nano,
        cpu_quota=max(quota, 0),
        cpu_period=period,
        cpu_shares=shares,
        auto_remove=_bool(doc, "AutoRemove"),
        console_size=(size[0], size[1]),
    )


def merge_image_config(config: Mapping[str, Any], image: Mapping[str, Any]) -> dict[str, Any]:
    """The container's config with the image's defaults filled in, as dockerd merges them at create.

    Env: the container's variables, then the image's it does not set.
    Entrypoint given: the image's Cmd is dropped unless Cmd is given too.
    ``Entrypoint: [""]`` (``--entrypoint ""``) means none at all.
    """
    out = dict(config)
    img_env = [e for e in image.get("Env") or [] if isinstance(e, str)]
    env = list(config.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    out["Env"] = env + [e for e in img_env if e.partition("=")[0] not in keys]
    labels = {str(k): str(v) for k, v in (image.get("Labels") or {}).items()} if isinstance(
        image.get("Labels"), Mapping
    ) else {}  # fmt: skip
    labels.update(config.get("Labels") or {})
    out["Labels"] = labels
    entrypoint = config.get("Entrypoint")
    if not entrypoint:
        if not config.get("Cmd"):
            out["Cmd"] = _list(image.get("Cmd"))
        if entrypoint is None:
            out["Entrypoint"] = _list(image.get("Entrypoint"))
    elif entrypoint == [""]:
        out["Entrypoint"] = None
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key) and isinstance(image.get(key), str):
            out[key] = image[key]
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(image.get(key) or {}) if isinstance(image.get(key), Mapping) else {}
        merged.update(config.get(key) or {})
        out[key] = merged or None
    return out


def _list(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def argv_of(config: Mapping[str, Any]) -> list[str]:
    """Entrypoint then Cmd of a merged config; 400 when there is nothing to run."""
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not argv:
        raise InvalidArgument("no command specified")
    return argv


def env_list(values: Sequence[str]) -> list[str]:
    """Entries without ``=`` name a variable to unset, as dockerd reads them: dropped here."""
    return [v for v in values if "=" in v]
