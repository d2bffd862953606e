"""How to reach the ADS1299: the `device:` section of the daemon config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BOARD_PINS",
    "AcquisitionMode",
    "Backend",
    "BoardProfile",
    "DeviceConfig",
    "EmulatorConfig",
    "GpioLibrary",
    "ReaderKind",
    "StallPoint",
    "TimingMode",
]

Backend = Literal["auto", "pi", "mock"]
AcquisitionMode = Literal["process", "thread"]
GpioLibrary = Literal["auto", "gpiod", "rpigpio"]
StallPoint = Literal["events", "before", "during", "after"]
TimingMode = Literal["record", "raise"]
BoardProfile = Literal["pieeg", "pieeg16", "daisy", "custom"]
ReaderKind = Literal["python", "native", "auto"]

BOARD_PINS: dict[str, dict[str, int]] = {
    "pieeg": {"drdy": 26, "cs": 8},
    "daisy": {"drdy": 26, "cs": 8},
    "pieeg16": {"drdy": 26, "cs": 8, "drdy2": 13, "cs2": 19},
}
"""BCM pins of the named boards (CS 8 = CE0 of /dev/spidev0.0, driven by the kernel; any other
CS GPIO is driven by hand around each transfer). ``custom`` takes every pin from the config."""
_SPI_PINS: dict[int, dict[str, int]] = {
    0: {"MISO": 9, "MOSI": 10, "SCLK": 11},
    1: {"MISO": 19, "MOSI": 20, "SCLK": 21},
}
"""BCM pins of the header's SPI buses."""
_CE_PINS: dict[tuple[int, int], int] = {(0, 0): 8, (0, 1): 7, (1, 0): 18, (1, 1): 17, (1, 2): 16}
"""BCM pin of each ``/dev/spidevB.D``'s hardware chip-select."""
_BOARD_CHIPS = {"pieeg": (1, 2, 3, 4), "daisy": (2, 3, 4), "pieeg16": (2,), "custom": (1, 2, 3, 4)}


