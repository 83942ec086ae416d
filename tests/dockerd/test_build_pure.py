"""The builder's pure parts, with bytes: the Dockerfile parser, variable expansion, .dockerignore."""

from __future__ import annotations

import pytest

from pycontainerd.errors import InvalidArgument
from pydockerd.builder._ignore import parse_dockerignore
from pydockerd.builder._parser import parse_dockerfile
from pydockerd.builder._shell import Expander, ExpansionError


def test_parse_forms_continuations_comments() -> None:
    df = parse_dockerfile(
        b"# syntax=docker/dockerfile:1\n"
        b"ARG V=1\n"
        b"from busybox AS b\n"
        b"# a comment\n"
        b"RUN echo a \\\n"
        b"  # a comment inside\n"
        b"\n"
        b"  && echo b\n"
        b'ENV A=1 B="x y" \\\n'
        b"    C=$A\n"
        b"ENV OLD value here\n"
        b'COPY --from=b --chown=1:2 ["/a", "/b c"]\n'
        b'CMD ["sh", "-c"]\n'
        b"CMD sh -c 'x'\n"
        b"EXPOSE 80/tcp 443\n"
    )
    cmds = [(i.cmd, i.args, i.json_form, i.flags) for i in df.instructions]
    assert cmds == [
        ("ARG", ("V=1",), False, {}),
        ("FROM", ("busybox", "AS", "b"), False, {}),
        ("RUN", ("echo a   && echo b",), False, {}),
        ("ENV", ("A", "1", "B", '"x y"', "C", "$A"), False, {}),
        ("ENV", ("OLD", "value here"), False, {}),
        ("COPY", ("/a", "/b c"), True, {"from": "b", "chown": "1:2"}),
        ("CMD", ("sh", "-c"), True, {}),
        ("CMD", ("sh -c 'x'",), False, {}),
        ("EXPOSE", ("80/tcp", "443"), False, {}),
    ]
    assert df.instructions[2].line == 5
    assert df.instructions[1].original == "from busybox AS b"


def test_escape_directive() -> None:
    df = parse_dockerfile(b"# escape=`\nFROM scratch\nCOPY a `\n  b\n")
    assert df.escape == "`"
    assert df.instructions[1].args == ("a", "b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"FROM busybox\nFOO bar\n", "dockerfile parse error on line 2: unknown instruction: FOO"),
        (b"FROM busybox\nCOPY onlyone\n", "dockerfile parse error on line 2: COPY requires at least two arguments"),
        (b"FROM a b\n", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        (b"FROM a\nCOPY --nope=1 a b\n", "dockerfile parse error on line 2: unknown flag: nope"),
        (b"RUN true\n", "no build stage in current context"),
        (b"# just a comment\n", "cannot be empty"),
        (b"FROM a\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
    ],
)
def test_parse_errors(text: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_dockerfile(text)
    assert message in str(e.value)
    assert e.value.http_status == 400


def test_expansion() -> None:
    e = Expander()
    env = {"A": "1", "E": "", "S": "a b"}
    cases = {
        "$A": "1",
        "${A}": "1",
        "x${A}y$A": "x1y1",
        "${B:-def}": "def",
        "${E:-d}": "d",
        "${E-d}": "",
        "${B-d}": "d",
        "${A:+yes}": "yes",
        "${E:+yes}": "",
        "${E+yes}": "yes",
        "'$A'": "$A",
        '"$A x"': "1 x",
        "\\$A": "$A",
        '"a\\"b"': 'a"b',
        "$": "$",
        "${B:-$A}": "1",
    }
    for word, want in cases.items():
        assert e.word(word, env) == want, word
    assert e.words('a "b c" $S', env) == ["a", "b c", "a", "b"]
    assert Expander("`").word("`$A", env) == "$A"
    with pytest.raises(ExpansionError, match="B: must be set"):
        e.word("${B:?must be set}", env)
    with pytest.raises(ExpansionError, match="single-quote"):
        e.word("'open", env)
    with pytest.raises(ExpansionError, match="missing"):
        e.word("${A", env)


def test_dockerignore() -> None:
    m = parse_dockerignore(b"# comment\n*.log\n!keep.log\n/build\n**/tmp\nsub/*.txt\n  \nnode_modules/\ndocs/**\n")
    excluded = {
        "a.log": True,
        "keep.log": False,
        "d/a.log": False,  # * stays in one element
        "build/x/y": True,
        "x/y/tmp/z": True,
        "tmp": True,
        "sub/a.txt": True,
        "sub/d/a.txt": False,
        "node_modules/p/index.js": True,
        "docs/a/b.md": True,
        "src/a.py": False,
    }
    for path, want in excluded.items():
        assert m.excluded(path) is want, path
    assert parse_dockerignore(b"*\n!src\n").excluded("src/a/b.py") is False
    assert parse_dockerignore(b"a/../b\n").excluded("b") is True
    assert parse_dockerignore(b"f[0-9].txt\n").excluded("f1.txt") is True
