"""The shim's entry point: listen, detach from the daemon, serve.

``python -m pycontainerd.runtime.shim --bundle B --namespace N --id ID
--socket PATH`` binds the socket, writes ``unix://PATH`` to
``<bundle>/address``, forks, prints the address and exits 0 — the daemon
waits for that short-lived parent only.  The child starts a new session
(so a signal to the daemon's process group misses it), moves its stdio to
/dev/null and ``<bundle>/shim.log``, becomes a child subreaper and serves
until ``shutdown``.  Connections made in between wait in the listen
backlog, so the daemon may connect as soon as it read the address.

Imports stay minimal until after the fork: the daemon's wait is the
interpreter's start-up, this module and one socket.

``… --forkserver --pad=…`` starts the fork server instead (see
``_forkserver``): an interpreter that has imported all of the shim and
forks each new one, which then runs :func:`main` as above.
"""

from __future__ import annotations

import _socket
import os
import sys

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it

if TYPE_CHECKING:
    import signal as _signal  # what the checker knows of _signal, the C half without the enums
else:
    import _signal

__all__ = ["main"]

_USAGE = "usage: python -m pycontainerd.runtime.shim --bundle DIR --namespace NS --id ID --socket PATH"


def _parse(argv: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        key = arg.removeprefix("--")
        if not arg.startswith("--") or key not in ("bundle", "namespace", "id", "socket"):
            raise SystemExit(f"unknown argument {arg!r}\n{_USAGE}")
        value = next(it, None)
        if value is None:
            raise SystemExit(f"{arg} needs a value\n{_USAGE}")
        opts[key] = value
    for key in ("bundle", "namespace", "id", "socket"):
        if not opts.get(key):
            raise SystemExit(f"--{key} is required\n{_USAGE}")
    return opts


def _listen(path: str) -> _socket.socket:
    """A listening socket at ``path``; refuses when a live shim already listens there."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
    except OSError:
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: its shim is gone
            sock.bind(path)
        else:
            sock.close()
            raise SystemExit(f"a shim already listens on {path}") from None
        finally:
            probe.close()
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--forkserver"]:
        from ._forkserver import serve as serve_forks

        serve_forks([a for a in sys.orig_argv if not a.startswith("--pad=")])
        return
    opts = _parse(args)
    bundle = os.path.abspath(opts["bundle"])
    os.makedirs(os.path.dirname(opts["socket"]), mode=0o700, exist_ok=True)
    listener = _listen(opts["socket"])
    address = f"unix://{opts['socket']}"
    tmp = os.path.join(bundle, ".address.tmp")
    with open(tmp, "w") as f:
        f.write(address)
    os.replace(tmp, os.path.join(bundle, "address"))
    if os.fork():
        sys.stdout.write(address + "\n")
        sys.stdout.flush()
        os._exit(0)
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(bundle, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    serve(listener, bundle, opts["namespace"], opts["id"])


def serve(listener: _socket.socket, bundle: str, namespace: str, id: str) -> None:
    from ._linux import set_child_subreaper
    from ._loop import Loop
    from ._service import Service, log

    set_child_subreaper()
    for signo in (_signal.SIGINT, _signal.SIGHUP, _signal.SIGPIPE):
        _signal.signal(signo, _signal.SIG_IGN)
    loop = Loop()
    service = Service(loop, listener, bundle, namespace, id)
    path = listener.getsockname()
    log(f"serving {namespace}/{id} on {path}")
    try:
        loop.run()
    finally:
        service.close()
        for p in (path, os.path.join(bundle, "address")):
            try:
                os.unlink(p)
            except OSError:
                pass
        log("exiting")
