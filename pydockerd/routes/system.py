"""System endpoints: ``/_ping``, ``/version``, ``/info``, ``/events``, ``/auth``."""

from __future__ import annotations

import asyncio
import json
import os
import platform as pyplatform
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pycontainerd import platforms
from pycontainerd.errors import InvalidArgument

from .._auth import auth_from_json, login_host
from .._backend import Backend
from .._events import EVENT_FILTERS, Event, matches
from .._filters import parse_filters
from .._http import Request, Response
from .._router import Router
from .._version import MAX_VERSION, MIN_VERSION, VERSION

__all__ = ["register"]


def register(r: Router, b: Backend) -> None:
    r.add("GET", "/_ping", partial(ping, b))
    r.add("GET", "/version", partial(version, b))
    r.add("GET", "/info", partial(info, b))
    r.add("GET", "/events", partial(events, b))
    r.add("POST", "/auth", partial(auth, b))


async def ping(b: Backend, req: Request) -> Response:
    resp = Response.text("OK")
    resp.headers += [
        ("Builder-Version", "1"),
        ("Swarm", "inactive"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
    ]
    return resp


async def version(b: Backend, req: Request) -> Response:
    containerd_version, revision = await b.call(b.client.version)
    arch = platforms.default().architecture
    kernel = os.uname().release
    python = f"python{pyplatform.python_version()}"
    return Response.json(
        {
            "Platform": {"Name": "pydockerd"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": VERSION,
                    "Details": {
                        "ApiVersion": MAX_VERSION,
                        "Arch": arch,
                        "BuildTime": "",
                        "Experimental": "false",
                        "GitCommit": "",
                        "GoVersion": python,
                        "KernelVersion": kernel,
                        "MinAPIVersion": MIN_VERSION,
                        "Os": "linux",
                    },
                },
                {"Name": "containerd", "Version": containerd_version, "Details": {"GitCommit": revision}},
            ],
            "Version": VERSION,
            "ApiVersion": MAX_VERSION,
            "MinAPIVersion": MIN_VERSION,
            "GitCommit": "",
            "GoVersion": python,
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": kernel,
            "BuildTime": "",
        }
    )


def _info(b: Backend) -> dict[str, Any]:
    _, revision = b.client.version()
    images = b.images.count()
    snapshotter = b.client.default_snapshotter()
    uname = os.uname()
    try:
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem_total = 0
    cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    total, running, paused, stopped = b.containers.counts() if b.containers is not None else (0, 0, 0, 0)
    return {
        "ID": b.client.server(),
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": snapshotter,
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": None, "Log": []},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": datetime.now(UTC).astimezone().isoformat(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "systemd" if cgroup2 and os.path.exists("/run/systemd/system") else "cgroupfs",
        "CgroupVersion": "2" if cgroup2 else "1",
        "NEventsListener": 0,
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": uname.machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
            "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True},
                **{
                    r: {"Name": r, "Mirrors": [], "Secure": False, "Official": False}
                    for r in b.options.insecure_registries
                },
            },
            "Mirrors": [],
        },
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem_total,
        "GenericResources": None,
        "DockerRootDir": b.options.root,
        "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""),
        "Name": socket.gethostname(),
        "Labels": list(b.options.labels),
        "ExperimentalBuild": False,
        "ServerVersion": VERSION,
        "Runtimes": {"runc": {"path": "runc"}},
        "DefaultRuntime": "runc",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": revision},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": [],
        "Containerd": {
            "Address": b.options.containerd_address,
            "Namespaces": {"Containers": b.options.namespace, "Plugins": f"plugins.{b.options.namespace}"},
        },
        "Warnings": [],
    }


async def info(b: Backend, req: Request) -> Response:
    return Response.json(await b.call(_info, b))


def _login(host: str, creds: tuple[str, str] | None, plain_http: bool) -> None:
    from pycontainerd.remotes.docker import DockerResolver, HostOptions

    resolver = DockerResolver(HostOptions(plain_http=plain_http), (lambda _host: creds) if creds else None)
    resolver.login(host)


async def auth(b: Backend, req: Request) -> Response:
    """``docker login``: the registry is asked whether it takes the credentials; the CLI keeps them, not us."""
    doc = req.json()
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid JSON body: want an auth config object")
    config = auth_from_json(doc)
    host = login_host(str(doc.get("serveraddress") or ""))
    creds = config.credentials() if config else None
    await b.call(_login, host, creds, host in b.options.insecure_registries)
    return Response.json({"Status": "Login Succeeded", "IdentityToken": ""})


def parse_time(value: str, now: float) -> int | None:
    """A ``since``/``until`` value as nanoseconds: Unix seconds (with a fraction), RFC 3339, or a duration ago."""
    value = value.strip()
    if not value:
        return None
    try:
        return int(float(value) * 1_000_000_000)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            try:
                return int((now - float(value[: -len(unit)]) * units[unit]) * 1_000_000_000)
            except ValueError:
                break
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid time value {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000_000)


async def events(b: Backend, req: Request) -> Response:
    """The kept events from ``since`` on, then live ones until ``until`` (or the client leaves)."""
    filters = parse_filters(req.arg("filters"), EVENT_FILTERS)
    now = time.time()
    since = parse_time(req.arg("since"), now)
    until = parse_time(req.arg("until"), now)
    kept, queue = b.events.subscribe()

    def wanted(e: Event) -> bool:
        return (since is None or e.time_nano >= since) and matches(e, filters)

    def line(e: Event) -> bytes:
        return json.dumps(e.message()).encode() + b"\n"

    async def chunks() -> AsyncIterator[bytes]:
        try:
            last = 0
            for e in kept:
                if since is not None and wanted(e) and (until is None or e.time_nano <= until):
                    last = e.time_nano
                    yield line(e)
            if until is not None and until <= time.time_ns():
                return
            yield b""  # the head goes out now, so the client knows it is following
            while True:
                timeout = None if until is None else max(0.0, (until - time.time_ns()) / 1e9)
                try:
                    e = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if e.time_nano <= last or not wanted(e):
                    continue
                if until is not None and e.time_nano > until:
                    return
                yield line(e)
        finally:
            b.events.unsubscribe(queue)

    return Response.stream(chunks())


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip('"')
    except OSError:
        pass
    return "Linux"
