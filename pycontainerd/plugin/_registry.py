"""Registration records, dependency ordering and the per-plugin init context."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import FailedPrecondition, InvalidArgument, NotFound

T = TypeVar("T")


@dataclass(frozen=True)
class Registration:
    """What a plugin declares about itself.

    ``requires`` lists plugin types; ``"*"`` means every other plugin (used by
    components such as Introspection that report on all of them).
    """

    type: str
    id: str
    init: Callable[[InitContext], object]
    requires: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"{self.type}.{self.id}"


@dataclass
class Plugin:
    """The outcome of initialising one registration."""

    registration: Registration
    instance: object | None = None
    error: BaseException | None = None
    exports: dict[str, str] = field(default_factory=dict)
    meta_capabilities: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


class PluginSet:
    """The plugins initialised so far, in initialisation order."""

    def __init__(self) -> None:
        self._plugins: list[Plugin] = []

    def add(self, plugin: Plugin) -> None:
        self._plugins.append(plugin)

    def __iter__(self) -> Any:
        return iter(self._plugins)

    def get(self, type_: str, id_: str | None = None) -> object:
        """The first working instance of ``type_`` (and ``id_``, if given)."""
        for p in self._plugins:
            reg = p.registration
            if reg.type == type_ and (id_ is None or reg.id == id_):
                if p.error is not None:
                    raise FailedPrecondition(f"plugin {reg.uri} failed to initialise: {p.error}")
                return p.instance
        raise NotFound(f"no plugins registered for {type_}" + (f".{id_}" if id_ else ""))

    def get_all(self, type_: str) -> dict[str, object]:
        """Every working instance of ``type_`` by id."""
        return {p.registration.id: p.instance for p in self._plugins if p.registration.type == type_ and p.ok}


@dataclass
class InitContext:
    """What a plugin's init function receives."""

    registration: Registration
    root: pathlib.Path
    state: pathlib.Path
    address: str
    config: Mapping[str, Any]
    plugins: PluginSet
    properties: dict[str, str] = field(default_factory=dict)

    def get(self, type_: str, cls: type[T], id_: str | None = None) -> T:
        """The instance a required plugin produced, checked against ``cls``."""
        inst = self.plugins.get(type_, id_)
        if not isinstance(inst, cls):
            raise FailedPrecondition(f"plugin {type_} is a {type(inst).__name__}, not a {cls.__name__}")
        return inst


class Registry:
    """The set of registrations a daemon may load."""

    def __init__(self) -> None:
        self._regs: dict[str, Registration] = {}

    def register(self, reg: Registration) -> None:
        if not reg.type or not reg.id:
            raise InvalidArgument("plugin: type and id are required")
        if reg.uri in self._regs:
            raise InvalidArgument(f"plugin: {reg.uri} is registered twice")
        self._regs[reg.uri] = reg

    def __iter__(self) -> Any:
        return iter(self._regs.values())

    def ordered(self, disabled: Iterable[str] = ()) -> list[Registration]:
        return ordered(self._regs.values(), disabled)


def ordered(regs: Iterable[Registration], disabled: Iterable[str] = ()) -> list[Registration]:
    """Registrations in an order where every requirement comes first.

    Plugins whose uri or id is in ``disabled`` are left out.  A requirement
    cycle raises :class:`InvalidArgument` naming the plugins in it.
    """
    off = set(disabled)
    pending = [r for r in regs if r.uri not in off and r.id not in off]
    out: list[Registration] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(reg: Registration, path: tuple[str, ...]) -> None:
        mark = state.get(reg.uri)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join((*path[path.index(reg.uri) :], reg.uri))
            raise InvalidArgument(f"plugin: dependency cycle: {cycle}")
        state[reg.uri] = 1
        for req in reg.requires:
            if req == "*":
                continue
            for dep in pending:
                if dep.type == req and dep.uri != reg.uri:
                    visit(dep, (*path, reg.uri))
        state[reg.uri] = 2
        out.append(reg)

    for reg in pending:
        if "*" not in reg.requires:
            visit(reg, ())
    for reg in pending:
        if "*" in reg.requires:
            visit(reg, ())
    return out
