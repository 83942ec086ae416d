"""A registry credential never shows: not in the daemon's debug log, events, errors or command output.

The registries are real (htpasswd basic auth; bearer tokens from the token
server).  Credentials travel every way pycontainerd takes them: pyctr
``--user`` and a Docker ``config.json`` (both answered over the Transfer
service's auth stream), the Python client's credentials callback, the
client-side path, and Debian's ``ctr --user``.  Pulls succeed and fail
after authenticating — a wrong password, a registry that answers 403 and
echoes the Authorization header it got, a registry that stops answering.
Afterwards the whole daemon log, every event published meanwhile, and every
line the commands printed are searched for the password, the base64 forms a
Basic header carries, and any bearer token (JWT) the token server issued.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import text_format

from pycontainerd.client import Client, RegistryOptions
from pycontainerd.errors import ContainerdError
from tests.distribution.support import seed
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.registry import PASSWORD, USER, Registry, RegistryFactory
from tests.ocibuild import busybox_files, image
from tests.reliability.soak import record

WRONG = "wr0ng-h0rse-battery"
JWT_PREFIX = base64.urlsafe_b64encode(b'{"typ": "JWT"').decode()[:12]  # every token the server signs starts so


def _secrets() -> list[str]:
    out = [JWT_PREFIX]
    for pw in (PASSWORD, WRONG):
        out += [pw, base64.b64encode(f"{USER}:{pw}".encode()).decode(), base64.b64encode(pw.encode()).decode()]
    return out


def _leaks(text: str) -> list[str]:
    return [s for s in _secrets() if s in text]


@pytest.fixture
def proxies() -> Iterator[list[FaultyProxy]]:
    made: list[FaultyProxy] = []
    yield made
    for p in made:
        p.close()


def _pyctr(address: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", address, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _ctr(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
    return subprocess.run(
        ["ctr", "-a", address, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_no_credential_leaks(
    mode: str,
    pycontainerd_daemon_factory: DaemonFactory,
    registry_factory: RegistryFactory,
    proxies: list[FaultyProxy],
    tmp_path: Path,
) -> None:
    d = pycontainerd_daemon_factory(args=["--log-level", "debug"])
    registry: Registry = registry_factory(mode)
    img = image([busybox_files(), {"etc/motd": mode.encode()}])
    seed(registry, img, "private/app:1", tmp_path)
    seed(registry, image([busybox_files(), {"etc/other": b"1"}]), "private/other:1", tmp_path)  # never fetched
    ref = f"{registry.host}/private/app:1"
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "none")}
    outputs: list[str] = []
    events: list[str] = []
    attempts = 0

    with Client(d.address) as client:
        watching = threading.Event()

        def watch() -> None:
            try:
                for env_ in client.with_namespace("default").events.subscribe():
                    events.append(text_format.MessageToString(env_.event) + env_.topic)
                    watching.set()
            except ContainerdError:
                pass  # the channel closes at the end of the test

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def run(r: subprocess.CompletedProcess[str], ok: bool) -> None:
            nonlocal attempts
            attempts += 1
            outputs.append(r.stdout + r.stderr)
            assert (r.returncode == 0) == ok, (r.args, r.stdout, r.stderr)

        # pyctr --user, answered over the Transfer service's auth stream: wrong, then right.
        run(_pyctr(d.address, "-n", "one", "images", "pull", "--user", f"{USER}:{WRONG}", ref, env=env), False)
        run(_pyctr(d.address, "-n", "one", "images", "pull", "--user", f"{USER}:{PASSWORD}", ref, env=env), True)
        # A Docker config.json.
        config = tmp_path / "docker"
        config.mkdir()
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
        run(_pyctr(d.address, "-n", "two", "images", "pull", ref, env={**env, "DOCKER_CONFIG": str(config)}), True)
        # The Python client's callback, through the daemon and on the client side.
        creds = RegistryOptions(credentials=lambda host: (USER, PASSWORD))
        for n, local in (("three", False), ("four", True)):
            client.with_namespace(n).pull(ref, registry=creds, local=local)
            attempts += 1
        bad = RegistryOptions(credentials=lambda host: (USER, WRONG))
        for local in (False, True):
            with pytest.raises(ContainerdError) as e:
                client.with_namespace("five").pull(ref, registry=bad, local=local)
            outputs.append(str(e.value))
            attempts += 1
        # Debian's ctr (client side; the daemon never sees the password).
        # (It asks token servers with OAuth POSTs, which the test's token server does not serve.)
        ok = mode == "htpasswd"
        run(_ctr(d.address, "-n", "six", "images", "pull", "--plain-http", "--user", f"{USER}:{PASSWORD}", ref), ok)
        run(_ctr(d.address, "-n", "six", "images", "pull", "--plain-http", "--user", f"{USER}:{WRONG}", ref), False)

        # Authenticated, then refused: a 403 echoing the Authorization header.
        proxy = FaultyProxy(registry.host)
        proxies.append(proxy)
        proxy.faults.deny_on = "/blobs/"
        denied = f"{proxy.host}/private/other:1"
        run(_pyctr(d.address, "-n", "seven", "images", "pull", "--user", f"{USER}:{PASSWORD}", denied, env=env), False)
        assert proxy.faults.denied > 0, outputs[-1]
        with pytest.raises(ContainerdError) as e:
            client.with_namespace("seven").pull(denied, registry=creds, local=True)
        outputs.append(str(e.value))
        attempts += 1
        # Authenticated, then the registry stops answering.
        assert registry.proc is not None
        registry.proc.kill()
        run(_pyctr(d.address, "-n", "eight", "images", "pull", "--user", f"{USER}:{PASSWORD}", ref, env=env), False)
        assert watching.wait(10)

    log = d.log()
    assert "level=debug" in log  # the daemon logged at its most verbose
    found = {"log": _leaks(log), "events": _leaks("\n".join(events)), "outputs": _leaks("\n".join(outputs))}
    problems = sum(len(v) for v in found.values())
    record(
        area="access",
        tried=f"pulls with credentials ({mode}: pyctr --user, config.json, client callback, ctr --user; "
        "wrong password, 403 echoing the header, registry gone)",
        count=attempts,
        held="password, Basic header and bearer tokens absent from the debug log, events and output",
        problems=problems,
    )
    where = [line for line in (log + "\n".join(outputs)).splitlines() if _leaks(line)]
    assert problems == 0, (found, where[:6])


def test_redaction_rules() -> None:
    """What is cut and what is kept, on text alone."""
    from pycontainerd.remotes.docker._credentials import redact, remember

    remember("someone", "correct-horse-7")
    basic = base64.b64encode(b"someone:correct-horse-7").decode()
    cut = redact(
        f"denied: Basic {basic}; pw correct-horse-7; Bearer eyJhbGciOi.eyJzdWIiOi.c2ln; token eyJhYmNk.eyJlZmdo.x"
    )
    assert "correct-horse" not in cut and basic not in cut and "eyJ" not in cut, cut
    other = base64.b64encode(b"other:thing").decode()
    assert redact(f"Authorization: Basic {other}") == "Authorization: Basic <redacted>"
    kept = 'basic auth refused; Bearer realm="https://auth/token" Bearer authentication; Basic hello'
    assert redact(kept) == kept
