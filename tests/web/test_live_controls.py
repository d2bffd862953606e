"""Live parameters changed from the page's settings panel take effect in a real daemon: a gain
change announces the new meta and the microvolts stay right; a filter change is confirmed, a
second client reads it back, and the page's spectrum shows the alpha peak leave the pass band."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from eegpi.broker import commands
from tests.conftest import Daemon

from .browser import Tab, open_page
from .conftest import needs_chromium

pytestmark = [
    needs_chromium,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not hasattr(commands, "UpdateStage"),
        reason="this daemon has no get_params / update_stage WebSocket commands yet",
    ),
]

VIEWER = "window.eegpiViewer || {}"


async def choose(tab: Tab, element_id: str, value: object) -> None:
    """Set a control of the settings panel as a person would, firing its change event."""
    await tab.evaluate(
        f"(() => {{ const el = document.getElementById({json.dumps(element_id)});"
        f"el.value = {json.dumps(str(value))}; el.dispatchEvent(new Event('change'));"
        "return true; })()"
    )


async def alpha_log10(tab: Tab, after_seq: int) -> float:
    """The page's mean log10 power at 10 Hz, from a spectrum of samples after ``after_seq``."""
    spectrum = await tab.poll(
        f"({VIEWER}).spectrum", lambda s: bool(s) and s["fromSeq"] > after_seq
    )
    k = round(10.0 / spectrum["resolutionHz"])
    return float(max(spectrum["meanLog10"][k - 1 : k + 2]))


async def params_seen_by_another_client(daemon: Daemon) -> dict[str, Any]:
    async with connect(daemon.ws_url) as ws:
        await ws.send(json.dumps({"get_params": {"pipeline": "bench"}}))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if "params" in reply or "error" in reply:
                assert "params" in reply, reply
                return {s["name"]: s["params"] for s in reply["params"]["stages"]}


async def test_gain_and_filter_changes_made_on_the_page_take_effect(
    bench: Daemon, tmp_path: Path
) -> None:
    async with open_page(f"http://127.0.0.1:{bench.ws_port}/?view=spectrum", tmp_path) as tab:
        await tab.poll(VIEWER, lambda s: bool(s.get("controls")))
        await tab.evaluate("document.getElementById('settings').click(); true")
        state = await tab.poll(VIEWER, lambda s: len(s["controls"]["stages"]) > 0)
        assert state["pipeline"] == "bench" and state["controls"]["pipeline"] == "bench"
        stages = {s["name"]: s for s in state["controls"]["stages"]}
        assert stages["filter"]["params"]["low_hz"] == 1.0
        before = await alpha_log10(tab, -1)

        # gain 24 -> 12: the page gets the new meta, and the microvolts do not change
        await choose(tab, "ctl-acquire-gain", 12)
        await tab.evaluate("document.getElementById('ctl-acquire-apply').click(); true")
        state = await tab.poll(
            VIEWER, lambda s: bool(s["meta"]) and s["meta"]["gain"][0] == 12, timeout=90
        )
        assert state["metaChanges"] >= 1 and state["metaAtSeq"] is not None
        assert any("new meta" in line["text"] for line in state["controls"]["log"])
        after_gain = await alpha_log10(tab, state["metaAtSeq"])
        assert abs(after_gain - before) < 0.3, (before, after_gain)  # within 3 dB

        # band-pass 1-40 Hz -> 20-40 Hz: confirmed, seen by others, and alpha leaves the band
        await choose(tab, "ctl-filter-low_hz", 20)
        await tab.evaluate("document.getElementById('ctl-filter-apply').click(); true")
        state = await tab.poll(
            VIEWER,
            lambda s: (
                (s["controls"]["last"] or {}).get("stage") == "filter"
                and s["updatedAtSeq"] is not None
            ),
            timeout=90,
        )
        assert state["controls"]["last"]["params"]["low_hz"] == 20.0
        assert state["controls"]["lastError"] is None
        seen = await params_seen_by_another_client(bench)
        assert seen["filter"]["low_hz"] == 20.0 and seen["filter"]["high_hz"] == 40.0
        after_filter = await alpha_log10(tab, state["updatedAtSeq"])
        assert after_filter <= after_gain - 2.0, (after_gain, after_filter)  # 20 dB or more

        # a bad value is refused with the daemon's reason, and nothing changes
        await choose(tab, "ctl-filter-high_hz", 10)  # below low_hz
        await tab.evaluate("document.getElementById('ctl-filter-apply').click(); true")
        state = await tab.poll(VIEWER, lambda s: bool(s["controls"]["lastError"]), timeout=90)
        assert state["controls"]["lastError"]["code"] == "update_refused"
        assert "high_hz" in state["controls"]["lastError"]["message"]
        assert (await params_seen_by_another_client(bench))["filter"]["high_hz"] == 40.0
        await tab.screenshots("live-controls")
        assert tab.problems == [], tab.problems
