"""Hostile pipeline files dropped into a live daemon's pipelines directory.

Each is refused by ReloadPipelines with one short error naming the file, the daemon's memory
stays bounded (no alias expansion, no giant error message), and the default pipeline streams
on (the ``abuse_daemon`` teardown holds the healthy client's gaps against the device's count).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import grpc

from eegpi.pipeline.spec import MAX_STAGES
from eegpi.safe_yaml import MAX_DEPTH, MAX_NODES
from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.conftest import REPO, Daemon

_TIMEOUT_S = 60.0
_MAX_MESSAGE = 500
_MEMORY_BOUND = 150 * 2**20
"""Growth of the daemon's peak RSS allowed; expanding the laughs alone took 2 GiB."""


def _billion_laughs() -> str:
    lists = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lists += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return f"stages: []\ndescription: [{', '.join(lists)}]\nname: *l9\n"


def _stage(i: int) -> str:
    return f"  - {{name: s{i}, type: to_voltage, inputs: [acquire]}}\n"


HOSTILE: dict[str, tuple[str, str]] = {
    # file name: (content, what its error must say)
    "laughs.yaml": (_billion_laughs(), f"more than {MAX_NODES} values"),
    "big.yaml": (
        "name: big\nstages: []\n" + "# padding\n" * 1_100_000,
        "too large for a pipeline file (at most 1 MiB)",
    ),
    "many_stages.yaml": (
        "name: many\nstages:\n  - {name: acquire, type: ads1299_source}\n"
        + "".join(_stage(i) for i in range(MAX_STAGES)),
        f"a pipeline may have at most {MAX_STAGES}",
    ),
    "tiny_stages.yaml": (  # 132k stages in under 1 MiB
        "name: tiny\nstages: [" + "{}, " * 132_000 + "{}]\n",
        f"more than {MAX_NODES} values",
    ),
    "dup.yaml": (
        "name: dup\nstages:\n  - name: acquire\n    type: ads1299_source\n    type: to_voltage\n",
        "dup.yaml:5: key 'type' appears twice (first on line 4)",
    ),
    "deep.yaml": ("name: deep\nstages: " + "[" * 10_000 + "]" * 10_000 + "\n", "nest"),
    "deep_block.yaml": (
        "name: deep\nstages: []\ndescription:\n"
        + "".join("  " * (i + 1) + "a:\n" for i in range(100)),
        f"nested more than {MAX_DEPTH} levels deep",
    ),
    "long_name.yaml": ("name: " + "n" * 900_000 + "!\nstages: []\n", "'name' must be a word"),
    "yes.yaml": (
        "name: yes\nstages:\n  - {name: acquire, type: ads1299_source, params: {srb1: yes}}\n",
        "'yes'",
    ),
}
assert MAX_DEPTH < 100


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert m is not None, status
    return int(m.group(1)) * 1024


def test_hostile_pipeline_files_are_refused_short_and_cheap(
    abuse_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "default.yaml").write_text((REPO / "pipelines" / "default.yaml").read_text())
    d = abuse_daemon(pipelines=pipelines)
    peak_before = _peak_rss(d.proc.pid)
    for name, (text, _) in HOSTILE.items():
        (pipelines / name).write_text(text)
    off = (REPO / "pipelines" / "default.yaml").read_text()
    off = off.replace("name: default", "name: off").replace("eeg_", "off_")
    (pipelines / "off.yaml").write_text(off.replace("input: normal", "input: off"))

    with grpc.insecure_channel(d.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        reply = stub.ReloadPipelines(control_pb2.ReloadPipelinesRequest(), timeout=_TIMEOUT_S)
        listed = stub.ListPipelines(control_pb2.ListPipelinesRequest(), timeout=_TIMEOUT_S)

    by_file = {Path(e.path).name: e.message for e in reply.errors}
    assert set(by_file) == set(HOSTILE), by_file
    for name, (_, expected) in HOSTILE.items():
        message = by_file[name]
        assert message.startswith(str(pipelines / name)), message[:_MAX_MESSAGE]
        assert expected in message, message[:_MAX_MESSAGE]
        assert len(message) < _MAX_MESSAGE, f"{name}: {len(message)} chars"
    assert sorted(reply.loaded) == ["default", "off"]
    states = {p.name: p.state for p in listed.pipelines}
    assert states["default"] == control_pb2.PIPELINE_STATE_RUNNING, states
    grown = _peak_rss(d.proc.pid) - peak_before
    assert grown < _MEMORY_BOUND, f"peak RSS grew by {grown / 2**20:.0f} MiB"
