"""The debug socket and SIGUSR1: stacks, the log level at runtime, vitals — and a daemon that keeps serving.

The request parser is checked on bytes; everything else against a running
daemon with ``[debug] address`` set, through raw sockets (hostile clients
too), the ``pycontainerd debug`` command and signals.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.empty_pb2 import Empty

from pycontainerd._http1 import HTTPError, HTTPRequest, encode_request, parse_response
from pycontainerd._http1 import parse_request as parse_http
from pycontainerd.api.services.content.v1 import content_pb2 as cpb
from pycontainerd.api.services.events.v1 import events_pb2 as epb
from pycontainerd.api.services.events.v1 import events_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.api.services.leases.v1 import leases_pb2 as lpb
from pycontainerd.api.services.namespaces.v1 import namespace_pb2 as npb
from pycontainerd.log import levels
from pycontainerd.server.debug import (
    MAX_BODY,
    MAX_CLIENTS,
    MAX_HEAD,
    READ_TIMEOUT,
    DaemonEndpoints,
    call,
    respond,
)
from tests.daemon.conftest import NAMESPACE, Stubs, channel_to, md
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon

SUBSCRIBE = "/containerd.services.events.v1.Events/Subscribe"
READ = "/containerd.services.content.v1.Content/Read"
OWNER = (4343, 4242)  # ids no account has: the socket is handed to them as configured


# -- the protocol, on bytes ----------------------------------------------------


def parse_request(data: bytes) -> HTTPRequest | None:
    """As the debug socket parses a request: within its limits."""
    return parse_http(data, MAX_HEAD, MAX_BODY)


def test_requests_are_parsed_as_they_arrive() -> None:
    whole = b"PUT /debug/loglevel?x=1 HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\ndebug"
    for cut in range(len(whole)):
        assert parse_request(whole[:cut]) is None
    assert parse_request(whole) == HTTPRequest("PUT", "/debug/loglevel", b"debug")
    assert parse_request(b"GET / HTTP/1.0\r\n\r\nextra") == HTTPRequest("GET", "/", b"")
    assert parse_request(encode_request("GET", "/debug/stacks")) == HTTPRequest("GET", "/debug/stacks", b"")


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"x" * (MAX_HEAD + 4), 431, f"request head over {MAX_HEAD} bytes"),
        (b"GET / HTTP/1.1\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n", 431, f"request head over {MAX_HEAD} bytes"),
        (b"PUT / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413, f"request body over {MAX_BODY} bytes"),
        (b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "chunked bodies"),
        (b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "bad Content-Length"),
        (b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad Content-Length"),
        (b"GET /\xff HTTP/1.1\r\n\r\n", 400, "not ASCII"),
        (b"GET / HTTP/2\r\n\r\n", 400, "unsupported protocol"),
        (b"get / HTTP/1.1\r\n\r\n", 400, "malformed request line"),
        (b"GET nopath HTTP/1.1\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\n Folded: x\r\n\r\n", 400, "malformed header line"),
    ],
)
def test_bad_requests_are_refused_without_waiting(data: bytes, status: int, message: str) -> None:
    with pytest.raises(HTTPError) as e:
        parse_request(data)
    assert e.value.status == status
    assert message in e.value.message


def test_responses_are_read_back() -> None:
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef") == (200, b"abc")
    assert parse_response(b"HTTP/1.0 404 Not Found\r\n\r\ngone") == (404, b"gone")
    with pytest.raises(ValueError, match="cut short"):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(ValueError, match="not an HTTP response"):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_routes() -> None:
    endpoints = DaemonEndpoints(None, {"root": "/r"})
    before = levels.level()
    saved = logging_levels()
    try:
        index = respond(HTTPRequest("GET", "/", b""), endpoints)
        assert index.status == 200 and b"/debug/stacks" in index.body
        assert respond(HTTPRequest("GET", "/debug/vars/", b""), endpoints).content_type == "application/json"
        missing = respond(HTTPRequest("GET", "/debug/pprof", b""), endpoints)
        assert (missing.status, missing.body) == (404, b"no such path /debug/pprof; see / for what there is\n")
        wrong = respond(HTTPRequest("DELETE", "/debug/stacks", b""), endpoints)
        assert (wrong.status, wrong.allow) == (405, "GET, HEAD")
        assert respond(HTTPRequest("POST", "/debug/loglevel", b"warn\n"), endpoints).body == b"warn\n"
        bad = respond(HTTPRequest("PUT", "/debug/loglevel", b"\xff"), endpoints)
        assert (bad.status, bad.body) == (400, b"the level is not UTF-8 text\n")
        assert levels.level() == "warn"
    finally:
        levels.set_level(before)
        restore(saved)


def logging_levels() -> list[tuple[str, int]]:
    import logging

    return [(name, logging.getLogger(name).level) for name in ("", *levels.NOISY)]


def restore(saved: list[tuple[str, int]]) -> None:
    import logging

    for name, level in saved:
        logging.getLogger(name).setLevel(level)


# -- the daemon's socket ----------------------------------------------------------------


def _config(base: Path, address: str | None = None, owner: bool = True) -> str:
    owned = f"uid = {OWNER[0]}\ngid = {OWNER[1]}\n" if owner else ""
    return f'version = 2\n[debug]\naddress = "{address or base / "debug.sock"}"\n{owned}'


@pytest.fixture
def daemon(pycontainerd_daemon_factory: DaemonFactory) -> PycontainerdDaemon:
    d = pycontainerd_daemon_factory(start=False)
    d.config_path = d.base / "config.toml"
    d.config_path.write_text(_config(d.base, owner=os.geteuid() == 0))
    return d.start()


def _debug_socket(d: PycontainerdDaemon) -> Path:
    return d.base / "debug.sock"


def _get(d: PycontainerdDaemon, path: str) -> tuple[int, str]:
    status, body = call(_debug_socket(d), "GET", path)
    return status, body.decode()


def _cli(d: PycontainerdDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*d.command(), "debug", *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def subscription(daemon: PycontainerdDaemon) -> Iterator[grpc.Future]:
    """An Events subscription open in the daemon, with one event already through it."""
    with channel_to(daemon.address) as ch:
        stream = events_pb2_grpc.EventsStub(ch).Subscribe(epb.SubscribeRequest(), metadata=md(), timeout=120)
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(next(stream).topic), daemon=True)
        reader.start()
        # The subscription reaches the daemon some time after the call is made: publish until one arrives.
        for n in range(200):
            Stubs(ch).namespaces.Create(npb.CreateNamespaceRequest(namespace=npb.Namespace(name=f"ns{n}")))
            reader.join(timeout=0.1)
            if not reader.is_alive():
                break
        assert first == ["/namespaces/create"]
        yield stream
        stream.cancel()


def test_debug_socket_shows_stacks_vars_and_the_calls_being_served(
    daemon: PycontainerdDaemon,
    subscription: grpc.Future,
) -> None:
    d = daemon
    st = os.stat(_debug_socket(d))
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == OWNER
    status, stacks = _get(d, "/debug/stacks")
    assert status == 200
    assert "thread MainThread (id " in stacks and "thread debug-server (id " in stacks
    assert "asyncio tasks" in stacks
    serving = [line for line in stacks.splitlines() if f"method={SUBSCRIBE}" in line]
    assert len(serving) == 1 and serving[0].startswith("task ")
    assert f"namespace={NAMESPACE}" in serving[0] and "request_id=" in serving[0]
    status, text = _get(d, "/debug/vars")
    assert status == 200
    doc = json.loads(text)
    assert d.proc is not None and doc["pid"] == d.proc.pid
    assert doc["log_level"] == "info" and doc["tasks"] > 0 and doc["threads"] > 1
    assert doc["root"] == str(d.root) and doc["debug_address"] == str(_debug_socket(d))
    assert doc["config"] == str(d.config_path)
    res = _cli(d, "stacks")  # the address from the config file
    assert res.returncode == 0 and f"method={SUBSCRIBE}" in res.stdout, res.stderr
    res = _cli(d, "vars", "--address", str(_debug_socket(d)))
    assert res.returncode == 0 and json.loads(res.stdout)["pid"] == doc["pid"]


def _not_found(d: PycontainerdDaemon) -> None:
    with channel_to(d.address) as ch, pytest.raises(grpc.RpcError):
        Stubs(ch).images.Get(ipb.GetImageRequest(name="example.com/none:1"), metadata=md())


def test_log_level_changes_while_running(daemon: PycontainerdDaemon) -> None:
    d = daemon
    assert _get(d, "/debug/loglevel") == (200, "info\n")
    _not_found(d)
    assert "level=debug" not in d.log()
    assert call(_debug_socket(d), "PUT", "/debug/loglevel", b"debug") == (200, b"debug\n")
    _not_found(d)
    assert "level=debug" in d.log() and "NotFound" in d.log()
    assert "log level changed from info to debug through the debug socket" in d.log()
    res = _cli(d, "loglevel", "WARN")
    assert (res.returncode, res.stdout) == (0, "warn\n")
    res = _cli(d, "loglevel")
    assert (res.returncode, res.stdout) == (0, "warn\n")
    size = len(d.log())
    _not_found(d)
    status, body = call(_debug_socket(d), "POST", "/debug/loglevel", b"loud")
    assert (status, body) == (400, b"invalid log level 'loud' (one of trace, debug, info, warn, error, fatal, panic)\n")
    res = _cli(d, "loglevel", "loud")
    assert res.returncode == 1
    assert (
        res.stderr == "pycontainerd: invalid log level 'loud' (one of trace, debug, info, warn, error, fatal, panic)\n"
    )
    assert d.log()[size:] == ""  # at warn, neither the call nor the refusals log
    assert call(_debug_socket(d), "PUT", "/debug/loglevel", b"info") == (200, b"info\n")


def test_cli_without_a_socket_says_so(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(start=False)
    res = _cli(d, "stacks")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == "pycontainerd: no debug socket: pass --address or set [debug] address in the configuration\n"
    res = _cli(d, "loglevel", "--address", str(d.base / "nothing.sock"))
    assert res.returncode == 1
    assert (
        res.stderr
        == f"pycontainerd: cannot reach the debug socket {d.base / 'nothing.sock'}: No such file or directory\n"
    )


def _idle_client(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(READ_TIMEOUT + 10)
    s.connect(str(path))
    return s


def _answer(s: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return parse_response(data)


def test_hostile_clients_cost_little_and_time_out(daemon: PycontainerdDaemon) -> None:
    d, path = daemon, _debug_socket(daemon)
    idle = [_idle_client(path) for _ in range(MAX_CLIENTS)]
    time.sleep(0.2)  # all accepted
    t0 = time.monotonic()
    assert call(path, "GET", "/debug/vars") == (503, b"too many debug clients; try again\n")
    flood = _idle_client(path)  # a head that never ends
    try:
        flood.sendall(b"GET / HTTP/1.1\r\nX: " + b"y" * (MAX_HEAD + 100))
    except BrokenPipeError:
        pass
    assert _answer(flood)[0] == 503
    answers = [_answer(s) for s in idle]
    waited = time.monotonic() - t0
    assert all(a == (408, f"request not received within {READ_TIMEOUT:g}s\n".encode()) for a in answers)
    assert READ_TIMEOUT - 1 < waited < READ_TIMEOUT + 5
    flood = _idle_client(path)
    try:
        flood.sendall(b"GET / HTTP/1.1\r\nX: " + b"y" * (MAX_HEAD + 100))
    except BrokenPipeError:
        pass
    assert _answer(flood) == (431, f"request head over {MAX_HEAD} bytes\n".encode())
    big = _idle_client(path)
    big.sendall(b"PUT /debug/loglevel HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n")
    assert _answer(big)[0] == 413  # at once, without the body
    assert _get(d, "/debug/loglevel") == (200, "info\n")
    assert "Traceback" not in d.log()


def test_socket_lifecycle(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(start=False)
    d.config_path = d.base / "config.toml"
    d.config_path.write_text(_config(d.base, owner=False))
    path = _debug_socket(d)
    # A stale socket (its server gone) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    d.start()
    assert _get(d, "/debug/loglevel")[0] == 200
    assert d.stop() == 0
    assert not path.exists() and not Path(d.address).exists()
    # One in use is refused, and the daemon leaves nothing behind.
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(str(path))
    holder.listen(1)
    try:
        res = subprocess.run(d.command(), capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 1
        assert res.stderr.splitlines()[-1] == f"pycontainerd: debug address {path} is in use by another process"
        assert path.exists() and not Path(d.address).exists()
    finally:
        holder.close()
        path.unlink()
    path.write_text("not a socket")
    res = subprocess.run(d.command(), capture_output=True, text=True, timeout=60, check=False)
    assert res.stderr.splitlines()[-1] == f"pycontainerd: debug address {path} exists and is not a socket"
    path.unlink()
    d.config_path.write_text(_config(d.base, address="127.0.0.1:1338", owner=False))
    res = subprocess.run(d.command(), capture_output=True, text=True, timeout=60, check=False)
    assert (res.returncode, res.stderr) == (
        1,
        "pycontainerd: debug.address: '127.0.0.1:1338' is not a unix socket path (the debug socket is local only)\n",
    )


# -- SIGUSR1 ---------------------------------------------------------------------


def test_sigusr1_dumps_stacks_while_a_read_streams(daemon: PycontainerdDaemon) -> None:
    d = daemon
    assert d.proc is not None
    blob = os.urandom(24 << 20)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with channel_to(d.address) as ch:
        stubs = Stubs(ch)
        lease = stubs.leases.Create(lpb.CreateRequest(id="keep"), metadata=md()).lease.id
        step = 4 << 20
        reqs = [
            cpb.WriteContentRequest(action=cpb.WRITE, ref="big", offset=i, data=blob[i : i + step], total=len(blob))
            for i in range(0, len(blob), step)
        ]
        reqs.append(cpb.WriteContentRequest(action=cpb.COMMIT, offset=len(blob), expected=digest))
        assert list(stubs.content.Write(iter(reqs), metadata=md(lease=lease)))[-1].digest == digest

        stream = stubs.content.Read(cpb.ReadContentRequest(digest=digest), metadata=md(), timeout=120)
        got = [next(stream).data]  # the daemon is now held by a slow reader
        d.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while "=== END stack dump ===" not in d.log():
            assert time.monotonic() < deadline, d.log()[-2000:]
            time.sleep(0.05)
        got += [r.data for r in stream]
        assert hashlib.sha256(b"".join(got)).hexdigest() == digest.removeprefix("sha256:")
        stubs.version.Version(Empty())  # and a new call is served
    dump = d.log()
    assert dump.count("=== BEGIN stack dump ===") == 1
    assert "thread MainThread" in dump and "asyncio tasks" in dump
    assert f"method={READ}" in dump  # the task streaming the blob, named by its call
    assert d.running and "Traceback" not in dump


def test_sigusr1_again_and_again_while_calls_run(daemon: PycontainerdDaemon) -> None:
    """One dump per signal while four clients keep calling; every call is answered."""
    d = daemon
    assert d.proc is not None
    errors: list[BaseException] = []
    done = threading.Event()

    def calls() -> None:
        try:
            with channel_to(d.address) as ch:
                stubs = Stubs(ch)
                while not done.is_set():
                    _not_found_quietly(stubs)
        except BaseException as e:  # surfaced below
            errors.append(e)

    workers = [threading.Thread(target=calls) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for n in range(1, 4):
            d.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 20
            while d.log().count("=== END stack dump ===") < n:
                assert time.monotonic() < deadline, d.log()[-2000:]
                time.sleep(0.05)
    finally:
        done.set()
        for w in workers:
            w.join(timeout=60)
    assert not errors
    assert d.stop() == 0
    assert "Traceback" not in d.log()


def _not_found_quietly(stubs: Stubs) -> None:
    try:
        stubs.images.Get(ipb.GetImageRequest(name="example.com/none:1"), metadata=md())
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
