"""A small in-memory ControlPlane that behaves like the daemon's, for testing the rpc layer.

Pipelines: ``default`` and ``alpha`` both claim the device (so starting both is DeviceBusy),
``nochip`` fails with HardwareError, ``crash`` raises an unexpected RuntimeError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from eegpi.exc import DeviceBusy, HardwareError, PipelineNotFound, PipelineStateError
from eegpi.status import (
    DeviceInfo,
    DeviceReport,
    LeadOffChannel,
    LoadError,
    PipelineInfo,
    PipelineState,
    PipelineStatus,
    RegisterValue,
    ReloadResult,
    TopicStatus,
)

__all__ = ["BAD_FILE", "DEVICE", "NO_CHIP", "FakeControlPlane"]

DEVICE = DeviceInfo(
    backend="mock",
    path="emulator",
    chip="ADS1299",
    id_register=0x3E,
    chips=1,
    channels=8,
    sample_rate=250,
    reader="python",
    scheduling="SCHED_FIFO",
    memory_locked=True,
    acquisition="process",
)
NO_CHIP = "no ADS1299 on /dev/spidev0.0: ID register read 0x00; is SPI enabled and the board wired?"
BAD_FILE = LoadError(
    path="pipelines/broken.yaml", message="pipelines/broken.yaml: stage 'f': unknown type 'fft'"
)
_TOPICS = {"default": ("eeg_voltage", "eeg_filtered"), "alpha": ("alpha_power",)}


class FakeControlPlane:
    def __init__(self) -> None:
        self.names = ("alpha", "crash", "default", "nochip")
        self._status = {n: PipelineStatus(name=n, state=PipelineState.STOPPED) for n in self.names}
        self._changed = asyncio.Condition()
        self.reloads = 0
        self.version = 0
        self.watchers = 0
        self.watch_closed = asyncio.Event()

    def _get(self, name: str) -> PipelineStatus:
        if name not in self._status:
            known = ", ".join(self.names)
            raise PipelineNotFound(f"no pipeline named {name!r}; known: {known}")
        return self._status[name]

    async def _set(self, status: PipelineStatus) -> PipelineStatus:
        async with self._changed:
            self._status[status.name] = status
            self.version += 1
            self._changed.notify_all()
        return status

    def list_pipelines(self) -> tuple[list[PipelineInfo], list[LoadError]]:
        infos = [
            PipelineInfo(
                name=n,
                path=f"pipelines/{n}.yaml",
                stages=("acquire:ads1299_source", "sink:websocket_sink"),
                topics=_TOPICS.get(n, ()),
                state=self._status[n].state,
            )
            for n in self.names
        ]
        return infos, [BAD_FILE]

    async def start(self, name: str) -> PipelineStatus:
        current = self._get(name)
        if current.state is PipelineState.RUNNING:
            raise PipelineStateError(f"pipeline {name!r} is already running; stop it first")
        holder = next(
            (s.name for s in self._status.values() if s.state is PipelineState.RUNNING), None
        )
        if holder is not None:
            raise DeviceBusy(
                f"pipeline {name!r} needs the device held by running pipeline {holder!r}; "
                f"stop {holder!r} first"
            )
        if name == "nochip":
            raise HardwareError(NO_CHIP)
        if name == "crash":
            raise RuntimeError("boom")
        return await self._set(
            PipelineStatus(
                name=name,
                state=PipelineState.RUNNING,
                start_time=time.time() - 3725.0,
                samples_acquired=931_250,
                samples_dropped=3,
                trigger_markers=12,
                trigger_lost=1,
                gpio_markers=4,
                topics=tuple(TopicStatus(t, i) for i, t in enumerate(_TOPICS.get(name, ()))),
                device=DEVICE,
            )
        )

    async def stop(self, name: str) -> PipelineStatus:
        current = self._get(name)
        return await self._set(replace(current, state=PipelineState.STOPPED, topics=()))

    def status(self, name: str = "") -> list[PipelineStatus]:
        if name:
            return [self._get(name)]
        return [self._status[n] for n in self.names]

    async def watch(self, name: str = "") -> AsyncIterator[PipelineStatus]:
        selected = [name] if name else list(self.names)
        for n in selected:
            self._get(n)
        last = {n: self._status[n] for n in selected}
        seen = self.version
        self.watchers += 1
        try:
            for n in selected:
                yield last[n]
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda v=seen: self.version != v)
                    seen = self.version
                for n in selected:
                    if self._status[n] != last[n]:
                        last[n] = self._status[n]
                        yield last[n]
        finally:
            self.watchers -= 1
            self.watch_closed.set()

    async def reload(self) -> ReloadResult:
        self.reloads += 1
        return ReloadResult(loaded=self.names, errors=(BAD_FILE,))

    async def device_report(self) -> DeviceReport:
        running = [s.name for s in self._status.values() if s.state is PipelineState.RUNNING]
        return DeviceReport(
            backend="mock",
            path="emulator",
            chip="ADS1299",
            id_register=0x3E,
            revision=0,
            chips=1,
            channels=8,
            sample_rate=250 if running else 0,
            held_by=running[0] if running else "",
            registers=(
                RegisterValue(0x00, "ID", 0x3E),
                RegisterValue(0x01, "CONFIG1", 0x96),
                RegisterValue(0x05, "CH1SET", 0x60),
            ),
            lead_off=tuple(
                LeadOffChannel(f"ch{i}", p_off=(i == 3), n_off=False, sensed=True)
                for i in range(1, 9)
            ),
            bias_off=False,
        )
