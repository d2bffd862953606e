"""Data written straight to a client that keeps up: same bytes, same order, same accounting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from websockets.protocol import Protocol, Side

from eegpi.broker.codec import encode_binary_data
from eegpi.broker.session import ClientSession
from eegpi.broker.wire import DataMessage

from .conftest import TIMEOUT, make_block
from .test_ws_isolation import GatedConnection


def library_frame(payload: str | bytes) -> bytes:
    """What websockets itself writes for this message on a server connection."""
    protocol = Protocol(Side.SERVER)
    if isinstance(payload, str):
        protocol.send_text(payload.encode())
    else:
        protocol.send_binary(payload)
    [frame] = protocol.data_to_send()
    return frame


@pytest.mark.parametrize("size", [10, 200, 70_000])  # the three length encodings
def test_a_shared_frame_is_the_bytes_the_library_would_write(size: int) -> None:
    text = DataMessage("eeg", json.dumps({"topic": "eeg", "data": "x" * size}), 1)
    assert text.frame() == library_frame(text.payload)
    block = make_block(0, max(1, size // 16))
    binary = DataMessage("eeg", encode_binary_data("eeg", 0, 0.0, block.data), block.n_samples)
    assert binary.frame() == library_frame(binary.payload)
    assert binary.frame() is binary.frame()  # built once, shared by every client


class Switch:
    """A connection's direct path the test opens and closes: what a transport backlog does."""

    def __init__(self) -> None:
        self.open = True
        self.written: list[str | bytes] = []

    def __call__(self, message: DataMessage) -> bool:
        if self.open:
            self.written.append(message.payload)
        return self.open


def data(seq: int) -> DataMessage:
    return DataMessage("eeg", json.dumps({"topic": "eeg", "seq": seq, "data": [[0.0]]}), 1)


def seqs(messages: list[str | bytes]) -> list[int]:
    return [json.loads(m)["seq"] for m in messages if "seq" in json.loads(m)]


async def test_direct_writes_never_overtake_queued_messages() -> None:
    conn = GatedConnection()
    switch = Switch()
    session = ClientSession(conn, "c", queue_limit=64, stall_timeout_s=60.0, write_now=switch)
    sender = asyncio.create_task(session.run_sender())
    for seq in range(3):
        session.deliver(data(seq))  # keeps up: written at once, the sender never wakes
    assert seqs(switch.written) == [0, 1, 2] and session.queued == 0
    switch.open = False  # the transport backs up
    for seq in range(3, 6):
        session.deliver(data(seq))
    switch.open = True  # room again, but three messages wait: the next one queues behind
    session.deliver(data(6))
    session.notify({"note": 1})
    session.deliver(data(7))
    assert seqs(switch.written) == [0, 1, 2]
    await conn.read(6)  # 3..7 and the control message, in the order they must go
    assert seqs(conn.sent) == [3, 4, 5, 6, 7]
    assert json.loads(conn.sent[0]) == {"note": 1}  # control messages go before queued data
    await asyncio.wait_for(_until(lambda: session.queued == 0), TIMEOUT)
    session.deliver(data(8))  # nothing waits any more: direct again
    assert seqs(switch.written) == [0, 1, 2, 8]
    assert session.messages_sent == 10 and session.messages_dropped == 0
    sender.cancel()


async def test_after_losses_the_notice_goes_before_any_direct_write() -> None:
    now = [0.0]
    conn = GatedConnection()
    switch = Switch()
    session = ClientSession(
        conn,
        "lagger",
        queue_limit=2,
        stall_timeout_s=60.0,
        clock=lambda: now[0],
        write_now=switch,
    )
    sender = asyncio.create_task(session.run_sender())
    switch.open = False
    for seq in range(6):  # one in flight, two queued, three dropped
        session.deliver(data(seq))
        await asyncio.sleep(0)  # lets the sender take the first one
    assert session.messages_dropped == 3
    switch.open = True
    await conn.read(4)  # the message in flight, the notice, the two queued
    await asyncio.wait_for(_until(lambda: session.queued == 0), TIMEOUT)
    session.deliver(data(6))
    sent = [json.loads(m) for m in conn.sent]
    assert sent[1] == {"lagged": 3, "samples": 3}
    assert seqs(conn.sent) == [0, 4, 5] and seqs(switch.written) == [6]
    assert session.messages_sent == 5  # 0, the notice, 4, 5 through the sender; 6 directly
    sender.cancel()


async def _until(predicate: Callable[[], bool]) -> None:
    """Yield to the sender task until the condition holds (callers bound it with a timeout)."""
    while not predicate():
        await asyncio.sleep(0)
