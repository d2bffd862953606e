"""The native reader (device.reader: native) on the emulator's descriptor path: the same labels,
values and loss counts as the Python reader, a clean stop, and clear errors.

The library is compiled once per session with the same function ``eegpi build-native`` uses;
without a C compiler these tests are skipped (CI machines have gcc).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hw_helpers import kernel_at_least, recording_board

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.settings import chain_settings
from eegpi.daemon.config import AppConfig, from_mapping
from eegpi.exc import ConfigError, HardwareError
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import SLEEPER_PRIORITY, Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.native import make_acquisition
from eegpi.hardware.native.build import (
    SOURCE_NAME,
    build_library,
    compiler,
    default_library_dir,
    stale_reason,
)
from eegpi.hardware.native.endpoints import NotNative
from eegpi.hardware.native.library import ENV_LIBRARY, load_library
from eegpi.hardware.native.reader import NativeAcquisition
from eegpi.hardware.process import AcquisitionProcess
from eegpi.hardware.ring import RawFrames

RATE = 1000


@pytest.fixture(scope="session")
def native_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the native reader")
    return build_library(tmp_path_factory.mktemp("native"))


@pytest.fixture
def lib_env(native_lib: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The built library, found through the environment (the acquisition process inherits it)."""
    monkeypatch.setenv(ENV_LIBRARY, str(native_lib))
    return native_lib


def _config(acquisition: str = "process", realtime: bool = False, **emulator: Any) -> DeviceConfig:
    return DeviceConfig(
        backend="mock",
        acquisition=acquisition,  # type: ignore[arg-type]
        reader="native",
        emulator=EmulatorConfig(realtime=realtime, stamp_index=True, **emulator),
    )


def _settings(rate: int = RATE) -> Any:
    return chain_settings(
        sample_rate=rate, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
    )


