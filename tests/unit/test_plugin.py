from __future__ import annotations

import pytest

from pycontainerd import errors
from pycontainerd.plugin import Registration, Registry, ordered


def reg(type_: str, id_: str, *requires: str) -> Registration:
    return Registration(type=type_, id=id_, init=lambda ic: None, requires=requires)


def test_dependencies_come_first() -> None:
    regs = [
        reg("grpc", "content", "service"),
        reg("service", "content", "metadata"),
        reg("metadata", "bolt", "content"),
        reg("content", "content"),
        reg("grpc", "introspection", "*"),
    ]
    order = [r.uri for r in ordered(regs)]
    assert order.index("content.content") < order.index("metadata.bolt") < order.index("service.content")
    assert order.index("service.content") < order.index("grpc.content")
    assert order[-1] == "grpc.introspection"


def test_cycle_is_refused_with_its_path() -> None:
    with pytest.raises(errors.InvalidArgument, match=r"cycle: a\.1 -> b\.1 -> a\.1"):
        ordered([reg("a", "1", "b"), reg("b", "1", "a")])


def test_disabled_plugins_are_left_out() -> None:
    regs = [reg("a", "1"), reg("b", "2", "a")]
    assert [r.uri for r in ordered(regs, disabled=["a.1"])] == ["b.2"]
    assert [r.uri for r in ordered(regs, disabled=["2"])] == ["a.1"]


def test_registry_refuses_duplicates_and_blanks() -> None:
    r = Registry()
    r.register(reg("a", "1"))
    with pytest.raises(errors.InvalidArgument):
        r.register(reg("a", "1"))
    with pytest.raises(errors.InvalidArgument):
        r.register(reg("", "1"))
    assert [x.uri for x in r] == ["a.1"]


def test_error_classes_map_once() -> None:
    import grpc

    for cls in (errors.NotFound, errors.AlreadyExists, errors.InvalidArgument, errors.FailedPrecondition):
        err = errors.from_grpc(cls.grpc_code, "m")
        assert type(err) is cls and str(err) == "m"
    assert type(errors.from_grpc(grpc.StatusCode.INTERNAL, "x")) is errors.Unknown
    assert issubclass(errors.NotFound, LookupError) and issubclass(errors.InvalidArgument, ValueError)
    assert errors.NotFound.http_status == 404 and errors.AlreadyExists.http_status == 409
