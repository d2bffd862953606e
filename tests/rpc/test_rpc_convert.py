"""Records -> protobuf -> records keeps every field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eegpi.rpc import convert
from eegpi.status import PipelineInfo, PipelineState, PipelineStatus, TopicStatus
from eegpi.v1 import control_pb2 as pb
from tests.rpc.rpc_fakes import DEVICE


@pytest.mark.parametrize("state", list(PipelineState))
def test_status_round_trip(state: PipelineState) -> None:
    status = PipelineStatus(
        name="default",
        state=state,
        last_error="stage 'notch': boom",
        start_time=1_700_000_000.25,
        samples_acquired=2**40,
        samples_dropped=7,
        topics=(TopicStatus("eeg_filtered", 2),),
        device=DEVICE,
        sample_rate_measured_hz=250.025,
        clock_ppm=100.0,
        timestamp_residual_us=14.4,
        trigger_markers=12,
        trigger_lost=3,
        gpio_markers=5,
    )
    assert convert.pipeline_status_from_pb(convert.pipeline_status_to_pb(status)) == status


def test_never_started_has_no_start_time() -> None:
    status = PipelineStatus(name="x", state=PipelineState.STOPPED)
    msg = convert.pipeline_status_to_pb(status)
    assert not msg.HasField("start_time") and not msg.HasField("device")
    assert convert.pipeline_status_from_pb(msg) == status


def test_info_round_trip() -> None:
    info = PipelineInfo(
        "default", "p/default.yaml", ("a:ads1299_source",), ("t",), PipelineState.RUNNING
    )
    assert convert.pipeline_info_from_pb(convert.pipeline_info_to_pb(info)) == info


def test_unspecified_state_reads_as_stopped() -> None:
    assert convert.state_from_pb(pb.PIPELINE_STATE_UNSPECIFIED) is PipelineState.STOPPED


@pytest.mark.parametrize(
    ("acquired", "dropped", "shown"),
    [(-5, 3, (0, 3)), (7, -1, (7, 0)), (2**64, 2**70, (2**64 - 1, 2**64 - 1))],
)
def test_out_of_range_counters_are_clamped_and_logged(
    acquired: int, dropped: int, shown: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    convert._out_of_range_log.clear()
    status = PipelineStatus("p", PipelineState.FAILED, samples_acquired=acquired)
    status = replace(status, samples_dropped=dropped)
    msg = convert.pipeline_status_to_pb(status)  # protobuf used to raise "Value out of range"
    assert (msg.samples_acquired, msg.samples_dropped) == shown
    assert "reported clamped" in caplog.text


def test_out_of_range_log_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    convert._out_of_range_log.clear()
    status = PipelineStatus("p", PipelineState.RUNNING, samples_acquired=-1)
    for _ in range(100):
        assert convert.pipeline_status_to_pb(status).samples_acquired == 0
    assert caplog.text.count("samples_acquired is -1") == 1


def test_device_numbers_out_of_range_do_not_raise() -> None:
    device = replace(DEVICE, sample_rate=-250, id_register=2**40)
    msg = convert.device_info_to_pb(device)
    assert (msg.sample_rate, msg.id_register) == (0, 2**32 - 1)


@pytest.mark.parametrize("when", [float("nan"), float("inf"), -1.0, 1e20])
def test_an_impossible_start_time_is_left_out(when: float) -> None:
    msg = convert.pipeline_status_to_pb(PipelineStatus("p", PipelineState.RUNNING, start_time=when))
    assert not msg.HasField("start_time")
