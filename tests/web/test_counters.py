"""The page's loss counters belong to the topic it shows: a gap injected into one topic is counted
exactly, and choosing another topic starts the counters again. The page subscribes at 20 ms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.broker.conftest import META, Broker, make_block, start_broker, stop_broker

from .browser import open_page
from .conftest import needs_chromium

pytestmark = [needs_chromium, pytest.mark.timeout(120)]

BLOCK = 25
LOST = 100
"""Samples the stream of topic ``a`` skips once: one gap of exactly this many samples."""


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    """The real hub and WebSocket server in this process, so the test publishes each block."""
    b = await start_broker()
    try:
        yield b
    finally:
        await stop_broker(b)


async def test_counters_start_again_when_the_topic_changes(broker: Broker, tmp_path: Path) -> None:
    broker.hub.declare("a", META)
    broker.hub.declare("b", META)
    async with open_page(f"{broker.http}/?topic=a", tmp_path) as tab:
        await tab.poll("window.eegpiViewer", lambda s: bool(s and s["subscribed"]))
        seqs = [*range(0, 250, BLOCK), *range(250 + LOST, 500 + LOST, BLOCK)]
        for seq in seqs:
            broker.hub.publish("a", make_block(seq, BLOCK))
        last = seqs[-1] + BLOCK
        state = await tab.poll("window.eegpiViewer", lambda s: s["lastSeq"] == last)
        # the server may drop messages for a slow page, and says how many samples: exact either way
        assert state["lostSamples"] == LOST + state["laggedSamples"], state
        assert state["gaps"] >= 1 and state["samples"] == last - state["lostSamples"]

        await tab.evaluate(
            "const s = document.getElementById('topic'); s.value = 'b';"
            "s.dispatchEvent(new Event('change')); true"
        )
        state = await tab.poll("window.eegpiViewer", lambda s: s["topic"] == "b")
        counters = ("gaps", "lostSamples", "lagged", "laggedSamples", "samples", "messages")
        assert {k: state[k] for k in counters} == dict.fromkeys(counters, 0), state
        assert state["lastSeq"] is None

        await tab.poll("window.eegpiViewer", lambda s: s["subscribed"])
        for seq in range(0, 250, BLOCK):
            broker.hub.publish("b", make_block(seq, BLOCK))
        state = await tab.poll("window.eegpiViewer", lambda s: s["lastSeq"] == 250)
        assert state["lostSamples"] == state["laggedSamples"], state
        assert await tab.evaluate("document.getElementById('s-gaps').textContent") == str(
            state["gaps"]
        )
        await tab.screenshots("counters")
        assert tab.problems == [], tab.problems


async def test_the_page_subscribes_at_20_ms_so_its_pipeline_ticks_less_often(
    broker: Broker, tmp_path: Path
) -> None:
    broker.hub.declare("a", META)
    async with open_page(f"{broker.http}/?topic=a", tmp_path) as tab:
        await tab.poll("window.eegpiViewer", lambda s: bool(s and s["subscribed"]))
        assert broker.hub.patience.get("a") == 20.0, broker.hub.patience
        assert tab.problems == [], tab.problems
