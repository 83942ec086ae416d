"""The shim's service: one container's processes driven through runc, served on the shim's socket.

Everything runs on one thread in :class:`~._loop.Loop`.  runc commands run
to completion inside an operation (see ``_runc``), exits are reaped in the
loop on SIGCHLD (the shim is a child subreaper, so the container's
processes are its children once runc has exited), and events wait in a
queue until the daemon acknowledges them.
"""

from __future__ import annotations

import _socket
import os
import sys
import time

from . import _cgroups, _cjson, _linux
from ._loop import IN, OUT, Loop
from ._process import CREATED, DELETED, PAUSED, RUNNING, STOPPED, Failure, Process, exit_status
from ._runc import DEFAULT_TIMEOUT, Runtime, RuntimeFailed, RuntimeTimedOut
from ._stdio import Console, ConsoleSocket, open_stdio
from .protocol import OPS, VERSION, Decoder, ProtocolError, encode, event, failure, parse_request, reply

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    import signal as _signal  # what the checker knows of _signal, the C half without the enums
    from collections.abc import Callable
    from typing import Any
else:
    import _signal

__all__ = ["Service"]

MAX_EVENTS = 4096
"""Unacknowledged events kept; beyond that the oldest go (a daemon that never acks must not grow us)."""
MAX_OUTPUT = 64 << 20
"""Bytes queued for a connection that does not read before it is dropped."""

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")