def _conversions(frames: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return decode_frames(frames, 1, 8).counts[:, 0].astype(np.int64)


class Run:
    """Frames of one run and its counters; ``conversion`` is what each frame really holds."""

    def __init__(self, parts: list[RawFrames], missed: int, frames_read: int) -> None:
        self.seq = np.concatenate([p.seq for p in parts])
        self.frames = np.concatenate([p.frames for p in parts])
        self.edge_ns = np.concatenate([p.edge_ns for p in parts])
        self.conversion = _conversions(self.frames)
        self.missed = missed
        self.frames_read = frames_read
        self.offset = int(self.conversion[0] - self.seq[0])

    def lost(self) -> list[int]:
        first = self.offset
        return sorted(set(range(first, first + int(self.seq[-1]) + 1)) - set(self.conversion))

    def check(self) -> None:
        """Every frame carries its true slot; every slot up to the newest is a frame or counted."""
        wrong = np.flatnonzero(self.conversion - self.seq != self.offset)
        pairs = [(int(self.seq[i]), int(self.conversion[i])) for i in wrong[:10]]
        assert len(wrong) == 0, f"mislabelled frames (slot, conversion): {pairs}"
        assert np.all(np.diff(self.seq) > 0)
        assert self.frames_read == len(self.seq)
        assert self.frames_read + self.missed == self.seq[-1] + 1


def _collect(source: Any, until: int) -> list[RawFrames]:
    parts: list[RawFrames] = []
    while not parts or len(parts[-1]) == 0 or _conversions(parts[-1].frames)[-1] <= until:
        assert source.wait(1, 10.0) >= 1
        parts.append(source.take())
    return parts


def _run_in_process(cfg: DeviceConfig, until: int, reader: str = "native") -> Run:
    """Acquire with a reader in this process until a frame past conversion ``until``."""
    device = open_device(cfg)
    try:
        device.configure(_settings())
        acq = make_acquisition(reader, device, RATE, lossless=not cfg.emulator.realtime)
        acq.start()
        try:
            parts = _collect(acq, until)
        finally:
            acq.stop()
        parts.append(acq.take())
        return Run(parts, acq.missed, acq.frames_read)
    finally:
        device.close()


def _run_in_child(cfg: DeviceConfig, until: int) -> Run:
    """The same through the real acquisition process (``device.reader`` travels with start)."""
    proc = AcquisitionProcess(cfg)
    try:
        proc.open()
        proc.configure(_settings())
        proc.start(RATE, lossless=True)
        parts = _collect(proc, until)
        proc.stop()
        parts.append(proc.take())
        return Run(parts, proc.missed, proc.frames_read)
    finally:
        proc.close()


# --- labels and values ---------------------------------------------------------------------------


def test_frames_carry_their_true_slots_and_the_python_readers_bytes(lib_env: Path) -> None:
    native = _run_in_process(_config(), until=300)
    native.check()
    assert native.missed == 0 and native.lost() == []
    python = _run_in_process(_config(), until=300, reader="python")
    python.check()
    # Same seed, same conversions: byte for byte the frames and edge times the Python reader
    # stores (channel 1 is the conversion number, the other seven the synthetic EEG).
    n = min(len(native.seq), len(python.seq))
    assert np.array_equal(native.conversion[:n], python.conversion[:n])
    assert np.array_equal(native.frames[:n], python.frames[:n])
    assert np.array_equal(np.diff(native.edge_ns[:n]), np.diff(python.edge_ns[:n]))
    assert np.all(np.diff(native.edge_ns) == 1_000_000)  # one period at 1000 SPS


@pytest.mark.parametrize("knob", ["drop_conversions", "silent_conversions"])
def test_chosen_conversions_are_lost_and_counted_exactly(lib_env: Path, knob: str) -> None:
    chosen = (40, 41, 97, 150, 151, 152)
    run = _run_in_child(_config(**{knob: chosen}), until=200)
    run.check()
    assert run.lost() == list(chosen)
    assert run.missed == len(chosen)
    gaps = [int(s) + 1 for a, s in zip(run.seq[1:], run.seq[:-1], strict=True) if a != s + 1]
    assert [g + run.offset for g in gaps] == [40, 97, 150]


@pytest.mark.parametrize("at", ["events", "before", "during", "after"])
def test_frames_keep_their_true_slot_whatever_the_reader_stalls(lib_env: Path, at: str) -> None:
    periods = 3
    cfg = _config(late_read_every=7, late_read_periods=periods, late_read_at=at)
    run = _run_in_process(cfg, until=400)
    run.check()
    stalls = run.lost()
    assert stalls, "the fault never hit"
    runs = np.split(np.array(stalls), np.flatnonzero(np.diff(stalls) != 1) + 1)
    assert {len(r) for r in runs} == {periods}
    assert run.missed == len(stalls)


def test_a_kernel_buffer_overflow_is_seen_from_line_seqno(lib_env: Path) -> None:
    cfg = _config(event_buffer_size=16, late_read_every=100, late_read_periods=40)
    run = _run_in_process(cfg, until=300)
    run.check()
    assert run.missed >= 40


def test_real_time_labels_hold_and_every_slot_is_accounted(lib_env: Path) -> None:
    # Wall-clock DRDY on a shared host: conversions may be lost to scheduling, but every frame
    # is labelled right and every slot is a frame or counted.
    run = _run_in_process(_config(realtime=True), until=600)
    run.check()
    assert run.missed == len(run.lost())


@pytest.mark.parametrize(("rate", "spin"), [(250, 0), (1000, 0), (4000, 150_000)])
def test_the_emulated_drdy_thread_spins_only_at_short_periods(
    lib_env: Path, rate: int, spin: int
) -> None:
    # As the Python reader's wait (test_reader_scheduling): spinning the last 150 us before
    # every edge at 1000 SPS cost the link's thread 15 % of a core for nothing.
    cfg = _config(realtime=True)
    board, clock = recording_board(cfg)
    device = open_device(cfg, board=board)
    try:
        device.configure(_settings(rate))
        assert device.link.clock is clock
        acq = NativeAcquisition(device, rate)
        acq.start()
        try:
            assert acq.wait(20, 10.0) >= 20
        finally:
            acq.stop()
        assert acq.slice_set == kernel_at_least(4, 0)  # as the Python reader's thread
    finally:
        device.close()
    assert set(clock.spins) <= {spin}  # before: 150 us before every edge, at every rate
    if spin:
        assert clock.spins


def test_a_nice_native_reader_that_sleeps_asks_for_sched_fifo(lib_env: Path) -> None:
    # As the Python reader (test_reader_scheduling): beside a busy process a nice value does
    # not get the reader, or the emulated interrupt it waits on, the CPU when DRDY falls.
    device = open_device(_config(realtime=True))
    try:
        assert NativeAcquisition(device, 250, nice=-15).priority == SLEEPER_PRIORITY
        assert NativeAcquisition(device, 1000, nice=-15).priority == SLEEPER_PRIORITY
        assert NativeAcquisition(device, 4000, nice=-15).priority is None  # it spins
        assert NativeAcquisition(device, 250, nice=-15, priority=10).priority == 10
        assert NativeAcquisition(device, 250).priority is None
    finally:
        device.close()


# --- stop, close, failures -----------------------------------------------------------------------


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_stop_and_close_leave_no_thread_descriptor_or_pointer(lib_env: Path) -> None:
    load_library()  # loading maps the library once; that is not a leak
    fds, threads = _fds(), _threads()
    device = open_device(_config())
    device.configure(_settings())
    acq = NativeAcquisition(device, RATE, lossless=True)
    acq.start()
    assert {"eegpi-native-reader", "eegpi-emulator-fd"} <= _threads()
    assert acq.wait(50, 10.0) >= 50
    acq.stop()
    acq.stop()  # idempotent
    assert not acq.running
    assert acq.stats.frames >= 50 and acq.stats.cpu_ns > 0
    acq.ring.close()  # no pointer into the ring is left: closing does not raise BufferError
    device.close()
    assert _threads() <= threads
    assert _fds() <= fds


def test_stop_and_close_in_the_child_leave_nothing_in_dev_shm(lib_env: Path) -> None:
    mine = f"-{os.getpid()}-"  # names carry the creating PID (other runs share /dev/shm)
    proc = AcquisitionProcess(_config())
    proc.open()
    proc.configure(_settings())
    proc.start(RATE, lossless=True)
    assert proc.wait(100, 10.0) >= 100
    proc.stop()
    pid = proc.pid
    proc.close()
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert [n for n in os.listdir("/dev/shm") if "eegpi" in n and mine in n] == []


def test_stuck_drdy_ends_the_run_with_the_python_readers_message(lib_env: Path) -> None:
    device = open_device(_config(stuck_drdy_after=50))
    try:
        device.configure(_settings())
        acq = NativeAcquisition(device, RATE, lossless=True, stuck_timeout_s=0.2)
        acq.start()
        frames = 0
        with pytest.raises(HardwareError, match=r"no DRDY from the ADS1299 for .* is DRDY wired"):
            while True:
                acq.wait(1, 10.0)
                frames += len(acq.take())
        assert frames == 50 and acq.frames_read == 50 and acq.missed == 0
        acq.stop()
    finally:
        device.close()


def test_a_missing_library_is_a_clear_error_and_auto_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV_LIBRARY, str(tmp_path / "libeegpi_reader.so"))
    device = open_device(_config())
    try:
        device.configure(_settings())
        with pytest.raises(HardwareError, match=r"is not built; run `eegpi build-native`"):
            make_acquisition("native", device, RATE)
        with caplog.at_level(logging.INFO, logger="eegpi.hardware"):
            acq = make_acquisition("auto", device, RATE)
        assert isinstance(acq, Acquisition)
        assert "device.reader: auto runs the Python reader" in caplog.text
        assert "is not built" in caplog.text
    finally:
        device.close()
    # Through the acquisition process: the start fails with the same message, the child lives.
    proc = AcquisitionProcess(_config())
    try:
        proc.open()
        proc.configure(_settings())
        with pytest.raises(HardwareError, match=r"is not built; run `eegpi build-native`"):
            proc.start(RATE)
        assert proc.pid is not None and Path(f"/proc/{proc.pid}").exists()
    finally:
        proc.close()


