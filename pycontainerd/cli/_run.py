"""``pyctr run`` and ``pyctr containers create``: a container from an image, with the spec made here.

As containerd's client does, the spec is generated on the client side:
containerd's defaults, then the image's config (entrypoint, command, env,
working directory, user looked up in the image's own /etc/passwd, stop
signal), then the flags.  The container's snapshot is prepared on the
image's top layer under a lease, so nothing is collected half-made.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import stat
from typing import Any

from .. import oci
from ..api.runtime.runc.options import oci_pb2 as runc_pb
from ..client import Client, readers_held
from ..containers import Container, RuntimeInfo, TypedValue
from ..errors import AlreadyExists, InvalidArgument, NotFound, quote
from ..images.walk import config_for
from ..mount import mounted
from ..oci import IDMapping
from ..platforms import default as default_platform
from ..platforms import ordered
from ..snapshots import Snapshotter
from ._attach import run_attached
from ._common import parse_labels
from ._containers import delete_container
from ._tasks import delete_task, detached_io, new_task

__all__ = ["add_container_flags", "create_container", "register_run"]

RUNTIME = "io.containerd.runc.v2"
RUNC_OPTIONS_URL = "containerd.runc.v1.Options"


def add_container_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tty", action="store_true", help="give the container a terminal")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable")
    p.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a mount, e.g. type=bind,src=/srv,dst=/data,options=rbind:ro (or type=tmpfs,dst=/tmp)",
    )
    p.add_argument("--net-host", action="store_true", help="share the host's network namespace")
    p.add_argument(
        "--with-ns",
        action="append",
        default=[],
        metavar="TYPE:PATH",
        help="join an existing namespace, e.g. network:/run/netns/blue",
    )
    p.add_argument("--memory-limit", type=int, default=0, metavar="BYTES", help="memory limit in bytes")
    p.add_argument("--cpus", type=float, default=0.0, help="CPUs the container may use, e.g. 0.5")
    p.add_argument("--pids-limit", type=int, default=0, help="maximum number of processes")
    p.add_argument("-u", "--user", default="", help="user[:group] or uid[:gid], looked up in the image")
    p.add_argument("--cwd", default="", help="working directory (default: the image's)")
    p.add_argument("--hostname", default="", help="the container's host name")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--privileged", action="store_true", help="all capabilities and devices")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label on the container")
    p.add_argument("--runtime", default=RUNTIME, help=f"runtime name (default {RUNTIME})")
    p.add_argument("--runc-binary", default="", help="OCI runtime binary for runc's runtime, e.g. crun")
    p.add_argument("--uidmap", default="", metavar="C:H:N", help="run in a user namespace: container uid C is host H")
    p.add_argument("--gidmap", default="", metavar="C:H:N", help="the user namespace's gid map (default: as --uidmap)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def create_container(client: Client, args: argparse.Namespace) -> Container:
    """The container record of ``args.id`` from ``args.image``, with a new snapshot of it."""
    try:
        image = client.images.get(args.image)
    except NotFound:
        raise NotFound(f"image {quote(args.image)} not found: pull it first") from None
    snapshotter = args.snapshotter or client.default_snapshotter()
    config = config_for(client.content, image.target, ordered(default_platform()))
    raw_config = config.raw.get("config")
    image_config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    command = list(args.command)
    if not command and not image_config.get("Entrypoint") and not image_config.get("Cmd"):
        raise InvalidArgument(f"image {quote(args.image)} has no command: give one after the container id")
    unpacked = client.unpack(image, snapshotter=snapshotter)
    uidmap, gidmap = _id_maps(args)
    with client.lease() as leased:
        sn = leased.snapshotter(snapshotter)
        parent = unpacked.chain_id
        if uidmap:
            parent = remapped_parent(sn, parent, uidmap, gidmap)
        mounts = sn.prepare(args.id, parent)
        try:
            with mounted(mounts) as rootfs:
                opts: list[oci.SpecOpt] = [
                    oci.with_image_config(image_config, args=command or None, rootfs=rootfs),
                ]
                if args.user:
                    opts += [oci.with_user(args.user, rootfs=rootfs)]
                if uidmap:
                    opts += [oci.with_user_namespace([uidmap], [gidmap])]
                spec = oci.generate(leased.namespace, args.id, *opts, *_flag_opts(args))
            stop = oci.image_stop_signal(image_config)
            labels = {oci.STOP_SIGNAL_LABEL: signal.Signals(stop).name, **parse_labels(args.label)}
            options = None
            if args.runc_binary:
                raw = runc_pb.Options(binary_name=args.runc_binary).SerializeToString()
                options = TypedValue(RUNC_OPTIONS_URL, raw)
            return leased.containers.create(
                Container(
                    id=args.id,
                    runtime=RuntimeInfo(args.runtime, options),
                    spec=TypedValue(oci.SPEC_TYPE_URL, oci.spec_to_json(spec)),
                    labels=labels,
                    image=image.name,
                    snapshotter=snapshotter,
                    snapshot_key=args.id,
                )
            )
        except BaseException:
            sn.remove(args.id)
            raise


def _id_map(text: str, flag: str) -> IDMapping:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[2]) == 0:
        raise InvalidArgument(f"{flag} {text!r}: expected container-id:host-id:length")
    return IDMapping(int(parts[0]), int(parts[1]), int(parts[2]))


def _id_maps(args: argparse.Namespace) -> tuple[IDMapping | None, IDMapping]:
    """The user namespace's maps; the group map defaults to the user map."""
    if not args.uidmap:
        if args.gidmap:
            raise InvalidArgument("--gidmap needs --uidmap")
        return None, IDMapping(0, 0, 0)
    uidmap = _id_map(args.uidmap, "--uidmap")
    return uidmap, _id_map(args.gidmap, "--gidmap") if args.gidmap else uidmap


