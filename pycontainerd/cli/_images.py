"""``pyctr images``: list, inspect, tag, label and remove image records.

Listing shows each image's size and platforms the way ctr does, which means
reading its index, manifests and config from the content store; an image
whose content is missing shows ``-`` rather than failing the listing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from ..client import Client
from ..content import Provider, read_blob
from ..errors import AlreadyExists, ContainerdError
from ..images import Descriptor, Image
from ._common import for_each, format_labels, group, human_bytes, parse_labels, print_table, subcommand
from ._distribution import add_archive_commands, add_image_commands

INDEXES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
MANIFESTS = frozenset(
    {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}
)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le"}


def _host_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    return "linux", _ARCH.get(machine, machine)


def _descriptor(d: Mapping[str, Any]) -> Descriptor:
    return Descriptor(media_type=d.get("mediaType", ""), digest=d["digest"], size=int(d.get("size", 0)))


def _format_platform(p: Mapping[str, Any]) -> str:
    return "/".join(x for x in (p.get("os", ""), p.get("architecture", ""), p.get("variant", "")) if x)


def _walk(store: Provider, desc: Descriptor, host: tuple[str, str]) -> Iterator[Descriptor]:
    """``desc`` and, for indexes and manifests, the children the host would use."""
    yield desc
    if desc.media_type in INDEXES:
        for m in json.loads(read_blob(store, desc.digest)).get("manifests", []):
            p = m.get("platform")
            if p is None or (p.get("os"), p.get("architecture")) == host:
                yield from _walk(store, _descriptor(m), host)
    elif desc.media_type in MANIFESTS:
        manifest = json.loads(read_blob(store, desc.digest))
        yield _descriptor(manifest["config"])
        yield from (_descriptor(layer) for layer in manifest.get("layers", []))


def image_size(store: Provider, target: Descriptor) -> int:
    """Bytes of everything the image needs on this host: ctr's SIZE column."""
    return sum(d.size for d in _walk(store, target, _host_platform()))


def image_platforms(store: Provider, target: Descriptor) -> list[str]:
    """The platforms an index lists, or the one a single manifest's config names."""
    if target.media_type in INDEXES:
        index = json.loads(read_blob(store, target.digest))
        found = {_format_platform(m["platform"]) for m in index.get("manifests", []) if m.get("platform")}
        return sorted(found)
    if target.media_type in MANIFESTS:
        config = json.loads(read_blob(store, json.loads(read_blob(store, target.digest))["config"]["digest"]))
        return [_format_platform(config)]
    return []


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
            platforms = ",".join(image_platforms(store, image.target)) or "-"
        except (ContainerdError, ValueError, KeyError, TypeError):
            platforms = "-"
        t = image.target
        rows.append((image.name, t.media_type, t.digest, size, platforms, format_labels(image.labels)))
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
    p = subcommand(images, "ls", _ls, "list images", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image names")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. name==docker.io/library/alpine:latest")
    p = subcommand(images, "inspect", _inspect, "print image records as JSON")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = subcommand(images, "tag", _tag, "give an image more names")
    p.add_argument("--force", action="store_true", help="replace a target name that already exists")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p = subcommand(images, "rm", _rm, "remove images", aliases=["delete", "del", "remove"])
    p.add_argument("--sync", action="store_true", help="wait until the image's unreferenced content is collected")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = subcommand(images, "label", _label, "set and clear labels of an image")
    p.add_argument("-r", "--replace-all", action="store_true", help="replace all labels with those given")
    p.add_argument("name", metavar="NAME")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")


__all__ = ["image_json", "image_platforms", "image_size", "register"]
