"""A real `eegpi serve --mock` with pipelines made for live-parameter tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import Daemon, start_daemon

TONE = {
    "name": "tone",
    "description": "The emulator's 10 Hz alpha through a band-pass that passes it.",
    "stages": [
        {
            "name": "acquire",
            "type": "ads1299_source",
            "params": {"sample_rate": 250, "gain": 24, "input": "normal"},
        },
        {"name": "to_voltage", "type": "to_voltage", "inputs": ["acquire"]},
        {
            "name": "filter",
            "type": "bandpass",
            "params": {"low_hz": 8.0, "high_hz": 12.0, "order": 4},
            "inputs": ["to_voltage"],
        },
        {"name": "notch", "type": "notch", "params": {"freq_hz": 50.0}, "inputs": ["filter"]},
        {
            "name": "filtered_sink",
            "type": "websocket_sink",
            "params": {"topic": "eeg_filtered"},
            "inputs": ["notch"],
        },
    ],
}
SQUARE = {
    "name": "square",
    "description": "The chip's test square wave (known in volts) as counts and microvolts.",
    "stages": [
        {
            "name": "acquire",
            "type": "ads1299_source",
            "params": {
                "sample_rate": 250,
                "gain": 24,
                "input": "test",
                "test_signal": {"frequency": "fast"},
            },
        },
        {
            "name": "counts_sink",
            "type": "websocket_sink",
            "params": {"topic": "eeg_counts"},
            "inputs": ["acquire"],
        },
        {"name": "to_voltage", "type": "to_voltage", "inputs": ["acquire"]},
        {
            "name": "voltage_sink",
            "type": "websocket_sink",
            "params": {"topic": "eeg_voltage"},
            "inputs": ["to_voltage"],
        },
    ],
}


def live_daemon(tmp_path: Path, autostart: tuple[str, ...], *, realtime: bool) -> Daemon:
    """The daemon with the ``tone`` and ``square`` pipelines, on the emulator."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    for doc in (TONE, SQUARE):
        (pipelines / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = tmp_path / "eegpi.yaml"
    # In virtual time the chip runs as fast as the pipeline reads; capped at 5x the wall clock,
    # a client starved of CPU for a second or two on a busy host still takes every message.
    emulator = {"realtime": realtime} if realtime else {"realtime": False, "virtual_speed": 5}
    cfg.write_text(yaml.safe_dump({"device": {"backend": "mock", "emulator": emulator}}))
    return start_daemon("--config", str(cfg), pipelines=pipelines, autostart=autostart)


@pytest.fixture
def tone_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """``tone`` running on the real-time emulator."""
    d = live_daemon(tmp_path, ("tone",), realtime=True)
    try:
        yield d
    finally:
        d.kill()


@pytest.fixture
def square_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """Nothing running, ``square`` ready, on the emulator in virtual time (nothing is lost
    but what the test causes)."""
    d = live_daemon(tmp_path, (), realtime=False)
    try:
        yield d
    finally:
        d.kill()