def test_a_library_of_another_version_is_refused(tmp_path: Path, native_lib: Path) -> None:
    cc = compiler()
    assert cc is not None
    source = tmp_path / "old.c"
    source.write_text("int eegpi_reader_abi(void) { return 99; }\n")
    old = tmp_path / "libeegpi_reader.so"
    subprocess.run([*cc, "-shared", "-fPIC", "-o", str(old), str(source)], check=True)
    with pytest.raises(HardwareError, match=r"another eegpi version \(ABI 99.*build-native"):
        load_library(old)


def test_a_library_built_from_another_source_is_refused(tmp_path: Path, native_lib: Path) -> None:
    # Same ABI, another reader.c (an upgrade since `eegpi build-native` ran): rebuild first.
    cc = compiler()
    assert cc is not None
    source = default_library_dir() / SOURCE_NAME
    old = tmp_path / "libeegpi_reader.so"
    digest = '-DEEGPI_READER_SOURCE="0000"'
    command = [*cc, "-shared", "-fPIC", digest, "-o", str(old), str(source), "-lm"]
    subprocess.run(command, check=True)
    with pytest.raises(HardwareError, match=r"built from another reader.c .* build-native"):
        load_library(old)
    assert "another reader.c" in str(stale_reason(tmp_path))
    assert stale_reason(native_lib.parent) is None


