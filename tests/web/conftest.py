"""A real `eegpi serve --mock` running a bench pipeline: traces, filtered traces, band power."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import Daemon, start_daemon

from .browser import CHROMIUM

ELECTRODES = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]

BENCH = {
    "name": "bench",
    "stages": [
        {
            "name": "acquire",
            "type": "ads1299_source",
            "params": {
                "sample_rate": 250,
                "gain": 24,
                "input": "normal",
                "channel_names": ELECTRODES,
            },
        },
        {"name": "to_voltage", "type": "to_voltage", "inputs": ["acquire"]},
        {
            "name": "voltage_sink",
            "type": "websocket_sink",
            "params": {"topic": "eeg_voltage"},
            "inputs": ["to_voltage"],
        },
        {
            "name": "filter",
            "type": "bandpass",
            "params": {"low_hz": 1.0, "high_hz": 40.0, "order": 4},
            "inputs": ["to_voltage"],
        },
        {"name": "notch", "type": "notch", "params": {"freq_hz": 50.0}, "inputs": ["filter"]},
        {
            "name": "filtered_sink",
            "type": "websocket_sink",
            "params": {"topic": "eeg_filtered"},
            "inputs": ["notch"],
        },
        {
            "name": "power",
            "type": "band_power",
            "params": {"window_s": 1.0, "step_s": 0.25},
            "inputs": ["notch"],
        },
        {
            "name": "power_sink",
            "type": "websocket_sink",
            "params": {"topic": "eeg_bandpower"},
            "inputs": ["power"],
        },
    ],
}

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


def bench_daemon(directory: Path, emulator: dict[str, object] | None = None) -> Daemon:
    """Start a daemon whose only pipeline is ``bench``, running, with these emulator options."""
    pipelines = directory / "pipelines"
    pipelines.mkdir()
    (pipelines / "bench.yaml").write_text(yaml.safe_dump(BENCH, sort_keys=False))
    config = directory / "eegpi.yaml"
    device = {"backend": "mock", "emulator": emulator or {}}
    config.write_text(yaml.safe_dump({"device": device}))
    daemon = start_daemon("--config", str(config), pipelines=pipelines, autostart=("bench",))
    daemon.wait_for_line(r"pipeline bench (started|running)", timeout=60)
    return daemon


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module's tests: they only read what it streams."""
    daemon = bench_daemon(tmp_path_factory.mktemp("bench"))
    try:
        yield daemon
    finally:
        daemon.kill()
