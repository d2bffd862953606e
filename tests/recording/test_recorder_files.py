"""The recorder's files, written from chosen blocks and read back by MNE and pyedflib.

The recorder runs as in the daemon (its own writer thread, a bounded queue); the blocks are made
here, so every sample, gap and marker is known exactly.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from eegpi.exc import ConfigError
from eegpi.hardware.config import DeviceConfig
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.recorder import RecorderParams, RecorderStage, _signals
from eegpi.recording.bdf import Layout
from eegpi.recording.catalog import RECOVERED, list_recordings, read_header, repair_unfinished
from eegpi.recording.control import Recorders
from eegpi.recording.recorder import Recorder, RecorderConfig
from eegpi.stream import Block, Marker, StreamMeta
from tests.recording.helpers import LSB_UV, is_gap, onsets, read_mne, read_pyedflib

NAMES = ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2")
FS = 250.0
T0 = 1_700_000_000.25
META = StreamMeta(FS, NAMES, "counts", {"gain": (24,) * 8, "vref_v": 4.5})


def _codes(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-(2**23), 2**23, size=(n, len(NAMES)))


def _stage(tmp_path: Path, **params: object) -> tuple[RecorderStage, Recorders]:
    recorders = Recorders()
    ctx = StageContext(
        pipeline="lab",
        device=DeviceConfig(),
        publisher=NullPublisher(),
        data_dir=str(tmp_path),
        extras={Recorders.KEY: recorders},
    )
    stage = RecorderStage("raw", RecorderParams(**params))  # type: ignore[arg-type]
    stage.open({"in": META}, ctx)
    return stage, recorders


def _feed(
    stage: RecorderStage, codes: np.ndarray, skip: range = range(0), start: int = 0, tick: int = 10
) -> None:
    """Blocks of ``tick`` samples from ``start`` on, as the source makes them; ``skip`` is lost."""
    kept = np.array([i for i in range(start, len(codes)) if i not in skip])
    for run in np.split(kept, np.where(np.diff(kept) != 1)[0] + 1):
        for s in range(0, len(run), tick):
            first = int(run[s])
            data = codes[first : first + len(run[s : s + tick])].astype(np.float64)
            stage.process({"in": Block(data, first, T0 + first / FS, META)})


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, np.ndarray]]:
    """2000 samples with samples 500-529 lost upstream and a marker at sample 777."""
    stage, recorders = _stage(tmp_path)
    codes = _codes(2000)
    _feed(stage, codes[:800], skip=range(500, 530))
    recorders.add_markers([Marker("stim A", 777, T0 + 777 / FS, "grpc")])
    _feed(stage, codes, start=800)
    stage.close()
    files = list(tmp_path.rglob("*.bdf"))
    assert len(files) == 1, files
    yield files[0], codes


@pytest.mark.parametrize("reader", [read_mne, read_pyedflib], ids=["mne", "pyedflib"])
def test_values_names_rate_gaps_and_markers_read_back(
    recorded: tuple[Path, np.ndarray], reader: object
) -> None:
    path, codes = recorded
    read = reader(path)  # type: ignore[operator]
    assert read.channels == list(NAMES)
    assert read.sample_rate == FS
    uv = read.uv[: len(codes)]
    kept = np.ones(len(codes), bool)
    kept[500:530] = False
    assert np.max(np.abs(uv[kept] - codes[kept] * LSB_UV)) <= LSB_UV
    assert is_gap(uv[~kept]).all()
    assert not is_gap(uv[kept]).any()
    assert is_gap(read.uv[len(codes) :]).all()  # the last record's padding
    assert onsets(read, "recording start") == [0.0]
    assert onsets(read, "gap: 30 samples lost") == [pytest.approx(500 / FS)]
    assert onsets(read, "stim A") == [pytest.approx(777 / FS)]
    assert onsets(read, "recording stop") == [pytest.approx(2000 / FS)]


def test_the_header_is_finalised_and_the_start_time_kept(recorded: tuple[Path, np.ndarray]) -> None:
    path, _ = recorded
    info = read_header(path)
    assert info.n_records == 9  # 8 s of samples, then the stop's padded record
    assert info.start_time == int(T0)
    [listed] = list_recordings(path.parents[1])
    assert listed.complete and listed.duration_s == 9.0 and listed.name == "lab/" + path.name


def test_a_file_left_open_is_readable_and_repaired_with_a_note(tmp_path: Path) -> None:
    stage, _ = _stage(tmp_path / "data")
    codes = _codes(1130)
    _feed(stage, codes)
    live = _wait_for_records(tmp_path / "data", 4)
    # What a kill -9 leaves: the header still says -1, whole records plus part of one.
    status = stage.status()
    assert status.active and status.bytes >= read_header(live).header_size
    crashed = tmp_path / "crashed" / "lab.bdf"
    crashed.parent.mkdir()
    shutil.copyfile(live, crashed)
    stage.close()
    with crashed.open("ab") as fh:
        fh.write(b"\x01" * 100)  # a torn record
    assert read_header(crashed).n_records == -1
    before = read_mne(crashed)  # MNE counts whole records from the size
    n = len(before.uv)
    assert n >= 4 * FS and n % int(FS) == 0
    assert np.max(np.abs(before.uv - codes[:n] * LSB_UV)) <= LSB_UV

    assert repair_unfinished(tmp_path / "crashed") == [crashed]
    after = read_pyedflib(crashed)
    assert read_header(crashed).n_records == n // int(FS)
    assert np.max(np.abs(after.uv - codes[:n] * LSB_UV)) <= LSB_UV
    assert onsets(after, RECOVERED) == [pytest.approx(n / FS)]
    assert repair_unfinished(tmp_path / "crashed") == []  # finalised files are left alone


def _wait_for_records(data_dir: Path, records: int) -> Path:
    """The file being written, once it holds ``records`` whole records (the writer's pace)."""
    deadline = time.monotonic() + 30
    while True:
        files = list(data_dir.rglob("*.bdf"))
        if files and files[0].stat().st_size > 256:
            info = read_header(files[0])
            if files[0].stat().st_size >= info.header_size + records * info.record_size:
                return files[0]
        assert time.monotonic() < deadline, "the writer thread did not write the records"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("params", "n_files"),
    [({"rotate_minutes": 3 / 60}, 3), ({"rotate_mb": 0.02}, 4)],
    ids=["by-duration", "by-size"],
)
def test_rotation_keeps_every_sample_once(
    tmp_path: Path, params: dict[str, float], n_files: int
) -> None:
    stage, _ = _stage(tmp_path, **params)
    codes = _codes(2000, seed=2)
    _feed(stage, codes)
    stage.close()
    files = sorted(tmp_path.rglob("*.bdf"))
    assert len(files) == n_files
    if "rotate_mb" in params:
        assert all(f.stat().st_size <= params["rotate_mb"] * 1e6 for f in files)
    parts = []
    for f in files:
        read = read_mne(f)
        parts.append(read.uv[~is_gap(read.uv)])
    joined = np.concatenate(parts)
    assert joined.shape == codes.shape
    assert np.max(np.abs(joined - codes * LSB_UV)) <= LSB_UV
    assert onsets(read_mne(files[1]), "recording continues") == [0.0]


