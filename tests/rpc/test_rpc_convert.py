"""Records -> protobuf -> records keeps every field."""

from __future__ import annotations

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
