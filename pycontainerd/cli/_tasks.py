"""``pyctr tasks``: the running side of containers — list, start, exec, signal, pause, inspect, delete."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from ..client import Client
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..tasks import IO, NO_IO, Status
from ._attach import run_attached
from ._common import for_each, group, print_table, subcommand

__all__ = ["delete_task", "new_task", "parse_signal", "register"]


def parse_signal(text: str) -> int:
    """``SIGTERM``, ``TERM`` or ``15``."""
    name = text.upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {text!r}") from None


def _ls(client: Client, args: argparse.Namespace) -> int:
    tasks = client.tasks.list()
    if args.quiet:
        sys.stdout.write("".join(f"{t.id}\n" for t in tasks))
        return 0
    print_table(("TASK", "PID", "STATUS"), [(t.id, t.pid, t.status.name) for t in tasks])
    return 0


def new_task(client: Client, container_id: str, io: IO) -> int:
    """Create the task of a container, on its snapshot's mounts; the init's pid."""
    c = client.containers.get(container_id)
    mounts = client.snapshotter(c.snapshotter).mounts(c.snapshot_key) if c.snapshot_key else []
    return client.tasks.create(container_id, rootfs=mounts, io=io)


def _start(client: Client, args: argparse.Namespace) -> int:
    """Create and start a container's task (as ``ctr tasks start``), or start one created detached."""
    try:
        task = client.tasks.get(args.id)
    except NotFound:
        task = None
    if task is not None:
        if task.status is not Status.CREATED:
            raise FailedPrecondition(f"task {args.id} is {task.status.label}, not created")
        if not args.detach:
            raise FailedPrecondition(f"task {args.id} already exists without this terminal's streams; use -d")
        client.tasks.start(args.id)
        return 0
    if args.detach:
        new_task(client, args.id, NO_IO)
        client.tasks.start(args.id)
        return 0
    terminal = bool(_spec_process(client, args.id).get("terminal"))
    exited = run_attached(client, args.id, lambda io: new_task(client, args.id, io), terminal=terminal)
    client.tasks.delete(args.id)
    return exited.status


def _spec_process(client: Client, container_id: str) -> dict[str, Any]:
    c = client.containers.get(container_id)
    try:
        spec = json.loads(c.spec.value) if c.spec is not None else {}
    except ValueError:
        raise InvalidArgument(f"container {container_id}: its spec is not JSON") from None
    process = spec.get("process") if isinstance(spec, dict) else None
    return dict(process) if isinstance(process, dict) else {}


def _exec(client: Client, args: argparse.Namespace) -> int:
    """Run another process in a task: the container's process settings with these arguments."""
    process = _spec_process(client, args.id)
    process["args"] = args.command
    process["terminal"] = args.tty
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        process["env"] = [*process.get("env", []), *args.env]
    tasks = client.tasks
    if args.detach:
        tasks.exec(args.id, args.exec_id, process, NO_IO)
        tasks.start(args.id, args.exec_id)
        return 0

    def create(io: IO) -> None:
        tasks.exec(args.id, args.exec_id, process, io)

    exited = run_attached(client, args.id, create, exec_id=args.exec_id, terminal=args.tty)
    try:
        tasks.delete_process(args.id, args.exec_id)
    except NotFound:
        pass
    return exited.status


def _kill(client: Client, args: argparse.Namespace) -> int:
    signum = parse_signal(args.signal)
    return for_each(args.ids, lambda id, last: client.tasks.kill(id, signum, exec_id=args.exec_id, all=args.all))


def _pause(client: Client, args: argparse.Namespace) -> int:
    return for_each(args.ids, lambda id, last: client.tasks.pause(id))


def _resume(client: Client, args: argparse.Namespace) -> int:
    return for_each(args.ids, lambda id, last: client.tasks.resume(id))


def _ps(client: Client, args: argparse.Namespace) -> int:
    print_table(("PID", "INFO"), [(pid, exec_id or "-") for pid, exec_id in client.tasks.pids(args.id)])
    return 0


def delete_task(client: Client, id: str, force: bool) -> None:
    """Delete a task; with ``force`` a running one is killed (SIGKILL) and waited for first."""
    tasks = client.tasks
    if force:
        task = tasks.get(id)
        if task.status in (Status.RUNNING, Status.PAUSED, Status.CREATED):
            tasks.kill(id, signal.SIGKILL, all=True)
            tasks.wait(id)
    tasks.delete(id)


def _rm(client: Client, args: argparse.Namespace) -> int:
    return for_each(args.ids, lambda id, last: delete_task(client, id, args.force))


def register(sub: Any) -> None:
    tasks = group(sub, "tasks", "manage tasks (the running side of containers)", aliases=["t", "task"])
    p = subcommand(tasks, "ls", _ls, "list tasks", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the task ids")
    p = subcommand(tasks, "start", _start, "create and start a container's task, attached to this terminal")
    p.add_argument("-d", "--detach", action="store_true", help="start it and return (its output goes nowhere)")
    p.add_argument("id", metavar="ID")
    p = subcommand(tasks, "exec", _exec, "run another process in a running task")
    p.add_argument("--exec-id", required=True, help="the new process's id, unique in the task")
    p.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    p.add_argument("-d", "--detach", action="store_true", help="start it and return")
    p.add_argument("--cwd", default="", help="working directory (default: the container's)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="add an environment variable")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p = subcommand(tasks, "kill", _kill, "send a signal to tasks")
    p.add_argument("-s", "--signal", default="SIGTERM", help="signal name or number (default SIGTERM)")
    p.add_argument("-a", "--all", action="store_true", help="signal every process of the task")
    p.add_argument("--exec-id", default="", help="signal this exec'd process instead of the init")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = subcommand(tasks, "pause", _pause, "freeze every process of tasks")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = subcommand(tasks, "resume", _resume, "thaw paused tasks")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = subcommand(tasks, "ps", _ps, "list the processes of a task")
    p.add_argument("id", metavar="ID")
    p = subcommand(tasks, "rm", _rm, "delete stopped tasks", aliases=["delete", "del", "remove"])
    p.add_argument("-f", "--force", action="store_true", help="kill running tasks first")
    p.add_argument("ids", nargs="+", metavar="ID")
