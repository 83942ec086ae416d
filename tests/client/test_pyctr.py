"""pyctr as a user runs it: a subprocess against a running daemon.

Besides what each command prints, every failure must be exactly one line
``pyctr: ...`` on stderr with a non-zero exit status and no traceback.

Every command is checked against real containerd, the reference; the code
under the commands is the client, which ``test_client`` and ``test_content``
run against both daemons, so pycontainerd gets one end-to-end smoke test here
rather than the whole (subprocess-heavy, slow) module twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pycontainerd.client import Client
from tests.fixtures.containerd import Containerd

MiB = 1 << 20
Run = Callable[..., subprocess.CompletedProcess[bytes]]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def command(address: str, *args: str, namespace: str = "default") -> list[str]:
    return [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", address, "-n", namespace, *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYCONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


@pytest.fixture
def address(containerd: Containerd) -> str:
    """This module's daemon is real containerd (overrides the parametrized one)."""
    return containerd.address


def runner(address: str) -> Run:
    """Run pyctr against the test's daemon; returns the finished process."""

    def run(*args: str, input: bytes = b"", namespace: str = "default") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            command(address, *args, namespace=namespace),
            input=input,
            capture_output=True,
            env=environment(),
            timeout=60,
            check=False,
        )

    return run


@pytest.fixture
def pyctr(address: str) -> Run:
    return runner(address)


