"""A hostile rootfs: /etc/passwd and /etc/group that point outside it, loop, or are not files.

Beside the rootfs sits ``host/etc/passwd``, standing for the host's files:
its users (``hostonly``, uid 4242) must never be seen, however the image's
symlinks try to reach it.  Symlinks resolve as in a chroot: ``..`` stops at
the root and an absolute target starts from it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.oci import generate, read_group, read_passwd, with_user, with_user_id, with_username
from pycontainerd.oci._rootfs import read_file_in_root
from pycontainerd.oci.user import MAX_DB_SIZE

from .conftest import make_rootfs

HOST_PASSWD = "root:x:0:0::/root:/bin/sh\nhostonly:x:4242:4242::/:/bin/sh\n"
HOST_GROUP = "hostgroup:x:4343:hostonly\n"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    etc = tmp_path / "host" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(HOST_PASSWD)
    (etc / "group").write_text(HOST_GROUP)
    return tmp_path / "host"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_rootfs(tmp_path / "rootfs", passwd=None, group=None)


def never_sees_the_host(root: Path) -> None:
    entries = read_passwd(root)
    assert entries is None or all(e.name != "hostonly" for e in entries)
    groups = read_group(root)
    assert groups is None or all(g.name != "hostgroup" for g in groups)
    with pytest.raises(NotFound):
        generate("default", "c", with_username("hostonly", rootfs=root))
    spec = generate("default", "c", with_user_id(4242, rootfs=root))
    assert spec["process"]["user"] == {"uid": 4242, "gid": 0, "additionalGids": [0]}
    with pytest.raises(NotFound):
        generate("default", "c", with_user("0:hostgroup", rootfs=root))


def link(root: Path, name: str, target: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.symlink(target, path)


@pytest.mark.parametrize(
    "target",
    [
        "{host}/etc/passwd",  # an absolute host path: inside the rootfs it names nothing
        "../../host/etc/passwd",  # climbing: stops at the rootfs's root
        "/../../../../../../{host}/etc/passwd",
        "../../../../../../../../../../../../{host}/etc/passwd",
        "/proc/self/root/{host}/etc/passwd",  # /proc of the rootfs is not the host's (nor mounted)
    ],
)
def test_passwd_symlinked_out(root: Path, host: Path, target: str) -> None:
    link(root, "etc/passwd", target.format(host=host))
    link(root, "etc/group", target.format(host=host).replace("passwd", "group"))
    assert read_passwd(root) is None
    never_sees_the_host(root)


@pytest.mark.parametrize("target", ["{host}/etc", "../../host/etc", "/../{host}/etc", "../{host}/etc"])
def test_etc_symlinked_out(root: Path, host: Path, target: str) -> None:
    (root / "etc").rmdir()
    link(root, "etc", target.format(host=host))
    assert read_passwd(root) is None
    never_sees_the_host(root)


def test_chained_symlinks_climbing_out(root: Path, host: Path) -> None:
    (root / "etc").rmdir()
    link(root, "etc", "a/b")
    link(root, "a/b/passwd", "../../../../c/passwd")  # -> /c/passwd, clamped
    link(root, "c/passwd", str(host / "etc" / "passwd"))
    assert read_passwd(root) is None
    never_sees_the_host(root)


def test_absolute_links_resolve_inside_the_rootfs(root: Path, host: Path) -> None:
    """A link to the host's path reads the rootfs's file of that name, as the container would."""
    make_rootfs(root / str(host).lstrip("/"), passwd="inside:x:7:7::/:/bin/sh\n", group="insiders:x:70:inside\n")
    link(root, "etc/passwd", str(host / "etc" / "passwd"))
    link(root, "etc/group", "/../../" + str(host / "etc" / "group"))
    assert [e.name for e in read_passwd(root) or []] == ["inside"]
    spec = generate("default", "c", with_user("inside:insiders", rootfs=root))
    assert spec["process"]["user"] == {"uid": 7, "gid": 70, "additionalGids": [70]}


def test_legitimate_relative_links(root: Path) -> None:
    make_rootfs(root / "usr" / "lib", passwd="app:x:1000:1000::/:/bin/sh\n")
    link(root, "etc/passwd", "../usr/lib/etc/passwd")
    link(root, "lib", "usr/lib")
    link(root, "etc/group", "/lib/./etc/../etc/group")
    (root / "usr" / "lib" / "etc" / "group").write_text("app:x:1000:\n")
    assert [e.uid for e in read_passwd(root) or []] == [1000]
    assert [g.name for g in read_group(root) or []] == ["app"]


def test_symlink_loops_are_refused(root: Path) -> None:
    link(root, "etc/passwd", "passwd")
    with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
        read_passwd(root)
    link(root, "etc/passwd", "/etc/x")
    link(root, "etc/x", "../etc/passwd")
    with pytest.raises(InvalidArgument, match="too many levels"):
        generate("default", "c", with_username("app", rootfs=root))


def test_a_fifo_is_refused_without_being_opened(root: Path) -> None:
    """Opening a FIFO for reading would block for ever; it is refused on its type alone."""
    os.mkfifo(root / "etc" / "passwd")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_passwd(root)
    link(root, "etc/group", "passwd")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_group(root)


def test_a_device_node_is_refused(root: Path) -> None:
    os.mknod(root / "etc" / "passwd", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: endless bytes
    with pytest.raises(InvalidArgument, match="not a regular file"):
        generate("default", "c", with_username("app", rootfs=root))


def test_a_directory_is_refused(root: Path) -> None:
    (root / "etc" / "passwd").mkdir()
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_passwd(root)
    link(root, "etc/group", "/")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_group(root)


def test_a_huge_file_is_refused(root: Path) -> None:
    with open(root / "etc" / "passwd", "wb") as f:
        f.truncate(MAX_DB_SIZE + 1)  # sparse: no disk used
    with pytest.raises(InvalidArgument, match="larger than"):
        read_passwd(root)
    (root / "etc" / "group").write_bytes(b"g:x:1:\n" * 10)
    assert read_file_in_root(root, "/etc/group", limit=70) == b"g:x:1:\n" * 10
    with pytest.raises(InvalidArgument, match="larger than 69 bytes"):
        read_file_in_root(root, "/etc/group", limit=69)


def test_missing_pieces_are_missing(root: Path) -> None:
    assert read_passwd(root) is None
    (root / "etc").rmdir()
    (root / "etc").write_text("a file where a directory should be")
    assert read_passwd(root) is None
    assert read_file_in_root(root, "/etc/../etc/passwd", limit=10) is None
    link(root, "dangling", "/nowhere/at/all")
    assert read_file_in_root(root, "/dangling", limit=10) is None


def test_dotdot_in_the_name_stays_inside(root: Path, host: Path, tmp_path: Path) -> None:
    rel = os.path.relpath(host / "etc" / "passwd", root)  # ../host/etc/passwd
    assert read_file_in_root(root, rel, limit=1 << 20) is None
    assert read_file_in_root(root, "/../../" + rel, limit=1 << 20) is None
    (root / "etc" / "passwd").write_text("x:x:1:1\n")
    assert read_file_in_root(root, "/../../../etc/./passwd", limit=1 << 20) == b"x:x:1:1\n"
