"""Bad pipeline files are reported clearly and never disturb the pipeline that runs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.conftest import REPO, Daemon, start_daemon

RUNNING = control_pb2.PIPELINE_STATE_RUNNING

BAD_FILES = {
    "syntax.yaml": ("name: x\nstages: [\n", "invalid YAML"),
    "unknown_type.yaml": (
        "name: t1\nstages:\n  - {name: a, type: ads1299_source}\n"
        "  - {name: f, type: bandpazz, inputs: [a]}\n",
        "unknown stage type 'bandpazz'",
    ),
    "unknown_input.yaml": (
        "name: t2\nstages:\n  - {name: a, type: ads1299_source}\n"
        "  - {name: v, type: to_voltage, inputs: [b]}\n",
        "unknown input stage 'b'",
    ),
    "cycle.yaml": (
        "name: t3\nstages:\n  - {name: a, type: ads1299_source}\n"
        "  - {name: v, type: to_voltage, inputs: [w]}\n"
        "  - {name: w, type: to_voltage, inputs: [v]}\n",
        "cycle",
    ),
    "dup.yaml": (
        "name: t4\nstages:\n  - {name: a, type: ads1299_source}\n"
        "  - {name: a, type: to_voltage, inputs: [a]}\n",
        "duplicate stage name",
    ),
    "param.yaml": (
        "name: t5\nstages:\n  - {name: a, type: ads1299_source, params: {gain: 3}}\n",
        "gain",
    ),
}


@pytest.fixture
def pipelines_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pipelines"
    d.mkdir()
    shutil.copy(REPO / "pipelines" / "default.yaml", d / "default.yaml")
    return d


@pytest.fixture
def served(pipelines_dir: Path) -> Iterator[Daemon]:
    d = start_daemon(pipelines=pipelines_dir)
    try:
        yield d
    finally:
        d.kill()


def _acquired(stub: control_pb2_grpc.PipelineControlStub) -> tuple[int, int]:
    st = stub.GetStatus(control_pb2.GetStatusRequest(name="default"), timeout=5).pipelines[0]
    assert st.state == RUNNING, st
    return st.samples_acquired, st.samples_dropped


def _wait_for_more(stub: control_pb2_grpc.PipelineControlStub, than: int) -> int:
    """Poll until the running pipeline has acquired more samples (a progress check, not a timer)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        n, _ = _acquired(stub)
        if n > than:
            return n
        time.sleep(0.05)
    raise AssertionError("the running pipeline stopped acquiring")


def test_reload_reports_every_bad_file_and_keeps_streaming(
    served: Daemon, pipelines_dir: Path
) -> None:
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        before, _ = _acquired(stub)
        for name, (text, _) in BAD_FILES.items():
            (pipelines_dir / name).write_text(text)
        # the running pipeline's own file breaks too: it keeps running on what it loaded
        (pipelines_dir / "default.yaml").write_text("name: default\nstages: nope\n")

        resp = stub.ReloadPipelines(control_pb2.ReloadPipelinesRequest(), timeout=5)
        by_file = {Path(e.path).name: e.message for e in resp.errors}
        for name, (_, expected) in BAD_FILES.items():
            assert name in by_file, f"{name} not reported: {by_file}"
            assert expected in by_file[name] and name in by_file[name]
        assert "default.yaml" in by_file

        _wait_for_more(stub, before)
        listed = stub.ListPipelines(control_pb2.ListPipelinesRequest(), timeout=5)
        assert [p.name for p in listed.pipelines] == ["default"]
        assert listed.pipelines[0].state == RUNNING


def test_second_pipeline_on_the_same_device_is_refused(served: Daemon, pipelines_dir: Path) -> None:
    text = (REPO / "pipelines" / "default.yaml").read_text()
    text = text.replace("name: default", "name: other").replace("eeg_", "other_")
    (pipelines_dir / "other.yaml").write_text(text)
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        resp = stub.ReloadPipelines(control_pb2.ReloadPipelinesRequest(), timeout=5)
        assert "other" in resp.loaded and not resp.errors
        with pytest.raises(grpc.RpcError) as info:
            stub.StartPipeline(control_pb2.StartPipelineRequest(name="other"), timeout=5)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "'default' holds the ADS1299" in (info.value.details() or "")
        before, _ = _acquired(stub)
        _wait_for_more(stub, before)


def test_pipeline_that_fails_to_open_is_reported(served: Daemon, pipelines_dir: Path) -> None:
    text = (REPO / "pipelines" / "default.yaml").read_text()
    text = text.replace("name: default", "name: nyquist").replace("eeg_", "nyq_")
    text = text.replace("high_hz: 40.0", "high_hz: 200.0")
    (pipelines_dir / "nyquist.yaml").write_text(text)
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        stub.ReloadPipelines(control_pb2.ReloadPipelinesRequest(), timeout=5)
        stub.StopPipeline(control_pb2.StopPipelineRequest(name="default"), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            stub.StartPipeline(control_pb2.StartPipelineRequest(name="nyquist"), timeout=10)
        details = info.value.details() or ""
        assert info.value.code() in (
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "stage 'filter'" in details and "high_hz" in details, details
        st = stub.GetStatus(control_pb2.GetStatusRequest(name="nyquist"), timeout=5).pipelines[0]
        assert st.state == control_pb2.PIPELINE_STATE_FAILED and "high_hz" in st.last_error
        # the device was released: the good pipeline starts again
        st = stub.StartPipeline(control_pb2.StartPipelineRequest(name="default"), timeout=10)
        assert st.state == RUNNING