def ok(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def fails(proc: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    """Assert the one-line failure contract and return the message."""
    err = proc.stderr.decode()
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyctr: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def rows(out: str) -> list[list[str]]:
    """Plain table output (stdout is a pipe) split into cells, header first."""
    return [line.split() for line in out.splitlines()]


# -- system ---------------------------------------------------------------------------


@pytest.mark.containerd
def test_version_and_info(pyctr: Run, client: Client) -> None:
    version, _ = client.version()
    out = ok(pyctr("version"))
    assert "Client:" in out
    assert version in out
    assert client.server() in out
    out = ok(pyctr("info"))
    assert client.server() in out
    assert "Plugins: " in out
    assert "io.containerd.content.v1" in out


@pytest.mark.containerd
def test_plugins(pyctr: Run) -> None:
    table = rows(ok(pyctr("plugins", "ls")))
    assert table[0] == ["TYPE", "ID", "PLATFORMS", "STATUS"]
    assert ["io.containerd.grpc.v1", "content", "-", "ok"] in table
    assert ok(pyctr("plugins", "ls", "-q", "type==io.containerd.content.v1")).split() == ["content"]
    detailed = ok(pyctr("plugins", "ls", "-d", "type==io.containerd.content.v1"))
    assert "Type:" in detailed
    assert "ID:            content" in detailed


# -- namespaces ------------------------------------------------------------------------


@pytest.mark.containerd
def test_namespaces(pyctr: Run) -> None:
    ok(pyctr("namespaces", "create", "team-a", "owner=alice", "flag"))
    assert "team-a" in ok(pyctr("ns", "ls", "-q")).split()
    assert ["team-a", "flag=true,owner=alice"] in rows(ok(pyctr("ns", "ls")))
    assert ok(pyctr("ns", "label", "team-a", "owner=", "tier=gold")).strip() == "flag=true,tier=gold"
    fails(pyctr("ns", "create", "team-a"), "already exists")
    assert ok(pyctr("ns", "rm", "team-a")).split() == ["team-a"]
    assert "team-a" not in ok(pyctr("ns", "ls", "-q")).split()


@pytest.mark.containerd
def test_namespace_rm_reports_each_failure_on_one_line(pyctr: Run) -> None:
    ok(pyctr("ns", "create", "keep"))
    proc = pyctr("ns", "rm", "missing", "keep")
    assert proc.stdout.decode().split() == ["keep"]
    fails(proc, "missing", "not found")


# -- content ----------------------------------------------------------------------------


@pytest.mark.containerd
def test_content_round_trip(pyctr: Run) -> None:
    data = os.urandom(3 * MiB + 17)
    root = "--label=containerd.io/gc.root=now"
    digest = ok(pyctr("content", "ingest", "blob-1", root, "--expected-digest", sha(data), input=data)).strip()
    assert digest == sha(data)
    assert ok(pyctr("content", "ls", "-q")).split() == [digest]
    table = rows(ok(pyctr("content", "ls")))
    assert table[0] == ["DIGEST", "SIZE", "AGE", "LABELS"]
    assert table[1][:2] == [digest, "3.146MB"]
    assert pyctr("content", "get", digest).stdout == data
    labels = ok(pyctr("content", "label", digest, "a=1", "b=2")).strip()
    assert labels == "a=1,b=2,containerd.io/gc.root=now"
    assert ok(pyctr("content", "label", digest, "a=")).strip() == "b=2,containerd.io/gc.root=now"
    assert ok(pyctr("content", "ls", "-q", "labels.b==2")).split() == [digest]
    assert ok(pyctr("content", "ls", "-q", "labels.b==3")).split() == []
    # Already stored: ingesting it again is a success that reads nothing.
    again = pyctr("content", "ingest", "blob-2", "--expected-digest", digest, input=b"")
    assert ok(again).strip() == digest
    assert ok(pyctr("content", "rm", digest)).split() == [digest]
    fails(pyctr("content", "get", digest), "not found")


@pytest.mark.containerd
def test_content_ingest_checks_size_and_digest(pyctr: Run) -> None:
    fails(pyctr("content", "ingest", "short", "--expected-size", "10", input=b"12345"), "5 of 10")
    active = rows(ok(pyctr("content", "active")))
    assert active[0] == ["REF", "SIZE", "TOTAL", "AGE"]
    assert active[1][:3] == ["short", "5B", "10B"]
    # Resumed: the five bytes already in the ingest are skipped on stdin.
    digest = ok(pyctr("content", "ingest", "short", "--expected-size", "10", input=b"1234567890")).strip()
    assert digest == sha(b"1234567890")
    wrong = sha(b"something else")
    fails(pyctr("content", "ingest", "bad", "--expected-digest", wrong, input=b"data"), "digest")
    fails(pyctr("content", "ingest", "bad", "--expected-digest", "sha256:nope", input=b"data"), "invalid digest")
    fails(pyctr("content", "ingest", "neg", "--expected-size", "-1", input=b""), "negative")


@pytest.mark.containerd
def test_content_ingest_resumes_after_ctrl_c(address: str, pyctr: Run) -> None:
    data = os.urandom(2 * MiB)
    with subprocess.Popen(
        command(address, "content", "ingest", "interrupted", "--expected-size", str(len(data))),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    ) as proc:
        assert proc.stdin is not None
        proc.stdin.write(data[:MiB])
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while b"interrupted" not in pyctr("content", "active").stdout:
            assert time.monotonic() < deadline, "the ingest never became active"
            time.sleep(0.05)
        while rows(ok(pyctr("content", "active", "ref==interrupted")))[1][1] != "1.049MB":
            assert time.monotonic() < deadline, "the first MiB never arrived"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.decode().strip() == "pyctr: interrupted"
    digest = ok(pyctr("content", "ingest", "interrupted", "--expected-size", str(len(data)), input=data))
    assert digest.strip() == sha(data)


@pytest.mark.containerd
def test_content_get_into_a_closed_pipe(address: str, pyctr: Run) -> None:
    data = os.urandom(4 * MiB)
    digest = ok(pyctr("content", "ingest", "pipe", "--label", "containerd.io/gc.root=now", input=data)).strip()
    with subprocess.Popen(
        command(address, "content", "get", digest),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == data[:10]
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=20) != 0
    assert "Traceback" not in err
    assert err.strip() == "pyctr: stdout was closed before all output was written (broken pipe)"


@pytest.mark.containerd
def test_content_errors(pyctr: Run) -> None:
    fails(pyctr("content", "get", "sha256:" + "0" * 64), "not found")
    fails(pyctr("content", "get", "not-a-digest"), "invalid digest")
    fails(pyctr("content", "rm", "sha256:" + "0" * 64), "not found")
    fails(pyctr("content", "label", "sha256:" + "0" * 64, "a=b"), "not found")
    fails(pyctr("content", "ingest"), "REF")


# -- images -------------------------------------------------------------------------------


@pytest.mark.containerd
def test_images(pyctr: Run, client: Client) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    layer = os.urandom(1000)
    default = client.with_namespace("default")
    with default.lease() as leased:
        from pycontainerd.content import write_blob
        from pycontainerd.images import Descriptor, Image

        cfg = write_blob(leased.content, "cfg", config.encode())
        lyr = write_blob(leased.content, "lyr", layer)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": lyr, "size": 1000}],
            }
        ).encode()
        man = write_blob(leased.content, "man", manifest)
        target = Descriptor("application/vnd.oci.image.manifest.v1+json", man, len(manifest))
        leased.images.create(Image(name="example.com/app:1", target=target, labels={"tier": "web"}))

        assert ok(pyctr("images", "ls", "-q")).split() == ["example.com/app:1"]
        table = rows(ok(pyctr("images", "ls")))
        assert table[0] == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
        size = len(manifest) + len(config) + 1000
        assert table[1] == [
            "example.com/app:1",
            "application/vnd.oci.image.manifest.v1+json",
            man,
            f"{size / 1024:.1f}",
            "KiB",
            "linux/amd64",
            "tier=web",
        ]
        record = json.loads(ok(pyctr("images", "inspect", "example.com/app:1")))
        assert record["name"] == "example.com/app:1"
        assert record["target"] == {"mediaType": target.media_type, "digest": man, "size": len(manifest)}
        assert record["labels"] == {"tier": "web"}

        assert ok(pyctr("images", "tag", "example.com/app:1", "example.com/app:2", "example.com/app:3")).split() == [
            "example.com/app:2",
            "example.com/app:3",
        ]
        fails(pyctr("images", "tag", "example.com/app:1", "example.com/app:2"), "already exists")
        assert ok(pyctr("images", "tag", "--force", "example.com/app:1", "example.com/app:2")).strip()
        assert ok(pyctr("images", "ls", "-q", "name==example.com/app:3")).split() == ["example.com/app:3"]

        assert ok(pyctr("images", "label", "example.com/app:2", "tier=", "new=1")).strip() == "new=1"
        assert ok(pyctr("images", "label", "example.com/app:2")).strip() == "new=1"
        assert ok(pyctr("images", "label", "-r", "example.com/app:2", "only=this")).strip() == "only=this"

        proc = pyctr("images", "rm", "example.com/app:3", "example.com/nope", "example.com/app:2", "--sync")
        assert proc.stdout.decode().split() == ["example.com/app:3", "example.com/app:2"]
        fails(proc, "example.com/nope", "not found")
        fails(pyctr("images", "inspect", "example.com/app:3"), "not found")


