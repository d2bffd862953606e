"""Shared helpers of the hardware tests: emulator-backed configs, a stage context, a runner."""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from eegpi.emulator import Board
from eegpi.hardware.config import AcquisitionMode, DeviceConfig, EmulatorConfig
from eegpi.hardware.emulator.clock import RealtimeClock
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams
from eegpi.stream import Block


def mock_config(
    realtime: bool = False, acquisition: AcquisitionMode = "thread", **emulator: Any
) -> DeviceConfig:
    """The emulator; acquisition in a thread unless asked (a process costs a spawn per test)."""
    return DeviceConfig(
        backend="mock",
        acquisition=acquisition,
        emulator=EmulatorConfig(realtime=realtime, **emulator),
    )


class RecordingClock(RealtimeClock):
    """Real time, and the spin each wait for a DRDY edge asked for."""

    def __init__(self) -> None:
        self.spins: list[int] = []

    def sleep_until(self, t_ns: int, spin_ns: int = 150_000) -> None:
        self.spins.append(spin_ns)
        super().sleep_until(t_ns, spin_ns)


def recording_board(cfg: DeviceConfig) -> tuple[Board, RecordingClock]:
    """The emulated board of ``cfg`` on a :class:`RecordingClock` (board, wiring and chips)."""
    board = Board.from_device(cfg)
    clock = RecordingClock()
    board.clock = board.wiring.clock = clock
    for chip in board.chips:
        chip.clock = clock
    return board, clock


def kernel_at_least(major: int, minor: int) -> bool:
    found = platform.release().split(".")[:2]
    return (int(found[0]), int(found[1].split("-")[0])) >= (major, minor)


def context(cfg: DeviceConfig) -> StageContext:
    return StageContext(pipeline="test", device=cfg, publisher=NullPublisher())


class SourceRunner:
    """Opens, starts and always closes a source stage."""

    def __init__(self) -> None:
        self.sources: list[Ads1299Source] = []

    def open(self, cfg: DeviceConfig, **params: Any) -> Ads1299Source:
        src = Ads1299Source("acquire", Ads1299SourceParams(**params))
        self.sources.append(src)
        src.open({}, context(cfg))
        return src

    def collect(self, src: Ads1299Source, n: int, timeout: float = 10.0) -> list[Block]:
        """Start (if needed) and read blocks until ``n`` samples arrived."""
        if src._acq is None:
            src.start()
        blocks: list[Block] = []
        total = 0
        while total < n:
            block = src.read(timeout)
            assert block is not None, f"no data within {timeout} s after {total} samples"
            blocks.append(block)
            total += block.n_samples
        return blocks

    def close(self) -> None:
        for src in self.sources:
            src.close()


def stack(blocks: list[Block]) -> np.ndarray[Any, Any]:
    return np.concatenate([b.data for b in blocks])