@dataclass(frozen=True)
class EmulatorConfig:
    """Options of the emulated ADS1299 used by the ``mock`` backend.

    Signal options describe what the emulated electrodes pick up (the synthetic EEG has known
    components so tests can find them); fault options make the emulator misbehave the way real
    boards do, so every failure path can be exercised without hardware.
    """

    realtime: bool = True
    """DRDY at the programmed data rate in wall-clock time; False = as fast as read."""
    virtual_speed: float = 0.0
    """With ``realtime: false``: virtual time runs at most this many times faster than the
    wall clock (0 = no limit). Nothing is lost either way; a bound keeps the data rate within
    what consumers (a test's WebSocket client on a busy host) can take."""
    seed: int = 0
    """Seed of the synthetic EEG, so runs are reproducible."""
    id_register: int = 0x3E
    """ID register value: 0x3E ADS1299, 0x3D -6, 0x3C -4; anything else tests rejection."""
    chips: int | None = None
    """Chips in the emulated daisy chain; None = as many as the pipeline asks for."""
    clock_ppm: float = 0.0
    """Error of the chip's oscillator; +10000 = 1 % fast, as some boards are."""
    chip2_clock_ppm: float | None = None
    """Error of the oscillator of chip 2 on its own chip-select (``pieeg16``): None = the same
    clock as chip 1 (a shared clock, or one START pin); another value models two free-running
    oscillators, whose conversions drift apart."""
    drdy_jitter_us: float = 0.0
    """Interrupt latency of the DRDY edge stamps: each is late by 0 to this many microseconds
    (uniform, from the seed and the conversion number), as a kernel stamps the edge when its
    handler runs. The event itself is readable from the edge on; conversions keep their time."""
    alpha_uv: float = 20.0
    """Amplitude of the 10 Hz alpha rhythm on every normal-input channel."""
    alpha_hz: float = 10.0
    noise_uv: float = 3.0
    """RMS of the pink-ish background noise."""
    mains_uv: float = 3.0
    """Amplitude of the mains pickup."""
    mains_hz: float = 50.0
    offset_uv: float = 30.0
    """Input offset every channel adds (a few tens of uV on real parts)."""
    test_amplitude_v: float = 4.5 / 2400
    """Half peak-to-peak of the 1x test square wave; sources disagree (VREF/2400 vs 1 mV)."""
    temperature_c: float = 30.0
    """Die temperature the temperature sensor reports."""
    avdd_v: float = 5.0
    dvdd_v: float = 3.3
    leads_off: tuple[int, ...] = ()
    """1-based channels (over the whole chain) whose electrodes are off: the channel saturates
    and, with lead-off sensing on, its P and N status bits are set."""
    bias_off: bool = False
    """The bias electrode is off (CONFIG3.BIAS_STAT reads 1)."""
    electrode_impedance_kohm: float | tuple[float, ...] = 5.0
    """Impedance of the electrode on each channel's INnP, kOhm: one value for every channel or
    one per channel of the chain. The chip's lead-off current through it (plus the series
    resistor) shows on the channel, which is what an impedance check measures."""
    reference_impedance_kohm: float = 5.0
    """Impedance of the electrode on the INnN inputs, kOhm (the SRB1 reference electrode when
    MISC1.SRB1 ties them together, else each channel's own N electrode)."""
    series_resistance_kohm: float = 2.2
    """The board's resistor in series with every electrode input, kOhm (2.2 on OpenBCI's
    Cyton); it adds to what the lead-off current sees."""
    timing: TimingMode = "record"
    """What a breach of a datasheet timing rule (tSCCS, tSDECODE, SCLK rate, reads in the
    reload window, commands during tPOR or a reset, SPI mode ...) does: ``record`` keeps it in
    the chip's ``violations`` (logged once per rule) while the chip goes on as a real one most
    likely would; ``raise`` raises on the first one, for tests of a driver that keeps them all."""
    strict: bool = False
    """Older name of ``timing: raise``; true sets it (and ``timing: raise`` sets this)."""
    gpio_inputs: int = 0
    """Levels the board drives on the chip's GPIO1..4 (bit 0 = GPIO1) while they are inputs
    (GPIO register GPIOC bit 1): what GPIOD and the status word read for them. 0: tied low, as
    the datasheet asks (inputs must not float) and as the reset value 0x0F reads."""
    clksel: bool = True
    """Level of the CLKSEL pin: high = the internal 2.048 MHz oscillator; low = the clock comes
    from the CLK pin (``external_clock_hz``)."""
    external_clock_hz: float | None = None
    """Clock on the CLK pin when ``clksel`` is low (1.5-2.25 MHz); None = none, so the chip
    takes commands but never converts (DRDY stays high)."""
    event_buffer_size: int = 1024
    """Most edge events the emulated kernel keeps per line (it keeps what the request asks
    for, up to this; overflow drops the oldest). The default is what the pi backend asks for."""
    late_read_every: int = 0
    """Fault: every Nth frame read stalls the host for ``late_read_periods`` periods."""
    late_read_periods: int = 2
    late_read_at: StallPoint = "before"
    """Where the late-read stall hits: ``events`` (after the edge events were read, before the
    reader looks at the clock), ``before`` the chip's output register is clocked out,
    ``during`` the transfer (after the register was latched) or ``after`` it."""
    drop_conversions: tuple[int, ...] = ()
    """Fault: conversions (0 = the first after START, counted per run) whose DRDY edge event is
    lost before the reader sees it, as when the kernel's event buffer overflows: the line's
    sequence number still counts it, so the loss shows as a ``line_seqno`` gap."""
    silent_conversions: tuple[int, ...] = ()
    """Fault: conversions whose DRDY edge never reaches the GPIO (a missed interrupt): no event,
    no sequence number, so only the gap in edge times shows the loss."""
    stamp_index: bool = False
    """Test aid: channel 1 of chip 1 carries the conversion's index in its run (as counts)
    instead of its input, so every frame says which conversion it is."""
    stuck_drdy_after: int | None = None
    """Fault: DRDY stops falling after this many conversions."""
    miso_stuck: int | None = None
    """Fault: MISO stuck at 0x00 or 0xFF, as with no chip or no power."""
    corrupt_every: int = 0
    """Fault: every Nth conversion is sent with a flipped status bit (a torn frame)."""
    trigger_at: tuple[int, ...] = ()
    """Conversions (0 = the first after START, counted per run) at whose true time, the fall of
    their DRDY, the emulated stimulus raises its trigger line (a pulse of ``trigger_pulse_us``).
    Edge events on it are stamped like DRDY's (``drdy_jitter_us`` late at most)."""
    trigger_latency_us: float = 0.0
    """How long after the conversion's DRDY edge each trigger pulse rises."""
    trigger_pulse_us: float = 1000.0
    """Width of each trigger pulse (its falling edge follows the rising one by this much);
    pulses that overlap merge into one."""
    trigger_pin: int | None = None
    """Header GPIO the emulated stimulus drives; None: the pin the source's ``trigger.pin``
    watches (the emulated cable goes where the config says it does)."""
    gpio_at: Mapping[int, int] = field(default_factory=dict)
    """``{conversion: levels}``: from that conversion of each run on, the board drives
    ``levels`` (bit 0 = GPIO1) on the chip's GPIO inputs instead of ``gpio_inputs``, so the
    status word of exactly that frame is the first to carry them."""

    def __post_init__(self) -> None:
        if self.timing not in ("record", "raise"):
            raise ValueError(f"emulator.timing: {self.timing!r} is not one of record, raise")
        if self.strict or self.timing == "raise":
            object.__setattr__(self, "timing", "raise")
            object.__setattr__(self, "strict", True)
        if isinstance(self.gpio_inputs, bool) or not 0 <= self.gpio_inputs <= 0xF:
            raise ValueError(f"emulator.gpio_inputs: {self.gpio_inputs!r} is not 0..15 (4 pins)")
        ext = self.external_clock_hz
        if ext is not None and not 1.5e6 <= ext <= 2.25e6:
            raise ValueError(
                f"emulator.external_clock_hz: {ext} is outside the ADS1299's 1.5-2.25 MHz"
            )
        speed = self.virtual_speed
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0 <= speed < 1e6:
            raise ValueError(
                f"emulator.virtual_speed: {speed!r} is not a factor from 0 (no limit) to 1e6"
            )
        if not 0 <= self.id_register <= 0xFF:
            raise ValueError(f"emulator.id_register: {self.id_register} is not a byte")
        if self.chips is not None and not 1 <= self.chips <= 4:
            raise ValueError(f"emulator.chips: {self.chips} is not 1..4")
        if self.miso_stuck not in (None, 0x00, 0xFF):
            raise ValueError(f"emulator.miso_stuck: {self.miso_stuck} is not 0 or 255")
        if self.event_buffer_size < 1:
            raise ValueError("emulator.event_buffer_size: must be at least 1")
        jitter = self.drdy_jitter_us
        if (
            isinstance(jitter, bool)
            or not isinstance(jitter, int | float)
            or not 0 <= jitter <= 1e4
        ):
            raise ValueError(
                f"emulator.drdy_jitter_us: {jitter!r} is not a number of microseconds, 0 to 10000"
            )
        for name in ("late_read_every", "late_read_periods", "corrupt_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"emulator.{name}: must not be negative")
        if self.late_read_at not in ("events", "before", "during", "after"):
            raise ValueError(
                f"emulator.late_read_at: {self.late_read_at!r} is not one of "
                "events, before, during, after"
            )
        for name in ("leads_off", "drop_conversions", "silent_conversions"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("drop_conversions", "silent_conversions"):
            for k in getattr(self, name):
                if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                    raise ValueError(f"emulator.{name}: {k!r} is not a conversion number >= 0")
        for ch in self.leads_off:
            if not isinstance(ch, int) or not 1 <= ch <= 32:
                raise ValueError(f"emulator.leads_off: {ch!r} is not a channel number 1..32")
        self._check_electrodes()
        self._check_schedules()

    def _check_electrodes(self) -> None:
        """``*_impedance_kohm`` and ``series_resistance_kohm``: kOhm from 0 to 10 GOhm."""
        z = self.electrode_impedance_kohm
        if isinstance(z, list | tuple):
            if not 1 <= len(z) <= 32:
                raise ValueError(
                    f"emulator.electrode_impedance_kohm: {len(z)} values; give one per channel "
                    "(up to 32) or a single value"
                )
            object.__setattr__(self, "electrode_impedance_kohm", tuple(z))
        values = z if isinstance(z, list | tuple) else (z,)
        named = [("electrode_impedance_kohm", v) for v in values]
        named += [
            (n, getattr(self, n)) for n in ("reference_impedance_kohm", "series_resistance_kohm")
        ]
        for name, value in named:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 <= value <= 1e7:
                raise ValueError(f"emulator.{name}: {value!r} is not a number of kOhm, 0 to 1e7")

    def _check_schedules(self) -> None:
        """``trigger_*`` and ``gpio_at``: conversion numbers, times, pins and levels."""
        if not isinstance(self.trigger_at, tuple):
            object.__setattr__(self, "trigger_at", tuple(self.trigger_at))
        for k in self.trigger_at:
            if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                raise ValueError(f"emulator.trigger_at: {k!r} is not a conversion number >= 0")
        for name, low in (("trigger_latency_us", 0.0), ("trigger_pulse_us", 1.0)):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not low <= value <= 1e6:
                raise ValueError(
                    f"emulator.{name}: {value!r} is not a number of microseconds, "
                    f"{low:g} to 1000000"
                )
        pin = self.trigger_pin
        if pin is not None and (isinstance(pin, bool) or not isinstance(pin, int)):
            raise ValueError(f"emulator.trigger_pin: {pin!r} is not a BCM GPIO number")
        if pin is not None and not 0 <= pin <= 27:
            raise ValueError(f"emulator.trigger_pin: {pin} is not a header GPIO (BCM 0-27)")
        if not isinstance(self.gpio_at, Mapping):
            raise ValueError(
                f"emulator.gpio_at: {self.gpio_at!r} is not a mapping of conversion: levels"
            )
        for k, levels in self.gpio_at.items():
            if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                raise ValueError(f"emulator.gpio_at: {k!r} is not a conversion number >= 0")
            if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= 0xF:
                raise ValueError(
                    f"emulator.gpio_at: {k}: {levels!r} is not 0..15 (GPIO4..GPIO1 levels)"
                )
        object.__setattr__(self, "gpio_at", dict(sorted(self.gpio_at.items())))


@dataclass(frozen=True)
class DeviceConfig:
    """The `device:` section of /etc/eegpi/eegpi.yaml."""

    backend: Backend = "auto"
    """``pi`` (spidev + gpiod), ``mock`` (emulator), or ``auto`` (pi when /dev/spidev* exists)."""
    spi_bus: int = 0
    spi_device: int = 0
    spi_speed_hz: int = 4_000_000
    """SCLK for register access; the chip needs <= 4.096 MHz without inter-byte gaps."""
    spi_data_speed_hz: int = 8_000_000
    """SCLK for frame reads, which have no inter-byte limit (the chip allows 20 MHz); a frame
    must be clocked out well within one period (62.5 us at 16000 SPS)."""
    gpio: GpioLibrary = "auto"
    """Library for DRDY and the control pins: ``gpiod`` (libgpiod v2, kernel edge timestamps),
    ``rpigpio`` (the RPi.GPIO API of RPi.GPIO or rpi-lgpio: user-space timestamps, a fallback
    for old images), ``auto`` (gpiod when installed, else RPi.GPIO)."""
    gpiochip: str = "auto"
    """gpiochip path or label holding the DRDY line; ``auto`` finds the 40-pin header chip."""
    drdy_pin: int = 26
    """BCM GPIO number of DRDY (PiEEG: GPIO26, header pin 37)."""
    reset_pin: int | None = None
    start_pin: int | None = None
    pwdn_pin: int | None = None
    board: BoardProfile = "pieeg"
    """The wiring: ``pieeg`` (one ADS1299, DRDY GPIO26, CS on CE0; with chips 2-4 in the
    source stage a daisy chain on the same pins), ``daisy`` (a daisy chain of 2-4 chips: shared
    CS, DRDY of the first chip), ``pieeg16`` (two ADS1299 on one SPI bus: chip 1 on CE0 with
    DRDY GPIO26, chip 2 selected by GPIO19 driven by hand with DRDY GPIO13) or ``custom``
    (``drdy_pin``, ``spi_device`` and, for a second chip on its own chip-select, ``cs2_pin`` and
    ``drdy2_pin``)."""
    cs2_pin: int | None = None
    """``custom``: BCM GPIO driven low by hand to select chip 2 (on the bus of ``spi_bus``)."""
    drdy2_pin: int | None = None
    """``custom``: BCM GPIO of chip 2's DRDY (with ``cs2_pin``)."""
    acquisition: AcquisitionMode = "process"
    """Where the DRDY loop runs. ``process``: a child process that alone opens SPI and GPIO and
    hands frames over in a shared-memory ring, because a thread in the daemon shares the GIL with
    the pipeline and the event loop and misses conversions at 8000-16000 SPS. ``thread``: in
    the daemon's process (holds 250-2000 SPS; for tests and debugging)."""
    reader: ReaderKind = "python"
    """The acquisition process's DRDY loop: ``python``, ``native`` (the C loop of
    ``eegpi build-native``: no interpreter per frame, for 8000-16000 SPS on a Pi; gpiod DRDY and
    one chip-select only) or ``auto`` (native when built and possible, else python, with the
    reason logged). ``acquisition: thread`` always runs the Python loop."""
    series_resistance_kohm: float = 2.2
    """The board's resistor in series with each electrode input, kOhm, which an impedance
    check subtracts from what it measures (2.2 on OpenBCI's Cyton; 0 for none)."""
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)

    def __post_init__(self) -> None:
        series = self.series_resistance_kohm
        if (
            isinstance(series, bool)
            or not isinstance(series, int | float)
            or not 0 <= series <= 1e3
        ):
            raise ValueError(
                f"device.series_resistance_kohm: {series!r} is not a number of kOhm, 0 to 1000"
            )
        if self.acquisition not in ("process", "thread"):
            raise ValueError(
                f"device.acquisition: {self.acquisition!r} is not one of process, thread"
            )
        if self.reader not in ("python", "native", "auto"):
            raise ValueError(f"device.reader: {self.reader!r} is not one of python, native, auto")
        if self.reader == "native" and self.acquisition != "process":
            raise ValueError(
                "device.reader: native runs in the acquisition process; set device.acquisition: "
                "process (or device.reader: python)"
            )
        if self.gpio not in ("auto", "gpiod", "rpigpio"):
            raise ValueError(f"device.gpio: {self.gpio!r} is not one of auto, gpiod, rpigpio")
        if self.board not in _BOARD_CHIPS:
            raise ValueError(
                f"device.board: {self.board!r} is not one of pieeg, pieeg16, daisy, custom"
            )
        pins = {"drdy_pin": self.drdy_pin, "cs2_pin": self.cs2_pin, "drdy2_pin": self.drdy2_pin}
        for name, pin in pins.items():
            if pin is not None and (isinstance(pin, bool) or not isinstance(pin, int)):
                raise ValueError(f"device.{name}: {pin!r} is not a BCM GPIO number")
            if pin is not None and not 0 <= pin <= 27:
                raise ValueError(f"device.{name}: {pin} is not a header GPIO (BCM 0-27)")
        if self.board == "custom":
            if (self.cs2_pin is None) != (self.drdy2_pin is None):
                raise ValueError(
                    "device.cs2_pin and device.drdy2_pin: a second chip on its own chip-select "
                    "needs both (or neither, for one chip-select)"
                )
        elif self.cs2_pin is not None or self.drdy2_pin is not None:
            raise ValueError(
                f"device.cs2_pin/drdy2_pin: board {self.board} fixes its pins; "
                "set device.board: custom to choose them"
            )
        if self.board == "pieeg16" and (self.drdy_pin, self.spi_device) != (26, 0):
            raise ValueError(
                "device.board: pieeg16 has DRDY on GPIO26 and chip 1 on CE0 (spi_device 0); "
                "set device.board: custom to choose other pins"
            )

    @property
    def two_chip_selects(self) -> bool:
        """Each chip on its own chip-select and DRDY line (``pieeg16``, ``custom`` with
        ``cs2_pin``), so each can be programmed on its own."""
        return self.board == "pieeg16" or (self.board == "custom" and self.cs2_pin is not None)

    def board_pins(self) -> dict[str, int]:
        """BCM pins of chip 1's DRDY and, with two chip-selects, chip 2's ``drdy2``/``cs2``."""
        if self.board == "pieeg16":
            return {k: v for k, v in BOARD_PINS["pieeg16"].items() if k != "cs"}
        pins = {"drdy": self.drdy_pin}
        if self.cs2_pin is not None and self.drdy2_pin is not None:
            pins.update(cs2=self.cs2_pin, drdy2=self.drdy2_pin)
        return pins

    def pin_uses(self) -> dict[int, str]:
        """Header GPIOs the board itself uses, each with what it is: SPI (the bus's MISO, MOSI,
        SCLK and the device's hardware chip-select), DRDY, a second chip's pins, and the
        RESET/START/PWDN outputs that are wired."""
        spi = _SPI_PINS.get(self.spi_bus, {})
        uses = {pin: f"SPI{self.spi_bus} {name}" for name, pin in spi.items()}
        ce = _CE_PINS.get((self.spi_bus, self.spi_device))
        if ce is not None:
            uses[ce] = f"the chip-select of {self.spi_path}"
        named = {
            "drdy": "DRDY",
            "drdy2": "chip 2's DRDY",
            "cs2": "chip 2's chip-select",
        }
        for key, pin in self.board_pins().items():
            uses[pin] = f"the board's {named.get(key, key)} line"
        for name in ("reset", "start", "pwdn"):
            pin = getattr(self, f"{name}_pin")
            if pin is not None:
                uses[pin] = f"the board's {name.upper()} line (device.{name}_pin)"
        return uses

    def check_trigger_pin(self, pin: int) -> None:
        """Refuse a trigger input on a pin the board uses.

        Raises:
            ValueError: naming what the pin is and some free header GPIOs.
        """
        uses = self.pin_uses()
        if pin in uses:
            free = [p for p in range(2, 28) if p not in uses][:6]
            raise ValueError(
                f"trigger.pin: GPIO{pin} is {uses[pin]} on device.board {self.board}; wire the "
                f"trigger to a free header GPIO, e.g. {', '.join(f'GPIO{p}' for p in free)}"
            )

    def check_chips(self, chips: int) -> None:
        """Refuse a chip count the board cannot hold.

        Raises:
            ValueError: e.g. ``chips: 1`` on a ``pieeg16`` (it has two chips).
        """
        allowed = (2,) if self.two_chip_selects else _BOARD_CHIPS[self.board]
        if chips not in allowed:
            what = ", ".join(map(str, allowed))
            raise ValueError(
                f"chips: {chips} does not fit device.board {self.board}, which holds {what} "
                "chip(s)" + ("; a daisy chain has 2-4" if self.board == "daisy" else "")
            )

    @property
    def spi_path(self) -> str:
        return f"/dev/spidev{self.spi_bus}.{self.spi_device}"