@pytest.mark.containerd
def test_images_ls_survives_missing_content(pyctr: Run, client: Client) -> None:
    from pycontainerd.images import Descriptor, Image

    missing = Descriptor("application/vnd.oci.image.index.v1+json", "sha256:" + "1" * 64, 10)
    client.with_namespace("default").images.create(Image(name="ghost", target=missing))
    table = rows(ok(pyctr("images", "ls")))
    assert table[1] == ["ghost", missing.media_type, missing.digest, "-", "-", "-"]


# -- leases ----------------------------------------------------------------------------------


@pytest.mark.containerd
def test_leases(pyctr: Run) -> None:
    assert ok(pyctr("leases", "create", "--id", "my-lease", "--expires", "1h30m", "k=v")).strip() == "my-lease"
    generated = ok(pyctr("leases", "create", "--expires", "0")).strip()
    assert generated
    assert sorted(ok(pyctr("leases", "ls", "-q")).split()) == sorted(["my-lease", generated])
    table = rows(ok(pyctr("leases", "ls", "id==my-lease")))
    assert table[0] == ["ID", "CREATED", "AT", "LABELS"]
    labels = dict(kv.split("=", 1) for kv in table[1][2].split(","))
    assert labels["k"] == "v"
    assert "containerd.io/gc.expire" in labels
    assert ok(pyctr("leases", "ls", "-q", f"id=={generated}")).split() == [generated]
    fails(pyctr("leases", "create", "--id", "my-lease"), "already exists")
    assert ok(pyctr("leases", "rm", "my-lease", generated, "--sync")).split() == ["my-lease", generated]
    fails(pyctr("leases", "rm", "my-lease"), "my-lease", "not found")
    fails(pyctr("leases", "create", "--expires", "soon"), "invalid duration")


