"""The viewer in headless Chromium against a real `eegpi serve --mock`: what people see at the
bench (traces, spectrum, band power, markers, railed channels), with a clean console."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.conftest import Daemon

from .browser import Tab, open_page
from .conftest import ELECTRODES, bench_daemon, needs_chromium

pytestmark = [needs_chromium, pytest.mark.timeout(180)]

CLOCK = re.compile(r"^\d\d:\d\d:\d\d$")


def viewer_url(daemon: Daemon, query: str = "") -> str:
    return f"http://127.0.0.1:{daemon.ws_port}/{query}"


async def finish(tab: Tab, name: str) -> None:
    """Screenshots at both sizes, then: nothing on the console but what the page meant."""
    await tab.screenshots(name)
    assert tab.problems == [], tab.problems


def test_every_module_the_page_loads_is_served_as_javascript(bench: Daemon) -> None:
    base = viewer_url(bench)
    with urllib.request.urlopen(base, timeout=30) as reply:
        html = reply.read().decode()
    todo = re.findall(r'src="([^"]+\.js)"', html)
    assert todo == ["viewer.js"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        with urllib.request.urlopen(base + name, timeout=30) as reply:
            assert reply.headers["Content-Type"].startswith("text/javascript"), name
            source = reply.read().decode()
        todo += [m.removeprefix("./") for m in re.findall(r'from "(\./[^"]+)"', source)]
    assert {"viewer.js", "traces.js", "spectrum.js", "bands.js", "controls.js"} <= seen


async def test_traces_show_electrode_names_on_a_wall_clock_axis(
    bench: Daemon, tmp_path: Path
) -> None:
    async with open_page(viewer_url(bench), tmp_path) as tab:
        state = await tab.poll(
            "window.eegpiViewer", lambda s: bool(s and s["traces"] and s["samples"] >= 500)
        )
        assert state["topic"] == "eeg_filtered" and state["meta"]["channels"] == ELECTRODES
        assert state["traces"]["labels"] == ELECTRODES
        assert state["traces"]["timeLabels"] and all(
            CLOCK.match(t) for t in state["traces"]["timeLabels"]
        ), state["traces"]["timeLabels"]
        assert "eeg_bandpower" not in await tab.evaluate(
            "[...document.getElementById('topic').options].map((o) => o.value)"
        )
        assert state["bandsTopic"] == "eeg_bandpower" and state["markersTopic"] == "markers"

        # one common scale: every row has the same half-height
        await tab.evaluate(
            "const s = document.getElementById('scale'); s.value = 'common';"
            "s.dispatchEvent(new Event('change')); true"
        )
        await tab.frames(3)
        scales = (await tab.state())["traces"]["scales"]
        assert len(scales) == len(ELECTRODES) and len(set(scales)) == 1, scales
        await finish(tab, "traces")


async def test_spectrum_shows_the_alpha_peak_at_10_hz(bench: Daemon, tmp_path: Path) -> None:
    async with open_page(viewer_url(bench, "?view=spectrum"), tmp_path) as tab:
        spectrum = await tab.poll("(window.eegpiViewer || {}).spectrum", lambda s: bool(s))
        resolution = spectrum["resolutionHz"]
        assert resolution <= 0.5
        assert abs(spectrum["peakHz"] - 10.0) <= resolution, spectrum
        assert all(abs(p - 10.0) <= resolution for p in spectrum["peaks"]), spectrum
        shown = await tab.evaluate("document.getElementById('plot').dataset.peakHz")
        assert abs(float(shown) - 10.0) <= resolution
        await tab.evaluate(
            "const s = document.getElementById('spectrum-mode'); s.value = 'grid';"
            "s.dispatchEvent(new Event('change')); true"
        )
        await finish(tab, "spectrum")


async def test_a_band_power_topic_is_drawn_as_bars_with_alpha_highest(
    bench: Daemon, tmp_path: Path
) -> None:
    # asked for by name, as people do from a link: the page recognises it from its meta
    async with open_page(viewer_url(bench, "?topic=eeg_bandpower"), tmp_path) as tab:
        state = await tab.poll(
            "window.eegpiViewer", lambda s: bool(s and s["bands"] and s["bands"]["rows"] >= 4)
        )
        assert state["view"] == "bands" and state["bandsTopic"] == "eeg_bandpower"
        assert state["topic"] == "eeg_filtered"  # traces stay on a signal, not on 40 rows
        bands = state["bands"]
        assert bands["bands"] == ["delta", "theta", "alpha", "beta", "gamma"]
        assert bands["channels"] == ELECTRODES
        assert bands["highest"] == ["alpha"] * len(ELECTRODES), bands
        await finish(tab, "band-power")


async def test_markers_are_drawn_where_they_were_placed_with_their_labels(
    bench: Daemon, tmp_path: Path
) -> None:
    async with open_page(viewer_url(bench), tmp_path) as tab:
        await tab.poll(
            "window.eegpiViewer",
            lambda s: bool(s and s["traces"] and "markers" in s["topics"] and s["samples"] > 0),
        )
        await tab.poll(  # the page holds the markers subscription before the marker is placed
            "fetch('/healthz').then((r) => r.json()).then((h) => h.topics.markers || 0)",
            lambda n: n >= 1,
        )
        async with connect(bench.ws_url) as ws:
            await ws.send(json.dumps({"marker": "stimulus-7"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
        placed = reply["marker"]
        state = await tab.poll(
            "window.eegpiViewer",
            lambda s: "stimulus-7" in (s["traces"] or {}).get("markers", []),
        )
        (marker,) = [m for m in state["markers"] if m["label"] == "stimulus-7"]
        assert marker["seq"] == placed["seq"] and marker["timestamp"] == placed["timestamp"]
        await finish(tab, "markers")


async def test_a_railed_channel_is_marked(tmp_path: Path) -> None:
    daemon = bench_daemon(tmp_path, emulator={"leads_off": [3]})  # C3's electrode is off
    try:
        async with open_page(viewer_url(daemon, "?topic=eeg_voltage"), tmp_path / "p") as tab:
            state = await tab.poll(
                "window.eegpiViewer", lambda s: bool(s and s["flags"].get("C3") and s["traces"])
            )
            assert state["topic"] == "eeg_voltage"
            assert state["flags"] == {"C3": {"railed": True, "leadOff": False, "source": "signal"}}
            await finish(tab, "railed")
    finally:
        daemon.kill()