def remapped_parent(sn: Snapshotter, parent: str, uidmap: IDMapping, gidmap: IDMapping) -> str:
    """A committed copy of ``parent`` whose files belong to the user namespace's ids, shared while in use.

    Named ``<parent>-<host uid>-<host gid>`` as ctr names its own, so the two share it.
    """
    key = f"{parent}-{uidmap.host_id}-{gidmap.host_id}"
    try:
        sn.stat(key)
        return key
    except NotFound:
        pass
    work = f"{key}-remap-{secrets.token_hex(6)}"
    mounts = sn.prepare(work, parent)
    try:
        with mounted(mounts) as root:
            shift_ids(str(root), uidmap, gidmap)
        sn.commit(key, work)
    except AlreadyExists:  # another client made it meanwhile
        sn.remove(work)
    except BaseException:
        sn.remove(work)
        raise
    return key


def shift_ids(root: str, uidmap: IDMapping, gidmap: IDMapping) -> None:
    """Give every entry under ``root`` the host ids its owner has inside the namespace."""

    def shifted(id_: int, m: IDMapping) -> int:
        return id_ - m.container_id + m.host_id if m.container_id <= id_ < m.container_id + m.size else id_

    def one(path: str) -> None:
        st = os.lstat(path)
        os.lchown(path, shifted(st.st_uid, uidmap), shifted(st.st_gid, gidmap))
        if st.st_mode & 0o6000 and not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))  # chown clears set-id bits

    one(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            one(os.path.join(dirpath, name))


def _flag_opts(args: argparse.Namespace) -> list[oci.SpecOpt]:
    opts: list[oci.SpecOpt] = []
    if args.tty:
        opts.append(oci.with_tty())
    if args.env:
        opts.append(oci.with_env(args.env))
    if args.mount:
        opts.append(oci.with_mounts([oci.parse_mount_flag(m) for m in args.mount]))
    if args.net_host:
        opts.append(oci.with_host_namespace("network"))
    for item in args.with_ns:
        kind, sep, path = item.partition(":")
        if not sep or not path:
            raise InvalidArgument(f"--with-ns {item!r}: expected TYPE:PATH")
        opts.append(oci.with_linux_namespace(kind, path))
    if args.memory_limit:
        opts.append(oci.with_memory_limit(args.memory_limit))
    if args.cpus:
        opts.append(oci.with_cpus(args.cpus))
    if args.pids_limit:
        opts.append(oci.with_pids_limit(args.pids_limit))
    if args.cwd:
        opts.append(oci.with_process_cwd(args.cwd))
    if args.hostname:
        opts.append(oci.with_hostname(args.hostname))
    if args.read_only:
        opts.append(oci.with_readonly_rootfs())
    if args.privileged:
        opts.append(oci.with_privileged())
    return opts


def _create(client: Client, args: argparse.Namespace) -> int:
    print(create_container(client, args).id)
    return 0


def _run(client: Client, args: argparse.Namespace) -> int:
    """Create the container and its task, run it attached (or detached with -d); exit with its status."""
    create_container(client, args)
    try:
        if args.detach:
            io = detached_io(args.id, args.tty, args.null_io)
            with readers_held(io):
                new_task(client, args.id, io)
            client.tasks.start(args.id)
            return 0
        exited = run_attached(client, args.id, lambda io: new_task(client, args.id, io), terminal=args.tty)
        return exited.status
    finally:
        if args.rm and not args.detach:
            try:
                delete_task(client, args.id, force=True)
            except NotFound:
                pass
            delete_container(client, args.id)


def register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a container from an image", description="run a container from an image")
    p.set_defaults(func=_run)
    p.add_argument("--rm", action="store_true", help="delete the container and its snapshot when it exits")
    p.add_argument("-d", "--detach", action="store_true", help="start it and return (attach later to see it)")
    p.add_argument("--null-io", action="store_true", help="with -d: its streams go to /dev/null")
    add_container_flags(p)


def register_create(containers: Any) -> None:
    p = containers.add_parser("create", help="create a container from an image (no task)")
    p.set_defaults(func=_create)
    add_container_flags(p)