# -- failures common to every command -----------------------------------------------------------


def test_unreachable_socket(tmp_path: Path) -> None:
    proc = subprocess.run(
        command(str(tmp_path / "nothing.sock"), "content", "ls"), capture_output=True, env=environment(), check=False
    )
    fails(proc, "nothing.sock")


@pytest.mark.containerd
def test_bad_arguments(pyctr: Run) -> None:
    fails(pyctr())
    fails(pyctr("no-such-command"), "invalid choice")
    fails(pyctr("content"), "required")
    fails(pyctr("images", "tag", "only-one"), "required")
    fails(pyctr("--timeout", "x", "version"), "invalid duration")
    fails(pyctr("ns", "create", "not valid!"))
    fails(pyctr("images", "ls", namespace="bad namespace!"), "bad namespace!")
    fails(pyctr("images", "ls", namespace="n\u00e4"), "printable ASCII")
    fails(pyctr("images", "ls", namespace=""), "namespace")


@pytest.mark.containerd
def test_environment_and_help(address: str) -> None:
    env = {**environment(), "PYCONTAINERD_ADDRESS": address, "CONTAINERD_NAMESPACE": "from-env"}
    base = [sys.executable, "-m", "pycontainerd.cmd.pyctr"]
    proc = subprocess.run([*base, "ns", "create", "from-env"], capture_output=True, env=env, check=False)
    assert ok(proc) == ""
    proc = subprocess.run([*base, "info"], capture_output=True, env=env, check=False)
    assert "Namespace: from-env" in ok(proc)
    proc = subprocess.run([*base, "--help"], capture_output=True, env=env, check=False)
    assert "content" in ok(proc)


def test_smoke_against_pycontainerd(request: pytest.FixtureRequest) -> None:
    run = runner(str(request.getfixturevalue("pycontainerd_daemon").address))
    assert "Server:" in ok(run("version"))
    assert ["io.containerd.grpc.v1", "content", "-", "ok"] in rows(ok(run("plugins", "ls")))
    ok(run("ns", "create", "smoke", "k=v"))
    assert ["smoke", "k=v"] in rows(ok(run("ns", "ls")))
    data = os.urandom(MiB + 3)
    digest = ok(run("content", "ingest", "smoke", "--label=containerd.io/gc.root=now", input=data)).strip()
    assert digest == sha(data)
    assert run("content", "get", digest).stdout == data
    assert ok(run("content", "label", digest, "a=b")).strip() == "a=b,containerd.io/gc.root=now"
    assert ok(run("leases", "create", "--id", "smoke")).strip() == "smoke"
    assert ok(run("leases", "ls", "-q")).split() == ["smoke"]
    assert ok(run("leases", "rm", "smoke", "--sync")).split() == ["smoke"]
    assert ok(run("content", "rm", digest)).split() == [digest]
    fails(run("content", "get", digest), "not found")
    fails(run("images", "inspect", "nothing"), "not found")
