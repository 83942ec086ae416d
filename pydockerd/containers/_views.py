"""Containers as the API shows them: inspect, the list's summaries and its filters.

Pure functions of records (and the current time), so the shapes and the
filter rules are tested without a daemon.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pycontainerd.errors import InvalidArgument

from .._filters import Filters, bool_filter, label_match
from ._config import MountSpec, parse_host_config
from ._jsonlog import format_time
from ._state import STATUSES
from ._store import Record

__all__ = ["LIST_FILTERS", "filter_records", "inspect", "summary"]

LIST_FILTERS: Final = (
    "ancestor", "before", "exited", "expose", "health", "id", "is-task", "isolation", "label", "name",
    "network", "publish", "since", "status", "volume",
)  # fmt: skip

_HOST_CONFIG_DEFAULTS: Final[Mapping[str, Any]] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [0, 0],
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "private",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "runc",
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": None,
    "PidsLimit": None,
    "Ulimits": [],
    "MaskedPaths": None,
    "ReadonlyPaths": None,
}


def _mounts(record: Record) -> list[MountSpec]:
    try:
        return list(parse_host_config(record.host_config, 1 << 16).mounts)
    except InvalidArgument:
        return []


def _networks(record: Record) -> dict[str, Any]:
    mode = str(record.host_config.get("NetworkMode") or "bridge")
    endpoint = {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None,
    }  # fmt: skip
    return {mode: endpoint}


def inspect(
    record: Record, *, paths: Mapping[str, str], exec_ids: Sequence[str], size: tuple[int, int] | None
) -> dict[str, Any]:
    """``GET /containers/{id}/json``."""
    argv = record.argv
    config: dict[str, Any] = {
        "Hostname": record.config.get("Hostname") or record.short_id,
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": record.image,
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": {},
    }
    config.update({k: v for k, v in record.config.items() if k not in ("Hostname",)})
    config["Image"] = record.image
    host_config = {**_HOST_CONFIG_DEFAULTS, **record.host_config}
    out: dict[str, Any] = {
        "Id": record.id,
        "Created": format_time(record.created_ns),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": record.state.inspect(),
        "Image": record.image_id,
        "ResolvConfPath": paths.get("resolv.conf", ""),
        "HostnamePath": paths.get("hostname", ""),
        "HostsPath": paths.get("hosts", ""),
        "LogPath": paths.get("log", ""),
        "Name": record.name,
        "RestartCount": record.restart_count,
        "Driver": record.snapshotter,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(exec_ids) or None,
        "HostConfig": host_config,
        "GraphDriver": {"Data": None, "Name": record.snapshotter},
        "Mounts": [m.inspect() for m in _mounts(record)],
        "Config": config,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": {},
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": _networks(record),
        },
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def summary(record: Record, now_ns: int, size: tuple[int, int] | None) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    out: dict[str, Any] = {
        "Id": record.id,
        "Names": [record.name],
        "Image": record.image,
        "ImageID": record.image_id,
        "Command": " ".join(record.argv),
        "Created": record.created_ns // 1_000_000_000,
        "Ports": [],
        "Labels": dict(record.config.get("Labels") or {}),
        "State": record.state.status,
        "Status": record.state.status_text(now_ns),
        "HostConfig": {"NetworkMode": str(record.host_config.get("NetworkMode") or "bridge")},
        "NetworkSettings": {"Networks": _networks(record)},
        "Mounts": [m.inspect() for m in _mounts(record)],
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def _name_match(pattern: str, record: Record) -> bool:
    try:
        return re.search(pattern, record.name) is not None or re.search(pattern, record.name[1:]) is not None
    except re.error:
        raise InvalidArgument(f"invalid filter 'name={pattern}': not a regular expression") from None


def _exited(values: Sequence[str]) -> set[int]:
    try:
        return {int(v) for v in values}
    except ValueError:
        raise InvalidArgument(f"invalid filter 'exited={values[0]}'") from None


def filter_records(
    records: Sequence[Record],
    filters: Filters,
    *,
    show_all: bool,
    limit: int,
    resolve: Any,
    ancestors: Any,
) -> list[Record]:
    """The records ``docker ps`` lists, newest first.

    ``resolve(ref)`` finds a record for before/since; ``ancestors(ref)`` is
    the set of image IDs a reference names (empty when it names none).
    """
    for status in filters.get("status", []):
        if status not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={status}'")
    ordered = sorted(records, key=lambda r: r.created_ns, reverse=True)
    before = [resolve(v).created_ns for v in filters.get("before", [])]
    since = [resolve(v).created_ns for v in filters.get("since", [])]
    exited = _exited(filters["exited"]) if filters.get("exited") else None
    images: set[str] = set()
    for ref in filters.get("ancestor", []):
        images |= ancestors(ref)
    task = bool_filter(filters, "is-task")
    if limit > 0 or before or since or filters.get("status") or exited is not None:
        show_all = True
    out = []
    for r in ordered:
        if not show_all and not r.state.running:
            continue
        if before and r.created_ns >= min(before):
            continue
        if since and r.created_ns <= max(since):
            continue
        if filters.get("id") and not any(r.id.startswith(v) for v in filters["id"]):
            continue
        if filters.get("name") and not any(_name_match(v, r) for v in filters["name"]):
            continue
        labels = {str(k): str(v) for k, v in (r.config.get("Labels") or {}).items()}
        if not all(label_match(s, labels) for s in filters.get("label", [])):
            continue
        if filters.get("status") and r.state.status not in filters["status"]:
            continue
        if exited is not None and (r.state.status != "exited" or r.state.exit_code not in exited):
            continue
        if filters.get("ancestor") and r.image_id not in images:
            continue
        if filters.get("network") and str(r.host_config.get("NetworkMode")) not in filters["network"]:
            continue
        if task is True or filters.get("volume") or filters.get("publish") or filters.get("expose"):
            continue
        out.append(r)
        if 0 < limit <= len(out):
            break
    return out
