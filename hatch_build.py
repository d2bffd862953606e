"""Build hook: generate the gRPC/protobuf modules under eegpi/v1 from proto/eegpi/v1.

The generated files are not in git; every build (wheel, editable, sdist-to-wheel) makes them
fresh with grpcio-tools, so the .proto files stay the one source of truth.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ProtoBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        generate(root)


def generate(root: Path) -> None:
    """Run protoc (from grpcio-tools) over every proto under proto/eegpi."""
    import grpc_tools
    from grpc_tools import protoc

    proto_dir = root / "proto"
    protos = sorted(str(p.relative_to(proto_dir)) for p in (proto_dir / "eegpi").rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_dir / 'eegpi'}")
    include = Path(grpc_tools.__file__).parent / "_proto"
    out = str(root)
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        "--include_imports",
        f"--descriptor_set_out={root / 'eegpi' / 'v1' / 'eegpi.protoset'}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}: {' '.join(args)}")


if __name__ == "__main__":
    generate(Path(__file__).resolve().parent)
    sys.exit(0)
