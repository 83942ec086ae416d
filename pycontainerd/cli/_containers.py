"""``pyctr containers``: list, inspect, label and delete container records."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import replace
from typing import Any

from ..client import Client
from ..containers import Container, TypedValue
from ..errors import NotFound
from ._common import for_each, group, parse_labels, print_table, subcommand

__all__ = ["container_json", "register"]

_SPEC_SUFFIX = "/opencontainers/runtime-spec/1/Spec"


def _typed_json(v: TypedValue) -> Any:
    """JSON values (the OCI spec) are shown as JSON, protobuf values as their type and bytes."""
    if v.type_url.endswith(_SPEC_SUFFIX) or v.type_url.startswith("types.containerd.io/"):
        try:
            return json.loads(v.value)
        except ValueError:
            pass
    return {"type_url": v.type_url, "value": base64.b64encode(v.value).decode()}


def container_json(c: Container) -> dict[str, Any]:
    """A container as ``ctr containers info`` shows it: spec decoded, times in RFC 3339."""
    out: dict[str, Any] = {"ID": c.id, "Labels": dict(sorted(c.labels.items())) or None, "Image": c.image}
    runtime: dict[str, Any] = {"Name": c.runtime.name}
    if c.runtime.options is not None:
        runtime["Options"] = _typed_json(c.runtime.options)
    out["Runtime"] = runtime
    out["SnapshotKey"] = c.snapshot_key
    out["Snapshotter"] = c.snapshotter
    for key, when in (("CreatedAt", c.created_at), ("UpdatedAt", c.updated_at)):
        out[key] = when.isoformat().replace("+00:00", "Z") if when else None
    out["Extensions"] = {k: _typed_json(v) for k, v in sorted(c.extensions.items())} or None
    out["Spec"] = _typed_json(c.spec) if c.spec is not None else None
    return out


def _ls(client: Client, args: argparse.Namespace) -> int:
    found = client.containers.list(args.filters)
    if args.quiet:
        sys.stdout.write("".join(f"{c.id}\n" for c in found))
        return 0
    print_table(("CONTAINER", "IMAGE", "RUNTIME"), [(c.id, c.image or "-", c.runtime.name) for c in found])
    return 0


def _info(client: Client, args: argparse.Namespace) -> int:
    c = client.containers.get(args.id)
    if args.spec:
        print(json.dumps(_typed_json(c.spec) if c.spec else None, indent=4))
    else:
        print(json.dumps(container_json(c), indent=4))
    return 0


def _label(client: Client, args: argparse.Namespace) -> int:
    """``KEY=VALUE`` sets a label, ``KEY=`` removes it; prints the labels that result."""
    labels = parse_labels(args.labels)
    current = client.containers.get(args.id)
    updated = client.containers.update(replace(current, labels=labels), [f"labels.{k}" for k in labels])
    print(",".join(f"{k}={v}" for k, v in sorted(updated.labels.items())))
    return 0


def delete_container(client: Client, id: str, keep_snapshot: bool = False) -> None:
    """Delete the record, then its snapshot (as ``ctr containers rm`` does unless told to keep it)."""
    c = client.containers.get(id)
    client.containers.delete(id)
    if keep_snapshot or not c.snapshot_key:
        return
    try:
        client.snapshotter(c.snapshotter).remove(c.snapshot_key)
    except NotFound:
        pass


def _rm(client: Client, args: argparse.Namespace) -> int:
    return for_each(args.ids, lambda id, last: delete_container(client, id, args.keep_snapshot))


def register(sub: Any) -> None:
    containers = group(sub, "containers", "manage containers", aliases=["c", "container"])
    from ._run import register_create  # _run builds on this module's delete_container

    register_create(containers)
    p = subcommand(containers, "ls", _ls, "list containers", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the container ids")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. image==docker.io/library/busybox:latest")
    p = subcommand(containers, "info", _info, "show a container's record as JSON")
    p.add_argument("--spec", action="store_true", help="show only the OCI runtime spec")
    p.add_argument("id", metavar="ID")
    p = subcommand(containers, "label", _label, "set (KEY=VALUE) or remove (KEY=) labels of a container")
    p.add_argument("id", metavar="ID")
    p.add_argument("labels", nargs="+", metavar="KEY=VALUE")
    p = subcommand(containers, "rm", _rm, "delete containers and their snapshots", aliases=["delete", "del", "remove"])
    p.add_argument("--keep-snapshot", action="store_true", help="leave the container's snapshot in place")
    p.add_argument("ids", nargs="+", metavar="ID")
