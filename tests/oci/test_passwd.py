"""The passwd and group parsers: bytes in, entries out; malformed lines skipped, never guessed at."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.oci import GroupEntry, PasswdEntry, parse_group, parse_passwd
from pycontainerd.oci.passwd import MAX_ID, parse_id


def test_passwd() -> None:
    data = b"root:x:0:0:root:/root:/bin/bash\napp:x:1000:1001:App,,,:/home/app:/bin/sh\n"
    assert parse_passwd(data) == [
        PasswdEntry("root", "x", 0, 0, "root", "/root", "/bin/bash"),
        PasswdEntry("app", "x", 1000, 1001, "App,,,", "/home/app", "/bin/sh"),
    ]


def test_passwd_short_and_long_lines() -> None:
    assert parse_passwd("a:x:1:2") == [PasswdEntry("a", "x", 1, 2)]
    assert parse_passwd("a:x:1:2:g:/h:/s:extra:fields") == [PasswdEntry("a", "x", 1, 2, "g", "/h", "/s")]


def test_passwd_skips_what_is_not_an_entry() -> None:
    data = "\n".join(
        [
            "# a comment",
            "",
            "   ",
            "nofields",
            "a:x:1",  # no gid
            ":x:5:5::/:/bin/sh",  # no name
            "b:x:notanumber:0::/:/bin/sh",  # runc would read uid 0 here
            "c:x:1:-1::/:/bin/sh",
            "d:x:+7:7::/:/bin/sh",
            "e:x: 8:8::/:/bin/sh",
            "f:x:4294967295:0::/:/bin/sh",  # (uid_t)-1
            "g:x:99999999999999999999:0::/:/bin/sh",
            "h:x:٣:3::/:/bin/sh",  # a non-ASCII digit
            "  ok:x:4294967294:65534::/:/bin/sh\r",  # whitespace around a line is trimmed
        ]
    )
    assert parse_passwd(data) == [PasswdEntry("ok", "x", MAX_ID, 65534, "", "/", "/bin/sh")]


def test_undecodable_bytes_do_not_break_parsing() -> None:
    entries = parse_passwd(b"\xff\xfe:x:1:1::/:/bin/sh\nroot:x:0:0::/:/bin/sh\n")
    assert [e.uid for e in entries] == [1, 0]
    assert entries[1].name == "root"


def test_group() -> None:
    data = "root:x:0:\nwheel:x:10:root,app\nstaff:x:50\nodd:x:7:,a,,b,\n# c:x:1:\nbad:x:gid:a\n"
    assert parse_group(data) == [
        GroupEntry("root", "x", 0, ()),
        GroupEntry("wheel", "x", 10, ("root", "app")),
        GroupEntry("staff", "x", 50, ()),
        GroupEntry("odd", "x", 7, ("a", "b")),
    ]


def test_parse_id() -> None:
    assert parse_id("0") == 0 and parse_id("4294967294") == MAX_ID
    for bad in ("", "-1", "+1", "1.0", "4294967295", "0x10", " 1", "1 ", "٣", "1" * 30):
        assert parse_id(bad) is None


@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    for e in parse_passwd(data):
        assert e.name and 0 <= e.uid <= MAX_ID and 0 <= e.gid <= MAX_ID
    for g in parse_group(data):
        assert g.name and 0 <= g.gid <= MAX_ID and all(g.members)


@given(
    st.lists(st.tuples(st.from_regex(r"[a-z_][a-z0-9_-]{0,15}", fullmatch=True), st.integers(0, MAX_ID)), max_size=20)
)
def test_well_formed_entries_all_come_back(users: list[tuple[str, int]]) -> None:
    text = "".join(f"{name}:x:{uid}:{uid}:gecos:/home/{name}:/bin/sh\n" for name, uid in users)
    assert [(e.name, e.uid, e.gid) for e in parse_passwd(text)] == [(n, u, u) for n, u in users]
