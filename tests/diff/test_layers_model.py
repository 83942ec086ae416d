"""Property: any sequence of layers, applied in DELETE mode or as overlay upper dirs, gives the model's tree."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainerd.diff import WhiteoutMode, apply_layer

from .model import Model, Op, layer_tar, normalize
from .treecmp import differences, snapshot_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown, overlay mounts")

paths = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
uids = st.sampled_from([0, 1000, 65534])
ops = st.one_of(
    st.builds(
        Op,
        kind=st.just("file"),
        path=paths,
        data=st.sampled_from([b"", b"x", b"hello", b"z" * 1500]),
        mode=st.sampled_from([0o644, 0o755, 0o4755, 0o600, 0o2750]),
        uid=uids,
        gid=uids,
        xattr=st.sampled_from([None, b"v1", b"v2"]),
    ),
    st.builds(Op, kind=st.just("dir"), path=paths, mode=st.sampled_from([0o755, 0o700, 0o1777]), uid=uids, gid=uids),
    st.builds(
        Op, kind=st.just("symlink"), path=paths, target=st.sampled_from(["a", "../b", "/c", "nowhere"]), uid=uids
    ),
    st.builds(Op, kind=st.just("hardlink"), path=paths),
    st.builds(Op, kind=st.just("whiteout"), path=paths),
    st.builds(Op, kind=st.just("opaque"), path=paths),
)
layer_ops = st.lists(st.lists(ops, min_size=1, max_size=8), min_size=1, max_size=4)


def _mount_overlay(lowers: list[Path], mnt: Path) -> None:
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_ops)
def test_layers_match_model(generated: list[list[Op]]) -> None:
    model = Model()
    layers = []
    for i, ops_ in enumerate(generated):
        layer = normalize(ops_, model, 1_000_000 + 1000 * i)
        model.apply(layer)
        layers.append(layer_tar(layer))
    want = model.snapshot()
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        flat = top / "flat"
        flat.mkdir()
        uppers: list[Path] = []
        for i, blob in enumerate(layers):
            apply_layer(flat, io.BytesIO(blob))
            upper = top / f"upper{i}"
            upper.mkdir()
            apply_layer(upper, io.BytesIO(blob), whiteouts=WhiteoutMode.OVERLAY, parents=uppers[::-1])
            uppers.append(upper)
        assert differences(want, snapshot_tree(flat)) == []
        empty = top / "empty"
        empty.mkdir()
        mnt = top / "mnt"
        mnt.mkdir()
        _mount_overlay([*uppers[::-1], empty], mnt)
        try:
            assert differences(want, snapshot_tree(mnt)) == []
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
        shutil.rmtree(top, ignore_errors=True)
