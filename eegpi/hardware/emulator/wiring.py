"""How the emulated chips are wired to the Pi's header: chip-selects, DRDY lines, control pins.

Pins are BCM GPIO numbers. A chip's ``cs`` is either a hardware chip-select line (GPIO8 = CE0
of ``/dev/spidev0.0``, GPIO7 = CE1, GPIO18/17/16 = CE0-2 of SPI1), asserted by the kernel for
transfers on that device, or any other GPIO that the host drives low by hand. Every chip on a
bus sees SCLK, selected or not, and SCLK clears DRDY (datasheet: even while CS is high).

The DRDY level is the chip model's (:meth:`~Ads1299Emulator.drdy_level`: low from a
conversion until the first SCLK of a read, or until 4 tCLK before the next conversion if nobody
reads); the wiring tells a deselected chip when SCLK ran on its bus, and works out when the
level changes next so that a host polling it in virtual time does not spin forever.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eegpi.hardware.emulator.chip import Ads1299Emulator
from eegpi.hardware.emulator.clock import EmulatorClock
from eegpi.hardware.emulator.stimulus import Stimulus

__all__ = ["CE_LINES", "CONTROL_PINS", "DEFAULT_PINS", "PIN_NAMES", "Port", "Wiring", "check_pins"]

CE_LINES: dict[int, tuple[int, int]] = {8: (0, 0), 7: (0, 1), 18: (1, 0), 17: (1, 1), 16: (1, 2)}
"""Hardware chip-select GPIOs and the ``/dev/spidevB.D`` (bus, device) each belongs to."""
PIN_NAMES = ("drdy", "reset", "start", "pwdn", "cs", "drdy2", "cs2")
"""Names ``pins`` may map: ``drdy2``/``cs2`` are the second chip of a two-chip-select board."""
CONTROL_PINS = ("reset", "start", "pwdn")
DEFAULT_PINS: dict[str, int] = {"drdy": 26, "cs": 8}
"""A PiEEG-style HAT: DRDY on GPIO26 (header pin 37), CS on CE0; RESET/START/PWDN not wired."""
HEADER_GPIOS = range(28)
"""GPIO0-27 reach the 40-pin header."""
_UNDRIVEN = {"reset": True, "pwdn": True, "start": False}
"""The chip's own state of a control pin nobody drives yet: out of reset, powered, not started."""
_IDLE_POLL_NS = 100_000
"""Virtual time a poll of a level that will never change again costs."""


def check_pins(pins: Mapping[str, int] | None) -> dict[str, int]:
    """``pins`` completed with the defaults, or a ValueError naming what is wrong."""
    merged = dict(DEFAULT_PINS)
    for name, pin in (pins or {}).items():
        if name not in PIN_NAMES:
            raise ValueError(f"pins: unknown name {name!r}; names are {', '.join(PIN_NAMES)}")
        if isinstance(pin, bool) or not isinstance(pin, int) or pin not in HEADER_GPIOS:
            raise ValueError(f"pins: {name}={pin!r} is not a header GPIO (BCM 0-27)")
        merged[name] = pin
    if ("drdy2" in merged) != ("cs2" in merged):
        raise ValueError("pins: a second chip needs both drdy2 and cs2")
    seen: dict[int, str] = {}
    for name, pin in merged.items():
        if pin in seen:
            raise ValueError(f"pins: {seen[pin]} and {name} are both GPIO{pin}")
        seen[pin] = name
    return merged


class _Transfers(threading.local):
    transfers = 0
    """SPI transfers the thread made (a class default: each thread starts at 0)."""


@dataclass
class Port:
    """One chip (or daisy chain) on its own chip-select and DRDY line."""

    chip: Ads1299Emulator
    cs: int
    drdy: int
    ce: tuple[int, int] | None = field(init=False)
    """The ``/dev/spidevB.D`` whose hardware CS is ``cs`` (None: a GPIO driven by hand)."""
    bus: int = field(init=False)
    """The SPI bus the chip's SCLK, DIN and DOUT are on."""

    def __post_init__(self) -> None:
        self.ce = CE_LINES.get(self.cs)
        self.bus = self.ce[0] if self.ce is not None else 0


