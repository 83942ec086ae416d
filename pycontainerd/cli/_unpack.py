"""``pyctr images unpack / mount / unmount``: images as filesystems.

``mount`` unpacks what is missing, then mounts a snapshot on top of the
image's layers at TARGET; the snapshot's key is TARGET itself, as with
``ctr images mount``, so ``unmount --rm`` knows which one to remove.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from .. import platforms
from ..errors import InvalidArgument
from ..reference import parse_normalized
from ._common import gc_root_label, report, subcommand

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["add_unpack_commands"]


def _platform(args: argparse.Namespace) -> platforms.Platform | None:
    return platforms.parse(args.platform) if args.platform else None


def _name(ref: str) -> str:
    try:
        return str(parse_normalized(ref))
    except InvalidArgument:
        return ref


def _unpack(client: Client, args: argparse.Namespace) -> int:
    result = client.unpack(_name(args.ref), platform=_platform(args), snapshotter=args.snapshotter)
    print(f"{result.chain_id} ({result.applied} of {result.layers} layers unpacked now)")
    return 0


def _mount(client: Client, args: argparse.Namespace) -> int:
    from ..mount import mount_all
    from ..snapshots import exists

    target = os.path.abspath(args.target)
    if not os.path.isdir(target):
        raise InvalidArgument(f"mount target {target}: not a directory")
    result = client.unpack(_name(args.ref), platform=_platform(args), snapshotter=args.snapshotter)
    sn = client.snapshotter(args.snapshotter)
    if exists(sn, target):
        raise InvalidArgument(f"{target}: a snapshot for this target exists already; unmount it with --rm first")
    labels = gc_root_label()
    create = sn.prepare if args.rw else sn.view
    mounts = create(target, result.chain_id, labels)
    try:
        mount_all(mounts, target)
    except BaseException:
        sn.remove(target)
        raise
    print(target)
    return 0


def _unmount(client: Client, args: argparse.Namespace) -> int:
    from ..mount import is_mountpoint, unmount_all

    target = os.path.abspath(args.target)
    if is_mountpoint(target):
        unmount_all(target)
    elif not args.rm:
        report(f"{target}: not mounted")
        return 1
    if args.rm:
        client.snapshotter(args.snapshotter).remove(target)
    return 0


def add_unpack_commands(images: Any) -> None:
    p = subcommand(images, "unpack", _unpack, "unpack an image into the snapshotter")
    p.add_argument("--platform", default="", metavar="OS/ARCH[/VARIANT]", help="the platform (default: this host)")
    p.add_argument("ref", metavar="REF")
    p = subcommand(images, "mount", _mount, "mount an image's filesystem on a directory (read-only unless --rw)")
    p.add_argument("--rw", action="store_true", help="a writable snapshot instead of a read-only view")
    p.add_argument("--platform", default="", metavar="OS/ARCH[/VARIANT]", help="the platform (default: this host)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("target", metavar="TARGET")
    p = subcommand(images, "unmount", _unmount, "unmount an image mounted with 'images mount'")
    p.add_argument("--rm", action="store_true", help="also remove the snapshot (changes made with --rw are lost)")
    p.add_argument("target", metavar="TARGET")
