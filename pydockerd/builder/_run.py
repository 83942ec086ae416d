"""RUN: a command in a real container on the step's snapshot, its output streamed into the build's.

The container is a containerd container and task (runc through the shim),
in pydockerd's namespace, on the active snapshot the step will commit; it
shares the host's network (a build has no network of its own here).  The
process gets the image config's environment, working directory and user,
plus the build arguments in scope.  Its stdout and stderr come back through
FIFOs and are handed to ``output`` as text; the container and its task are
gone when :func:`run_in_container` returns, the snapshot stays.
"""

from __future__ import annotations

import codecs
import contextlib
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pycontainerd import oci
from pycontainerd.client import Attached, Client, new_fifo_set
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.errors import ContainerdError, NotFound
from pycontainerd.mount import Mount, mounted

__all__ = ["BUILD_LABEL", "run_in_container"]

RUNTIME = "io.containerd.runc.v2"
BUILD_LABEL = "org.mobyproject.build.container"


class _TextSink:
    """A binary stream for the FIFO copier: decoded (UTF-8, split characters kept) and passed on."""

    def __init__(self, output: Callable[[str], None]) -> None:
        self._output = output
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: bytes) -> int:
        text = self._decoder.decode(data)
        if text:
            self._output(text)
        return len(data)

    def flush(self) -> None:
        pass


def run_in_container(
    client: Client,
    snapshotter: str,
    snapshot_key: str,
    mounts: Sequence[Mount],
    *,
    config: Mapping[str, Any],
    argv: Sequence[str],
    extra_env: Sequence[str],
    output: Callable[[str], None],
    on_start: Callable[[str], None],
    cancel: threading.Event,
) -> int:
    """Run ``argv`` on the snapshot; its exit status.  ``on_start`` hears the container id."""
    cid = secrets.token_hex(32)
    proc_config = {k: v for k, v in config.items() if k not in ("Entrypoint", "Cmd")}
    env = list(proc_config.get("Env") or [])
    names = {e.partition("=")[0] for e in env}
    proc_config["Env"] = env + [e for e in extra_env if e.partition("=")[0] not in names]
    with mounted(mounts) as rootfs:
        spec = oci.generate(
            client.namespace,
            cid,
            oci.with_image_config(proc_config, args=list(argv), rootfs=rootfs),
            oci.with_host_namespace("network"),
        )
    client.containers.create(
        Container(
            id=cid,
            runtime=RuntimeInfo(RUNTIME),
            spec=TypedValue(oci.SPEC_TYPE_URL, oci.spec_to_json(spec)),
            labels={BUILD_LABEL: "true"},
            snapshotter=snapshotter,
            snapshot_key=snapshot_key,
        )
    )
    on_start(cid)
    fifos = new_fifo_set(cid, stdin=False)
    stdout, stderr = _TextSink(output), _TextSink(output)
    attached = Attached(fifos, None, stdout, stderr)  # type: ignore[arg-type]
    try:
        client.tasks.create(cid, rootfs=list(mounts), io=fifos.io)
        try:
            client.tasks.start(cid)
            stop = threading.Event()

            def watch() -> None:
                while not stop.wait(0.2):
                    if cancel.is_set():
                        with contextlib.suppress(ContainerdError):
                            client.tasks.kill(cid, 9, all=True)
                        return

            watcher = threading.Thread(target=watch, daemon=True, name="build-cancel")
            watcher.start()
            try:
                status = client.tasks.wait(cid).status
            finally:
                stop.set()
            attached.wait(5.0)
        finally:
            with contextlib.suppress(ContainerdError):
                client.tasks.kill(cid, 9, all=True)
            with contextlib.suppress(NotFound):
                client.tasks.delete(cid)
    finally:
        attached.close()
        with contextlib.suppress(NotFound):
            client.containers.delete(cid)
    return status
