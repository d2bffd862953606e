"""A clean checkout builds a wheel with the gRPC code generated from proto/ and the web files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def _clean_checkout(dest: Path) -> Path:
    """The tracked files only, as a fresh clone has them (no generated modules)."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def test_wheel_from_clean_checkout_has_generated_code(tmp_path: Path) -> None:
    src = _clean_checkout(tmp_path / "src")
    assert not list((src / "eegpi" / "v1").glob("*_pb2*.py")), "generated code is in git"
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("eegpi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "eegpi/v1/control_pb2.py",
        "eegpi/v1/control_pb2_grpc.py",
        "eegpi/v1/device_pb2.py",
        "eegpi/v1/device_pb2_grpc.py",
        "eegpi/v1/control_pb2.pyi",
        "eegpi/v1/eegpi.protoset",
        "eegpi/web/index.html",
        "eegpi/web/viewer.js",
        "eegpi/pipelines/default.yaml",
        "eegpi/py.typed",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    grpc_code = zipfile.ZipFile(wheel).read("eegpi/v1/control_pb2_grpc.py").decode()
    for rpc in (
        "ListPipelines",
        "StartPipeline",
        "StopPipeline",
        "GetStatus",
        "WatchStatus",
        "ReloadPipelines",
    ):
        assert rpc in grpc_code
