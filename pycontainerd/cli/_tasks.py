"""``pyctr tasks``: the running side of containers — list, start, exec, signal, pause, inspect, delete."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.json_format import MessageToDict

from ..api import typeurl
from ..api.cgroups.v1 import metrics_pb2 as cg1
from ..api.cgroups.v2 import metrics_pb2 as cg2
from ..client import Client, new_fifo_set, readers_held, remove_fifos_of
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..events.exchange import decode
from ..tasks import IO, NO_IO, Status
from ._attach import attach, run_attached
from ._common import for_each, group, print_table, subcommand

__all__ = ["delete_task", "detached_io", "new_task", "parse_signal", "register"]


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
    terminal = bool(_spec_process(client, args.id).get("terminal"))
    if args.detach:
        io = detached_io(args.id, terminal, args.null_io)
        with readers_held(io):
            new_task(client, args.id, io)
        client.tasks.start(args.id)
        return 0
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
        io = detached_io(args.exec_id, args.tty, args.null_io)
        with readers_held(io):
            tasks.exec(args.id, args.exec_id, process, io)
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


def detached_io(id: str, terminal: bool, null: bool) -> IO:
    """A detached process's streams: FIFOs to attach to later (as ``ctr``'s), or nothing with ``null``.

    As with ``ctr``, output nobody reads fills the FIFO's buffer and then
    blocks the process until somebody attaches: ``--null-io`` is for chatty ones.
    """
    return NO_IO if null else new_fifo_set(id, terminal=terminal).io


def _attach(client: Client, args: argparse.Namespace) -> int:
    return attach(client, args.id, args.exec_id).status


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


def metric_rows(data: any_pb2.Any) -> list[tuple[str, object]]:
    """The headline statistics of cgroup v1 or v2 metrics, as (name, value) rows."""
    name = typeurl.name_of(data)
    if name == cg1.Metrics.DESCRIPTOR.full_name:
        m1 = typeurl.unpack(data, cg1.Metrics)
        return [
            ("memory.usage_in_bytes", m1.memory.usage.usage),
            ("memory.limit_in_bytes", m1.memory.usage.limit),
            ("memory.max_usage_in_bytes", m1.memory.usage.max),
            ("memory.failcnt", m1.memory.usage.failcnt),
            ("memory.stat.rss", m1.memory.rss),
            ("memory.stat.cache", m1.memory.cache),
            ("memory.oom_kill", m1.memory_oom_control.oom_kill),
            ("cpuacct.usage", m1.cpu.usage.total),
            ("cpuacct.usage_percpu", list(m1.cpu.usage.per_cpu)),
            ("pids.current", m1.pids.current),
            ("pids.limit", m1.pids.limit),
        ]
    if name == cg2.Metrics.DESCRIPTOR.full_name:
        m2 = typeurl.unpack(data, cg2.Metrics)
        return [
            ("memory.current", m2.memory.usage),
            ("memory.max", m2.memory.usage_limit),
            ("memory.events.oom_kill", m2.memory_events.oom_kill),
            ("cpu.usage_usec", m2.cpu.usage_usec),
            ("pids.current", m2.pids.current),
            ("pids.limit", m2.pids.limit),
        ]
    raise InvalidArgument(f"metrics of an unknown type: {name or '(none)'}")


def _metrics(client: Client, args: argparse.Namespace) -> int:
    found = client.tasks.metrics([args.id])
    if not found:
        raise NotFound(f"task {args.id}: no metrics")
    _, data = found[0]
    if args.format == "json":
        msg = decode(data)
        if msg is None:
            raise InvalidArgument(f"metrics of an unknown type: {data.type_url}")
        print(json.dumps(MessageToDict(msg, preserving_proto_field_name=True), indent=4, sort_keys=True))
        return 0
    print_table(("METRIC", "VALUE"), metric_rows(data))
    return 0


def delete_task(client: Client, id: str, force: bool) -> None:
    """Delete a task; with ``force`` a running one is killed (SIGKILL) and waited for first."""
    tasks = client.tasks
    if force:
        task = tasks.get(id)
        if task.status in (Status.RUNNING, Status.PAUSED, Status.CREATED):
            tasks.kill(id, signal.SIGKILL, all=True)
            tasks.wait(id)
    try:
        io = tasks.get(id).io
    except NotFound:
        io = NO_IO
    tasks.delete(id)
    remove_fifos_of(io)


def _rm(client: Client, args: argparse.Namespace) -> int:
    return for_each(args.ids, lambda id, last: delete_task(client, id, args.force))


def register(sub: Any) -> None:
    tasks = group(sub, "tasks", "manage tasks (the running side of containers)", aliases=["t", "task"])
    p = subcommand(tasks, "ls", _ls, "list tasks", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the task ids")
    p = subcommand(tasks, "start", _start, "create and start a container's task, attached to this terminal")
    p.add_argument("-d", "--detach", action="store_true", help="start it and return (attach later to see it)")
    p.add_argument("--null-io", action="store_true", help="with -d: its streams go to /dev/null")
    p.add_argument("id", metavar="ID")
    p = subcommand(tasks, "exec", _exec, "run another process in a running task")
    p.add_argument("--exec-id", required=True, help="the new process's id, unique in the task")
    p.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    p.add_argument("-d", "--detach", action="store_true", help="start it and return")
    p.add_argument("--null-io", action="store_true", help="with -d: its streams go to /dev/null")
    p.add_argument("--cwd", default="", help="working directory (default: the container's)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="add an environment variable")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p = subcommand(tasks, "attach", _attach, "join a running process's streams (Ctrl-C goes to the process)")
    p.add_argument("--exec-id", default="", help="an exec'd process instead of the init")
    p.add_argument("id", metavar="ID")
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
    p = subcommand(tasks, "metrics", _metrics, "show a task's cgroup statistics", aliases=["metric"])
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("id", metavar="ID")
    p = subcommand(tasks, "rm", _rm, "delete stopped tasks", aliases=["delete", "del", "remove"])
    p.add_argument("-f", "--force", action="store_true", help="kill running tasks first")
    p.add_argument("ids", nargs="+", metavar="ID")