def test_blocks_a_full_queue_refuses_are_counted_and_annotated(tmp_path: Path) -> None:
    layout = Layout("bdf", _signals(META, None)[0], 250, 1.0)
    config = RecorderConfig(tmp_path, "{stage}.{ext}", "lab", "raw", queue_blocks=2)
    recorder = Recorder(config, layout, FS, _signals(META, None)[1])
    recorder.start(wait_s=0)
    codes = _codes(400, seed=4)
    with recorder._lock:  # the writer stalls at its first status update: a slow disk
        for s in range(0, 400, 10):
            recorder.feed(Block(codes[s : s + 10].astype(np.float64), s, T0 + s / FS, META))
    recorder.stop()
    recorder.close()
    dropped = recorder.status().samples_dropped
    assert dropped >= 400 - 10 * (2 + 1)  # the queue holds 2 blocks, the writer at most 1
    read = read_mne(tmp_path / "raw.bdf")
    [stop] = onsets(read, "recording stop")
    end = round(stop * FS)
    rows = np.flatnonzero(~is_gap(read.uv[:end]))
    # Every kept sample is at its own slot, every refused one is counted, and each refused
    # sample inside the file is part of an annotated gap.
    assert np.max(np.abs(read.uv[rows] - codes[rows] * LSB_UV)) <= LSB_UV
    assert dropped == 400 - len(rows)
    lost = [int(t.split()[1]) for _, _, t in read.annotations if t.startswith("gap:")]
    assert sum(lost) == end - len(rows)


def test_stop_and_start_make_a_new_file(tmp_path: Path) -> None:
    stage, _ = _stage(tmp_path, autostart=False)
    codes = _codes(1000, seed=3)
    _feed(stage, codes[:250])
    assert not list(tmp_path.rglob("*.bdf"))  # nothing before StartRecording
    assert stage.start_recording().active
    _feed(stage, codes[:500], start=250)
    status = stage.stop_recording()
    assert not status.active and status.file.startswith("lab/") and status.duration_s == 1.0
    stage.close()
    read = read_mne(tmp_path / status.file)
    assert np.max(np.abs(read.uv[:250] - codes[250:500] * LSB_UV)) <= LSB_UV


def test_bad_params_are_named() -> None:
    with pytest.raises(ValueError, match="format"):
        RecorderParams(format="csv")
    with pytest.raises(ValueError, match="relative path"):
        RecorderParams(path="/etc/{stage}.bdf")
    with pytest.raises(ValueError, match=r"\.\."):
        RecorderParams(path="../{stage}.bdf")
    with pytest.raises(ValueError, match=r"must end in \.bdf"):
        RecorderParams(path="{stage}.txt")
    with pytest.raises(ValueError, match="rotate_minutes"):
        RecorderParams(rotate_minutes=0)


def test_edf_keeps_values_within_its_16_bit_step(tmp_path: Path) -> None:
    stage, _ = _stage(tmp_path, format="edf", physical_max=500.0)
    codes = np.random.default_rng(5).integers(-20000, 20000, size=(500, len(NAMES)))
    _feed(stage, codes)
    stage.close()
    [path] = tmp_path.rglob("*.edf")
    step = 500.0 / 32767
    for reader in (read_mne, read_pyedflib):
        read = reader(path)
        assert read.channels == list(NAMES)
        assert np.max(np.abs(read.uv[:500] - codes * LSB_UV)) <= step


def test_streams_the_file_cannot_describe_are_refused_at_open(tmp_path: Path) -> None:
    ctx = StageContext("lab", DeviceConfig(), NullPublisher(), data_dir=str(tmp_path))
    power = StreamMeta(FS, NAMES, "uV^2", {})
    with pytest.raises(ConfigError, match="physical_max"):
        RecorderStage("p", RecorderParams()).open({"in": power}, ctx)
    odd = StreamMeta(250 / 3, NAMES, "counts", META.extra)
    with pytest.raises(ConfigError, match="whole number of samples"):
        RecorderStage("p", RecorderParams()).open({"in": odd}, ctx)
    assert not list(tmp_path.iterdir())
