"""One slot numbering for a stream whose acquisition restarts (the chip reprogrammed live).

Each acquisition run numbers its frames from its own first DRDY. When the source stops the
chip, rewrites its registers and starts it again (a gain change), the stream must go on with
the conversions that were lost meanwhile showing as a ``seq`` gap, counted like any other loss.
:class:`NumberedFrames` wraps a run's frame source and shifts its slots so that the run's first
frame lands where its DRDY edge falls on the previous run's numbering: the time between the
previous run's last edge and this run's first, in sample periods, both on the same DRDY clock.
The first run is left as it is.
"""

from __future__ import annotations

from eegpi.hardware.acquisition import FrameSource
from eegpi.hardware.ring import RawFrames

__all__ = ["NumberedFrames"]


class NumberedFrames:
    """A :class:`FrameSource` whose slots continue the numbering of the run before it."""

    def __init__(
        self, inner: FrameSource, sample_rate: float, after: NumberedFrames | None = None
    ) -> None:
        self.inner = inner
        self._rate = float(sample_rate)
        self._base: int | None = 0 if after is None else None
        self.last_slot: int = -1 if after is None else after.last_slot
        """Slot of the newest frame taken (on the stream's numbering); -1 before any."""
        self.last_edge_ns: int | None = None if after is None else after.last_edge_ns
        """DRDY edge time of that frame."""

    def take(self, limit: int | None = None) -> RawFrames:
        raw = self.inner.take(limit)
        if len(raw) == 0:
            return raw
        if self._base is None:
            ahead = 1
            if self.last_edge_ns is not None:
                elapsed_ns = int(raw.edge_ns[0]) - self.last_edge_ns
                ahead = max(1, round(elapsed_ns * self._rate / 1e9))
            self._base = self.last_slot + ahead - int(raw.seq[0])
        if self._base:
            raw = RawFrames(raw.frames, raw.seq + self._base, raw.edge_ns)
        self.last_slot = int(raw.seq[-1])
        self.last_edge_ns = int(raw.edge_ns[-1])
        return raw

    # -- the rest of FrameSource, as the run has it ---------------------------------------------

    @property
    def available(self) -> int:
        return self.inner.available

    @property
    def frames_read(self) -> int:
        return self.inner.frames_read

    @property
    def missed(self) -> int:
        return self.inner.missed

    @property
    def overflowed(self) -> int:
        return self.inner.overflowed

    @property
    def running(self) -> bool:
        return self.inner.running

    @property
    def priority_set(self) -> bool:
        return self.inner.priority_set

    @property
    def nice_set(self) -> bool:
        return self.inner.nice_set

    def wait(self, count: int, timeout: float) -> int:
        return self.inner.wait(count, timeout)

    def hurry(self) -> None:
        self.inner.hurry()

    def stop(self) -> None:
        self.inner.stop()
