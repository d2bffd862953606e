"""How the acquisition thread is scheduled: spin or sleep, SCHED_FIFO or nice, its time slice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hw_helpers import kernel_at_least, mock_config, recording_board

from eegpi.ads1299.settings import chain_settings
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import SLEEPER_PRIORITY, Acquisition
from eegpi.hardware.emulator.clock import RealtimeClock, spin_for
from eegpi.hardware.timeslice import SHORT_SLICE_NS, request_short_slice


def test_spin_only_where_the_period_is_short() -> None:
    assert [spin_for(1e9 / rate) for rate in (250, 500, 1000)] == [0, 0, 0]
    assert [spin_for(1e9 / rate) for rate in (2000, 8000, 16000)] == [150_000] * 3
    clock = RealtimeClock()
    assert not clock.busy_waits(4e6) and clock.busy_waits(62_500)


@pytest.mark.parametrize(("rate", "spin"), [(250, 0), (1000, 0), (4000, 150_000)])
def test_the_emulated_drdy_wait_spins_only_at_short_periods(rate: int, spin: int) -> None:
    cfg = mock_config(realtime=True)
    board, clock = recording_board(cfg)
    device = open_device(cfg, board=board)
    try:
        device.configure(
            chain_settings(
                sample_rate=rate,
                gain=24,
                input="normal",
                srb2=False,
                chips=1,
                channels_per_chip=8,
            )
        )
        device.start()
        drdy = device.link.drdy
        clock.spins.clear()
        for _ in range(5):
            assert drdy.wait(1.0)
            drdy.read_events()
            device.read_frame()
        assert clock.spins and set(clock.spins) == {spin}
    finally:
        device.close()


def test_a_nice_reader_that_sleeps_asks_for_sched_fifo() -> None:
    """A nice value does not make the kernel preempt a busy process when the reader wakes (it
    waits for the next tick, a whole period at 250 SPS): where the wait sleeps, SCHED_FIFO."""
    device = open_device(mock_config(realtime=True))
    try:
        assert Acquisition(device, 250, nice=-15).priority == SLEEPER_PRIORITY
        assert Acquisition(device, 1000, nice=-15).priority == SLEEPER_PRIORITY
        assert Acquisition(device, 4000, nice=-15).priority is None  # it spins: throttled
        assert Acquisition(device, 250, nice=-15, priority=10).priority == 10
        assert Acquisition(device, 250).priority is None  # nothing asked, nothing changed
    finally:
        device.close()


def _slice_of(tid: int) -> int | None:
    for line in Path(f"/proc/self/task/{tid}/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


@pytest.mark.skipif(not kernel_at_least(6, 12), reason="custom fair slices came in Linux 6.12")
def test_the_short_slice_is_granted_to_the_calling_thread_only() -> None:
    got: list[tuple[str | None, int | None]] = []

    def ask() -> None:
        got.append((request_short_slice(), _slice_of(threading.get_native_id())))

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    refused, granted = got[0]
    assert refused is None
    if granted is not None:  # se.slice is shown when the kernel has scheduler debug info
        assert granted == SHORT_SLICE_NS
        assert _slice_of(threading.get_native_id()) != SHORT_SLICE_NS


def test_the_acquisition_thread_runs_with_the_short_slice() -> None:
    device = open_device(mock_config())
    device.configure(
        chain_settings(
            sample_rate=1000, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
        )
    )
    acq = Acquisition(device, 1000, lossless=True)
    acq.start()
    try:
        assert acq.wait(10, 10.0) >= 10
        assert acq.slice_set == kernel_at_least(4, 0)  # the call exists since 3.14
        thread = acq._thread
        assert thread is not None and thread.native_id is not None
        granted = _slice_of(thread.native_id)
        if granted is not None and kernel_at_least(6, 12):
            assert granted == SHORT_SLICE_NS
    finally:
        acq.stop()
        device.close()
