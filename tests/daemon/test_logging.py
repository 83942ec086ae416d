"""Structured logs: logrus-like text or JSON lines, each naming the gRPC call it was logged in.

The formatters are checked on records made by the logging module itself;
the daemon is then run in both formats, called, and its whole log read back
line by line: every line parses, and the lines of a call carry its request
id, method and namespace.  Credentials stay out of either format.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
from collections.abc import Callable, Iterator

import grpc
import pytest

from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.log import Request, current, levels
from pycontainerd.log.format import ContextFilter, JSONFormatter, TextFormatter, formatter, timestamp
from pycontainerd.remotes.docker._credentials import RedactingFilter, redact, remember
from tests.daemon.conftest import NAMESPACE, Stubs, channel_to, md
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon

GET = "/containerd.services.images.v1.Images/Get"
TIME = r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"'


@pytest.fixture
def capture() -> Iterator[Callable[[logging.Formatter], tuple[logging.Logger, io.StringIO]]]:
    """A private logger writing through the daemon's filters and a given formatter to a string."""
    made: list[tuple[logging.Logger, logging.Handler]] = []

    def make(fmt: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(fmt)
        handler.addFilter(ContextFilter())
        handler.addFilter(RedactingFilter())
        logger = logging.getLogger(f"tests.logging.{len(made)}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger, out

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


# -- the formatters -----------------------------------------------------------


def test_timestamps_have_nine_fixed_digits() -> None:
    assert timestamp(0.5) == "1970-01-01T00:00:00.500000000Z"
    assert timestamp(1.0) == "1970-01-01T00:00:01.000000000Z"
    assert timestamp(59.9999999) == "1970-01-01T00:01:00.000000000Z"  # rounds up into the next second


def test_text_is_one_logrus_line_with_fields(capture) -> None:  # type: ignore[no-untyped-def]
    logger, out = capture(TextFormatter())
    logger.info('pulled "%s"\nsecond line', "img", extra={"digest": "sha256:ab", "size": 12, "ok": True, "n": None})
    logger.warning("stopping")
    first, second = _lines(out)
    assert re.fullmatch(
        TIME + r' level=info msg="pulled \\"img\\"\\nsecond line" digest="sha256:ab" size=12 ok=true n=<nil>', first
    ), first
    assert re.fullmatch(TIME + " level=warning msg=stopping", second), second  # bare, as logrus leaves it


def test_lines_in_a_call_name_it_first_and_a_caller_field_wins(capture) -> None:  # type: ignore[no-untyped-def]
    logger, out = capture(TextFormatter())
    token = current.set(Request("abc123", GET, "ns1"))
    try:
        logger.debug("looking up", extra={"image": "docker.io/library/busybox:latest"})
        logger.debug("elsewhere", extra={"namespace": "other"})
    finally:
        current.reset(token)
    logger.debug("after")
    one, two, three = _lines(out)
    assert one.endswith(
        f'msg="looking up" request_id=abc123 method={GET} namespace=ns1 image="docker.io/library/busybox:latest"'
    )
    assert two.endswith(f"msg=elsewhere request_id=abc123 method={GET} namespace=other")
    assert three.endswith("msg=after")


def test_json_is_one_object_per_line_with_the_traceback_in_one_field(capture) -> None:  # type: ignore[no-untyped-def]
    logger, out = capture(JSONFormatter())
    token = current.set(Request("r1", GET, ""))
    try:
        try:
            raise ValueError("boom\nover two lines")
        except ValueError:
            logger.exception("it failed", extra={"time": 3, "level": "x", "ratio": float("nan"), "obj": object})
    finally:
        current.reset(token)
    (line,) = _lines(out)
    doc = json.loads(line)
    assert list(doc)[:6] == ["time", "level", "msg", "request_id", "method", "namespace"]
    assert doc["level"] == "error" and doc["msg"] == "it failed"
    assert (doc["request_id"], doc["method"], doc["namespace"]) == ("r1", GET, "")
    assert doc["fields.time"] == 3 and doc["fields.level"] == "x"  # logrus's renaming of clashing keys
    assert doc["ratio"] == "nan" and doc["obj"] == "<class 'object'>"
    assert doc["error"] == "ValueError: boom\nover two lines"
    assert doc["traceback"].startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError("boom\\nover two lines")' in doc["traceback"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format 'yaml'"):
        formatter("yaml")


@pytest.mark.parametrize("name", ["text", "json"])
def test_credentials_are_redacted_in_both_formats(capture, name: str) -> None:  # type: ignore[no-untyped-def]
    password = "c0rrect-h0rse-staple"
    remember("alice", password)
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
    logger, out = capture(formatter(name, clean=redact))
    logger.info("registry said: Authorization: Basic %s", basic, extra={"token": f"Bearer {jwt}", "pw": password})
    try:
        raise PermissionError(f"denied for {password}")
    except PermissionError:
        logger.exception("pull failed")
    text = out.getvalue()
    assert len(_lines(out)) == 2
    for secret in (password, basic, jwt):
        assert secret not in text
    assert text.count("<redacted>") >= 4
    if name == "json":
        docs = [json.loads(line) for line in _lines(out)]
        assert docs[0]["msg"] == "registry said: Authorization: Basic <redacted>"
        assert docs[0]["token"] == "Bearer <redacted>" and docs[0]["pw"] == "<redacted>"
        assert docs[1]["error"] == "PermissionError: denied for <redacted>"


def test_levels_by_containerds_names() -> None:
    before = levels.level()
    loggers = [logging.getLogger(name) for name in ("", *levels.NOISY)]
    saved = [logger.level for logger in loggers]
    try:
        assert levels.set_level(" TRACE ") == "trace"
        assert logging.getLogger().level == logging.DEBUG
        assert logging.getLogger("grpc").level == logging.INFO  # plumbing stays quiet
        assert levels.set_level("error") == "error"
        assert logging.getLogger("asyncio").level == logging.ERROR
        with pytest.raises(ValueError) as e:
            levels.set_level("loud")
        assert str(e.value) == "invalid log level 'loud' (one of trace, debug, info, warn, error, fatal, panic)"
        assert levels.level() == "error"
    finally:
        levels.set_level(before)
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


# -- the daemon's log -----------------------------------------------------------------


def _not_found(d: PycontainerdDaemon, name: str) -> None:
    with channel_to(d.address) as ch, pytest.raises(grpc.RpcError) as e:
        Stubs(ch).images.Get(ipb.GetImageRequest(name=name), metadata=md())
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_daemon_json_log_names_each_call(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(args=["--log-format", "json", "--log-level", "debug"])
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLWJ5dGVz"
    _not_found(d, "example.com/first:1")
    _not_found(d, f"example.com/{jwt}:2")
    assert d.stop() == 0
    docs = [json.loads(line) for line in d.log().splitlines()]  # every line is one JSON object
    assert all({"time", "level", "msg"} <= doc.keys() for doc in docs)
    calls = [doc for doc in docs if doc.get("method") == GET]
    assert len(calls) == 2, calls
    assert all(doc["namespace"] == NAMESPACE and "not found" in doc["msg"] for doc in calls)
    assert calls[0]["request_id"] != calls[1]["request_id"]
    assert jwt not in d.log() and "<redacted>" in calls[1]["msg"]
    assert any(doc["msg"] == "pycontainerd stopped" for doc in docs)


def test_daemon_text_log_from_the_config_names_each_call(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(config='version = 2\n[debug]\nlevel = "debug"\nformat = "text"\n')
    _not_found(d, "example.com/missing:1")
    line = next(line for line in d.log().splitlines() if f"method={GET}" in line)
    assert re.fullmatch(
        TIME + rf' level=debug msg="(?:[^"\\]|\\.)*not found" request_id=[0-9a-f]+ method={GET} namespace={NAMESPACE}',
        line,
    ), line
    assert all(re.match(TIME + " level=", line) for line in d.log().splitlines())


def test_flag_format_overrides_the_file_and_a_bad_one_is_refused(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(config='version = 2\n[debug]\nformat = "json"\n', start=False)
    dump = subprocess.run(
        [*d.command(), "--log-format", "TEXT", "config", "dump"], capture_output=True, text=True, timeout=60, check=True
    )
    assert '[debug]\naddress = ""\nlevel = "info"\nformat = "text"\n' in dump.stdout
    res = subprocess.run(
        [*d.command(), "--log-format", "yaml"], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 1
    assert res.stderr == "pycontainerd: --log-format: invalid log format 'yaml' (one of text, json)\n"
    d.start()
    assert all(json.loads(line) for line in d.log().splitlines())
