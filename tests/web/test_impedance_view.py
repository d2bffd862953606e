"""The impedance view against a real daemon running pipelines/impedance.yaml on an emulator with
chosen electrode impedances and one electrode off: tiles show each electrode's kOhm and grade,
and the railed electrode is marked on the traces."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, start_daemon

from .browser import open_page
from .conftest import ELECTRODES, needs_chromium

pytestmark = [needs_chromium, pytest.mark.timeout(180)]

KOHM = [5.0, 20.0, 100.0, 500.0, 5.0, 30.0, 200.0, 5.0]
OFF = 8
"""The electrode (1-based) whose lead is off: its channel rails."""


def kohm_text(kohm: float | None) -> str:
    """What a tile shows for a value (the page's own rule: whole kOhm from 100 up)."""
    if kohm is None:
        return "—"
    return f"{round(kohm)} kΩ" if kohm >= 100 else f"{kohm:.1f} kΩ"


async def test_impedance_tiles_show_each_electrode_and_grade(tmp_path: Path) -> None:
    pipeline = yaml.safe_load((REPO / "pipelines" / "impedance.yaml").read_text())
    pipeline["stages"][0]["params"]["channel_names"] = ELECTRODES
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "impedance.yaml").write_text(yaml.safe_dump(pipeline))
    config = tmp_path / "eegpi.yaml"
    emulator = {"electrode_impedance_kohm": KOHM, "leads_off": [OFF]}
    config.write_text(yaml.safe_dump({"device": {"backend": "mock", "emulator": emulator}}))
    daemon = start_daemon("--config", str(config), pipelines=pipelines, autostart=("impedance",))
    try:
        url = f"http://127.0.0.1:{daemon.ws_port}/?view=impedance&topic=eeg_voltage"
        async with open_page(url, tmp_path / "profile") as tab:
            state = await tab.poll(
                "window.eegpiViewer",
                lambda s: bool(s and s["impedanceEvents"] >= 2 and s["traces"] is None),
            )
            event = state["impedance"]
            assert state["impedanceTopic"] == "impedance" and state["view"] == "impedance"
            tiles = await tab.evaluate(
                "[...document.querySelectorAll('#impedance-grid .electrode')].map((e) => ["
                "e.dataset.name, e.dataset.grade,"
                "e.querySelector('.electrode-value').textContent])"
            )
            # the page may have drawn a newer event since: compare with the one it shows now
            event = (await tab.state())["impedance"]
            expected = [[c["name"], c["grade"], kohm_text(c["kohm"])] for c in event["channels"]]
            assert tiles == expected
            assert [t[0] for t in tiles] == ELECTRODES
            grades = {name: grade for name, grade, _ in tiles}
            assert grades["Fp1"] == "good" and grades["C4"] == "poor"
            assert grades[ELECTRODES[OFF - 1]] in ("railed", "lead_off")
            colour = await tab.evaluate(
                "getComputedStyle(document.querySelector('.electrode.grade-good')).borderTopColor"
            )
            assert colour == "rgb(102, 187, 106)"  # the page's green
            await tab.screenshots("impedance")

            # the electrode that is off is marked on its trace
            await tab.evaluate("document.querySelector('.tabs [data-view=traces]').click(); true")
            state = await tab.poll(
                "window.eegpiViewer",
                lambda s: bool(s["traces"] and s["flags"].get(ELECTRODES[OFF - 1])),
            )
            flag = state["flags"][ELECTRODES[OFF - 1]]
            assert flag["railed"] is True, state["flags"]
            await tab.screenshots("impedance-traces")
            assert tab.problems == [], tab.problems
    finally:
        daemon.kill()
