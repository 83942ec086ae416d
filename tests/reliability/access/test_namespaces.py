"""Namespaces isolate every kind of record: the same name in two namespaces is two objects.

One table row per resource kind (images, containers, leases, snapshots,
content).  For each, namespaces ``red`` and ``blue`` create an object of the
same name, labelled with their own namespace.  Then, through the Python
client and Debian's ``ctr`` both: each sees its own (its label), a third
namespace sees neither and cannot delete either, ``ctr`` deleting red's
leaves blue's untouched, and the client deleting blue's leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pycontainerd.client import Client
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.content.helpers import ensure_labels, write_blob
from pycontainerd.errors import NotFound
from pycontainerd.images import Descriptor, Image
from pycontainerd.snapshots.proxy import ProxySnapshotter
from tests.fixtures.daemon import PycontainerdDaemon
from tests.reliability.soak import record

NAMESPACES = ("red", "blue")
OTHER = "green"
HOLD = "hold"  # each namespace's lease keeping its content and snapshots from the collector
SPEC = TypedValue("types.containerd.io/opencontainers/runtime-spec/1/Spec", b'{"ociVersion":"1.0.2"}')
BLOB = b"the same bytes in every namespace\n"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Kind:
    """How to make, read, list and delete one kind of record, with the client and with ctr."""

    kind: str
    name: str
    create: Callable[[Client, str], object]  # (namespace's client, owner label)
    owner: Callable[[Client], str]  # the record's owner label; NotFound if absent
    names: Callable[[Client], set[str]]
    delete: Callable[[Client], None]
    ctr_ls: tuple[str, ...]
    ctr_rm: tuple[str, ...]


def _lease_owner(c: Client, id: str) -> str:
    for lease in c.leases.list([f"id=={id}"]):
        return lease.labels["owner"]
    raise NotFound(f"lease {id}")


def _own_blob(c: Client, owner: str) -> None:
    # Written again, the blob is shared at once from the namespace that has it (without labels).
    write_blob(c.with_lease(HOLD).content, "up", BLOB, BLOB_DIGEST)
    ensure_labels(c.content, BLOB_DIGEST, {"owner": owner})


def _snap(c: Client) -> ProxySnapshotter:
    return c.snapshotter("overlayfs")


KINDS = [
    Kind(
        "images",
        "example.com/team/app:1",
        lambda c, o: c.images.create(
            Image("example.com/team/app:1", Descriptor(MANIFEST, "sha256:" + "ab" * 32, 100), {"owner": o})
        ),
        lambda c: c.images.get("example.com/team/app:1").labels["owner"],
        lambda c: {i.name for i in c.images.list()},
        lambda c: c.images.delete("example.com/team/app:1"),
        ("images", "ls", "-q"),
        ("images", "rm", "example.com/team/app:1"),
    ),
    Kind(
        "containers",
        "web",
        lambda c, o: c.containers.create(Container("web", RuntimeInfo("io.containerd.runc.v2"), SPEC, {"owner": o})),
        lambda c: c.containers.get("web").labels["owner"],
        lambda c: {x.id for x in c.containers.list()},
        lambda c: c.containers.delete("web"),
        ("containers", "ls", "-q"),
        ("containers", "rm", "web"),
    ),
    Kind(
        "leases",
        "job",
        lambda c, o: c.leases.create("job", {"owner": o}),
        lambda c: _lease_owner(c, "job"),
        lambda c: {lease.id for lease in c.leases.list()},
        lambda c: c.leases.delete("job"),
        ("leases", "ls", "-q"),
        ("leases", "rm", "job"),
    ),
    Kind(
        "snapshots",
        "work",
        lambda c, o: _snap(c.with_lease(HOLD)).prepare("work", labels={"owner": o}),
        lambda c: _snap(c).stat("work").labels["owner"],
        lambda c: {i.name for i in _snap(c).walk()},
        lambda c: _snap(c).remove("work"),
        ("snapshots", "ls"),
        ("snapshots", "rm", "work"),
    ),
    Kind(
        "content",
        BLOB_DIGEST,
        _own_blob,
        lambda c: c.content.info(BLOB_DIGEST).labels["owner"],
        lambda c: {i.digest for i in c.content.walk()},
        lambda c: c.content.delete(BLOB_DIGEST),
        ("content", "ls", "-q"),
        ("content", "rm", BLOB_DIGEST),
    ),
]


def _ctr(address: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
    return subprocess.run(
        ["ctr", "-a", address, "-n", namespace, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def _ctr_names(address: str, namespace: str, kind: Kind) -> set[str]:
    r = _ctr(address, namespace, *kind.ctr_ls)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    if kind.kind == "snapshots":  # a table with a header, the key first
        lines = lines[1:]
    return {line.split()[0] for line in lines if line.strip()}


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_the_same_name_in_two_namespaces_is_two_objects(kind: Kind, pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    checks = 0
    with Client(d.address) as client:
        ns = {n: client.with_namespace(n) for n in (*NAMESPACES, OTHER)}
        for n in NAMESPACES:
            ns[n].leases.create(HOLD)
            kind.create(ns[n], n)
        for n in NAMESPACES:
            assert kind.owner(ns[n]) == n
            assert kind.name in kind.names(ns[n])
            assert kind.name in _ctr_names(d.address, n, kind)
            checks += 3
        # A third namespace sees neither and can delete neither.
        assert kind.name not in kind.names(ns[OTHER])
        assert kind.name not in _ctr_names(d.address, OTHER, kind)
        with pytest.raises(NotFound):
            kind.owner(ns[OTHER])
        with pytest.raises(NotFound):
            kind.delete(ns[OTHER])
        r = _ctr(d.address, OTHER, *kind.ctr_rm)
        # ctr images rm only warns, ctr content rm skips a digest it cannot find, printing nothing.
        assert r.returncode != 0 or "not found" in r.stderr or (kind.kind == "content" and not r.stdout), r
        assert [kind.owner(ns[n]) for n in NAMESPACES] == list(NAMESPACES)
        checks += 6
        # ctr deletes red's; blue's is untouched.
        r = _ctr(d.address, "red", *kind.ctr_rm)
        assert r.returncode == 0, r.stderr
        with pytest.raises(NotFound):
            kind.owner(ns["red"])
        assert kind.name not in kind.names(ns["red"]) | _ctr_names(d.address, "red", kind)
        assert kind.owner(ns["blue"]) == "blue"
        assert kind.name in _ctr_names(d.address, "blue", kind)
        checks += 4
        # The client deletes blue's; nothing of that name is left anywhere.
        kind.delete(ns["blue"])
        for n in (*NAMESPACES, OTHER):
            with pytest.raises(NotFound):
                kind.owner(ns[n])
            assert kind.name not in kind.names(ns[n])
            checks += 2
    record(
        area="access",
        tried=f"{kind.kind}: the same name in two namespaces, listed, read and deleted through the client and ctr",
        count=checks,
        held="each namespace saw and deleted only its own; a third saw nothing",
    )
