"""The WebSocket protocol of SPEC §6 against a real server, with the websockets client."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from eegpi.broker import decode_binary_data
from eegpi.broker.server import MAX_MESSAGE_BYTES
from eegpi.stream import StreamMeta

from .conftest import META, TIMEOUT, Broker, make_block, recv_json, recv_until


def is_data(message: dict[str, object]) -> bool:
    return "data" in message


async def test_subscribe_ack_carries_meta(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg"}))
        ack = await recv_json(ws)
    assert ack["subscribed"] == "eeg"
    assert ack["meta"] == {
        "sample_rate": 250.0,
        "channels": ["ch1", "ch2", "ch3", "ch4"],
        "units": "uV",
    }
    assert "pending" not in ack
    assert ack["format"] == "json" and ack["max_latency_ms"] == 10.0


async def test_list_topics(broker: Broker) -> None:
    broker.hub.declare("eeg_b", META)
    broker.hub.declare("eeg_a", META.with_changes(units="counts"))
    async with broker.client() as ws:
        await ws.send('{"list_topics": true}')
        reply = await recv_json(ws)
    assert [t["name"] for t in reply["topics"]] == ["eeg_a", "eeg_b"]
    assert reply["topics"][0]["meta"]["units"] == "counts"
    assert reply["topics"][1]["meta"]["sample_rate"] == 250.0


async def test_json_data_shape_and_contiguous_seq(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg", "max_latency_ms": 0}))
        await recv_json(ws)
        for seq in range(0, 30, 3):
            broker.hub.publish("eeg", make_block(seq, 3))
        received: list[dict[str, Any]] = []
        while sum(len(m["data"]) for m in received) < 30:
            received.append(await recv_until(ws, is_data))
    assert set(received[0]) == {"topic", "seq", "timestamp", "data"}
    expected_seq = 0
    for message in received:
        assert message["topic"] == "eeg"
        assert message["seq"] == expected_seq
        assert message["timestamp"] == pytest.approx(1_700_000_000.0 + expected_seq / 250.0)
        rows = np.array(message["data"])
        assert rows.shape[1] == 4
        np.testing.assert_allclose(rows, make_block(expected_seq, len(rows)).data)
        expected_seq += len(rows)


async def test_seq_gap_starts_a_new_message(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg", "max_latency_ms": 200}))
        await recv_json(ws)
        broker.hub.publish("eeg", make_block(0, 2))
        broker.hub.publish("eeg", make_block(10, 2))  # samples 2..9 were lost upstream
        first = await recv_until(ws, is_data)
        second = await recv_until(ws, is_data)
    assert (first["seq"], len(first["data"])) == (0, 2)
    assert (second["seq"], len(second["data"])) == (10, 2)


async def test_binary_format_decodes_to_the_published_samples(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg", "format": "binary", "max_latency_ms": 0}))
        assert (await recv_json(ws))["format"] == "binary"
        block = make_block(7, 5)
        broker.hub.publish("eeg", block)
        frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(frame, bytes)
    message = decode_binary_data(frame)
    assert (message.topic, message.seq) == ("eeg", 7)
    assert message.timestamp == block.timestamp
    np.testing.assert_array_equal(message.data, block.data.astype(np.float32))


async def test_250_sps_at_10_ms_gives_small_messages(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg"}))
        await recv_json(ws)

        async def produce() -> None:  # one sample per 4 ms, like the chip at 250 SPS
            for seq in range(100):
                # Stamped when published: the batching deadline counts from sample time.
                broker.hub.publish("eeg", make_block(seq, 1, t0=time.time() - seq / 250.0))
                await asyncio.sleep(0.004)

        producer = asyncio.create_task(produce())
        sizes: list[int] = []
        while sum(sizes) < 100:
            sizes.append(len((await recv_until(ws, is_data))["data"]))
        await producer
    mean = sum(sizes) / len(sizes)
    assert 1.5 <= mean <= 4.0, sizes
    assert max(sizes) <= 6, sizes


async def test_big_block_is_split_into_full_messages(broker: Broker) -> None:
    broker.hub.declare("eeg", META)  # 250 SPS -> at most 25 samples (100 ms) per message
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg", "max_latency_ms": 50}))
        await recv_json(ws)
        broker.hub.publish("eeg", make_block(0, 60))
        messages = [await recv_until(ws, is_data) for _ in range(3)]
    assert [(m["seq"], len(m["data"])) for m in messages] == [(0, 25), (25, 25), (50, 10)]
    assert messages[1]["timestamp"] == pytest.approx(1_700_000_000.0 + 25 / 250.0)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("{not json", "bad_json"),
        ('["subscribe", "eeg"]', "bad_request"),
        ('{"hello": 1}', "unknown_command"),
        ('{"subscribe": 5}', "bad_request"),
        ('{"subscribe": "bad topic!"}', "bad_request"),
        ('{"subscribe": "eeg", "format": "xml"}', "bad_request"),
        ('{"subscribe": "eeg", "max_latency_ms": -1}', "bad_request"),
        ('{"subscribe": "eeg", "max_latency_ms": "10"}', "bad_request"),
        ('{"subscribe": "eeg", "colour": "red"}', "bad_request"),
        ('{"subscribe": "eeg", "unsubscribe": "eeg"}', "bad_request"),
        ('{"unsubscribe": "eeg"}', "not_subscribed"),
        ('{"list_topics": 1}', "bad_request"),
        (b"\x00\x01", "bad_request"),
        ('{"subscribe": "' + "x" * MAX_MESSAGE_BYTES + '"}', "message_too_large"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_stays_usable(
    broker: Broker, payload: str | bytes, code: str
) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(payload)
        reply = await recv_json(ws)
        assert reply["error"]["code"] == code, reply
        assert len(reply["error"]["message"]) > 10
        await ws.send('{"subscribe": "eeg"}')
        assert (await recv_json(ws))["subscribed"] == "eeg"


async def test_unknown_topic_when_expected_topics_are_known(broker: Broker) -> None:
    broker.hub.set_expected_topics(["eeg_filtered"])
    async with broker.client() as ws:
        await ws.send('{"subscribe": "nonsense"}')
        reply = await recv_json(ws)
        assert reply["error"]["code"] == "unknown_topic"
        assert "eeg_filtered" in reply["error"]["message"]
        await ws.send('{"subscribe": "eeg_filtered"}')
        assert (await recv_json(ws))["pending"] is True


async def test_pending_subscription_gets_meta_and_data_when_declared(broker: Broker) -> None:
    async with broker.client() as ws:
        await ws.send('{"subscribe": "later"}')
        first = await recv_json(ws)
        assert first == {
            "subscribed": "later",
            "meta": None,
            "pending": True,
            "format": "json",
            "max_latency_ms": 10.0,
        }
        assert broker.hub.subscriber_counts() == {"later": 1}
        broker.hub.declare("later", META)
        second = await recv_json(ws)
        assert second["subscribed"] == "later" and second["meta"]["channels"][0] == "ch1"
        broker.hub.publish("later", make_block(0, 3))
        data = await recv_until(ws, is_data)
        assert data["seq"] == 0
        broker.hub.retract("later")
        assert (await recv_json(ws))["pending"] is True
        assert broker.hub.subscriber_counts() == {"later": 1}
        assert broker.hub.topics() == []


async def test_changed_meta_is_announced(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send('{"subscribe": "eeg"}')
        await recv_json(ws)
        broker.hub.publish("eeg", make_block(0, 1, META.with_changes(sample_rate=500.0)))
        notice = await recv_until(ws, lambda m: "meta" in m)
    assert notice["topic"] == "eeg" and notice["meta"]["sample_rate"] == 500.0
    assert "subscribed" not in notice  # a change is announced, not a new subscription


async def test_unsubscribe_stops_data(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    broker.hub.declare("other", META)
    async with broker.client() as ws:
        await ws.send('{"subscribe": "eeg", "max_latency_ms": 0}')
        await ws.send('{"subscribe": "other", "max_latency_ms": 0}')
        await recv_json(ws)
        await recv_json(ws)
        await ws.send('{"unsubscribe": "eeg"}')
        await recv_until(ws, lambda m: m.get("unsubscribed") == "eeg")
        broker.hub.publish("eeg", make_block(0, 2))
        broker.hub.publish("other", make_block(0, 2))
        message = await recv_until(ws, is_data)
        assert broker.hub.subscriber_counts() == {"eeg": 0, "other": 1}
    assert message["topic"] == "other"


async def test_a_topics_patience_is_its_most_demanding_subscribers_latency(broker: Broker) -> None:
    """What the pipeline thread reads to choose its tick: the smallest ``max_latency_ms`` of a
    topic's subscribers, gone with the last of them."""
    broker.hub.declare("eeg", META)
    assert broker.hub.patience == {} and broker.hub.watched == frozenset()
    async with broker.client() as patient, broker.client() as eager:
        await patient.send('{"subscribe": "eeg", "max_latency_ms": 50}')
        await recv_until(patient, lambda m: m.get("subscribed") == "eeg")
        assert broker.hub.patience == {"eeg": 50.0}
        await eager.send('{"subscribe": "eeg"}')
        await recv_until(eager, lambda m: m.get("subscribed") == "eeg")
        assert broker.hub.patience == {"eeg": 10.0}
        await eager.send('{"unsubscribe": "eeg"}')
        await recv_until(eager, lambda m: m.get("unsubscribed") == "eeg")
        assert broker.hub.patience == {"eeg": 50.0}
        await patient.send('{"unsubscribe": "eeg"}')
        await recv_until(patient, lambda m: m.get("unsubscribed") == "eeg")
        assert broker.hub.patience == {} and broker.hub.watched == frozenset()


