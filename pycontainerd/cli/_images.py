"""``pyctr images``: list, inspect, tag, label and remove image records.

Listing shows each image's size and platforms the way ctr does, which means
reading its index, manifests and config from the content store; an image
whose content is missing shows ``-`` rather than failing the listing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import platforms
from ..errors import AlreadyExists, ContainerdError
from ..images import Descriptor, Image

if TYPE_CHECKING:
    from ..client import Client
    from ..content import Provider
from ._common import for_each, format_labels, group, human_bytes, parse_labels, print_table, subcommand
from ._distribution import add_archive_commands, add_image_commands
from ._unpack import add_unpack_commands


def image_size(store: Provider, target: Descriptor) -> int:
    """Bytes of everything the image needs on this host: ctr's SIZE column."""
    from ..images import walk

    return walk.image_size(store, target, platforms.default_matcher())


def image_platforms(store: Provider, target: Descriptor) -> list[str]:
    """The platforms an index lists, or the one a single manifest's config names."""
    from ..images import walk

    return [platforms.format(p) for p in walk.image_platforms(store, target)]


def _ls(client: Client, args: argparse.Namespace) -> int:
    images = client.images.list(args.filters)
    if args.quiet:
        sys.stdout.write("".join(f"{image.name}\n" for image in images))
        return 0
    store = client.content
    rows = []
    for image in images:
        try:
            size = human_bytes(image_size(store, image.target))
        except (ContainerdError, ValueError, KeyError, TypeError):
            size = "-"
        try:
            listed = ",".join(image_platforms(store, image.target)) or "-"
        except (ContainerdError, ValueError, KeyError, TypeError):
            listed = "-"
        t = image.target
        rows.append((image.name, t.media_type, t.digest, size, listed, format_labels(image.labels)))
    print_table(("REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"), rows)
    return 0


def image_json(image: Image) -> dict[str, Any]:
    """An image record in the JSON shape of OCI descriptors (camelCase)."""
    t = image.target
    target: dict[str, Any] = {"mediaType": t.media_type, "digest": t.digest, "size": t.size}
    if t.annotations:
        target["annotations"] = dict(t.annotations)
    return {
        "name": image.name,
        "target": target,
        "labels": dict(image.labels),
        "createdAt": image.created_at.isoformat() if image.created_at else None,
        "updatedAt": image.updated_at.isoformat() if image.updated_at else None,
    }


def _inspect(client: Client, args: argparse.Namespace) -> int:
    records = [image_json(client.images.get(name)) for name in args.names]
    json.dump(records[0] if len(records) == 1 else records, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _tag(client: Client, args: argparse.Namespace) -> int:
    """Copy the source record under each new name, holding a lease while doing so, as ctr does."""
    with client.lease() as leased:
        store = leased.images
        source = store.get(args.source)
        for name in args.targets:
            tagged = replace(source, name=name, created_at=None, updated_at=None)
            try:
                store.create(tagged)
            except AlreadyExists:
                if not args.force:
                    raise
                store.delete(name)
                store.create(tagged)
            print(name, flush=True)
    return 0


def _check(client: Client, args: argparse.Namespace) -> int:
    """Whether each image's content for this host (or ``--platform``) is all here; exit 1 if any is not."""
    from ..images import walk

    matcher = platforms.ordered(*map(platforms.parse, args.platform)) if args.platform else platforms.default_matcher()
    store = client.content
    rows, incomplete = [], 0
    for image in client.images.list(args.filters):
        try:
            result = walk.check(store, image.target, matcher)
        except ContainerdError as e:
            rows.append((image.name, image.target.digest, f"error: {e}", "-"))
            incomplete += 1
            continue
        n, have = len(result.required), len(result.present)
        status = "complete" if result.complete else ("incomplete" if have else "missing")
        got = sum(d.size for d in result.present)
        need = sum(d.size for d in result.required)
        rows.append(
            (image.name, image.target.digest, f"{status} ({have}/{n})", f"{human_bytes(got)}/{human_bytes(need)}")
        )
        incomplete += not result.complete
    print_table(("REF", "DIGEST", "STATUS", "SIZE"), rows)
    return 1 if incomplete else 0


def _rm(client: Client, args: argparse.Namespace) -> int:
    """With ``--sync`` only the last delete waits for the collector, as ctr does."""
    store = client.images
    return for_each(args.names, lambda name, last: store.delete(name, sync=args.sync and last))


def _label(client: Client, args: argparse.Namespace) -> int:
    """Set labels (``key=`` clears one; ``--replace-all`` drops the others) and print the result."""
    labels = parse_labels(args.labels)
    if not labels and not args.replace_all:
        print(format_labels(client.images.get(args.name).labels, empty=""))
        return 0
    paths = ["labels"] if args.replace_all else [f"labels.{k}" for k in labels]
    kept = {k: v for k, v in labels.items() if v}
    wanted = Image(name=args.name, target=Descriptor("", "", 0), labels=kept)
    updated = client.images.update(wanted, paths)
    print(format_labels(updated.labels, empty=""))
    return 0


def register(sub: Any) -> None:
    images = group(sub, "images", "manage images", aliases=["image", "i"])
    add_image_commands(images)
    add_archive_commands(images)
    add_unpack_commands(images)
    p = subcommand(images, "ls", _ls, "list images", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image names")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. name==docker.io/library/alpine:latest")
    p = subcommand(images, "inspect", _inspect, "print image records as JSON")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = subcommand(images, "tag", _tag, "give an image more names")
    p.add_argument("--force", action="store_true", help="replace a target name that already exists")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p = subcommand(images, "check", _check, "check that each image's content is all in the store")
    p.add_argument("--platform", action="append", default=[], metavar="OS/ARCH[/VARIANT]", help="check these platforms")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. name==docker.io/library/alpine:latest")
    p = subcommand(images, "rm", _rm, "remove images", aliases=["delete", "del", "remove"])
    p.add_argument("--sync", action="store_true", help="wait until the image's unreferenced content is collected")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = subcommand(images, "label", _label, "set and clear labels of an image")
    p.add_argument("-r", "--replace-all", action="store_true", help="replace all labels with those given")
    p.add_argument("name", metavar="NAME")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")


__all__ = ["image_json", "image_platforms", "image_size", "register"]
