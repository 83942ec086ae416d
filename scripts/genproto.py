"""Generate the Python modules for pycontainerd's .proto files.

The .proto files under pycontainerd/api/ are the wire contract (containerd's
v1 API); the *_pb2*.py modules beside them are build products, not sources.
"""

from __future__ import annotations

import pathlib
import sys

import google.rpc
import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> int:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pycontainerd" / "api").rglob("*.proto"))
    includes = [
        str(ROOT),
        str(pathlib.Path(grpc_tools.__file__).parent / "_proto"),
        str(pathlib.Path(google.rpc.__path__[0]).parent.parent),
    ]
    args = ["protoc", *(f"-I{i}" for i in includes)]
    args += [f"--python_out={ROOT}", f"--grpc_python_out={ROOT}", f"--mypy_out={ROOT}", f"--mypy_grpc_out={ROOT}"]
    rc = protoc.main([*args, *protos])
    if rc != 0:
        print("genproto: protoc failed", file=sys.stderr)
        return int(rc)
    # Packages for every generated directory, so the modules import by path.
    for d in {pathlib.Path(p).parent for p in protos}:
        for parent in [ROOT / d, *(ROOT / d).parents]:
            if parent == ROOT or ROOT not in parent.parents:
                break
            (parent / "__init__.py").touch(exist_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