async def test_a_pipeline_is_hurried_when_a_topics_patience_shrinks(broker: Broker) -> None:
    """A first subscriber, or a more demanding one, calls the hurry callbacks (a pipeline
    gathering a long idle tick sends what it has); a more patient one, or one leaving, does
    not; a cancelled callback is not called again."""
    broker.hub.declare("eeg", META)
    calls: list[str] = []
    cancel = broker.hub.on_hurry(lambda: calls.append("hurry"))

    async def subscribe(ws: Any, request: str) -> None:
        await ws.send(request)
        await recv_until(ws, lambda m: m.get("subscribed") == "eeg")

    async with broker.client() as patient, broker.client() as eager, broker.client() as late:
        await subscribe(patient, '{"subscribe": "eeg", "max_latency_ms": 50}')
        assert calls == ["hurry"]  # the first subscriber
        await subscribe(eager, '{"subscribe": "eeg", "max_latency_ms": 20}')
        assert calls == ["hurry"] * 2  # 50 -> 20 ms
        await subscribe(late, '{"subscribe": "eeg", "max_latency_ms": 100}')
        await eager.send('{"unsubscribe": "eeg"}')
        await recv_until(eager, lambda m: m.get("unsubscribed") == "eeg")
        assert calls == ["hurry"] * 2  # more patient, then 20 -> 50 ms: nothing to hurry
        cancel()
        await subscribe(eager, '{"subscribe": "eeg"}')
        assert broker.hub.patience == {"eeg": 10.0} and calls == ["hurry"] * 2


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def test_http_viewer_healthz_and_404(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    status, ctype, body = await asyncio.to_thread(http_get, broker.http + "/")
    assert status == 200 and ctype.startswith("text/html") and "viewer.js" in body
    status, ctype, body = await asyncio.to_thread(http_get, broker.http + "/viewer.js")
    assert status == 200 and "javascript" in ctype and "eegpiViewer" in body
    status, _, body = await asyncio.to_thread(http_get, broker.http + "/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok"
    assert health["clients"] == 0 and health["topics"] == {"eeg": 0}
    assert health["stats"]["samples_dropped"] == 0
    assert health["stats"]["handoff_samples_dropped"] == 0
    status, _, body = await asyncio.to_thread(http_get, broker.http + "/nope")
    assert status == 404 and "/ws/data" in body


async def test_compression_is_disabled(broker: Broker) -> None:
    async with broker.client(compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_origin_allow_list() -> None:
    hub_server = await start_ws_server_with_origins(["http://lab.example:9001"])
    try:
        url = f"ws://127.0.0.1:{hub_server.port}/ws/data"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        async with connect(url, origin="http://lab.example:9001") as ws:  # type: ignore[arg-type]
            await ws.send('{"list_topics": true}')
            assert "topics" in await recv_json(ws)
        same_origin = f"http://127.0.0.1:{hub_server.port}"
        async with connect(url, origin=same_origin) as ws:  # type: ignore[arg-type]
            await ws.send('{"list_topics": true}')
            assert "topics" in await recv_json(ws)
    finally:
        hub_server.close()
        await hub_server.wait_closed()


async def start_ws_server_with_origins(origins: list[str]):  # type: ignore[no-untyped-def]
    from eegpi.broker import TopicHub, start_ws_server

    return await start_ws_server(TopicHub(), "127.0.0.1", 0, allowed_origins=origins)


async def test_max_clients_gets_503_and_frees_slots(broker: Broker) -> None:
    clients = [await broker.client() for _ in range(8)]
    with pytest.raises(InvalidStatus) as refused:
        await broker.client()
    assert refused.value.response.status_code == 503
    await clients[0].close()
    await clients[0].wait_closed()
    for _ in range(50):  # the slot is released when the server sees the TCP close
        try:
            extra = await broker.client()
            break
        except InvalidStatus:
            await asyncio.sleep(0.02)
    else:
        pytest.fail("slot was not released after a client left")
    for ws in [*clients[1:], extra]:
        await ws.close()


async def test_hub_close_sends_1001(broker: Broker) -> None:
    async with broker.client() as ws:
        await ws.send('{"list_topics": true}')
        await recv_json(ws)
        await broker.hub.close()
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        assert ws.close_code == 1001


def test_meta_with_numpy_extra_is_json_safe() -> None:
    from eegpi.broker.hub import _meta_to_json

    meta = StreamMeta(250.0, ("a",), "uV", {"gain": np.int64(24), "bands": (1, 4)})
    assert _meta_to_json(meta)["gain"] == 24
    assert _meta_to_json(meta)["bands"] == [1, 4]


async def test_a_message_that_leaves_early_takes_its_timer_with_it(broker: Broker) -> None:
    """No timer wake-up is left behind when a batch leaves before its deadline."""
    broker.hub.declare("eeg", META)
    async with broker.client() as ws:
        await ws.send(json.dumps({"subscribe": "eeg", "max_latency_ms": 20}))
        await recv_json(ws)
        group = broker.hub._topics["eeg"].groups[("json", 20.0)]
        later = time.time() + 3600.0  # deadlines then count from arrival: no host timing
        broker.hub.publish("eeg", make_block(0, 1, t0=later))  # the next sample has time
        assert group.timer is not None
        # Five samples in one block: the next block cannot come within the 20 ms.
        broker.hub.publish("eeg", make_block(1, 5, t0=later))
        assert group.timer is None
        message = await recv_until(ws, is_data)
        assert (message["seq"], len(message["data"])) == (0, 6)
