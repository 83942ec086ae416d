"""The Engine API's endpoints: thin handlers that parse a request, call a service and shape the answer.

Services block (gRPC), so each call runs in a worker thread; the event
loop only moves bytes.  Errors are raised, never answered here: the router
turns them into Docker's status and ``{"message": ...}`` in one place.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform as pyplatform
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pycontainerd import __version__ as pycontainerd_version
from pycontainerd import platforms
from pycontainerd.client import Client

from ._auth import decode_auth
from ._errors import status_and_message
from ._filters import parse_filters
from ._http import Request, Response
from ._images import IMAGE_FILTERS, ImageService
from ._progress import Message, error_message
from ._router import Router
from ._version import MAX_VERSION, MIN_VERSION

__all__ = ["VERSION", "EngineAPI", "EngineOptions"]

VERSION = pycontainerd_version
T = TypeVar("T")


@dataclass(frozen=True)
class EngineOptions:
    """What the daemon was started with, as /info and /version report it."""

    containerd_address: str
    namespace: str
    root: str = "/var/lib/pydockerd"
    insecure_registries: tuple[str, ...] = ()
    labels: tuple[str, ...] = field(default_factory=tuple)


def _line(msg: Message) -> bytes:
    return json.dumps(msg).encode() + b"\r\n"


class EngineAPI:
    """The routes of the Engine API over one containerd namespace."""

    def __init__(self, client: Client, images: ImageService, options: EngineOptions) -> None:
        self._client = client
        self._images = images
        self._options = options

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def router(self) -> Router:
        r = Router(
            headers=[
                ("Api-Version", MAX_VERSION),
                ("Docker-Experimental", "false"),
                ("Ostype", "linux"),
                ("Server", f"Docker/{VERSION} (linux)"),
            ]
        )
        r.add("GET", "/_ping", self.ping)
        r.add("GET", "/version", self.version)
        r.add("GET", "/info", self.info)
        r.add("GET", "/images/json", self.images_list)
        r.add("POST", "/images/create", self.images_create)
        r.add("GET", "/images/{name:.+}/json", self.images_inspect)
        r.add("GET", "/images/{name:.+}/history", self.images_history)
        r.add("POST", "/images/{name:.+}/tag", self.images_tag)
        r.add("DELETE", "/images/{name:.+}", self.images_delete)
        return r

    # -- system ---------------------------------------------------------------

    async def ping(self, req: Request) -> Response:
        resp = Response.text("OK")
        resp.headers += [
            ("Builder-Version", "1"),
            ("Swarm", "inactive"),
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
        ]
        return resp

    async def version(self, req: Request) -> Response:
        containerd_version, revision = await self._call(self._client.version)
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

    def _info(self) -> dict[str, Any]:
        _, revision = self._client.version()
        images = self._images.count()
        snapshotter = self._client.default_snapshotter()
        uname = os.uname()
        try:
            mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            mem_total = 0
        cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        return {
            "ID": self._client.server(),
            "Containers": 0,
            "ContainersRunning": 0,
            "ContainersPaused": 0,
            "ContainersStopped": 0,
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
                        for r in self._options.insecure_registries
                    },
                },
                "Mirrors": [],
            },
            "NCPU": os.cpu_count() or 1,
            "MemTotal": mem_total,
            "GenericResources": None,
            "DockerRootDir": self._options.root,
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""),
            "Name": socket.gethostname(),
            "Labels": list(self._options.labels),
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
                "Address": self._options.containerd_address,
                "Namespaces": {"Containers": self._options.namespace, "Plugins": f"plugins.{self._options.namespace}"},
            },
            "Warnings": [],
        }

    async def info(self, req: Request) -> Response:
        return Response.json(await self._call(self._info))

    # -- images ---------------------------------------------------------------

    async def images_list(self, req: Request) -> Response:
        filters = parse_filters(req.arg("filters"), IMAGE_FILTERS)
        return Response.json(await self._call(self._images.summaries, filters, req.version))

    async def images_inspect(self, req: Request) -> Response:
        return Response.json(await self._call(self._images.inspect, req.params["name"], req.version))

    async def images_history(self, req: Request) -> Response:
        return Response.json(await self._call(self._images.history, req.params["name"]))

    async def images_tag(self, req: Request) -> Response:
        await self._call(self._images.tag, req.params["name"], req.arg("repo"), req.arg("tag"))
        return Response(201)

    async def images_delete(self, req: Request) -> Response:
        return Response.json(await self._call(self._images.delete, req.params["name"], req.flag("force")))

    async def images_create(self, req: Request) -> Response:
        """A pull: errors before the first message get their own status; later ones end the stream."""
        auth = decode_auth(req.headers.get("x-registry-auth", ""))
        job = self._images.prepare_pull(req.arg("fromImage"), req.arg("tag"), req.arg("platform"), auth)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def emit(msg: Message) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, _line(msg))

        def run() -> None:
            try:
                self._images.pull(job, emit)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        done = loop.run_in_executor(None, run)
        first = await queue.get()
        if first is None:
            await done  # failed before it said anything: the router answers with the error's status
            return Response.json([])

        async def chunks() -> AsyncIterator[bytes]:
            yield first
            while (item := await queue.get()) is not None:
                yield item
            try:
                await done
            except Exception as e:
                yield _line(error_message(status_and_message(e)[1]))

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
