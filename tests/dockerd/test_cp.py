"""``docker cp`` with the real CLI and docker-py: both ways, files and directories, tar on stdin/stdout,
running and stopped containers, and hostile paths and archives that must stay inside the container's root.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import tarfile
import urllib.parse
from pathlib import Path

import pytest

from pydockerd.containers._archive import parse_stat_header
from tests.dockerd._containers_support import PASSWD, bb_image  # noqa: F401 - the bb fixture
from tests.dockerd.conftest import DOCKER, Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon


def _docker_bytes(d: Pydockerd, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.cli_config))
    return subprocess.run([DOCKER, *args], env=env, input=stdin, capture_output=True, timeout=120, check=False)


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info in entries:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def _cp_mounts(daemon: PycontainerdDaemon) -> list[str]:
    """Mounts a cp of a stopped container made (its snapshot on a temporary directory) still there."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "/mount-" in line.split()[4] and str(daemon.base) in line]


def _put(d: Pydockerd, cid: str, path: str, body: bytes, **query: str) -> tuple[int, bytes]:
    q = urllib.parse.urlencode({"path": path, **query})
    status, _, out = d.request("PUT", f"/containers/{cid}/archive?{q}", body=body)
    return status, out


def test_cp_both_ways(pydockerd: Pydockerd, bb: str, tmp_path: Path, pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pydockerd
    cid = d.docker("run", "-d", "--name", "cpc", bb, "sleep", "300").stdout.strip()
    try:
        host = tmp_path / "host.txt"
        host.write_text("from the host\n")
        d.docker("cp", str(host), "cpc:/tmp/")
        assert d.docker("exec", "cpc", "cat", "/tmp/host.txt").stdout == "from the host\n"
        d.docker("cp", str(host), "cpc:/tmp/renamed.txt")
        assert d.docker("exec", "cpc", "cat", "/tmp/renamed.txt").stdout == "from the host\n"

        d.docker("cp", "cpc:/etc/hostname", str(tmp_path / "out"))
        assert (tmp_path / "out").read_text() == cid[:12] + "\n"

        src = tmp_path / "tree"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("a\n")
        (src / "sub" / "b.txt").write_text("b\n")
        d.docker("cp", str(src), "cpc:/tmp/tree")
        assert d.docker("exec", "cpc", "cat", "/tmp/tree/sub/b.txt").stdout == "b\n"
        d.docker("cp", "cpc:/tmp/tree", str(tmp_path / "back"))
        assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "b\n"
        assert (tmp_path / "back" / "a.txt").read_text() == "a\n"

        # A tar on stdin, one on stdout.
        streamed = _tar(
            [_entry("streamed", tarfile.DIRTYPE, mode=0o755), _entry("streamed/x.txt")], {"streamed/x.txt": b"x\n"}
        )
        r = _docker_bytes(d, "cp", "-", "cpc:/tmp", stdin=streamed)
        assert r.returncode == 0, r.stderr
        assert d.docker("exec", "cpc", "cat", "/tmp/streamed/x.txt").stdout == "x\n"
        r = _docker_bytes(d, "cp", "cpc:/tmp/tree", "-")
        assert r.returncode == 0, r.stderr
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            names = sorted(m.name.rstrip("/") for m in tar.getmembers())
            assert names == ["tree", "tree/a.txt", "tree/sub", "tree/sub/b.txt"]
            member = tar.extractfile("tree/sub/b.txt")
            assert member is not None and member.read() == b"b\n"

        r = d.docker("cp", "cpc:/nonexistent", str(tmp_path / "none"), ok=False)
        assert r.returncode == 1 and "Could not find the file /nonexistent in container cpc" in r.stderr, r.stderr

        # Stopped: the snapshot is mounted for the copy, and unmounted after it.
        d.docker("stop", "-t", "0", "cpc")
        d.docker("cp", "cpc:/tmp/host.txt", str(tmp_path / "stopped.txt"))
        assert (tmp_path / "stopped.txt").read_text() == "from the host\n"
        (tmp_path / "later.txt").write_text("while stopped\n")
        d.docker("cp", str(tmp_path / "later.txt"), "cpc:/tmp/")
        r = _docker_bytes(d, "cp", "cpc:/tmp", "-")
        assert r.returncode == 0, r.stderr
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            assert "tmp/later.txt" in tar.getnames()
        assert _cp_mounts(pycontainerd_daemon) == []
        d.docker("start", "cpc")
        assert d.docker("exec", "cpc", "cat", "/tmp/later.txt").stdout == "while stopped\n"

        # The stat header HEAD answers.
        status, headers, _ = d.request("HEAD", f"/containers/{cid}/archive?path=/tmp/tree")
        assert status == 200
        stat = parse_stat_header(headers["x-docker-container-path-stat"])
        assert stat["name"] == "tree" and stat["mode"] & (1 << 31)
        status, headers, _ = d.request("HEAD", f"/containers/{cid}/archive?path=/bin/sh")
        assert parse_stat_header(headers["x-docker-container-path-stat"])["linkTarget"] == "/bin/busybox"
        status, _, body = d.request("GET", f"/containers/{cid}/archive?path=")
        assert status == 400, body
    finally:
        d.docker("rm", "-f", "cpc")
    assert "Traceback" not in d.log()


def test_cp_stays_inside_the_root(
    pydockerd: Pydockerd, bb: str, tmp_path: Path, pycontainerd_daemon: PycontainerdDaemon
) -> None:
    d = pydockerd
    cid = d.docker("run", "-d", "--name", "hostile", bb, "sleep", "300").stdout.strip()
    token = secrets.token_hex(6)
    try:
        links = _tar([_entry("esc", tarfile.SYMTYPE, "/"), _entry("up", tarfile.SYMTYPE, "../../../..")])
        assert _put(d, cid, "/tmp", links) == (200, b"")
        for running in (True, False):
            name = f"escape-{token}-{running}.txt"
            (tmp_path / name).write_text("inside\n")
            # Written through links to / and above /: lands at the container's root, not the host's.
            d.docker("cp", str(tmp_path / name), "hostile:/tmp/esc/")
            d.docker("cp", str(tmp_path / name), "hostile:/tmp/up/tmp/")
            assert not Path("/", name).exists() and not Path("/tmp", name).exists()
            # Read through them: the container's files.
            d.docker("cp", "hostile:/tmp/up/etc/passwd", str(tmp_path / "passwd"))
            assert (tmp_path / "passwd").read_bytes() == PASSWD
            d.docker("cp", "hostile:/tmp/esc/../../../../etc/passwd", str(tmp_path / "passwd2"))
            assert (tmp_path / "passwd2").read_bytes() == PASSWD
            r = _docker_bytes(d, "cp", "hostile:/tmp/up/", "-")
            assert r.returncode == 0
            with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
                names = tar.getnames()
                assert (
                    f"up/{name}" in names
                    and "up/bin/busybox" in names
                    and not [n for n in names if n.startswith("up/proc/")]
                )

            # Hostile archives: climbing out of the destination, a hard link out of it, a device node.
            for entry, why in (
                (_entry("../../../../etc/evil"), "is outside of"),
                (_entry("ok", tarfile.LNKTYPE, "../../../etc/shadow"), "is outside of"),
                (_entry("null", tarfile.CHRTYPE), "device nodes"),
                (_entry(".wh.bin"), ".wh."),
            ):
                status, body = _put(d, cid, "/tmp", _tar([entry]))
                assert status == 400 and why in json.loads(body)["message"], body
            assert not Path("/etc/evil").exists()

            # A directory where a file is, and the other way round, when the CLI asks not to overwrite.
            status, body = _put(d, cid, "/", _tar([_entry("tmp")]), noOverwriteDirNonDir="true")
            assert status == 409 and "cannot overwrite directory" in json.loads(body)["message"], body
            status, body = _put(d, cid, "/", _tar([_entry("bin/busybox", tarfile.DIRTYPE)]), noOverwriteDirNonDir="1")
            assert status == 409, body
            status, body = _put(d, cid, "/nowhere", _tar([_entry("x")]))
            assert status == 404 and "Could not find the file /nowhere in container" in json.loads(body)["message"]
            status, body = _put(d, cid, "/bin/busybox", _tar([_entry("x")]))
            assert status == 400 and "not a directory" in json.loads(body)["message"]
            if running:
                assert d.docker("exec", "hostile", "cat", f"/{name}").stdout == "inside\n"
                d.docker("stop", "-t", "0", "hostile")
        r = _docker_bytes(d, "cp", "hostile:/", "-")
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            names = tar.getnames()
        assert f"./escape-{token}-False.txt" in names and f"./tmp/escape-{token}-True.txt" in names
        assert _cp_mounts(pycontainerd_daemon) == []
    finally:
        d.docker("rm", "-f", "hostile")
    assert "Traceback" not in d.log()


def test_dockerpy_archive(pydockerd: Pydockerd, bb: str) -> None:
    client = pydockerd.client()
    c = client.containers.run(bb, ["sleep", "300"], detach=True, name="py")
    try:
        data = _tar([_entry("hello.txt")], {"hello.txt": b"hello from docker-py\n"})
        assert c.put_archive("/tmp", data) is True
        chunks, stat = c.get_archive("/tmp/hello.txt")
        assert stat["name"] == "hello.txt" and stat["size"] == len(b"hello from docker-py\n")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile("hello.txt")
            assert member is not None and member.read() == b"hello from docker-py\n"
        c.stop(timeout=0)
        chunks, stat = c.get_archive("/etc/passwd")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile("passwd")
            assert member is not None and member.read() == PASSWD
    finally:
        c.remove(force=True)


def test_pure_path_rules() -> None:
    import stat as st

    from pycontainerd.errors import InvalidArgument
    from pydockerd.containers._archive import (
        PathStat,
        clean_path,
        dest_entry_parts,
        go_file_mode,
        pseudo_mounts,
        rebase_name,
        stat_header,
    )

    assert clean_path("../../etc/./passwd") == "/etc/passwd"
    assert clean_path("/tmp/dir/") == "/tmp/dir/" and clean_path("dir/.") == "/dir/."
    assert [rebase_name(p) for p in ("/etc/hostname", "/tmp/d/", "/tmp/d/.", "/", "..")] == [
        "hostname", "d", ".", ".", ".",
    ]  # fmt: skip
    assert go_file_mode(st.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_file_mode(st.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_file_mode(st.S_IFCHR | 0o600) == (1 << 26) | (1 << 21) | 0o600
    assert go_file_mode(st.S_IFDIR | st.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777
    header = stat_header(PathStat("f", 3, 0o644, 1_700_000_000_500_000_000, ""))
    assert parse_stat_header(header) == {
        "name": "f", "size": 3, "mode": 0o644, "mtime": "2023-11-14T22:13:20.5Z", "linkTarget": "",
    }  # fmt: skip
    assert dest_entry_parts(["tmp"], "./a/../b") == ["tmp", "b"]
    with pytest.raises(InvalidArgument, match="is outside of"):
        dest_entry_parts(["tmp"], "a/../../etc")
    info = (
        "22 28 0:21 / /proc rw,nosuid - proc proc rw\n"
        "23 28 0:22 / /sys ro - sysfs sysfs ro\n"
        "24 28 0:5 / /dev rw - tmpfs tmpfs rw\n"
        "25 28 0:23 / /my\\040dir rw - cgroup2 cgroup rw\n"
        "28 1 0:30 / / rw - overlay overlay rw\n"
    )
    assert pseudo_mounts(info) == {"/proc", "/sys", "/my dir"}