class Wiring:
    """The board's nets: which chip a transfer reaches, what each GPIO reads, what drives what."""

    def __init__(self, ports: Sequence[Port], pins: Mapping[str, int], clock: EmulatorClock):
        self.ports = list(ports)
        self._several = len(self.ports) > 1
        """More than one chip-select (else :meth:`transfer` has a shortcut for the one)."""
        self.pins = dict(pins)
        self.clock = clock
        self.controls = {pins[name]: name for name in CONTROL_PINS if name in pins}
        """Output GPIOs wired to the chips' RESET/START/PWDN pins."""
        self._driven: dict[int, bool] = {}
        self._polled: dict[tuple[int, int], bool] = {}
        self._claimed: dict[int, str] = {}
        self._lock = threading.Lock()
        self._here = _Transfers()
        self.transfers = 0
        """SPI transfers on the board so far."""
        self.stimulus: Stimulus | None = None
        """The pulse generator on a trigger GPIO (``EmulatorConfig.trigger_*``)."""

    def transfers_here(self) -> int:
        """SPI transfers the calling thread has made (virtual time moves only with them, so a
        callback that made none took no time)."""
        return self._here.transfers

    # --- SPI ---------------------------------------------------------------------------------

    def spi_devices(self) -> set[tuple[int, int]]:
        """``/dev/spidevB.D`` files present: SPI0's two (dtparam=spi=on) and any wired CE."""
        return {(0, 0), (0, 1)} | {CE_LINES[p.cs] for p in self.ports if p.cs in CE_LINES}

    def _selected(self, port: Port, bus: int, device: int, ce_asserted: bool) -> bool:
        if port.ce is not None:
            return ce_asserted and port.ce == (bus, device)
        return port.bus == bus and self._driven.get(port.cs) is False

    def transfer(
        self,
        bus: int,
        device: int,
        data: list[int],
        speed_hz: int,
        delay_usecs: int,
        mode: int,
        ce_asserted: bool = True,
        miso_connected: bool = True,
    ) -> list[int]:
        """One transaction on ``/dev/spidev{bus}.{device}``: DIN reaches every selected chip,
        DOUT comes from the first (a deselected chip's DOUT is Hi-Z and reads 0)."""
        self._here.transfers += 1
        self.transfers += 1
        if not self._several:
            port = self.ports[0]
            if ce_asserted and port.ce is not None and port.ce == (bus, device):
                # The board's one chip, on this hardware CS: no other chip sees the transfer.
                port.chip.spi_mode = mode
                got = port.chip.transfer(data, speed_hz, delay_usecs)
                return got if miso_connected else [0] * len(data)
        now = self.clock.monotonic_ns()
        end = now + int(len(data) * 8e9 / speed_hz)
        out: list[int] | None = None
        for port in self.ports:
            if port.bus != bus:
                continue
            if self._selected(port, bus, device, ce_asserted):
                port.chip.spi_mode = mode
                got = port.chip.transfer(data, speed_hz, delay_usecs)
                out = got if out is None else out
            else:
                port.chip.bus_clocked(end)  # SCLK clears DRDY even with CS high
        if out is None:
            if not self.clock.realtime:
                self.clock.sleep(len(data) * 8 / speed_hz + delay_usecs * 1e-6)
            out = [0] * len(data)
        return out if miso_connected else [0] * len(data)

    # --- DRDY --------------------------------------------------------------------------------

    def port_of_drdy(self, pin: int) -> Port | None:
        return next((p for p in self.ports if p.drdy == pin), None)

    def _next_conversion_ns(self, port: Port) -> int | None:
        """When the conversion after the newest completed one ends (None: none will)."""
        chip = port.chip
        run = chip.run_id
        latest = chip.edges(run, 0, 0).next_index - 1
        return chip.next_edge_ns(run, latest + 1)

    def drdy_high(self, port: Port) -> bool:
        """The DRDY pin's level now (True = high, idle)."""
        return port.chip.drdy_level()

    def next_drdy_change_ns(self, port: Port) -> int | None:
        """When the DRDY level changes next, None when it never will by itself."""
        t_next = self._next_conversion_ns(port)
        if t_next is None:
            return None
        if self.drdy_high(port):
            return t_next
        return math.ceil(t_next - 4 * port.chip.tclk_ns)

    def poll_drdy(self, port: Port, reader: int = 0) -> bool:
        """``reader`` (any key) reads the DRDY pin. In virtual time a reader that reads the
        level it read last is spinning: time moves to the next change, so a polling loop takes
        one extra read per change instead of forever. In real time the chip uses the wait to
        generate conversions ahead."""
        high = self.drdy_high(port)
        if self.clock.realtime:
            if high:
                nxt = self.next_drdy_change_ns(port)
                if nxt is not None:
                    port.chip.idle(nxt)
            return high
        key = (port.drdy, reader)
        if self._polled.get(key) == high:
            nxt = self.next_drdy_change_ns(port)
            if nxt is None:
                self.clock.sleep(_IDLE_POLL_NS / 1e9)
            else:
                self.clock.sleep_until(nxt)
            high = self.drdy_high(port)
        self._polled[key] = high
        return high

    # --- GPIO --------------------------------------------------------------------------------

    def read(self, pin: int, pull_up: bool | None = None, reader: int = 0) -> bool:
        """What ``reader`` reads on ``pin``: DRDY, the host's output, else the pull (floating:
        low)."""
        port = self.port_of_drdy(pin)
        if port is not None:
            return self.poll_drdy(port, reader)
        stimulus = self.stimulus
        if stimulus is not None and pin == stimulus.pin:
            return stimulus.level(self.clock.monotonic_ns())
        driven = self._driven.get(pin)
        if driven is not None:
            return driven
        return bool(pull_up)

    def drive(self, pin: int, high: bool) -> None:
        """The host drives ``pin`` as an output; RESET/START/PWDN reach every chip."""
        name = self.controls.get(pin)
        with self._lock:
            was = self._driven.get(pin, _UNDRIVEN.get(name or "", high))
            self._driven[pin] = high
        if name is not None and was != high:
            for port in self.ports:
                port.chip.set_pin(name, high)

    def release(self, pin: int) -> None:
        """``pin`` is an input again (a released chip-select deselects its chip)."""
        with self._lock:
            self._driven.pop(pin, None)

    def driven(self, pin: int) -> bool | None:
        return self._driven.get(pin)

    def claim(self, pins: Sequence[int], consumer: str) -> None:
        """Lines of a gpiod request; one request per line, as the kernel enforces."""
        with self._lock:
            busy = [p for p in pins if p in self._claimed]
            if busy:
                raise OSError(
                    16,
                    f"Device or resource busy: line {busy[0]} is used by "
                    f"{self._claimed[busy[0]]!r}",
                )
            for p in pins:
                self._claimed[p] = consumer

    def unclaim(self, pins: Sequence[int]) -> None:
        with self._lock:
            for p in pins:
                self._claimed.pop(p, None)

    def consumer(self, pin: int) -> str | None:
        return self._claimed.get(pin)
