"""docker-py drives containers through pydockerd, with assertions on what the API answers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pydockerd.containers import FrameDecoder
from tests.dockerd._containers_support import (
    assert_clean,
    bb_image,  # noqa: F401 - the fixture ``bb``
    remove_cgroups,
    wait_for,
)
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon


@pytest.fixture(autouse=True)
def _cgroups() -> Iterator[None]:
    yield
    remove_cgroups()


def test_run_wait_logs_remove(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    import docker

    client = pydockerd.client()
    out = client.containers.run(bb, ["sh", "-c", "echo out; echo err >&2"], stderr=True, remove=True)
    assert out == b"out\nerr\n"
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run(bb, ["sh", "-c", "echo failing >&2; exit 4"], remove=True)
    assert info.value.exit_status == 4
    assert b"failing" in info.value.stderr

    c = client.containers.run(
        bb, ["sh", "-c", "echo $A; sleep 1000"], detach=True, name="pyc", environment={"A": "1"},
        labels={"k": "v"}, working_dir="/tmp", mem_limit="32m", nano_cpus=250_000_000, network_mode="none",
    )  # fmt: skip
    wait_for(lambda: c.logs() == b"1\n", what="logs")
    c.reload()
    assert c.status == "running"
    assert c.name == "pyc"
    assert c.labels == {"from": "image", "k": "v"}
    attrs = c.attrs
    assert attrs["Config"]["Env"][0] == "A=1"
    assert attrs["Config"]["WorkingDir"] == "/tmp"
    assert attrs["HostConfig"]["Memory"] == 32 << 20
    assert attrs["HostConfig"]["NanoCpus"] == 250_000_000
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert attrs["State"]["Running"] is True
    assert attrs["RestartCount"] == 0
    assert attrs["LogPath"].endswith(f"{c.id}-json.log")
    assert [x.name for x in client.containers.list()] == ["pyc"]
    assert [x.name for x in client.containers.list(filters={"label": "k=v"})] == ["pyc"]

    top = c.top()
    assert "PID" in top["Titles"] and len(top["Processes"]) == 1
    stats: dict[str, Any] = c.stats(stream=False)
    assert stats["id"] == c.id and stats["name"] == "/pyc"
    assert stats["memory_stats"]["limit"] == 32 << 20
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["pids_stats"]["current"] == 1
    one = c.stats(stream=False, one_shot=True)
    assert one["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    streamed = c.stats(stream=True, decode=True)
    first, second = next(streamed), next(streamed)
    assert second["precpu_stats"] == first["cpu_stats"]
    streamed.close()

    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    c.stop(timeout=1)
    assert c.wait() == {"Error": None, "StatusCode": 137}
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 137
    assert c.attrs["State"]["FinishedAt"] > c.attrs["State"]["StartedAt"]
    c.rename("pyc2")
    c.start()
    c.kill(signal="SIGKILL")
    assert c.wait()["StatusCode"] == 137
    c.remove(v=True)
    with pytest.raises(docker.errors.NotFound, match="No such container: pyc2"):
        client.containers.get("pyc2")
    assert_clean(pydockerd, pycontainerd_daemon, [c.id])


def test_attach_socket_frames_and_stdin(pydockerd: Pydockerd, bb: str) -> None:
    client = pydockerd.client()
    api = client.api
    c = api.create_container(bb, ["sh", "-c", "read x; echo got $x; echo e >&2"], stdin_open=True)
    sock = api.attach_socket(c["Id"], params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw: socket.socket = sock._sock  # type: ignore[attr-defined]
    wait = api.wait  # the CLI's order: attach, then start, then wait
    api.start(c["Id"])
    raw.sendall(b"line\n")
    raw.shutdown(socket.SHUT_WR)
    decoder, frames = FrameDecoder(), []
    raw.settimeout(15)
    while data := raw.recv(4096):
        frames += decoder.feed(data)
    sock.close()
    raw.close()
    # stdout and stderr come through two pipes: each stream keeps its order, nothing orders one against the other
    assert by_stream(frames) == {1: b"got line\n", 2: b"e\n"}
    assert wait(c["Id"])["StatusCode"] == 0
    assert api.logs(c["Id"], stdout=True, stderr=False) == b"got line\n"
    # attach with logs and no stream: what it printed, framed, then the connection ends.  Read off the wire:
    # docker-py's http.client may buffer bytes sent right behind the head, as it may with dockerd.
    head, frames = raw_attach(pydockerd, c["Id"], "logs=1&stdout=1&stderr=1")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert by_stream(frames) == {1: b"got line\n", 2: b"e\n"}
    api.remove_container(c["Id"])


def by_stream(frames: list[tuple[int, bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for stream, data in frames:
        out[stream] = out.get(stream, b"") + data
    return out


def raw_attach(d: Pydockerd, id: str, query: str) -> tuple[bytes, list[tuple[int, bytes]]]:
    """POST /attach as the CLI sends it (Upgrade: tcp), everything read until the daemon closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(15)
        s.connect(d.socket)
        s.sendall(
            f"POST /v1.50/containers/{id}/attach?{query} HTTP/1.1\r\nHost: docker\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, FrameDecoder().feed(body)


def test_exec_api(pydockerd: Pydockerd, bb: str) -> None:
    import docker

    client = pydockerd.client()
    since = time.time()
    c = client.containers.run(bb, ["sleep", "1000"], detach=True)
    code, out = c.exec_run(["sh", "-c", "echo $X; exit 3"], environment={"X": "y"})
    assert (code, out) == (3, b"y\n")
    code, (stdout, stderr) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, stdout, stderr) == (0, b"o\n", b"e\n")
    exec_id = client.api.exec_create(c.id, ["sleep", "0.3"])["Id"]
    inspected = client.api.exec_inspect(exec_id)
    assert inspected["Running"] is False and inspected["ExitCode"] is None
    assert inspected["ProcessConfig"] == {"tty": False, "entrypoint": "sleep", "arguments": ["0.3"],
                                          "privileged": False, "user": ""}  # fmt: skip
    client.api.exec_start(exec_id, detach=True)
    assert client.api.exec_inspect(exec_id)["Running"] is True
    assert client.api.exec_inspect(exec_id)["Pid"] > 0
    wait_for(lambda: client.api.exec_inspect(exec_id)["ExitCode"] == 0, what="exec exit")
    with pytest.raises(docker.errors.APIError, match="has already run"):
        client.api.exec_start(exec_id, detach=True)
    with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
        client.api.exec_inspect("nope")
    tty_id = client.api.exec_create(c.id, ["sh", "-c", "test -t 1 && echo terminal"], tty=True)["Id"]
    assert client.api.exec_start(tty_id) == b"terminal\r\n"  # a terminal's line ending
    actions = [
        e["Action"]
        for e in client.events(since=since, until=time.time() + 1, decode=True)
        if e["Type"] == "container" and e["Actor"]["Attributes"].get("execID") == exec_id
    ]
    assert actions == ["exec_create: sleep 0.3", "exec_start: sleep 0.3", "exec_die"]
    c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.api.exec_create(c.id, ["true"])
    stopped = client.containers.create(bb, ["true"])
    with pytest.raises(docker.errors.APIError, match="is not running") as info:
        stopped.exec_run(["true"])
    assert info.value.status_code == 409
    stopped.remove()


def test_events_and_wait_conditions(pydockerd: Pydockerd, bb: str) -> None:
    client = pydockerd.client()
    since = time.time()
    c = client.containers.create(bb, ["sh", "-c", "exit 9"], auto_remove=True)
    assert client.api.wait(c.id, condition="not-running")["StatusCode"] == 0  # created: not running already
    c.start()
    assert client.api.wait(c.id, condition="removed")["StatusCode"] == 9
    events = [
        e
        for e in client.events(since=since, until=time.time() + 1, decode=True)
        if e["Type"] == "container" and e["id"] == c.id
    ]
    assert [e["Action"] for e in events] == ["create", "start", "die", "destroy"]
    assert events[2]["Actor"]["Attributes"]["exitCode"] == "9"
    assert events[0]["Actor"]["Attributes"]["image"] == bb
    assert json.loads(pydockerd.request("GET", f"/containers/{c.id}/json")[2])["message"].startswith("No such")