def test_rpigpio_and_a_hand_driven_chip_select_are_not_native(lib_env: Path) -> None:
    cfg = DeviceConfig(backend="mock", gpio="rpigpio", emulator=EmulatorConfig(realtime=False))
    device = open_device(cfg)
    try:
        with pytest.raises(NotNative, match=r"needs DRDY through gpiod"):
            NativeAcquisition(device, RATE)
        assert isinstance(make_acquisition("auto", device, RATE), Acquisition)
    finally:
        device.close()
    cfg = DeviceConfig(backend="mock", board="pieeg16", emulator=EmulatorConfig(realtime=False))
    device = open_device(cfg, 2)
    try:
        with pytest.raises(NotNative, match=r"second chip is selected by a GPIO"):
            NativeAcquisition(device, RATE)
    finally:
        device.close()


def test_a_thread_ring_is_refused(lib_env: Path) -> None:
    device = open_device(_config())
    try:
        from eegpi.hardware.ring import FrameRing

        with pytest.raises(HardwareError, match=r"process-shared locks"):
            NativeAcquisition(device, RATE, ring=FrameRing(64, device.frame_len))
    finally:
        device.close()


# --- config and command line ---------------------------------------------------------------------


def test_reader_key_loads_and_bad_values_are_refused() -> None:
    app = from_mapping(AppConfig, {"device": {"reader": "auto"}}, "")
    assert app.device.reader == "auto"
    assert from_mapping(AppConfig, {}, "").device.reader == "python"
    with pytest.raises(ConfigError, match=r"device.reader: 'c' is not one of python, native"):
        from_mapping(AppConfig, {"device": {"reader": "c"}}, "")
    with pytest.raises(ConfigError, match=r"runs in the acquisition process"):
        from_mapping(AppConfig, {"device": {"reader": "native", "acquisition": "thread"}}, "")


def test_build_native_command_builds_then_reports_up_to_date(
    tmp_path: Path, native_lib: Path
) -> None:
    eegpi = [sys.executable, "-m", "eegpi"]
    done = subprocess.run(
        [*eegpi, "build-native", "--output", str(tmp_path), "--if-stale"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"built {tmp_path / 'libeegpi_reader.so'}")
    assert f"EEGPI_NATIVE_LIB={tmp_path / 'libeegpi_reader.so'}" in done.stdout
    load_library(tmp_path / "libeegpi_reader.so")
    again = subprocess.run(
        [*eegpi, "build-native", "--output", str(tmp_path), "--if-stale"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and again.stdout.startswith("up to date: "), again.stderr
    broken = subprocess.run(
        [*eegpi, "build-native", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CC": "no-such-compiler"},
    )
    assert broken.returncode == 1
    assert "no C compiler" in broken.stderr and "apt-get install gcc" in broken.stderr


def test_the_reader_reports_its_own_cpu_time_per_frame(lib_env: Path) -> None:
    device = open_device(_config())
    try:
        device.configure(_settings())
        acq = NativeAcquisition(device, RATE, lossless=True)
        acq.start()
        try:
            seen = 0
            while seen < 600:
                acq.wait(1, 10.0)
                seen += len(acq.take())
        finally:
            acq.stop()
        assert acq.stats.frames >= 600
        # getrusage charges user time in scheduler ticks: a millisecond of it may read 0
        assert 0 <= acq.stats.user_ns <= acq.stats.cpu_ns + 10_000_000
        assert acq.stats.cpu_ns > 0
        assert acq.cpu_ns_per_frame > 0
    finally:
        device.close()
