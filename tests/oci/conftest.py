"""A root filesystem to resolve users in: /etc/passwd and /etc/group written into a fresh directory."""

from __future__ import annotations

from pathlib import Path

import pytest

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
other:x:1001:1002::/home/other:/bin/sh
"""

GROUP = """\
root:x:0:
wheel:x:10:root,app
app:x:1000:app
staff:x:2000:other,app
video:x:44:other
"""


def make_rootfs(root: Path, passwd: str | None = PASSWD, group: str | None = GROUP) -> Path:
    """``root`` with an etc/ holding the given passwd and group files (None: the file is absent)."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    if passwd is not None:
        (root / "etc" / "passwd").write_text(passwd)
    if group is not None:
        (root / "etc" / "group").write_text(group)
    return root


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A rootfs whose users are root, daemon, app (1000, in wheel and staff) and other (1001, gid 1002)."""
    return make_rootfs(tmp_path / "rootfs")