def _valid_exec_id(exec_id: str) -> bool:
    """``[A-Za-z0-9][A-Za-z0-9_.-]{0,75}``, as containerd's identifiers (checked without ``re``)."""
    return 0 < len(exec_id) <= 76 and exec_id[0] in _ALNUM and all(c in _ID_CHARS for c in exec_id)


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} shim[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


def _str(args: dict[str, Any], key: str, default: str = "") -> str:
    value = args.get(key, default)
    if not isinstance(value, str) or "\x00" in value:
        raise Failure("invalid_argument", f"{key} must be a string")
    return value


def _bool(args: dict[str, Any], key: str, default: bool = False) -> bool:
    value = args.get(key, default)
    if not isinstance(value, bool):
        raise Failure("invalid_argument", f"{key} must be a boolean")
    return value


def _int(args: dict[str, Any], key: str, low: int, high: int) -> int:
    value = args.get(key)
    if type(value) is not int or not low <= value <= high:
        raise Failure("invalid_argument", f"{key} must be an integer from {low} to {high}")
    return value


def _dict(args: dict[str, Any], key: str) -> dict[str, Any]:
    value = args.get(key)
    if not isinstance(value, dict):
        raise Failure("invalid_argument", f"{key} must be an object")
    return value


def _io(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "stdin": _str(args, "stdin"),
        "stdout": _str(args, "stdout"),
        "stderr": _str(args, "stderr"),
        "terminal": _bool(args, "terminal"),
    }


def _timeout(args: dict[str, Any]) -> float:
    value = args.get("runtime_timeout", DEFAULT_TIMEOUT)
    if type(value) not in (int, float) or not 0 < value <= 86400:
        raise Failure("invalid_argument", "runtime_timeout must be a number of seconds from 0 to 86400")
    return float(value)


def _kill_failure(e: RuntimeFailed) -> Failure:
    """runc's "not running" family means the process is gone (containerd's checkKillError)."""
    text = str(e).lower()
    if any(s in text for s in ("not running", "already finished", "no such process", "does not exist", "not exist")):
        return Failure("not_found", "process already finished")
    return Failure("unknown", f"runtime kill failed: {e}")


class Conn:
    """One client connection: framed requests in, replies and events out, never blocking."""

    def __init__(self, service: Service, sock: _socket.socket) -> None:
        self.service = service
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = Decoder()
        self.out = bytearray()
        self.closed = False
        self._mask = IN
        sock.setblocking(False)
        service.loop.add(self.fd, IN, self._ready)

    def _ready(self, events: int) -> None:
        if events & OUT:
            self._flush()
        if events & ~OUT and not self.closed:
            self._read()

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as e:
            log(f"dropping a connection: {e}")
            self.close()
            return
        for m in messages:
            if self.closed:
                return
            self.service.handle(self, m)

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self.out += encode(message)
        except ProtocolError as e:
            if "id" not in message:
                raise
            self.out += encode(failure(message["id"], "unknown", f"reply not sent: {e}"))
        self._flush()

    def _flush(self) -> None:
        try:
            while self.out:
                n = self.sock.send(self.out)
                del self.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return
        if len(self.out) > MAX_OUTPUT:
            log("dropping a connection that does not read")
            self.close()
            return
        mask = IN | (OUT if self.out else 0)
        if mask != self._mask:
            self._mask = mask
            self.service.loop.modify(self.fd, mask)

    def finish(self, timeout: float = 1.0) -> None:
        """Best-effort delivery of what is queued, then close (the shim is exiting)."""
        if not self.closed and self.out:
            try:
                self.sock.settimeout(timeout)
                self.sock.sendall(self.out)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.service.loop.remove(self.fd)
        self.sock.close()
        self.service.conns.discard(self)
        self.service.subscribers.discard(self)


class Service:
    def __init__(self, loop: Loop, listener: _socket.socket, bundle: str, namespace: str, id: str) -> None:
        self.loop = loop
        self.listener = listener
        self.bundle = bundle
        self.namespace = namespace
        self.id = id
        self.socket_path = listener.getsockname()
        self.runtime: Runtime | None = None
        self.init: Process | None = None
        self.execs: dict[str, Process] = {}
        self.by_pid: dict[int, Process] = {}
        self.cgroup: _cgroups.Cgroup | None = None
        self.oom: _cgroups.OomWatch | None = None
        self.kill_all_on_exit = False
        self.mounted = False
        self.events: list[dict[str, Any]] = []
        self.seq = 0
        self.conns: set[Conn] = set()
        self.subscribers: set[Conn] = set()
        self._serial = 0
        listener.setblocking(False)
        loop.add(listener.fileno(), IN, self._accept)
        loop.on_signal(_signal.SIGCHLD, self.reap)
        self._ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            op: getattr(self, f"op_{op}") for op in OPS if op not in ("wait", "events")
        }

    # -- connections -------------------------------------------------------

    def _accept(self, _events: int) -> None:
        while True:
            try:
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]  # _socket's accept: an fd
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log(f"accept: {e}")
                return
            self.conns.add(Conn(self, _socket.socket(fileno=fd)))

    def handle(self, conn: Conn, message: dict[str, Any]) -> None:
        try:
            rid, op, args = parse_request(message)
        except ProtocolError as e:
            log(f"dropping a connection: {e}")
            conn.close()
            return
        try:
            if op == "wait":
                self._wait(conn, rid, args)
            elif op == "events":
                conn.send(reply(rid, {}))
                self.subscribers.add(conn)
                for ev in self.events:
                    conn.send(event(ev))
            elif op in self._ops:
                conn.send(reply(rid, self._ops[op](args)))
            else:
                conn.send(failure(rid, "unimplemented", f"unknown operation {op!r}"))
        except Failure as e:
            conn.send(failure(rid, e.code, e.message))
        except RuntimeTimedOut as e:
            conn.send(failure(rid, "deadline_exceeded", str(e)))
        except RuntimeFailed as e:
            conn.send(failure(rid, "unknown", str(e)))
        except Exception as e:
            log(f"{op}: {type(e).__name__}: {e}")
            conn.send(failure(rid, "unknown", f"{op}: {e}"))

    # -- events ------------------------------------------------------------

    def emit(self, topic: str, **fields: Any) -> None:
        self.seq += 1
        ev = {"seq": self.seq, "topic": topic, "container_id": self.id, **fields}
        self.events.append(ev)
        if len(self.events) > MAX_EVENTS:
            del self.events[0]
        for conn in list(self.subscribers):
            conn.send(event(ev))

    def op_ack(self, args: dict[str, Any]) -> dict[str, Any]:
        seq = _int(args, "seq", 0, 1 << 62)
        self.events = [e for e in self.events if e["seq"] > seq]
        return {}

    # -- lookups -----------------------------------------------------------

    def _init(self) -> Process:
        if self.init is None or self.init.status == DELETED:
            raise Failure("not_found", f"container {self.id!r}: no task")
        return self.init

    def _process(self, args: dict[str, Any]) -> Process:
        exec_id = _str(args, "exec_id")
        init = self._init()
        if not exec_id:
            return init
        p = self.execs.get(exec_id)
        if p is None:
            raise Failure("not_found", f"process {exec_id!r} does not exist")
        return p

    def _runtime(self) -> Runtime:
        if self.runtime is None:
            raise Failure("failed_precondition", "the task is not created")
        return self.runtime

    def _file(self, name: str) -> str:
        self._serial += 1
        return os.path.join(self.bundle, f".{name}-{self._serial}")

    # -- lifecycle ---------------------------------------------------------

    def op_connect(self, args: dict[str, Any]) -> dict[str, Any]:
        init = None
        if self.init is not None and self.init.status != DELETED:
            init = self.init.state(self.init.status)
        return {
            "version": VERSION,
            "pid": os.getpid(),
            "bundle": self.bundle,
            "namespace": self.namespace,
            "id": self.id,
            "init": init,
        }

    def op_create(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.init is not None:
            raise Failure("already_exists", f"task {self.id!r} already exists")
        io = _io(args)
        options = args.get("options") or {}
        rootfs = args.get("rootfs") or []
        if not isinstance(options, dict):
            raise Failure("invalid_argument", "options must be an object")
        if not isinstance(rootfs, list) or not all(
            isinstance(m, dict)
            and isinstance(m.get("type"), str)
            and isinstance(m.get("source"), str)
            and isinstance(m.get("options", []), list)
            and all(isinstance(o, str) for o in m.get("options", []))
            for m in rootfs
        ):
            raise Failure("invalid_argument", "rootfs must be a list of {type, source, options} mounts")
        try:
            with open(os.path.join(self.bundle, "config.json"), "rb") as f:
                spec = _cjson.loads(f.read())
        except (OSError, ValueError) as e:
            raise Failure("failed_precondition", f"bundle config.json: {e}") from None
        namespaces = (spec.get("linux") or {}).get("namespaces") or []
        # With its own pid namespace the kernel kills the rest when init dies; without, we must.
        self.kill_all_on_exit = not any(n.get("type") == "pid" and not n.get("path") for n in namespaces)
        runtime = Runtime(
            _str(args, "runtime", "runc") or "runc",
            _str(args, "runtime_root"),
            os.path.join(self.bundle, "log.json"),
            systemd_cgroup=bool(options.get("systemd_cgroup", False)),
            timeout=_timeout(args),
        )
        rootfs_dir = os.path.join(self.bundle, "rootfs")
        if rootfs:
            os.makedirs(rootfs_dir, mode=0o711, exist_ok=True)
            try:
                _linux.mount_rootfs([{"options": [], **m} for m in rootfs], rootfs_dir)
            except ValueError as e:
                raise Failure("invalid_argument", str(e)) from None
            except OSError as e:
                raise Failure("unknown", f"mounting the rootfs: {e.strerror}") from None
            self.mounted = True
        self._write_state(runtime)
        init = Process(self.id, "", io)
        pid_file = os.path.join(self.bundle, "init.pid")
        console_socket = None
        try:
            try:
                init.stdio = open_stdio(io["stdin"], io["stdout"], io["stderr"], io["terminal"])
            except (OSError, ValueError) as e:
                raise Failure("failed_precondition", f"opening the process's stdio: {e}") from None
            if io["terminal"]:
                console_socket = ConsoleSocket(self._console_path())
            try:
                runtime.create(
                    self.id,
                    self.bundle,
                    pid_file,
                    init.stdio.runtime_fds(),
                    console_socket.path if console_socket else "",
                    no_pivot=bool(options.get("no_pivot_root", False)),
                    no_new_keyring=bool(options.get("no_new_keyring", False)),
                )
            except RuntimeTimedOut as e:
                raise Failure("deadline_exceeded", f"OCI runtime create failed: {e}") from None
            except RuntimeFailed as e:
                raise Failure("unknown", f"OCI runtime create failed: {e}") from None
            init.stdio.runtime_done()
            init.stdio.start_relay(self.loop)
            init.pid = _read_pid(pid_file)
            if console_socket is not None:
                init.console = Console(self.loop, console_socket.receive(), init.stdio, lambda: None)
        except BaseException:
            init.release()
            try:
                # Also when runc never wrote a pid: one killed half-way may have left its state and cgroup.
                runtime.delete(self.id, force=True)
            except RuntimeFailed as e:
                if "does not exist" not in str(e):
                    log(f"after a failed create: {e}")
            finally:
                self._unmount()
            raise
        finally:
            if console_socket is not None:
                console_socket.close()
        self.runtime = runtime
        self.init = init
        self.by_pid[init.pid] = init
        self._watch_cgroup(init.pid)
        rootfs_records = [
            {"type": m["type"], "source": m["source"], "options": m.get("options", []), "target": m.get("target", "")}
            for m in rootfs
        ]
        self.emit("/tasks/create", bundle=self.bundle, rootfs=rootfs_records, io=io, pid=init.pid)
        return {"pid": init.pid}

    def _console_path(self) -> str:
        self._serial += 1
        return f"{self.socket_path}.c{self._serial}"

    def _write_state(self, runtime: Runtime) -> None:
        """What cleanup needs once this shim is gone (``runc delete -f``, unmount)."""
        state = {
            "id": self.id,
            "namespace": self.namespace,
            "runtime": runtime.binary,
            "runtime_root": runtime.root,
            "systemd_cgroup": runtime.systemd_cgroup,
            "rootfs_mounted": self.mounted,
        }
        path = os.path.join(self.bundle, "shim.json")
        with open(path + ".tmp", "w") as f:
            f.write(_cjson.dumps(state))
        os.replace(path + ".tmp", path)

    def _watch_cgroup(self, pid: int) -> None:
        self.cgroup = _cgroups.find(pid)
        if self.cgroup is None:
            return
        try:
            self.oom = _cgroups.OomWatch(self.cgroup)
        except OSError as e:
            log(f"no OOM notifications: {e}")
            return
        self.loop.add(self.oom.fd, IN, lambda _events: self._check_oom())

    def _check_oom(self) -> None:
        if self.oom is None:
            return
        fired = self.oom.check()
        if fired is None:
            self._stop_oom()
        elif fired:
            self.emit("/tasks/oom")

    def _stop_oom(self) -> None:
        if self.oom is not None:
            self.loop.remove(self.oom.fd)
            self.oom.close()
            self.oom = None

    def _unmount(self) -> None:
        if self.mounted:
            _linux.unmount_all(os.path.join(self.bundle, "rootfs"))
            self.mounted = False

    def op_start(self, args: dict[str, Any]) -> dict[str, Any]:
        p = self._process(args)
        if p.status != CREATED:
            raise Failure("failed_precondition", f"cannot start a {p.status} process")
        runtime = self._runtime()
        if p is self.init:
            runtime.start(self.id)
            p.status = RUNNING
            self.emit("/tasks/start", pid=p.pid)
            return {"pid": p.pid}
        init = self._init()
        if init.status not in (CREATED, RUNNING):
            raise Failure("failed_precondition", f"cannot exec in a {init.status} container")
        io = p.io
        try:
            p.stdio = open_stdio(io["stdin"], io["stdout"], io["stderr"], io["terminal"])
        except (OSError, ValueError) as e:
            raise Failure("failed_precondition", f"opening the process's stdio: {e}") from None
        spec_file, pid_file = self._file("process") + ".json", self._file("exec") + ".pid"
        console_socket = None
        try:
            with open(spec_file, "w") as f:
                f.write(_cjson.dumps(p.spec))
            if io["terminal"]:
                console_socket = ConsoleSocket(self._console_path())
            try:
                runtime.exec(
                    self.id, spec_file, pid_file, p.stdio.runtime_fds(), console_socket.path if console_socket else ""
                )
            except RuntimeFailed as e:
                raise Failure("unknown", f"OCI runtime exec failed: {e}") from None
            p.stdio.runtime_done()
            p.stdio.start_relay(self.loop)
            p.pid = _read_pid(pid_file)
            if console_socket is not None:
                p.console = Console(self.loop, console_socket.receive(), p.stdio, lambda: None)
        except BaseException:
            p.release()
            raise
        finally:
            for path in (spec_file, pid_file):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if console_socket is not None:
                console_socket.close()
        p.status = RUNNING
        self.by_pid[p.pid] = p
        self.emit("/tasks/exec-started", exec_id=p.exec_id, pid=p.pid)
        return {"pid": p.pid}

    def op_exec(self, args: dict[str, Any]) -> dict[str, Any]:
        exec_id = _str(args, "exec_id")
        if not _valid_exec_id(exec_id):
            raise Failure("invalid_argument", f"exec id {exec_id!r} is not valid")
        init = self._init()
        if init.status not in (CREATED, RUNNING):
            raise Failure("failed_precondition", f"cannot exec in a {init.status} container")
        if exec_id in self.execs:
            raise Failure("already_exists", f"process {exec_id!r} already exists")
        spec = _dict(args, "spec")
        if not isinstance(spec.get("args"), list) or not spec["args"]:
            raise Failure("invalid_argument", "the process spec has no args")
        self.execs[exec_id] = Process(self.id, exec_id, _io(args), spec)
        self.emit("/tasks/exec-added", exec_id=exec_id)
        return {}

    def op_kill(self, args: dict[str, Any]) -> dict[str, Any]:
        p = self._process(args)
        signo = _int(args, "signal", 1, 64)
        kill_all = _bool(args, "all")
        if p is self.init:
            if p.status == STOPPED and not kill_all:
                raise Failure("not_found", "process already finished")
            try:
                self._runtime().kill(self.id, signo, kill_all)
            except RuntimeFailed as e:
                raise _kill_failure(e) from None
            return {}
        if p.pid == 0:
            raise Failure("failed_precondition", "process not created")
        if p.status == STOPPED:
            raise Failure("not_found", "process already finished")
        try:
            os.kill(p.pid, signo)
        except ProcessLookupError:
            raise Failure("not_found", "process already finished") from None
        return {}

    def op_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        p = self._process(args)
        if p.alive:
            raise Failure("failed_precondition", f"cannot delete a {p.status} process")
        if p is not self.init:
            p.release()
            p.status = DELETED
            del self.execs[p.exec_id]
            self.by_pid.pop(p.pid, None)
            self._fail_waiters(p)
            return p.exit()
        runtime = self._runtime()
        try:
            runtime.delete(self.id)
        except RuntimeFailed as e:
            if "does not exist" not in str(e):
                raise Failure("unknown", f"failed to delete task: {e}") from None
        if p.status == CREATED and p.pid:
            # runc killed the never-started init; it is our child (we are its subreaper).
            try:
                _, status = os.waitpid(p.pid, 0)
                p.exit_status, p.exited_at = exit_status(status), time.time_ns()
            except ChildProcessError:
                pass
        for other in list(self.execs.values()):
            other.release()
            other.status = DELETED
            self._fail_waiters(other)
        self.execs.clear()
        p.release()
        self._stop_oom()
        p.status = DELETED
        self._fail_waiters(p)
        try:
            self._unmount()
        except OSError as e:
            raise Failure("unknown", f"failed rootfs umount: {e}") from None
        finally:
            self.emit("/tasks/delete", id=self.id, **p.exit())
        return p.exit()

    def op_state(self, args: dict[str, Any]) -> dict[str, Any]:
        p = self._process(args)
        return p.state(self._init().status)

    def _wait(self, conn: Conn, rid: int, args: dict[str, Any]) -> None:
        p = self._process(args)
        if p.status == STOPPED:
            conn.send(reply(rid, p.exit()))
        else:
            p.waiters.append((conn, rid))

    def _fail_waiters(self, p: Process) -> None:
        for conn, rid in p.waiters:
            conn.send(failure(rid, "not_found", f"process {p.id!r} was deleted"))
        p.waiters = []

    def op_pids(self, args: dict[str, Any]) -> dict[str, Any]:
        init = self._init()
        try:
            pids = self._runtime().ps(self.id)
        except RuntimeFailed as e:
            if init.status == STOPPED:
                pids = []
            else:
                raise Failure("unknown", f"runtime ps failed: {e}") from None
        exec_ids = {p.pid: p.exec_id for p in self.execs.values() if p.pid}
        return {"processes": [{"pid": pid, "exec_id": exec_ids.get(pid, "")} for pid in pids]}

    def op_pause(self, args: dict[str, Any]) -> dict[str, Any]:
        init = self._init()
        if init.status != RUNNING:
            raise Failure("failed_precondition", f"cannot pause a {init.status} container")
        self._runtime().pause(self.id)
        init.status = PAUSED
        self.emit("/tasks/paused")
        return {}

    def op_resume(self, args: dict[str, Any]) -> dict[str, Any]:
        init = self._init()
        if init.status != PAUSED:
            raise Failure("failed_precondition", f"cannot resume a {init.status} container")
        self._runtime().resume(self.id)
        init.status = RUNNING
        self.emit("/tasks/resumed")
        return {}

    def op_resize_pty(self, args: dict[str, Any]) -> dict[str, Any]:
        p = self._process(args)
        width, height = _int(args, "width", 0, 65535), _int(args, "height", 0, 65535)
        if p.console is not None:
            p.console.resize(width, height)
        return {}

    def op_close_io(self, args: dict[str, Any]) -> dict[str, Any]:
        p = self._process(args)
        if _bool(args, "stdin", True) and p.stdio is not None:
            p.stdio.close_stdin()
        return {}

    def op_update(self, args: dict[str, Any]) -> dict[str, Any]:
        init = self._init()
        resources = _dict(args, "resources")
        if init.status == STOPPED:
            raise Failure("failed_precondition", "cannot update a stopped container")
        path = self._file("resources") + ".json"
        try:
            with open(path, "w") as f:
                f.write(_cjson.dumps(resources))
            self._runtime().update(self.id, path)
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        return {}

    def op_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        self._init()
        if self.cgroup is None:
            raise Failure("not_found", "the task's cgroup is unknown")
        return self.cgroup.stats()

    def op_shutdown(self, args: dict[str, Any]) -> dict[str, Any]:
        """Exit once the task is deleted (or was never created), as containerd's shim: never strand a container."""
        exiting = self.init is None or self.init.status == DELETED
        if exiting:
            self.loop.running = False
        return {"exiting": exiting}

    # -- exits -------------------------------------------------------------

    def reap(self) -> None:
        exits: list[tuple[Process, int]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            p = self.by_pid.get(pid)
            if p is not None and p.status in (CREATED, RUNNING, PAUSED):
                exits.append((p, exit_status(status)))
        if not exits:
            return
        now = time.time_ns()
        if self.oom is not None:
            self._check_oom()  # an OOM kill is reported before the exit it caused
        exits.sort(key=lambda e: e[0] is self.init)  # exec'd processes first, as containerd orders them
        for p, code in exits:
            self._exited(p, code, now)

    def _exited(self, p: Process, code: int, now: int) -> None:
        if p is self.init and self.runtime is not None:
            if p.status == PAUSED:
                self._best_effort(self.runtime.resume)
            if self.kill_all_on_exit:
                self._best_effort(lambda id: self.runtime.kill(id, _signal.SIGKILL, True) if self.runtime else None)
        p.status = STOPPED
        p.exit_status, p.exited_at = code, now
        if p.console is not None and p.console.output is not None:
            p.console.output.drain()  # what the process wrote before exiting reaches the FIFO first
        if p.stdio is not None and p.stdio.relay is not None:
            p.stdio.relay.drain()
        p.close_io()
        self.emit("/tasks/exit", id=p.id, pid=p.pid, exit_status=code, exited_at=now)
        for conn, rid in p.waiters:
            conn.send(reply(rid, p.exit()))
        p.waiters = []

    def _best_effort(self, fn: Callable[[str], object]) -> None:
        try:
            fn(self.id)
        except RuntimeFailed as e:
            log(f"after init exit: {e}")

    def close(self) -> None:
        for conn in list(self.conns):
            conn.finish()
        self.listener.close()


def _read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())
