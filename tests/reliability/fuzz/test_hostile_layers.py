"""Structure-aware fuzzing with hypothesis: layers built to escape, checked by the tar target's invariants.

Where atheris mutates bytes (and mostly meets checksums), these layers are
well-formed tars whose *names* attack: ``..`` components, symlinks aiming
out of the root by relative, absolute and host paths, entries written
through them, hard links to files outside, devices, setuid and setgid
modes, whiteouts through links — in any order, unnormalised, with the
lower layer's own hostile symlinks (``abs``, ``rel``, ``up``, ``far``) in
the way.  Each layer goes through :func:`tests.reliability.fuzz.fuzz_tar.one_input`,
which applies it in both whiteout modes and checks that nothing beside the
root changed, that devices and special bits are only those declared, and
that only the project's errors left the applier.  The layers come from
``tests/diff/model.py``'s operations, written unnormalised.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.diff.model import Op, layer_tar
from tests.reliability.soak import record, scale

from . import fuzz_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="applying layers needs root")

EXAMPLES = scale(300, 5000)
_components = st.sampled_from(["a", "b", "..", ".", "abs", "rel", "up", "far", "slash", "dir", "etc", "sentinel"])
paths = st.lists(_components, min_size=1, max_size=4).map("/".join) | st.sampled_from(["/", "./", "a/", "../a"])
link_targets = st.sampled_from(
    ["..", "../..", "../../..", "/", "/..", "../sentinel", "a/../../..", "abs", "/abs/file", "etc/passwd", "a", "x"]
)
modes = st.sampled_from([0o644, 0o755, 0o4755, 0o2755, 0o6777, 0o1777, 0o000])
ops = st.one_of(
    st.builds(Op, kind=st.just("file"), path=paths, data=st.sampled_from([b"", b"pwned"]), mode=modes),
    st.builds(Op, kind=st.just("dir"), path=paths, mode=modes),
    st.builds(Op, kind=st.just("symlink"), path=paths, target=link_targets),
    st.builds(Op, kind=st.just("hardlink"), path=paths, target=paths | link_targets),
    st.builds(Op, kind=st.just("whiteout"), path=paths),
    st.builds(Op, kind=st.just("opaque"), path=paths),
    st.builds(Op, kind=st.just("char"), path=paths, dev=st.sampled_from([(0, 0), (1, 3), (1, 5)])),
    st.builds(Op, kind=st.just("fifo"), path=paths),
)
_tried = [0]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=10), st.booleans())
def test_hostile_layers_stay_inside(layer: list[Op], overlay: bool) -> None:
    _tried[0] += 1
    tar = layer_tar([(op, 1_600_000_000 + i) for i, op in enumerate(layer)])
    fuzz_tar.one_input(bytes([overlay]) + tar)


def test_record_hostile_layers() -> None:
    """The soak table's row for the hypothesis run above (a failure there fails that test, not this one)."""
    record(
        area="fuzzing",
        tried="hypothesis: hostile layers (escapes through .., symlinks, hard links; devices, setuid)",
        count=_tried[0],
        held="nothing beside the root changed; devices and setuid bits only as declared; only project errors",
    )
