"""Acquisition in its own process: the shared-memory ring, the command pipe, errors, clean-up."""

from __future__ import annotations

import errno
import itertools
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hw_helpers import SourceRunner, mock_config, stack
from scipy import signal as sps

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.settings import ChipSettings, chain_settings
from eegpi.exc import ConfigError, HardwareError
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.process import AcquisitionProcess, _Failure
from eegpi.hardware.ring import FrameRing, RawFrames, RingHandle, RingSync

SHM = Path("/dev/shm")


def _settings(rate: int = 1000, channels: int = 8) -> ChipSettings:
    return chain_settings(
        sample_rate=rate,
        gain=24,
        input="normal",
        srb2=False,
        chips=1,
        channels_per_chip=channels,
    )


@pytest.fixture
def procs() -> Iterator[list[AcquisitionProcess]]:
    """Acquisition processes a test makes; always closed, and none may outlive the test."""
    made: list[AcquisitionProcess] = []
    try:
        yield made
    finally:
        for p in made:
            p.close()
        assert multiprocessing.active_children() == []


def _open(procs: list[AcquisitionProcess], cfg: DeviceConfig, **kw: Any) -> AcquisitionProcess:
    p = AcquisitionProcess(cfg, **kw)
    procs.append(p)
    p.open()
    return p


