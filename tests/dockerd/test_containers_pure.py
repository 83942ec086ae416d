"""pydockerd's container parts that do no I/O (or only to a temporary directory): framing, the json-file log,
create requests, specs, the lifecycle, list filters, ps output, the record store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.errors import InvalidArgument, NotFound
from pydockerd._errors import Conflict
from pydockerd.containers._config import (
    argv_of,
    check_config,
    check_host_config,
    merge_image_config,
    parse_host_config,
    valid_name,
)
from pydockerd.containers._frames import STDERR, STDOUT, FrameDecoder, encode_frame
from pydockerd.containers._jsonlog import (
    Entry,
    LineSplitter,
    LogFile,
    decode_entry,
    encode_entry,
    format_time,
    parse_time,
    select,
)
from pydockerd.containers._spec import build_spec, exec_process, process_env
from pydockerd.containers._state import NotModified, State, human_duration
from pydockerd.containers._stats import parse_ps
from pydockerd.containers._store import Record, Store
from pydockerd.containers._streams import parse_tail
from pydockerd.containers._views import filter_records, inspect, summary


def test_frames() -> None:
    assert encode_frame(STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert encode_frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    data = encode_frame(STDOUT, b"one") + encode_frame(STDERR, b"two" * 100)
    d = FrameDecoder()
    got = []
    for i in range(len(data)):  # a byte at a time
        got += d.feed(data[i : i + 1])
    assert got == [(1, b"one"), (2, b"two" * 100)] and d.pending == 0
    assert FrameDecoder().feed(data[:5]) == []
    with pytest.raises(ValueError, match="not a stream frame"):
        FrameDecoder().feed(b"\x07\x00\x00\x00\x00\x00\x00\x01x")
    with pytest.raises(ValueError):
        encode_frame(9, b"")


def test_log_entries_and_times() -> None:
    ns = 1_700_000_000_123_456_789
    assert format_time(ns) == "2023-11-14T22:13:20.123456789Z"
    assert format_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert format_time(1_700_000_000_100_000_000, fixed=True) == "2023-11-14T22:13:20.100000000Z"
    assert parse_time("2023-11-14T22:13:20.123456789Z") == ns
    assert parse_time("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000
    with pytest.raises(ValueError):
        parse_time("yesterday")
    line = encode_entry(Entry("stderr", b"caf\xc3\xa9\n", ns))
    assert json.loads(line) == {"log": "café\n", "stream": "stderr", "time": "2023-11-14T22:13:20.123456789Z"}
    assert decode_entry(line) == Entry("stderr", "café\n".encode(), ns)
    for bad in (b"{", b"[]", b'{"log": 1, "stream": "stdout", "time": "x"}', b'{"log": "", "stream": "x", "time": ""}'):
        assert decode_entry(bad) is None


def test_line_splitter() -> None:
    s = LineSplitter(limit=8)
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde\nf") == [b"abc\n", b"de\n"]
    assert s.feed(b"0123456789") == [b"f0123456"]
    assert s.flush() == b"789"
    assert s.flush() == b""


def test_select() -> None:
    entries = [Entry("stdout" if i % 2 else "stderr", str(i).encode(), i * 10) for i in range(1, 7)]
    assert [e.data for e in select(entries)] == [b"1", b"2", b"3", b"4", b"5", b"6"]
    assert [e.data for e in select(entries, stderr=False)] == [b"1", b"3", b"5"]
    assert [e.data for e in select(entries, tail=2)] == [b"5", b"6"]
    assert select(entries, tail=0) == []
    assert [e.data for e in select(entries, since_ns=30, until_ns=50)] == [b"3", b"4", b"5"]
    assert parse_tail("all") == -1 and parse_tail("3") == 3 and parse_tail("-2") == -1
    with pytest.raises(InvalidArgument):
        parse_tail("many")


def test_log_file(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "c-json.log")
    assert list(log.entries()) == []
    log.append("stdout", b"a\n", 5)
    log.append("stderr", b"b\n", 6)
    log.close()
    with open(tmp_path / "c-json.log", "ab") as f:
        f.write(b'{"log": "torn')  # a line cut by a crash is skipped
    assert [e.data for e in log.entries()] == [b"a\n", b"b\n"]


def test_check_config() -> None:
    cfg = check_config({"Image": "bb", "Cmd": "echo", "Env": ["A=1"], "Tty": True})
    assert cfg["Cmd"] == ["echo"] and cfg["Tty"] is True and cfg["Labels"] == {} and cfg["Entrypoint"] is None
    for body, message in [
        (None, "Config cannot be empty"),
        ({}, "No image"),
        ({"Image": "bb", "Cmd": [1]}, "Cmd must be a list of strings"),
        ({"Image": "bb", "Env": ["=x"]}, "invalid environment variable"),
        ({"Image": "bb", "Tty": "yes"}, "Tty must be a boolean"),
        ({"Image": "bb", "Labels": {"a": 1}}, "Labels must be an object of strings"),
        ({"Image": "bb", "WorkingDir": "rel"}, "needs to be an absolute path"),
        ({"Image": "bb", "StopSignal": "NOPE"}, "Invalid signal: NOPE"),
        ({"Image": "bb", "StopTimeout": "5"}, "StopTimeout must be an integer"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            check_config(body)
    assert valid_name("web") == "/web" and valid_name("/a.b-c_d") == "/a.b-c_d"
    for bad in ("a", "-x", "a b", "x/y", ""):
        with pytest.raises(InvalidArgument, match="Invalid container name"):
            valid_name(bad)


def test_host_config() -> None:
    hc = check_host_config(
        {"Binds": ["/srv:/data:ro"], "Tmpfs": {"/t": "size=1m"}, "NetworkMode": "default", "Memory": 64 << 20,
         "Mounts": [{"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o700}},
                    {"Type": "bind", "Source": "/etc", "Target": "/hostetc", "ReadOnly": True}]},
        ncpu=2,
    )  # fmt: skip
    assert hc["NetworkMode"] == "bridge"
    s = parse_host_config(hc, 2)
    assert [m.to_spec() for m in s.mounts] == [
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "rprivate", "ro"]},
        {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=1024", "mode=700"]},
        {"destination": "/hostetc", "type": "bind", "source": "/etc", "options": ["rbind", "rprivate", "ro"]},
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m"]},
    ]  # fmt: skip
    assert s.mounts[0].create_source and not s.mounts[2].create_source
    assert s.memory == 64 << 20
    for doc, message in [
        ({"Memory": 1024}, "Minimum memory limit"),
        ({"NanoCpus": 3_000_000_000}, "only 2 CPUs"),
        ({"NanoCpus": 1, "CpuPeriod": 100000}, "Conflicting options"),
        ({"CpuQuota": 10}, "less than 1ms"),
        ({"RestartPolicy": {"Name": "always"}}, "restart policy"),
        ({"Privileged": True}, "privileged"),
        ({"NetworkMode": "container:x"}, "network mode"),
        ({"Binds": ["vol:/x"]}, "named volumes"),
        ({"Binds": ["/a:/x:bogus"]}, "invalid mode"),
        ({"Binds": ["/a:/x", "/b:/x"]}, "Duplicate mount point"),
        ({"Mounts": [{"Type": "volume", "Target": "/v"}]}, "not supported"),
        ({"Mounts": [{"Type": "bind", "Target": "/v"}]}, "Source must not be empty"),
        ({"Tmpfs": {"/t": "size=1m;rm -rf"}}, "invalid tmpfs option"),
        ({"ConsoleSize": [1]}, "ConsoleSize"),
        ("nope", "HostConfig must be an object"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            check_host_config(doc, 2)


def test_merge_with_image_config() -> None:
    image = {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "Entrypoint": ["/init"], "WorkingDir": "/w",
             "User": "app", "Labels": {"l": "image", "m": "image"}, "StopSignal": "SIGINT"}  # fmt: skip
    base = check_config({"Image": "bb"})
    m = merge_image_config(base, image)
    assert argv_of(m) == ["/init", "sh"]
    assert m["Env"] == ["PATH=/bin", "A=image"] and m["User"] == "app" and m["StopSignal"] == "SIGINT"
    m = merge_image_config(check_config({"Image": "bb", "Cmd": ["ls"], "Env": ["A=mine"], "Labels": {"m": "c"}}), image)
    assert argv_of(m) == ["/init", "ls"]
    assert m["Env"] == ["A=mine", "PATH=/bin"] and m["Labels"] == {"l": "image", "m": "c"}
    m = merge_image_config(check_config({"Image": "bb", "Entrypoint": ["echo"]}), image)
    assert argv_of(m) == ["echo"]  # a new entrypoint drops the image's command
    m = merge_image_config(check_config({"Image": "bb", "Entrypoint": [""], "Cmd": ["ls"]}), image)
    assert argv_of(m) == ["ls"]
    with pytest.raises(InvalidArgument, match="no command specified"):
        argv_of(merge_image_config(check_config({"Image": "bb"}), {}))


def _rootfs(tmp_path: Path) -> str:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nstaff:x:50:app\n")
    return str(tmp_path)


def test_build_spec(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path)
    config = merge_image_config(
        check_config({"Image": "bb", "Cmd": ["sh"], "Env": ["X=1"], "User": "app", "WorkingDir": "/w", "Tty": True}),
        {"Env": ["PATH=/bin"]},
    )
    hc = check_host_config({"Memory": 32 << 20, "NanoCpus": 500_000_000, "NetworkMode": "host", "CpuShares": 512,
                            "Binds": ["/srv:/srv"]}, 2)  # fmt: skip
    spec = build_spec(
        "moby", "c" * 64, config, parse_host_config(hc, 2), rootfs=rootfs, hostname="box", etc_dir="/x/etc"
    )
    p = spec["process"]
    assert p["args"] == ["sh"] and p["cwd"] == "/w" and p["terminal"] is True
    assert p["env"] == ["HOSTNAME=box", "X=1", "PATH=/bin", "TERM=xterm"]
    assert p["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [1001, 50]}
    assert spec["hostname"] == "box"
    r = spec["linux"]["resources"]
    assert r["memory"] == {"limit": 32 << 20}
    assert r["cpu"] == {"quota": 50000, "period": 100000, "shares": 512}
    assert {"type": "network"} not in spec["linux"]["namespaces"] and {"type": "cgroup"} in spec["linux"]["namespaces"]
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests[-5:] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/sys/fs/cgroup", "/srv"]
    assert spec["linux"]["cgroupsPath"] == "/moby/" + "c" * 64
    assert process_env({"Env": ["PATH=/x"]}, "h") == ["HOSTNAME=h", "PATH=/x"]
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        build_spec("moby", "c" * 64, {**config, "User": "nobody"}, parse_host_config(hc, 2), rootfs=rootfs,
                   hostname="box", etc_dir="/x/etc")  # fmt: skip
    proc = exec_process(spec, ["id"], env=["Y=2", "X=3"], tty=False, user="0", cwd="/tmp", rootfs=rootfs)
    assert proc["args"] == ["id"] and proc["cwd"] == "/tmp" and proc["terminal"] is False
    assert "Y=2" in proc["env"] and "X=3" in proc["env"] and "X=1" not in proc["env"]
    assert proc["user"]["uid"] == 0


def test_state_machine() -> None:
    s = State()
    assert s.status_text(0) == "Created" and not s.running
    s.check_start("/x")
    s.started(42, 1_000_000_000)
    assert s.inspect()["Running"] and s.inspect()["Pid"] == 42
    assert s.status_text(6_000_000_000) == "Up 5 seconds"
    with pytest.raises(NotModified):
        s.check_start("/x")
    s.check_pause("id")
    s.status = "paused"
    assert s.status_text(62_000_000_000) == "Up About a minute (Paused)"
    with pytest.raises(Conflict, match="already paused"):
        s.check_pause("id")
    with pytest.raises(Conflict, match="paused, unpause"):
        s.check_running("id", "exec")
    s.check_unpause("id")
    s.exited(137, 3_601_000_000_000)
    assert s.status_text(3_601_000_000_000 + 7200 * 10**9) == "Exited (137) 2 hours ago"
    with pytest.raises(Conflict, match="not paused"):
        s.check_unpause("id")
    with pytest.raises(Conflict, match="not running"):
        s.check_pause("id")
    assert State.from_json(s.to_json()) == s
    assert State.from_json({"status": "weird"}).status == "dead"
    assert human_duration(0.5) == "Less than a second" and human_duration(1) == "1 second"
    assert human_duration(3 * 86400) == "3 days" and human_duration(20 * 86400) == "2 weeks"


def _record(n: int, **kw: Any) -> Record:
    base: dict[str, Any] = {
        "id": f"{n:02d}" + "a" * 62, "name": f"/c{n}", "created_ns": n, "image": "bb", "image_id": "sha256:i",
        "image_record": "docker.io/library/bb:latest", "config": {"Cmd": ["sh", "-c", "x"], "Labels": {}},
        "host_config": {"NetworkMode": "bridge"}, "snapshotter": "overlayfs",
    }  # fmt: skip
    base.update(kw)
    return Record(**base)


def test_views_and_filters() -> None:
    running = _record(1, config={"Cmd": ["sleep"], "Labels": {"app": "web"}})
    running.state.started(5, 1)
    exited = _record(2, image_id="sha256:other")
    exited.state.exited(3, 2)
    created = _record(3)
    records = [running, exited, created]

    def names(filters: dict[str, list[str]], show_all: bool = True, limit: int = 0) -> list[str]:
        got = filter_records(records, filters, show_all=show_all, limit=limit, resolve=lambda r: {
            "c1": running, "c2": exited, "c3": created}[r], ancestors=lambda r: {"sha256:i"})  # fmt: skip
        return [r.name for r in got]

    assert names({}, show_all=False) == ["/c1"]
    assert names({}) == ["/c3", "/c2", "/c1"]
    assert names({}, show_all=False, limit=2) == ["/c3", "/c2"]
    assert names({"status": ["exited"]}, show_all=False) == ["/c2"]
    assert names({"exited": ["3"]}) == ["/c2"]
    assert names({"label": ["app=web"]}) == ["/c1"]
    assert names({"name": ["c[12]"]}) == ["/c2", "/c1"]
    assert names({"id": ["02"]}) == ["/c2"]
    assert names({"ancestor": ["bb"]}) == ["/c3", "/c1"]
    assert names({"before": ["c3"], "since": ["c1"]}) == ["/c2"]
    with pytest.raises(InvalidArgument, match="status=bogus"):
        names({"status": ["bogus"]})
    with pytest.raises(InvalidArgument, match="exited=x"):
        names({"exited": ["x"]})
    s = summary(exited, 62_000_000_002, (1, 2))
    assert s["Status"] == "Exited (3) About a minute ago" and s["Command"] == "sh -c x"
    assert (s["SizeRw"], s["SizeRootFs"], s["Names"]) == (1, 2, ["/c2"])
    doc = inspect(running, paths={"log": "/l"}, exec_ids=[], size=None)
    assert doc["Path"] == "sleep" and doc["Args"] == [] and doc["LogPath"] == "/l" and doc["ExecIDs"] is None
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert doc["Config"]["Hostname"] == running.id[:12] and doc["State"]["Status"] == "running"


def test_parse_ps() -> None:
    out = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 1000\nroot 11 1 0 10:00 ? 00:00:00 other thing\n"
    assert parse_ps(out, [10]) == {
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": [["root", "10", "1", "0", "10:00", "?", "00:00:00", "sleep 1000"]],
    }
    with pytest.raises(InvalidArgument, match="PID field"):
        parse_ps("A B\n1 2\n", [1])
    with pytest.raises(InvalidArgument, match="Unexpected pid"):
        parse_ps("PID CMD\nx y\n", [1])


def test_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a = _record(1)
    store.add(a)
    with pytest.raises(Conflict, match='The container name "/c1" is already in use by container'):
        store.add(_record(2, name="/c1"))
    store.add(_record(2))
    assert store.get("c1") is a and store.get("/c1") is a and store.get(a.id) is a and store.get("01") is a
    with pytest.raises(InvalidArgument, match="multiple IDs"):
        store.get("0")
    with pytest.raises(NotFound, match="No such container: zz"):
        store.get("zz")
    a.state.started(7, 9)
    store.save(a)
    (tmp_path / "containers" / ("f" * 64)).mkdir()  # a create that died before its record
    (tmp_path / "containers" / ("e" * 64)).mkdir()
    (tmp_path / "containers" / ("e" * 64) / "config.v2.json").write_text("{broken")
    again = Store(tmp_path)
    loaded = {r.id: r for r in again.load()}
    assert set(loaded) == {a.id, _record(2).id}
    assert loaded[a.id].state.pid == 7 and loaded[a.id].config == a.config
    assert not (tmp_path / "containers" / ("f" * 64)).exists()
    assert again.generate_name().count("_") >= 1
    again.remove(loaded[a.id])
    assert not (tmp_path / "containers" / a.id).exists()
    with pytest.raises(NotFound):
        again.get("c1")
