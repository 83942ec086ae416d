"""Users and groups from the image's files, and what an image config brings, with containerd 1.6's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.oci import (
    DEFAULT_PATH_ENV,
    Spec,
    generate,
    image_stop_signal,
    with_additional_gids,
    with_append_additional_groups,
    with_env,
    with_image_config,
    with_process_args,
    with_rootfs,
    with_uid_gid,
    with_user,
    with_user_id,
    with_username,
)
from pycontainerd.oci.spec import SpecOpt

from .conftest import make_rootfs


def user_of(*opts: SpecOpt) -> dict[str, Any]:
    return generate("default", "c", *opts)["process"]["user"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("1000", {"uid": 1000, "gid": 1000, "additionalGids": [1000]}),  # gid from the passwd entry
        ("4000", {"uid": 4000, "gid": 0, "additionalGids": [0]}),  # no entry: gid 0, not an error
        ("app", {"uid": 1000, "gid": 1000, "additionalGids": [1000]}),
        ("other", {"uid": 1001, "gid": 1002, "additionalGids": [1002]}),
        ("1000:1000", {"uid": 1000, "gid": 1000, "additionalGids": [1000]}),
        ("5:7", {"uid": 5, "gid": 7, "additionalGids": [7]}),
        ("app:2000", {"uid": 1000, "gid": 2000, "additionalGids": [2000]}),
        ("other:staff", {"uid": 1001, "gid": 2000, "additionalGids": [2000]}),  # the name gives only the uid
        ("0:video", {"uid": 0, "gid": 44, "additionalGids": [44]}),
        ("root", {"uid": 0, "gid": 0, "additionalGids": [0]}),
    ],
)
def test_with_user(rootfs: Path, user: str, expected: dict[str, Any]) -> None:
    assert user_of(with_user(user, rootfs=rootfs)) == expected


def test_numeric_user_and_group_need_no_rootfs() -> None:
    assert user_of(with_user("1000:1000")) == {"uid": 1000, "gid": 1000, "additionalGids": [1000]}


def test_lookups_use_an_absolute_root_path(rootfs: Path) -> None:
    assert user_of(with_rootfs(str(rootfs)), with_user("app"))["uid"] == 1000
    with pytest.raises(InvalidArgument, match="rootfs"):
        user_of(with_user("app"))  # the default root path is "rootfs", relative to a bundle


@pytest.mark.parametrize(
    ("user", "message"),
    [("nobody", 'no user "nobody"'), ("nobody:0", 'no user "nobody"'), ("0:nogroup", 'no group "nogroup"')],
)
def test_unknown_names(rootfs: Path, user: str, message: str) -> None:
    with pytest.raises(NotFound, match=message):
        user_of(with_user(user, rootfs=rootfs))


def test_unknown_names_without_files(tmp_path: Path) -> None:
    empty = make_rootfs(tmp_path / "empty", passwd=None, group=None)
    with pytest.raises(NotFound, match="has no /etc/passwd"):
        user_of(with_username("app", rootfs=empty))
    with pytest.raises(NotFound, match="has no /etc/group"):
        user_of(with_user("1:staff", rootfs=empty))
    assert user_of(with_user_id(33, rootfs=empty)) == {"uid": 33, "gid": 0, "additionalGids": [0]}


@pytest.mark.parametrize("user", ["", ":", "a:", ":b", "a:b:c", "1:2:3"])
def test_malformed_users(user: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid user"):
        with_user(user)


@pytest.mark.parametrize(("uid", "gid"), [(-1, 0), (0, 2**32 - 1), (True, 0), (1.0, 0)])
def test_bad_ids(uid: Any, gid: Any) -> None:
    with pytest.raises(InvalidArgument):
        with_uid_gid(uid, gid)


def test_setting_a_user_resets_the_supplementary_groups(rootfs: Path) -> None:
    spec = generate(
        "default",
        "c",
        with_uid_gid(1, 1),
        with_append_additional_groups("wheel", "5", rootfs=rootfs),
        with_uid_gid(2, 3),
    )
    assert spec["process"]["user"] == {"uid": 2, "gid": 3, "additionalGids": [3]}


@pytest.mark.parametrize(
    ("user", "gids"),
    [
        ("app", [1000, 10, 2000]),  # not its own group "app" (named like the user), wheel, staff
        ("1000", [1000, 10, 2000]),  # the uid is looked up in passwd first
        ("other", [1000, 2000, 44]),  # the primary gid (1000 from with_uid_gid) heads the list
        ("4000", [1000]),  # a uid with no passwd entry: no groups
        ("ghost", [1000]),  # a name in no group
    ],
)
def test_additional_gids(rootfs: Path, user: str, gids: list[int]) -> None:
    assert user_of(with_uid_gid(1000, 1000), with_additional_gids(user, rootfs=rootfs))["additionalGids"] == gids


def test_append_additional_groups(rootfs: Path) -> None:
    got = user_of(with_uid_gid(1000, 1000), with_append_additional_groups("video", "12345", rootfs=rootfs))
    assert got["additionalGids"] == [1000, 44, 12345]
    with pytest.raises(NotFound, match='no group "nogroup"'):
        user_of(with_append_additional_groups("nogroup", rootfs=rootfs))


# -- image config ---------------------------------------------------------------------------------

CONFIG: dict[str, Any] = {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
    "Entrypoint": ["/entry.sh"],
    "Cmd": ["serve", "--port", "80"],
    "WorkingDir": "/srv",
    "User": "app",
    "StopSignal": "SIGQUIT",
}


def with_config(rootfs: Path, config: dict[str, Any] | None, *before: SpecOpt, **kw: Any) -> Spec:
    return generate("default", "c", *before, with_image_config(config, rootfs=rootfs, **kw))


def test_image_config(rootfs: Path) -> None:
    proc = with_config(rootfs, CONFIG)["process"]
    assert proc["args"] == ["/entry.sh", "serve", "--port", "80"]
    assert proc["env"] == ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]
    assert proc["cwd"] == "/srv"
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 2000]}


def test_image_config_env_under_the_specs_own(rootfs: Path) -> None:
    """Variables set before the image config win over the image's, as ctr's --env does."""
    proc = with_config(rootfs, CONFIG, with_env(["LANG=fr_FR.UTF-8", "DEBUG=1"]))["process"]
    assert proc["env"] == ["PATH=/usr/bin:/bin", "LANG=fr_FR.UTF-8", "DEBUG=1"]


def test_image_config_args_replace_cmd_not_entrypoint(rootfs: Path) -> None:
    assert with_config(rootfs, CONFIG, args=["check"])["process"]["args"] == ["/entry.sh", "check"]
    assert with_config(rootfs, CONFIG, args=[])["process"]["args"] == ["/entry.sh", "serve", "--port", "80"]
    no_entry = dict(CONFIG, Entrypoint=None)
    assert with_config(rootfs, no_entry, args=["/bin/sh"])["process"]["args"] == ["/bin/sh"]
    # options after the image config still win
    spec = generate("default", "c", with_image_config(CONFIG, rootfs=rootfs), with_process_args("/bin/true"))
    assert spec["process"]["args"] == ["/bin/true"]


def test_empty_image_config(rootfs: Path) -> None:
    proc = with_config(rootfs, {})["process"]
    assert proc["env"] == [DEFAULT_PATH_ENV]
    assert "args" not in proc
    assert proc["cwd"] == "/"
    assert proc["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}  # root is in wheel
    assert with_config(rootfs, None)["process"]["user"]["uid"] == 0


@pytest.mark.parametrize(
    "config",
    [
        {"Env": "PATH=/bin"},
        {"Env": [1]},
        {"Cmd": "sh"},
        {"Entrypoint": [None]},
        {"WorkingDir": 5},
        {"User": ["app"]},
        {"User": "a:b:c"},
    ],
)
def test_malformed_image_config(rootfs: Path, config: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        with_config(rootfs, config)


def test_image_user_not_in_passwd(rootfs: Path) -> None:
    with pytest.raises(NotFound, match='no user "www-data"'):
        with_config(rootfs, {"User": "www-data"})


def test_stop_signal() -> None:
    assert image_stop_signal(CONFIG) == 3
    assert image_stop_signal({}) == 15
    assert image_stop_signal(None) == 15
    assert image_stop_signal({"StopSignal": ""}, default="SIGINT") == 2
    assert image_stop_signal({"StopSignal": "9"}) == 9
    with pytest.raises(InvalidArgument, match="invalid signal"):
        image_stop_signal({"StopSignal": "SIGNOPE"})
    with pytest.raises(InvalidArgument, match="invalid signal"):
        image_stop_signal(CONFIG, default="nope")
    with pytest.raises(InvalidArgument, match="must be a string"):
        image_stop_signal({"StopSignal": 9})
