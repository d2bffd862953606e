"""UpdateStage end to end: a real `eegpi serve --mock`, grpcurl, WebSocket clients, the CLI.

A band-pass changed while it runs moves the emulator's 10 Hz alpha from its pass band to its
stop band with no ``seq`` gap; a gain change reprograms the chip, announces the new meta before
the first block that has it, counts the conversions it costs exactly, and keeps the microvolts
of the chip's test square wave (known in volts) right while the counts change.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import numpy as np
import pytest
import yaml

from eegpi.exc import ConfigError
from eegpi.pipeline.spec import parse_pipeline
from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.cli.cli_runner import run_eegpi
from tests.conftest import Daemon
from tests.live.conftest import SQUARE, TONE
from tests.live.stream import Collector, collecting, missing
from tests.rpc.grpcurl_tool import grpcurl

RATE = 250
TEST_AMPLITUDE_UV = 4.5 / 2400 * 1e6
"""The emulator's 1x test square wave: +/- VREF/2400 at the input (EmulatorConfig)."""


def _stub(d: Daemon) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(d.grpc_target)
    return channel, control_pb2_grpc.PipelineControlStub(channel)


def _status(stub: Any, name: str) -> Any:
    return stub.GetStatus(control_pb2.GetStatusRequest(name=name), timeout=10).pipelines[0]


def _live(status: Any, stage: str) -> dict[str, Any]:
    """A stage's params as GetStatus reports them (Struct numbers are doubles)."""
    found = next(s for s in status.stages if s.name == stage)
    return json.loads(json.dumps(dict(found.params.items()), default=list))


def _rms(x: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(x**2)))