def _exited(pid: int, timeout: float) -> bool:
    """Wait for any process (not only our child) to end, on its pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


# --- the ring ---------------------------------------------------------------------------------


def test_ring_wraps_and_keeps_order() -> None:
    ring = FrameRing(8, 3)
    try:
        for k in range(20):
            assert ring.put(bytes([k, k, k]), 100 + k, 1000 * k)
            if k % 3 == 2:
                got = ring.take()
                assert (got.frames[:, 0] == got.seq - 100).all()
        rest = ring.take()
        assert ring.available == 0
        assert rest.seq.tolist() == [118, 119]
        assert rest.frames.tolist() == [[18, 18, 18], [19, 19, 19]]
        assert rest.edge_ns.tolist() == [18000, 19000]
        assert ring.frames_read == 20 and ring.overflowed == 0
    finally:
        ring.close()


def test_full_ring_drops_new_frames_and_counts_them() -> None:
    ring = FrameRing(4, 1)
    try:
        stored = [ring.put(bytes([k]), k, k) for k in range(6)]
        assert stored == [True] * 4 + [False] * 2
        assert (ring.overflowed, ring.frames_read, ring.available) == (2, 6, 4)
        assert ring.take(3).seq.tolist() == [0, 1, 2]
        assert ring.put(bytes([9]), 9, 9)
        assert ring.take().seq.tolist() == [3, 9]  # the dropped slots show as a gap
    finally:
        ring.close()


def test_consumer_wakes_once_enough_frames_wait() -> None:
    ring = FrameRing(64, 1)
    woke = threading.Event()
    counts: list[int] = []

    def consume() -> None:
        counts.append(ring.wait(10, 5.0))
        woke.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        for k in range(9):
            ring.put(b"x", k, k)
        assert not woke.wait(0.05)  # 9 of 10: still asleep
        ring.put(b"x", 9, 9)
        assert woke.wait(5.0)
        assert counts == [10]
    finally:
        consumer.join()
        ring.close()


def test_a_finished_producer_ends_the_wait() -> None:
    ring = FrameRing(16, 1)
    try:
        threading.Timer(0.05, ring.finish).start()
        t0 = time.monotonic()
        assert ring.wait(5, 10.0) == 0
        assert time.monotonic() - t0 < 5.0 and ring.done
    finally:
        ring.close()


def test_shared_ring_attaches_by_handle_and_unlinks_on_close() -> None:
    sync = RingSync.shared()
    sync.unlink()  # this process holds them: the names are not needed
    ring = FrameRing(32, 27, sync=sync, shared=True)
    name = ring.name
    assert name is not None and (SHM / name).exists()
    producer = FrameRing.attach(ring.handle(), sync)
    try:
        for k in range(40):
            producer.put(bytes([k % 256]) * 27, k, 10 * k)
        assert ring.overflowed == 8 and ring.frames_read == 40  # counters are shared
        got = ring.take()
        assert got.seq.tolist() == list(range(32))
        assert got.frames[:, 0].tolist() == list(range(32))
    finally:
        producer.close()
        assert (SHM / name).exists()  # only the creator unlinks
        ring.close()
        ring.close()
    assert not (SHM / name).exists()
    with pytest.raises(HardwareError, match="cannot attach the shared-memory ring"):
        FrameRing.attach(RingHandle(name, 32, 27), sync)


def test_an_in_process_ring_has_no_handle() -> None:
    ring = FrameRing(4, 1)
    with pytest.raises(ValueError, match="in-process ring cannot be attached"):
        ring.handle()
    ring.close()


# --- errors across the boundary -----------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        HardwareError(errno.ENODEV, "no SPI device (/dev/spidev*) on this machine"),
        HardwareError("no ADS1299 on emulator: ID register read 0x00"),
        ConfigError("stage 'acquire': gain: bad"),
        ValueError("settings describe 8 channels"),
    ],
)
def test_errors_keep_type_and_message(exc: Exception) -> None:
    back = _Failure.of(exc).exception()
    assert type(back) is type(exc) and str(back) == str(exc)


def test_an_unknown_error_becomes_a_hardware_error_naming_it() -> None:
    back = _Failure.of(KeyError("x")).exception()
    assert isinstance(back, HardwareError)
    assert str(back) == "acquisition process failed: KeyError: 'x'"


# --- the acquisition process ----------------------------------------------------------------


def test_frames_arrive_contiguous_and_match_the_thread(procs: list[AcquisitionProcess]) -> None:
    cfg = mock_config(acquisition="process")
    p = _open(procs, cfg)
    assert p.pid is not None and p.pid != os.getpid()
    snap = p.configure(_settings(1000))
    assert (snap.chips, snap.channels, snap.frame_len, snap.realtime) == (1, 8, 27, False)
    p.start(1000, lossless=True)
    parts: list[RawFrames] = []
    while sum(len(r) for r in parts) < 3000:
        assert p.wait(1, 10.0) >= 1
        parts.append(p.take())
    seq = np.concatenate([r.seq for r in parts])
    frames = np.concatenate([r.frames for r in parts])
    assert np.array_equal(seq, np.arange(len(seq)))
    assert decode_frames(frames, 1, 8).valid.all()
    assert p.frames_read >= len(seq) and p.missed == 0 and p.overflowed == 0
    assert np.allclose(np.diff(np.concatenate([r.edge_ns for r in parts])), 1e6, atol=1)
    # The same seeded emulator read by a thread in this process gives the same bytes.
    device = open_device(mock_config())
    device.configure(_settings(1000))
    acq = Acquisition(device, 1000, lossless=True)
    acq.start()
    try:
        assert acq.wait(3000, 10.0) >= 3000
        local = acq.take(3000)
    finally:
        acq.stop()
        device.close()
    assert np.array_equal(local.frames, frames[:3000])


def test_a_full_ring_is_counted_in_the_daemon(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(acquisition="process"))
    p.configure(_settings(1000))
    p.start(1000, capacity=64)  # virtual time, not lossless: nobody reads, the ring fills
    assert p.wait(64, 10.0) == 64
    while p.overflowed == 0:
        p.wait(65, 0.01)
    first = p.take()
    assert p.wait(10, 10.0) >= 10
    later = p.take(10)
    assert np.array_equal(first.seq, np.arange(64))
    assert 1 <= later.seq[0] - 64 <= p.overflowed


def test_real_time_cadence(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(realtime=True, acquisition="process"))
    assert p.snapshot is not None and p.snapshot.realtime
    p.configure(_settings(1000))
    reply = p.start(1000)
    parts: list[RawFrames] = []
    while sum(len(r) for r in parts) < 500:  # > 0.5 s of data
        assert p.wait(1, 5.0) >= 1
        parts.append(p.take())
    p.stop()
    parts.append(p.take())  # what came before the stop: the counters cover exactly these
    seq = np.concatenate([r.seq for r in parts])
    edge_ns = np.concatenate([r.edge_ns for r in parts])
    span_s = (edge_ns[-1] - edge_ns[0]) / 1e9
    assert (seq[-1] - seq[0]) / span_s == pytest.approx(1000, rel=0.02)
    # A loaded host may miss DRDYs; each one is counted and shows as a gap, never hidden.
    assert p.frames_read == len(seq) and p.frames_read + p.missed == seq[-1] + 1
    assert abs((edge_ns[-1] + reply.wall_offset_ns) / 1e9 - time.time()) < 5


def test_no_chip_fails_open_with_the_drivers_message(procs: list[AcquisitionProcess]) -> None:
    cfg = mock_config(acquisition="process", id_register=0x00)
    with pytest.raises(HardwareError) as local:
        open_device(cfg)
    p = AcquisitionProcess(cfg)
    procs.append(p)
    with pytest.raises(HardwareError) as remote:
        p.open()
    assert str(remote.value) == str(local.value)
    assert "no ADS1299 on emulator: ID register read 0x00; is SPI enabled" in str(remote.value)
    assert p.pid is None  # the child is gone


def test_a_driver_value_error_keeps_its_type(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(acquisition="process", id_register=0x3C))  # ADS1299-4
    with pytest.raises(ValueError, match="settings describe 8 channels per chip but the ADS1299-4"):
        p.configure(_settings(250, channels=8))
    assert p.configure(_settings(250, channels=4)).channels == 4  # the child is still usable


def test_stuck_drdy_reaches_the_daemon(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(acquisition="process", stuck_drdy_after=5))
    p.configure(_settings(250))
    p.start(250)
    assert p.wait(5, 10.0) == 5
    p.take()
    with pytest.raises(
        HardwareError, match=r"no DRDY from the ADS1299 for 0\.5\d s: is DRDY wired"
    ):
        p.wait(1, 10.0)
    assert not p.running
    p.stop()  # still a clean stop after the failure


def test_a_killed_child_is_an_error_not_a_hang(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(realtime=True, acquisition="process"))
    p.configure(_settings(250))
    p.start(250)
    assert p.wait(1, 5.0) >= 1
    p.take()
    assert p.pid is not None
    os.kill(p.pid, signal.SIGKILL)
    with pytest.raises(HardwareError, match="acquisition process"):
        while True:
            p.wait(1, 5.0)
            p.take()


def test_sigterm_stops_the_child_in_order(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(realtime=True, acquisition="process"))
    p.configure(_settings(250))
    p.start(250)
    assert p.wait(1, 5.0) >= 1
    assert p.pid is not None
    os.kill(p.pid, signal.SIGTERM)
    with pytest.raises(HardwareError, match="the acquisition process was terminated"):
        while True:
            p.wait(1, 5.0)
            p.take()


def test_counters_survive_stop_close_and_a_dead_child(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(acquisition="process", drop_conversions=(10, 20, 30)))
    p.configure(_settings(1000))
    p.start(1000, lossless=True)
    taken = 0
    while taken < 100:
        assert p.wait(1, 10.0) >= 1
        taken += len(p.take())
    p.stop()
    taken += len(p.take())
    counts = p.counts
    assert (counts.missed, counts.overflowed, counts.frames_read) == (3, 0, taken)
    p.close()
    assert (p.frames_read, p.missed, p.overflowed) == (taken, 3, 0)
    # A child that dies mid-run: what it counted is still there after close.
    q = _open(procs, mock_config(realtime=True, acquisition="process", drop_conversions=(3,)))
    q.configure(_settings(250))
    q.start(250)
    while q.frames_read < 10:
        q.wait(10, 5.0)
    assert q.pid is not None
    os.kill(q.pid, signal.SIGKILL)
    with pytest.raises(HardwareError):
        while True:
            q.wait(1, 5.0)
            q.take()
    before = q.counts
    q.close()
    assert q.counts == before and before.missed >= 1 and before.frames_read >= 10


def test_close_survives_a_child_that_cannot_be_killed(
    procs: list[AcquisitionProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _open(procs, mock_config(acquisition="process"), reply_timeout_s=0.5)
    p.configure(_settings(1000))
    p.start(1000, lossless=True)
    assert p.wait(10, 10.0) >= 10
    proc, name = p._proc, p._ring.name if p._ring else None
    assert proc is not None and proc.pid is not None and name is not None
    os.kill(proc.pid, signal.SIGSTOP)  # stuck: it neither answers nor exits
    # As if stuck in the kernel (a hung SPI driver): signals do not end it in time.
    monkeypatch.setattr(proc, "terminate", lambda: None)
    monkeypatch.setattr(proc, "kill", lambda: None)
    monkeypatch.setattr("eegpi.hardware.process._JOIN_TIMEOUT_S", 0.1)
    monkeypatch.setattr("eegpi.hardware.process._KILL_WAIT_S", 0.1)
    try:
        p.close()  # must not raise, and must unlink the ring
        assert not (SHM / name).exists()
        assert p.pid is None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGCONT)
        proc.join(10)
    assert not proc.is_alive()


def _names_of(pid: int) -> list[str]:
    """Segment and semaphore names in /dev/shm that process ``pid`` created."""
    return [
        f.name
        for f in SHM.iterdir()
        if f.name.removeprefix("sem.").startswith(f"eegpi-{pid}-")
        or f.name.startswith(f"eegpi-ring-{pid}-")
    ]


def test_close_leaves_no_process_and_no_segment(procs: list[AcquisitionProcess]) -> None:
    p = _open(procs, mock_config(acquisition="process"))
    p.configure(_settings(1000))
    p.start(1000, lossless=True)
    assert p.wait(100, 10.0) >= 100
    pid, name = p.pid, p._ring.name if p._ring else None
    assert pid is not None and name is not None
    # Both processes hold the ring and its semaphores: their names are gone already.
    assert not (SHM / name).exists() and _names_of(os.getpid()) == []
    p.close()
    p.close()
    assert _exited(pid, 0.0)
    assert not (SHM / name).exists()
    assert multiprocessing.active_children() == []


def test_open_timeout_is_bounded_and_cleans_up(procs: list[AcquisitionProcess]) -> None:
    p = AcquisitionProcess(mock_config(acquisition="process"), open_timeout_s=0.001)
    procs.append(p)
    t0 = time.monotonic()
    with pytest.raises(HardwareError, match=r"did not open the device within 0\.001 s"):
        p.open()
    assert time.monotonic() - t0 < 15
    assert multiprocessing.active_children() == []


_ORPHAN = textwrap.dedent(
    """
    import sys
    from eegpi.ads1299.settings import chain_settings
    from eegpi.hardware.config import DeviceConfig, EmulatorConfig
    from eegpi.hardware.process import AcquisitionProcess

    if __name__ == "__main__":
        cfg = DeviceConfig(backend="mock", emulator=EmulatorConfig(realtime=False))
        p = AcquisitionProcess(cfg)
        p.open()
        p.configure(chain_settings(sample_rate=1000, gain=24, input="normal", srb2=False,
                                   chips=1, channels_per_chip=8))
        p.start(1000, lossless=True)  # the child fills the ring, then waits for room
        p.wait(100, 10.0)
        print(p.pid, p._ring.name, flush=True)
        sys.stdin.read()  # until the test kills us
    """
)

_EMBEDDED = textwrap.dedent(
    """
    import os
    from pathlib import Path
    from eegpi.ads1299.settings import chain_settings
    from eegpi.hardware.config import DeviceConfig, EmulatorConfig
    from eegpi.hardware.process import AcquisitionProcess

    # A program that uses eegpi as a library, without the `if __name__ == "__main__"` guard
    # multiprocessing's spawn asks for, after importing what the daemon imports.
    import grpc, scipy.signal, websockets  # noqa: F401

    p = AcquisitionProcess(DeviceConfig(backend="mock", emulator=EmulatorConfig(realtime=True)))
    p.open()
    p.configure(chain_settings(sample_rate=250, gain=24, input="normal", srb2=False,
                               chips=1, channels_per_chip=8))
    p.start(250)
    assert p.wait(1, 10.0) >= 1
    me = os.getpid()
    kids = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    for kid in kids:
        print("child", Path(f"/proc/{kid}/cmdline").read_text().replace(chr(0), " "))
    print("modules", " ".join(p.child_modules()))
    print("names", " ".join(f.name for f in Path("/dev/shm").iterdir() if str(me) in f.name))
    p.close()
    print("closed")
    """
)


def test_the_child_imports_only_acquisition_and_runs_alone(tmp_path: Path) -> None:
    """The spawned child loads the driver and the emulator, not the parent's modules (scipy,
    grpc, websockets, the daemon) nor its ``__main__``; no resource tracker runs beside it; and
    while it acquires no name of the ring is left in /dev/shm to leak."""
    script = tmp_path / "embedded.py"
    script.write_text(_EMBEDDED)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split(" ", 1)[0]: line for line in done.stdout.splitlines()}
    assert lines.get("closed") == "closed", done.stdout + done.stderr
    children = [line for line in done.stdout.splitlines() if line.startswith("child ")]
    assert len(children) == 1 and "spawn_main" in children[0], children
    modules = set(lines["modules"].split()[1:])
    assert {"eegpi.hardware.acquisition", "eegpi.hardware.emulator", "numpy"} <= modules
    heavy = ("scipy", "grpc", "websockets", "eegpi.daemon", "eegpi.pipeline", "eegpi.rpc")
    assert [m for m in modules if m.split(".")[0] in heavy or m.startswith(heavy)] == []
    assert lines["names"].split()[1:] == []


def test_the_child_exits_when_the_daemon_dies(tmp_path: Path) -> None:
    script = tmp_path / "daemon_stand_in.py"
    script.write_text(_ORPHAN)
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        child_pid, name = parent.stdout.readline().split()
        assert name.startswith(f"eegpi-ring-{parent.pid}-")
        parent.kill()
        parent.wait(10)
        assert _exited(int(child_pid), 10.0), "the orphaned acquisition process kept running"
        # Nothing to unlink: the names went when both processes held them.
        assert not (SHM / name).exists() and _names_of(parent.pid) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


# --- the source stage in process mode ---------------------------------------------------------


def test_source_in_process_mode_gives_the_alpha_peak(
    runner: SourceRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the daemon opened the SPI device itself")

    # Only this process is patched: the spawned acquisition process opens the device.
    monkeypatch.setattr("eegpi.pipeline.stages.source.open_device", not_here)
    monkeypatch.setattr("eegpi.hardware.open_link", not_here)
    src = runner.open(mock_config(acquisition="process"), lead_off=True)
    assert src.device is None
    blocks = runner.collect(src, 4096)
    assert blocks[0].seq == 0
    assert all(b.seq == a.end_seq for a, b in itertools.pairwise(blocks))
    uv = stack(blocks) * (4.5e6 / (24 * 2**23))
    freqs, psd = sps.welch(uv - uv.mean(axis=0), fs=250, nperseg=1024, axis=0)
    assert np.all(np.abs(freqs[np.argmax(psd, axis=0)] - 10.0) <= 0.3)
    stats = src.stats()
    assert stats.samples_dropped == 0 and stats.samples_acquired >= 4096
    report = src.device_report()
    assert report is not None
    assert (report.backend, report.chip, report.channels, report.held_by) == (
        "mock",
        "ADS1299",
        8,
        "test",
    )
    assert {r.name: r.value for r in report.registers}["CONFIG4"] == 0x02
    assert all(lo.sensed and not lo.p_off for lo in report.lead_off)


def test_source_in_process_mode_reports_lead_off_from_the_status_word(
    runner: SourceRunner,
) -> None:
    src = runner.open(mock_config(acquisition="process", leads_off=(2,)), lead_off=True)
    runner.collect(src, 20)
    report = src.device_report()
    assert report is not None
    assert {lo.channel for lo in report.lead_off if lo.p_off} == {"ch2"}


def test_source_in_process_mode_bad_params_and_no_chip(runner: SourceRunner) -> None:
    with pytest.raises(ConfigError, match="stage 'acquire': gain: a list needs one entry"):
        runner.open(mock_config(acquisition="process", id_register=0x3C), gain=[24] * 8)
    with pytest.raises(HardwareError, match="no ADS1299 on emulator: ID register read 0xFF"):
        runner.open(mock_config(acquisition="process", miso_stuck=0xFF))
    assert multiprocessing.active_children() == []
