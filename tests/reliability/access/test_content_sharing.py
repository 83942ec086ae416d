"""Content crosses namespaces only as the sharing policy allows.

A blob stored once in the daemon's backend is visible in a namespace only
when that namespace has a record of it.  Under ``shared`` (containerd's
default) a namespace gets the record by opening a writer for a digest the
store holds — the ingest completes at once as "already exists" — or by a
pull, which then fetches no blob again.  Under ``isolated`` it must write the
bytes itself (checked against the digest like any other commit), and a pull
into a second namespace fetches every blob again; only namespaces labelled
``containerd.io/namespace.shareable=true`` give their blobs away.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.content.helpers import read_blob, write_blob
from pycontainerd.errors import AlreadyExists, FailedPrecondition, NotFound
from pycontainerd.leases import Resource
from tests.distribution.support import seed
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image
from tests.reliability.soak import record

SHAREABLE = "containerd.io/namespace.shareable"


def _config(policy: str) -> str:
    return f'version = 2\n[plugins."io.containerd.metadata.v1.sqlite"]\ncontent_sharing_policy = "{policy}"\n'


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _visible(c: Client, digest: str) -> bool:
    try:
        c.content.info(digest)
    except NotFound:
        assert digest not in {i.digest for i in c.content.walk()}
        with pytest.raises(NotFound):
            read_blob(c.content, digest)
        return False
    assert digest in {i.digest for i in c.content.walk()}
    return True


def _ctr(address: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
    return subprocess.run(
        ["ctr", "-a", address, *args], check=False, input=stdin, capture_output=True, timeout=60, env=env
    )


@pytest.mark.parametrize("policy", ["shared", "isolated"])
def test_a_blob_is_visible_only_where_committed_or_shared(
    policy: str, pycontainerd_daemon_factory: DaemonFactory
) -> None:
    d = pycontainerd_daemon_factory(config=_config(policy))
    data = os.urandom(3000) + policy.encode()
    digest = _digest(data)
    checks = 0
    with Client(d.address) as client, contextlib.ExitStack() as held:
        # Each namespace works under a lease, so the collector keeps what it records.
        alpha, beta, gamma, delta, base = (
            held.enter_context(client.with_namespace(n).lease()) for n in ("alpha", "beta", "gamma", "delta", "base")
        )
        assert write_blob(alpha.content, "upload", data, expected=digest) == digest
        assert _visible(alpha, digest)
        assert not _visible(beta, digest)  # stored in the daemon, but beta never committed it
        checks += 2

        if policy == "shared":
            # Opening a writer for the digest completes at once and gives beta its record.
            with pytest.raises(AlreadyExists):
                beta.content.writer("again", total=len(data), expected=digest)
            assert _visible(beta, digest) and read_blob(beta.content, digest) == data
            # A writer announcing the wrong size is not handed the blob.
            w = gamma.content.writer("wrong-size", total=len(data) + 1, expected=digest)
            w.close()
            assert not _visible(gamma, digest)
            checks += 3
        else:
            # Beta must send the bytes; wrong bytes are refused and leave it blind.
            w = beta.content.writer("again", total=len(data), expected=digest)
            assert w.status().offset == 0 and w.status().expected == digest
            w.write(b"x" * len(data))
            with pytest.raises(FailedPrecondition, match="digest"):
                w.commit(size=len(data))
            w.close()
            assert not _visible(beta, digest)
            assert write_blob(beta.content, "again", data, expected=digest) == digest
            assert _visible(beta, digest) and read_blob(beta.content, digest) == data
            checks += 3

        # ctr's ingest (client-side writes through the Content API) obeys the same rule.
        delta.leases.add_resource(delta.lease_id or "", Resource(digest, "content"))  # kept once ctr is done
        r = _ctr(d.address, "-n", "delta", "content", "ingest", "--expected-digest", digest, "in", stdin=data)
        assert r.returncode == 0, r.stderr
        assert _visible(delta, digest)
        assert _ctr(d.address, "-n", "delta", "content", "get", digest).stdout == data
        assert _ctr(d.address, "-n", "epsilon", "content", "get", digest).returncode != 0
        checks += 3

        # Deleting in one namespace touches no other record.
        alpha.content.delete(digest)
        assert not _visible(alpha, digest)
        assert _visible(beta, digest) and read_blob(beta.content, digest) == data
        checks += 2

        if policy == "isolated":
            # A namespace labelled shareable gives its blobs away, as under "shared"; others still do not.
            shared_data = os.urandom(2000)
            shared_digest = _digest(shared_data)
            client.namespaces.set_label("base", SHAREABLE, "true")
            write_blob(base.content, "up", shared_data, expected=shared_digest)
            with pytest.raises(AlreadyExists):
                gamma.content.writer("from-base", total=len(shared_data), expected=shared_digest)
            assert _visible(gamma, shared_digest) and read_blob(gamma.content, shared_digest) == shared_data
            w = gamma.content.writer("from-beta", total=len(data), expected=digest)  # beta is not shareable
            w.close()
            assert not _visible(gamma, digest)
            checks += 2
    record(
        area="access",
        tried=f"a blob read, listed and written again from other namespaces ({policy} policy)",
        count=checks,
        held="visible only where committed, fetched or shared by the policy",
    )


@pytest.mark.parametrize("policy", ["shared", "isolated"])
def test_a_pull_into_a_second_namespace_fetches_by_policy(
    policy: str, pycontainerd_daemon_factory: DaemonFactory, registry: Registry, tmp_path: Path
) -> None:
    d = pycontainerd_daemon_factory(config=_config(policy))
    img = image([busybox_files(), {"etc/motd": policy.encode()}])
    seed(registry, img, "team/app:1", tmp_path)
    proxy = FaultyProxy(registry.host)  # counts what the daemon asks the registry for
    try:
        ref = f"{proxy.host}/team/app:1"
        blobs = [dg for dg in img.blobs if dg != img.digest]

        def fetched() -> list[str]:
            got = [p.rsplit("/", 1)[-1] for m, p, _ in proxy.faults.seen if m == "GET" and "/blobs/" in p]
            proxy.faults.seen.clear()
            return got

        with Client(d.address) as client:
            one, two = client.with_namespace("one"), client.with_namespace("two")
            one.pull(ref)
            assert sorted(fetched()) == sorted(blobs)
            assert not any(_visible(two, dg) for dg in img.blobs)
            two.pull(ref)
            again = fetched()
            if policy == "shared":
                assert again == []
            else:
                assert sorted(again) == sorted(blobs)
            assert all(_visible(two, dg) for dg in img.blobs)
            assert two.images.get(ref).target.digest == img.digest
    finally:
        proxy.close()
    record(
        area="access",
        tried=f"the same image pulled into two namespaces ({policy} policy)",
        count=2,
        held="shared: no blob fetched twice; isolated: every blob fetched again",
    )