def _amplitude(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Half the distance between a square wave's two levels, per channel."""
    high = np.percentile(x, 90, axis=0)
    low = np.percentile(x, 10, axis=0)
    result: np.ndarray[Any, Any] = (high - low) / 2
    return result


async def _subscribe(c: Collector, topic: str, **options: Any) -> dict[str, Any]:
    start = len(c.log)
    await c.send({"subscribe": topic, **options})
    ack = await c.reply("subscribed", start)
    assert ack.get("subscribed") == topic, ack
    return ack


def test_a_running_bandpass_moves_a_tone_to_its_stop_band_without_a_gap(
    tone_daemon: Daemon,
) -> None:
    d = tone_daemon
    channel, stub = _stub(d)
    with channel:
        dropped_before = _status(stub, "tone").samples_dropped

        async def scenario() -> tuple[Collector, Any, int]:
            async with collecting(d.ws_url) as c:
                ack = await _subscribe(c, "eeg_filtered")
                assert ack["meta"]["pipeline"] == "tone"
                first = -1

                def seen(n: int) -> bool:
                    return c.last_seq("eeg_filtered") >= first + n

                await c.until(lambda: c.last_seq("eeg_filtered") >= 0)
                first = c.data("eeg_filtered")[0]["seq"]
                await c.until(lambda: seen(3 * RATE))  # settled, then 2 s in the pass band
                asked_at = c.last_seq("eeg_filtered")
                data = json.dumps(
                    {"pipeline": "tone", "stage": "filter", "params": {"low_hz": 20, "high_hz": 30}}
                )
                result = await grpcurl(
                    d.grpc_target, "eegpi.v1.PipelineControl/UpdateStage", data=data
                )
                assert result.code == 0, result.err
                applied_by = c.last_seq("eeg_filtered")
                # 1 s for blocks in flight and the new filter's settling, then 2 s to measure
                await c.until(lambda: c.last_seq("eeg_filtered") >= applied_by + 3 * RATE)
                return c, result.json(), asked_at

        c, reply, asked_at = asyncio.run(scenario())
        dropped_after = _status(stub, "tone").samples_dropped
        status = _status(stub, "tone")
    assert reply["params"] == {"low_hz": 20, "high_hz": 30, "order": 4}
    assert _live(status, "filter") == {"low_hz": 20.0, "high_hz": 30.0, "order": 4.0}

    seq, x = c.samples("eeg_filtered")
    # No gap: every slot the client misses is one the source or the broker counted (on a quiet
    # host none); the change itself costs no sample.
    assert missing(seq) <= c.lagged_samples() + (dropped_after - dropped_before)
    before = x[(seq > asked_at - 2 * RATE) & (seq <= asked_at)]
    after = x[seq > seq[-1] - 2 * RATE]
    assert len(before) >= 1.5 * RATE and len(after) >= 1.5 * RATE
    rms_before, rms_after = _rms(before), _rms(after)
    assert rms_before > 8.0, rms_before  # the 20 uV alpha passes (RMS 14 uV)
    assert rms_after < rms_before / 4, (rms_before, rms_after)


def test_a_gain_change_is_announced_counted_and_keeps_microvolts_right(
    square_daemon: Daemon,
) -> None:
    d = square_daemon
    channel, stub = _stub(d)

    async def scenario() -> tuple[Collector, dict[str, Any], Any]:
        async with collecting(d.ws_url) as c:
            for topic in ("eeg_counts", "eeg_voltage"):
                ack = await _subscribe(c, topic, max_latency_ms=200)
                assert ack.get("pending") is True  # subscribed before the start: every sample
            started = await asyncio.to_thread(
                stub.StartPipeline, control_pb2.StartPipelineRequest(name="square"), timeout=60
            )
            assert started.state == control_pb2.PIPELINE_STATE_RUNNING
            await c.until(lambda: c.last_seq("eeg_voltage") >= 4 * RATE)
            start = len(c.log)
            await c.send(
                {"update_stage": {"pipeline": "square", "stage": "acquire", "params": {"gain": 6}}}
            )
            reply = await c.reply("stage_updated", start)
            changed_at = c.last_seq("eeg_voltage")
            await c.until(
                lambda: (
                    min(c.last_seq("eeg_voltage"), c.last_seq("eeg_counts"))
                    >= changed_at + 4 * RATE
                )
            )
            stopped = await asyncio.to_thread(
                stub.StopPipeline, control_pb2.StopPipelineRequest(name="square"), timeout=60
            )
            return c, reply, stopped

    with channel:
        c, reply, stopped = asyncio.run(scenario())
    assert reply == {
        "stage_updated": {
            "pipeline": "square",
            "stage": "acquire",
            "params": reply["stage_updated"]["params"],
        }
    }
    assert reply["stage_updated"]["params"]["gain"] == 6
    assert c.lagged_samples() == 0 or pytest.fail(f"the broker dropped data: {c.log[-5:]}")

    first_new: dict[str, int] = {}
    for topic, units in (("eeg_counts", "counts"), ("eeg_voltage", "uV")):
        order = [m for m in c.log if m.get("topic") == topic and ("data" in m or "meta" in m)]
        notices = [i for i, m in enumerate(order) if "meta" in m]
        assert len(notices) == 1, f"{topic}: {len(notices)} meta announcements"
        at = notices[0]
        meta = order[at]["meta"]
        assert meta["gain"] == [6] * 8 and meta["units"] == units and meta["pipeline"] == "square"
        before = [m for m in order[:at] if m["data"]]
        after = [m for m in order[at + 1 :] if m["data"]]
        last_old = before[-1]["seq"] + len(before[-1]["data"]) - 1
        first_new[topic] = after[0]["seq"]
        gap = first_new[topic] - last_old - 1
        # Reprogramming cost conversions: a visible gap, exactly the count of the dropped ones
        # (virtual time: nothing else is lost), and the only gap of the stream.
        assert gap > 0
        assert stopped.samples_dropped == gap
        seq, _ = c.samples(topic)
        assert missing(seq) == gap and seq[0] == 0

    # The same square wave before and after: half the counts at a quarter of the gain, the
    # same microvolts.
    assert first_new["eeg_counts"] == first_new["eeg_voltage"]
    seq, uv = c.samples("eeg_voltage")
    counts_seq, counts = c.samples("eeg_counts")
    assert np.array_equal(seq[: len(counts_seq)], counts_seq[: len(seq)])
    n = min(len(seq), len(counts_seq))
    seq, uv, counts = seq[:n], uv[:n], counts[:n]
    at = first_new["eeg_voltage"]
    old = (seq >= at - 3 * RATE) & (seq < at)
    new = (seq >= at + RATE) & (seq < at + 4 * RATE)
    np.testing.assert_allclose(_amplitude(uv[old]), TEST_AMPLITUDE_UV, rtol=0.02)
    np.testing.assert_allclose(_amplitude(uv[new]), TEST_AMPLITUDE_UV, rtol=0.02)
    ratio = _amplitude(counts[old]) / _amplitude(counts[new])
    np.testing.assert_allclose(ratio, 4.0, rtol=0.02)


def _loader_message(doc: dict[str, Any], stage: str, **params: Any) -> str:
    """What loading the pipeline file with these params says, after the stage's name."""
    changed = json.loads(json.dumps(doc))
    target = next(s for s in changed["stages"] if s["name"] == stage)
    target["params"] = {**target.get("params", {}), **params}
    with pytest.raises(ConfigError) as info:
        parse_pipeline(changed, "pipelines/x.yaml")
    message = str(info.value)
    marker = f"stage '{stage}' ({target['type']}): "
    return message[message.index(marker) :]


def test_bad_changes_are_refused_with_the_loaders_message_and_change_nothing(
    tone_daemon: Daemon,
) -> None:
    d = tone_daemon
    channel, stub = _stub(d)
    with channel:
        before = _status(stub, "tone")

        def refused(stage: str, params: dict[str, Any], pipeline: str = "tone") -> Any:
            request = control_pb2.UpdateStageRequest(pipeline=pipeline, stage=stage)
            request.params.update(params)
            with pytest.raises(grpc.RpcError) as info:
                stub.UpdateStage(request, timeout=30)
            return info.value

        err = refused("filter", {"high_hz": 5})
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().endswith(_loader_message(TONE, "filter", high_hz=5))
        err = refused("acquire", {"gain": 5})
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().endswith(_loader_message(TONE, "acquire", gain=5))
        err = refused("filter", {"low_hz": 1, "cutoff_hz": 3})
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "unknown param(s) 'cutoff_hz'" in err.details()
        # Checked against the stream, as when the pipeline opens: the rate is known only there.
        err = refused("filter", {"high_hz": 200})
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "high_hz: 200 Hz must be below the Nyquist frequency 125 Hz" in err.details()
        err = refused("acquire", {"sample_rate": 500})
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "'sample_rate' cannot change while the pipeline runs" in err.details()
        assert "live params: 'gain', 'input'" in err.details()
        err = refused("to_voltage", {"x": 1})
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        err = refused("nope", {"low_hz": 2})
        assert err.code() == grpc.StatusCode.NOT_FOUND and "stages: acquire" in err.details()
        err = refused("acquire", {"gain": 2}, pipeline="square")
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "stopped" in err.details()
        err = refused("filter", {"low_hz": 2}, pipeline="nope")
        assert err.code() == grpc.StatusCode.NOT_FOUND

        async def over_websocket() -> list[dict[str, Any]]:
            async with collecting(d.ws_url) as c:
                await _subscribe(c, "eeg_filtered")
                replies = []
                for command in (
                    {"pipeline": "tone", "stage": "filter", "params": {"high_hz": 5}},
                    {"pipeline": "tone", "stage": "acquire", "params": {"sample_rate": 500}},
                    {"pipeline": "tone", "stage": "filter"},
                ):
                    start = len(c.log)
                    await c.send({"update_stage": command})
                    replies.append(await c.reply("stage_updated", start))
                start = len(c.log)
                await c.send({"get_params": {"pipeline": "tone"}})
                replies.append(await c.reply("params", start))
                return replies

        bad_value, not_live, no_params, params = asyncio.run(over_websocket())
        after = _status(stub, "tone")
    for reply in (bad_value, not_live, no_params):
        assert reply["error"]["code"] == "update_refused", reply
    assert bad_value["error"]["message"] == err_text(TONE, "filter", high_hz=5)
    assert "'sample_rate' cannot change while the pipeline runs" in not_live["error"]["message"]
    assert "params" in no_params["error"]["message"]
    # Nothing changed, nothing stopped.
    assert after.state == control_pb2.PIPELINE_STATE_RUNNING
    assert [_live(after, s.name) for s in after.stages] == [
        _live(before, s.name) for s in before.stages
    ]
    assert _live(after, "filter") == {"low_hz": 8.0, "high_hz": 12.0, "order": 4.0}
    stages = {s["name"]: s for s in params["params"]["stages"]}
    assert params["params"]["pipeline"] == "tone" and params["params"]["running"] is True
    assert stages["filter"] == {
        "name": "filter",
        "type": "bandpass",
        "params": {"low_hz": 8.0, "high_hz": 12.0, "order": 4},
        "live": ["low_hz", "high_hz", "order"],
    }
    assert stages["notch"]["params"]["enabled"] is True


def err_text(doc: dict[str, Any], stage: str, **params: Any) -> str:
    return f"pipeline '{doc['name']}': {_loader_message(doc, stage, **params)}"


def test_eegpi_set_changes_a_running_stage_and_says_what_is_wrong(tone_daemon: Daemon) -> None:
    d = tone_daemon
    target = ("--grpc", d.grpc_target)
    done = run_eegpi(*target, "set", "tone", "notch", "freq_hz=60", "harmonics=2")
    assert done.code == 0, done.err
    assert done.out.strip() == "tone/notch (notch): freq_hz=60, harmonics=2"
    done = run_eegpi(*target, "--json", "set", "tone", "filter", "low_hz=2", "high_hz=30")
    assert done.code == 0, done.err
    assert done.json() == {
        "pipeline": "tone",
        "stage": "filter",
        "type": "bandpass",
        "params": {"low_hz": 2.0, "high_hz": 30.0, "order": 4},
        "live": ["low_hz", "high_hz", "order"],
    }
    done = run_eegpi(*target, "set", "tone", "notch", "enabled=false")
    assert done.code == 0 and "enabled=false" in done.out
    status = run_eegpi(*target, "--json", "status", "tone")
    stages = {s["name"]: s["params"] for s in status.json()[0]["stages"]}
    assert stages["filter"]["low_hz"] == 2.0 and stages["notch"]["enabled"] is False
    assert stages["notch"]["freq_hz"] == 60.0

    refused = run_eegpi(*target, "set", "tone", "filter", "high_hz=1")
    assert refused.code == 1
    assert refused.err.strip() == (
        f"eegpi: {err_text(TONE, 'filter', low_hz=2, high_hz=1)} (INVALID_ARGUMENT)"
    )
    usage = run_eegpi(*target, "set", "tone", "filter", "low_hz")
    assert usage.code == 2 and "'low_hz' is not key=value" in usage.err
    # The file is what a restart uses: it was never rewritten.
    assert yaml.safe_load((d_pipelines(d) / "tone.yaml").read_text()) == TONE


def d_pipelines(d: Daemon) -> Any:
    from pathlib import Path

    args = d.proc.args
    assert isinstance(args, list)
    return Path(args[args.index("--pipelines") + 1])


def test_topic_lists_and_acks_name_the_pipeline(tone_daemon: Daemon) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with collecting(tone_daemon.ws_url) as c:
            start = len(c.log)
            await c.send({"list_topics": True})
            topics = await c.reply("topics", start)
            ack = await _subscribe(c, "eeg_filtered")
            return topics, ack

    topics, ack = asyncio.run(scenario())
    entry = next(t for t in topics["topics"] if t["name"] == "eeg_filtered")
    assert entry["pipeline"] == "tone" and entry["meta"]["pipeline"] == "tone"
    assert ack["meta"]["pipeline"] == "tone"
    assert SQUARE["name"] == "square"
