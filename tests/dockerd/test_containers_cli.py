"""The real docker CLI runs containers through pydockerd: run, logs, stop, ps, inspect, rm, and their errors.

pydockerd runs over a real pycontainerd, whose shims drive runc on
overlayfs; each test ends by checking that what it removed left nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pydockerd.containers._spec import BRIDGE_WARNING
from tests.dockerd._containers_support import (
    COLUMNS,
    ROWS,
    Terminal,
    assert_clean,
    bb_image,  # noqa: F401 - the fixture ``bb``
    remove_cgroups,
    wait_for,
)
from tests.dockerd.conftest import DOCKER, Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon


@pytest.fixture(autouse=True)
def _cgroups() -> Iterator[None]:
    yield
    remove_cgroups()


def test_run_rm_output_and_exit_code(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    r = pydockerd.docker("run", "--rm", bb, "echo", "hi")
    assert r.stdout == "hi\n"
    r = pydockerd.docker("run", "--rm", bb, "sh", "-c", "echo out; echo err >&2; exit 3", ok=False)
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == f"WARNING: {BRIDGE_WARNING}\nerr\n"  # the create answer's warning, as the CLI shows it
    assert pydockerd.docker("ps", "-aq").stdout == ""
    assert_clean(pydockerd, pycontainerd_daemon, [])


def test_run_detached_logs_stop_rm(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    script = "trap 'echo bye; exit 143' TERM; echo started; while true; do sleep 0.1; done"
    id = pydockerd.docker("run", "-d", "--name", "web", bb, "sh", "-c", script).stdout.strip()
    assert len(id) == 64
    wait_for(lambda: "started" in pydockerd.docker("logs", "web").stdout, what="output")
    rows = pydockerd.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Status}}").stdout.split("\n")
    assert rows[0].startswith(f"{id[:12]} web {bb} Up ")
    [doc] = json.loads(pydockerd.docker("inspect", "web").stdout)
    assert doc["Id"] == id
    assert doc["Name"] == "/web"
    assert doc["State"]["Status"] == "running"
    assert doc["State"]["Pid"] > 0
    assert doc["Path"] == "sh"
    assert doc["Args"] == ["-c", script]
    assert doc["Config"]["Image"] == bb
    assert doc["Config"]["Labels"] == {"from": "image"}
    assert doc["Image"].startswith("sha256:")

    r = pydockerd.docker("run", "--name", "web", bb, "true", ok=False)
    assert r.returncode == 125
    assert (
        f'Conflict. The container name "/web" is already in use by container "{id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    ) in r.stderr
    r = pydockerd.docker("rm", "web", ok=False)
    assert 'cannot remove container "/web": container is running' in r.stderr

    t0 = time.monotonic()
    assert pydockerd.docker("stop", "web").stdout.strip() == "web"
    assert time.monotonic() - t0 < 5
    assert pydockerd.docker("logs", "web").stdout == "started\nbye\n"
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web").stdout.split() == [
        "exited",
        "143",
    ]
    assert pydockerd.docker("ps", "-q").stdout == ""
    assert pydockerd.docker("ps", "-aq").stdout.strip() == id[:12]
    pydockerd.docker("rm", "web")
    assert pydockerd.docker("ps", "-aq").stdout == ""
    assert_clean(pydockerd, pycontainerd_daemon, [id])


def subprocess_docker(d: Pydockerd, args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.cli_config))
    return subprocess.run([DOCKER, *args], input=stdin, env=env, capture_output=True, timeout=60, check=False)


def test_run_interactive_terminal(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    t = Terminal(pydockerd, "run", "-it", "--rm", "--name", "tty", bb, "sh")
    try:
        t.expect(b"# ")
        t.send(b"tty; echo $TERM; stty size\r")
        t.expect(b"/dev/pts/0")
        t.expect(b"xterm")
        t.expect(f"{ROWS} {COLUMNS}".encode())  # the CLI's resize reached the container's terminal
        t.send(b"exit 5\r")
        assert t.wait() == 5
    finally:
        t.close()
    wait_for(lambda: pydockerd.docker("ps", "-aq").stdout == "", what="--rm removal")


def test_stdin_piped(pydockerd: Pydockerd, bb: str) -> None:
    r = subprocess_docker(pydockerd, ["run", "-i", "--rm", bb, "sh", "-c", "wc -l; cat"], b"a\nb\nc\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"3"]


def test_exec(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    id = pydockerd.docker("run", "-d", "--name", "box", bb, "sleep", "1000").stdout.strip()
    assert pydockerd.docker("exec", "box", "echo", "hello").stdout == "hello\n"
    r = pydockerd.docker("exec", "box", "sh", "-c", "echo oops >&2; exit 7", ok=False)
    assert (r.returncode, r.stderr) == (7, "oops\n")
    assert pydockerd.docker(
        "exec", "-u", "app", "-w", "/tmp", "-e", "X=1", "box", "sh", "-c", "id -u; pwd; echo $X"
    ).stdout.split() == ["1000", "/tmp", "1"]
    r = subprocess_docker(pydockerd, ["exec", "-i", "box", "cat"], b"through stdin\n")
    assert r.stdout == b"through stdin\n"
    pydockerd.docker("exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d")
    wait_for(lambda: pydockerd.docker("exec", "box", "cat", "/tmp/d", ok=False).stdout == "detached\n", what="exec -d")
    r = pydockerd.docker("exec", "box", "nosuchcommand", ok=False)
    assert r.returncode == 127
    assert "executable file not found" in r.stdout
    t = Terminal(pydockerd, "exec", "-it", "box", "sh")
    try:
        t.expect(b"# ")
        t.send(b"tty; exit 3\r")
        t.expect(b"/dev/pts/")
        assert t.wait() == 3
    finally:
        t.close()
    pydockerd.docker("rm", "-f", "box")
    r = pydockerd.docker("exec", "box", "true", ok=False)
    assert "No such container: box" in r.stderr
    assert_clean(pydockerd, pycontainerd_daemon, [id])


def test_lifecycle_commands(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    id = pydockerd.docker("run", "-d", "--name", "one", bb, "sleep", "1000").stdout.strip()
    pydockerd.docker("rename", "one", "two")
    assert pydockerd.docker("inspect", "-f", "{{.Name}}", id[:12]).stdout.strip() == "/two"
    assert "No such container: one" in pydockerd.docker("inspect", "--type", "container", "one", ok=False).stderr

    pydockerd.docker("pause", "two")
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}}", "two").stdout.strip() == "paused"
    assert "(Paused)" in pydockerd.docker("ps", "--format", "{{.Status}}").stdout
    assert "is already paused" in pydockerd.docker("pause", "two", ok=False).stderr
    pydockerd.docker("unpause", "two")
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}}", "two").stdout.strip() == "running"

    top = pydockerd.docker("top", "two").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"]
    assert len(top) == 2 and "sleep 1000" in top[1]
    top = pydockerd.docker("top", "two", "-o", "pid,comm").stdout.splitlines()
    assert top[0].split() == ["PID", "COMMAND"] and top[1].split()[1] == "sleep"

    stats = pydockerd.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "two").stdout
    name, usage, _, limit, pids = stats.split()
    assert (name, pids) == ("two", "1")
    assert usage.endswith("B") and limit.endswith("B")

    first_pid = pydockerd.docker("inspect", "-f", "{{.State.Pid}}", "two").stdout.strip()
    pydockerd.docker("restart", "-t", "0", "two")
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}}", "two").stdout.strip() == "running"
    assert pydockerd.docker("inspect", "-f", "{{.State.Pid}}", "two").stdout.strip() != first_pid

    pydockerd.docker("kill", "-s", "KILL", "two")
    assert pydockerd.docker("wait", "two").stdout.strip() == "137"
    assert "is not running" in pydockerd.docker("kill", "two", ok=False).stderr
    trap = pydockerd.docker("run", "-d", bb, "sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done")
    pydockerd.docker("kill", "-s", "USR1", trap.stdout.strip())
    assert pydockerd.docker("wait", trap.stdout.strip()).stdout.strip() == "42"
    pydockerd.docker("rm", trap.stdout.strip())
    pydockerd.docker("start", "two")
    assert pydockerd.docker("stop", "-t", "1", "two").stdout.strip() == "two"  # sleep ignores SIGTERM as pid 1
    assert pydockerd.docker("inspect", "-f", "{{.State.ExitCode}}", "two").stdout.strip() == "137"

    out = pydockerd.docker("run", "--name", "again", bb, "sh", "-c", "echo run; exit 1", ok=False).stdout
    assert out == "run\n"
    r = pydockerd.docker("start", "-a", "again", ok=False)  # attached before the start: all of its output
    assert (r.returncode, r.stdout) == (1, "run\n")
    assert pydockerd.docker("logs", "again").stdout == "run\nrun\n"
    pydockerd.docker("rm", "again")
    pydockerd.docker("start", "two")
    assert pydockerd.docker("rm", "-f", "two").stdout.strip() == "two"
    assert pydockerd.docker("ps", "-aq").stdout == ""
    until = str(int(time.time()) + 1)
    fmt = "{{.Action}}"
    actions = pydockerd.docker("events", "--since", "0", "--until", until, "--filter", "type=container",
                               "--format", fmt).stdout.split()  # fmt: skip
    for expected in ("create", "start", "rename", "pause", "unpause", "kill", "die", "restart", "stop", "destroy"):
        assert expected in actions
    assert_clean(pydockerd, pycontainerd_daemon, [id])


def test_ps_filters(pydockerd: Pydockerd, bb: str) -> None:
    a = pydockerd.docker("run", "-d", "--name", "ca", "-l", "app=web", bb, "sleep", "1000").stdout.strip()
    b = pydockerd.docker("run", "--name", "cb", "-l", "app=db", bb, "sh", "-c", "exit 2", ok=False)
    assert b.returncode == 2
    c = pydockerd.docker("create", "--name", "cc", bb, "true").stdout.strip()

    def names(*args: str) -> list[str]:
        return sorted(pydockerd.docker("ps", *args, "--format", "{{.Names}}").stdout.split())

    assert names() == ["ca"]
    assert names("-a") == ["ca", "cb", "cc"]
    assert names("-a", "--filter", "label=app") == ["ca", "cb"]
    assert names("-a", "--filter", "label=app=db") == ["cb"]
    assert names("--filter", "status=exited") == ["cb"]
    assert names("--filter", "status=created") == ["cc"]
    assert names("-a", "--filter", "exited=2") == ["cb"]
    assert names("-a", "--filter", f"id={a[:6]}") == ["ca"]
    assert names("-a", "--filter", "name=^/?c[ab]$") == ["ca", "cb"]
    assert names("-a", "--filter", f"ancestor={bb}") == ["ca", "cb", "cc"]
    assert names("-a", "--filter", "ancestor=other") == []
    assert names("-a", "--filter", "before=cc") == ["ca", "cb"]
    assert names("-a", "--filter", "since=ca") == ["cb", "cc"]
    assert names("-n", "1") == ["cc"]
    assert pydockerd.docker("ps", "-a", "--filter", "status=nonsense", ok=False).returncode == 1
    assert "invalid filter" in pydockerd.docker("ps", "--filter", "bogus=1", ok=False).stderr
    info = json.loads(pydockerd.docker("info", "--format", "{{json .}}").stdout)
    assert (info["Containers"], info["ContainersRunning"], info["ContainersStopped"]) == (3, 1, 2)
    pydockerd.docker("rm", "-f", a, "cb", c)


def test_logs_follow_and_options(pydockerd: Pydockerd, bb: str) -> None:
    script = "for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.3; done"
    pydockerd.docker("run", "-d", "--name", "chatty", bb, "sh", "-c", script)
    r = pydockerd.docker("logs", "-f", "chatty")  # ends when the container does
    assert r.stdout == "out 1\nout 2\nout 3\n"
    assert r.stderr == "err 1\nerr 2\nerr 3\n"
    r = pydockerd.docker("logs", "--tail", "2", "chatty")  # the last lines of both streams
    assert (r.stdout, r.stderr) == ("out 3\n", "err 3\n")
    stamped = pydockerd.docker("logs", "-t", "chatty").stdout.splitlines()
    assert stamped[0].endswith("Z out 1") and stamped[0][:4].isdigit()
    assert pydockerd.docker("logs", "--since", "2100-01-01T00:00:00Z", "chatty").stdout == ""
    assert pydockerd.docker("logs", "--until", "2000-01-01T00:00:00Z", "chatty").stdout == ""
    pydockerd.docker("rm", "chatty")


def test_settings_reach_the_container(pydockerd: Pydockerd, bb: str, tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    host_dir.mkdir(mode=0o777)
    host_dir.chmod(0o777)
    (host_dir / "in").write_text("from host\n")
    script = (
        "cat /data/in; echo made > /data/out; mount | grep ' /t ' | head -1; echo $GREETING; pwd; id -u; "
        "hostname; cd /sys/fs/cgroup; cat memory.max 2>/dev/null || cat memory/memory.limit_in_bytes; "
        "cat cpu.max 2>/dev/null || cat cpu/cpu.cfs_quota_us; ls /sys/class/net"
    )
    out = pydockerd.docker(
        "run", "--rm", "-v", f"{host_dir}:/data", "--tmpfs", "/t", "-e", "GREETING=hello", "-w", "/work",
        "-u", "app", "-m", "64m", "--cpus", "0.5", "--network", "none", "--hostname", "boxy",
        bb, "sh", "-c", script,
    ).stdout.splitlines()  # fmt: skip
    assert out[0] == "from host"
    assert (host_dir / "out").read_text() == "made\n"
    assert out[1].startswith("tmpfs on /t type tmpfs")
    assert out[2:6] == ["hello", "/work", "1000", "boxy"]
    assert out[6] == str(64 << 20)
    assert out[7] in ("50000 100000", "50000")  # cgroup v2's cpu.max, v1's cpu.cfs_quota_us
    assert out[8:] == ["lo"]
    host_net = pydockerd.docker("run", "--rm", "--network", "host", bb, "ls", "/sys/class/net").stdout.split()
    assert len(host_net) > 1 and "lo" in host_net
    assert pydockerd.docker("run", "--rm", "--entrypoint", "echo", bb, "via", "entrypoint").stdout == "via entrypoint\n"
    made = tmp_path / "made" / "by" / "v"
    pydockerd.docker("run", "--rm", "-v", f"{made}:/m", bb, "true")
    assert made.is_dir()
    r = pydockerd.docker("run", "--rm", "--mount", f"type=bind,src={tmp_path}/absent,dst=/m", bb, "true", ok=False)
    assert "bind source path does not exist" in r.stderr
    r = pydockerd.docker("run", "--restart", "always", bb, "true", ok=False)
    assert "restart policy" in r.stderr
    r = pydockerd.docker("run", "--rm", bb, "nosuchprogram", ok=False)
    assert r.returncode == 127
    assert pydockerd.docker("ps", "-aq").stdout == ""


def test_bad_input(pydockerd: Pydockerd, bb: str) -> None:
    r = pydockerd.docker("create", "--pull", "never", "nosuch:1", ok=False)
    assert "No such image: nosuch:1" in r.stderr
    r = pydockerd.docker("inspect", "--type", "container", "ghost", ok=False)
    assert "No such container: ghost" in r.stderr
    for path, body, status, message in [
        ("/containers/create", b"{not json", 400, "invalid"),
        ("/containers/create", b'{"Image": 5}', 400, "Image must be a string"),
        ("/containers/create", json.dumps({"Image": bb, "Env": [3]}).encode(), 400, "Env must be a list of strings"),
        ("/containers/create?name=bad%20name", json.dumps({"Image": bb}).encode(), 400, "Invalid container name"),
        ("/containers/create", json.dumps({"Image": bb, "HostConfig": {"Memory": 10}}).encode(), 400, "6MB"),
        ("/containers/create", json.dumps({"Image": bb, "HostConfig": {"NetworkMode": "container:x"}}).encode(),
         400, "network mode"),
        ("/containers/create", json.dumps({"Image": bb, "HostConfig": {"Binds": ["vol:/x"]}}).encode(), 400, "named"),
        ("/containers/create", json.dumps({"Image": bb, "StopSignal": "SIGNOPE"}).encode(), 400, "Invalid signal"),
        ("/containers/ghost/start", b"", 404, "No such container: ghost"),
        ("/containers/ghost/wait", b"", 404, "No such container: ghost"),
    ]:  # fmt: skip
        got, _, data = pydockerd.request("POST", path, body)
        assert got == status, (path, data)
        assert message in json.loads(data)["message"], (path, data)
    id = pydockerd.docker("run", "-d", bb, "sleep", "1000").stdout.strip()
    got, _, data = pydockerd.request("POST", f"/containers/{id}/start")
    assert (got, data) == (304, b"")
    got, _, data = pydockerd.request("POST", f"/containers/{id}/kill?signal=NOPE")
    assert got == 400
    pydockerd.docker("rm", "-f", id)
    got, _, data = pydockerd.request("POST", f"/containers/{id}/stop")
    assert got == 404
    assert "Traceback" not in pydockerd.log()


def test_records_survive_a_pydockerd_restart(
    pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str
) -> None:
    script = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"
    running = pydockerd.docker("run", "-d", "--name", "ticker", "-l", "keep=1", bb, "sh", "-c", script).stdout.strip()
    pydockerd.docker("create", "--name", "idle", bb, "true")
    pydockerd.docker("run", "--name", "done", bb, "sh", "-c", "exit 6", ok=False)
    wait_for(lambda: "tick 2" in pydockerd.docker("logs", "ticker").stdout, what="ticks")
    pydockerd.stop()
    pydockerd.start()
    rows = pydockerd.docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
    assert sorted(r for r in rows if r) == ["done exited", "idle created", "ticker running"]
    assert pydockerd.docker("inspect", "-f", "{{.State.ExitCode}}", "done").stdout.strip() == "6"
    before = pydockerd.docker("logs", "ticker").stdout.count("tick")
    wait_for(lambda: pydockerd.docker("logs", "ticker").stdout.count("tick") > before + 2, what="ticks after")
    pydockerd.docker("exec", "ticker", "true")
    pydockerd.docker("stop", "ticker")
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "ticker").stdout.split() == [
        "exited",
        "0",
    ]
    pydockerd.docker("rm", "ticker", "idle", "done")
    assert_clean(pydockerd, pycontainerd_daemon, [running])
