"""A stand-in for ``spidev.SpiDev`` (py-spidev) in front of the emulated board's SPI buses.

It follows py-spidev and the kernel driver under it, so a driver that works here works on a Pi
and one that would fail on a Pi fails here:

* ``open`` reads the device's settings like py-spidev: **mode 0**, 8 bits per word and the Pi's
  ``max_speed_hz`` of 125 MHz. A driver that never sets ``mode = 1`` talks to the chip in mode
  0, and the chip model decides what the chip makes of that.
* ``xfer``, ``xfer2``: one CS-low transaction for the whole list (py-spidev issues a single
  ``SPI_IOC_MESSAGE(1)`` for both; lists beyond the 4096-byte buffer are an OverflowError),
  ``delay_usecs`` holds CS after the last byte. ``xfer3``, ``writebytes2``: split into 4096-byte
  blocks, each its own transaction. ``readbytes(n)``: one transaction clocking ``n`` bytes with
  DIN low (1..4096). ``writebytes``: one transaction, no CS hold.
* ``cshigh`` or ``no_cs`` leave the hardware CS line inactive during transfers, so a chip on it
  is not selected (it still sees SCLK). The Pi's controller rejects ``lsbfirst``, ``loop`` and
  words other than 8 bits (OSError EINVAL), as the kernel does there. ``threewire`` reads the
  shared MOSI line, where the ADS1299's DOUT is not: reads return zeros.
* Unopened or closed: OSError EBADF, like the closed file descriptor behind a real SpiDev.

``SpiDev`` is a plain class that drivers may subclass. Each board makes its own subclass with
``wiring`` set, so ``spidev.SpiDev()`` in unmodified code reaches that board.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from eegpi.hardware.emulator.wiring import Wiring

__all__ = ["BUFSIZ", "PI_MAX_SPEED_HZ", "EmulatedSpiDev"]

BUFSIZ = 4096
"""The spidev module's ``bufsiz``: the most bytes in one transaction."""
PI_MAX_SPEED_HZ = 125_000_000
"""What a Pi's device tree gives spidev as ``max_speed_hz``; ``open`` reads it."""
_CPHA, _CPOL, _CS_HIGH, _LSB_FIRST, _3WIRE, _LOOP, _NO_CS = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
_PI_UNSUPPORTED = _LSB_FIRST | _LOOP
"""Mode bits the Pi's SPI controller (spi-bcm2835) refuses."""


def _bytes_of(values: Any) -> list[int]:
    try:
        items = list(values)
    except TypeError:
        raise TypeError("Empty argument list.") from None
    if not items:
        raise TypeError("Empty argument list.")
    if set(map(type, items)) == {int}:  # the usual list of byte values, checked at C speed
        try:
            bytes(items)  # raises unless every value is 0..255
        except (ValueError, OverflowError):
            return [v & 0xFF for v in items]
        return items
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"Non-Int/Long value in arguments: {v!r}.")
        out.append(v & 0xFF)
    return out


class _Flag:
    """A boolean attribute of SpiDev backed by one bit of the SPI mode word (like py-spidev's)."""

    def __init__(self, bit: int, name: str) -> None:
        self.bit, self.name = bit, name

    def __get__(self, obj: EmulatedSpiDev | None, owner: type | None = None) -> Any:
        return self if obj is None else bool(obj._flags & self.bit)

    def __set__(self, obj: EmulatedSpiDev, value: bool) -> None:
        obj._flag(self.bit, value, self.name)


class EmulatedSpiDev:
    """Behaves like ``spidev.SpiDev`` on a Pi whose SPI buses reach the emulated chips."""

    wiring: ClassVar[Wiring | None] = None
    """The board this class's devices are on (set on each board's subclass)."""

    def __init__(self, bus: int = -1, client: int = -1) -> None:
        self._fd: tuple[int, int] | None = None
        self._flags = 0
        self._bits = 0
        self._speed = 0
        self.read0 = False
        """py-spidev's work-around for ``cshigh``; kept only as an attribute here."""
        if bus >= 0:
            self.open(bus, client)

    # --- opening -----------------------------------------------------------------------------

    def open(self, bus: int, device: int) -> None:
        wiring = type(self).wiring
        if wiring is None:
            raise OSError(errno.ENOENT, "No such file or directory (no emulated board)")
        if (bus, device) not in wiring.spi_devices():
            raise FileNotFoundError(
                errno.ENOENT, "No such file or directory", f"/dev/spidev{bus}.{device}"
            )
        self._fd = (bus, device)
        self._flags, self._bits, self._speed = 0, 8, PI_MAX_SPEED_HZ

    def close(self) -> None:
        self._fd = None
        self._flags = self._bits = self._speed = 0

    def fileno(self) -> int:
        raise io.UnsupportedOperation("the emulated spidev has no file descriptor")

    def __enter__(self) -> EmulatedSpiDev:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need_open(self) -> tuple[int, int]:
        if self._fd is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return self._fd

    # --- settings ----------------------------------------------------------------------------

    def _set_flags(self, flags: int) -> None:
        self._need_open()
        if flags & _PI_UNSUPPORTED:
            raise OSError(errno.EINVAL, "Invalid argument")
        self._flags = flags

    def _flag(self, bit: int, value: object, name: str) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"The {name} attribute must be boolean")
        self._set_flags(self._flags | bit if value else self._flags & ~bit)

    @property
    def mode(self) -> int:
        return self._flags & (_CPOL | _CPHA)

    @mode.setter
    def mode(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("The mode attribute must be an integer")
        if not 0 <= value <= 3:
            raise TypeError("The mode attribute must be an integer between 0 and 3.")
        self._set_flags((self._flags & ~(_CPOL | _CPHA)) | value)

    cshigh = _Flag(_CS_HIGH, "cshigh")
    lsbfirst = _Flag(_LSB_FIRST, "lsbfirst")
    threewire = _Flag(_3WIRE, "3wire")
    loop = _Flag(_LOOP, "loop")
    no_cs = _Flag(_NO_CS, "no_cs")

    @property
    def bits_per_word(self) -> int:
        return self._bits

    @bits_per_word.setter
    def bits_per_word(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("The bits_per_word attribute must be an integer")
        if not 8 <= value <= 32:
            raise TypeError("invalid bits_per_word (8 to 32)")
        self._need_open()
        if value != 8:
            raise OSError(errno.EINVAL, "Invalid argument")  # the Pi's controller: 8 bits only
        self._bits = value

    @property
    def max_speed_hz(self) -> int:
        return self._speed

    @max_speed_hz.setter
    def max_speed_hz(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("The max_speed_hz attribute must be an integer")
        self._need_open()
        self._speed = value

    # --- transfers ---------------------------------------------------------------------------

    def _transaction(self, data: list[int], speed_hz: int, delay_usecs: int) -> list[int]:
        if self._fd is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        bus, device = self._fd
        wiring = type(self).wiring
        assert wiring is not None
        speed = speed_hz or self._speed
        if speed <= 0:
            raise OSError(errno.EINVAL, "Invalid argument")
        flags = self._flags
        return wiring.transfer(
            bus,
            device,
            data,
            speed,
            delay_usecs,
            flags & (_CPOL | _CPHA),
            not flags & (_CS_HIGH | _NO_CS),
            not flags & _3WIRE,
        )

    def _check_block(self, data: Sequence[int]) -> None:
        if len(data) > BUFSIZ:
            raise OverflowError(f"Argument list size exceeds {BUFSIZ} bytes.")

    def xfer(
        self,
        data: Iterable[int],
        speed_hz: int = 0,
        delay_usecs: int = 0,
        bits_per_word: int = 0,
    ) -> Any:
        """One CS-low transaction; returns a list (a tuple for a tuple)."""
        values = _bytes_of(data)
        if len(values) > BUFSIZ:
            raise OverflowError(f"Argument list size exceeds {BUFSIZ} bytes.")
        got = self._transaction(values, speed_hz, delay_usecs)
        return got if type(data) is list else tuple(got) if isinstance(data, tuple) else got

    xfer2 = xfer
    """py-spidev's xfer2 is the same single CS-low transaction as its xfer on a Pi."""

    def xfer3(
        self,
        data: Iterable[int],
        speed_hz: int = 0,
        delay_usecs: int = 0,
        bits_per_word: int = 0,
    ) -> tuple[int, ...]:
        """Any length, as 4096-byte transactions; returns a tuple."""
        values = _bytes_of(data)
        out: list[int] = []
        for start in range(0, len(values), BUFSIZ):
            out += self._transaction(values[start : start + BUFSIZ], speed_hz, delay_usecs)
        return tuple(out)

    def readbytes(self, n: int) -> list[int]:
        """Clock ``n`` bytes (1..4096) in with DIN held low."""
        n = max(1, min(int(n), BUFSIZ))
        return self._transaction([0] * n, 0, 0)

    def writebytes(self, values: Iterable[int]) -> None:
        data = _bytes_of(values)
        self._check_block(data)
        self._transaction(data, 0, 0)

    def writebytes2(self, values: Iterable[int] | bytes | bytearray | memoryview) -> None:
        """Any length (or a buffer), as 4096-byte transactions."""
        if isinstance(values, bytes | bytearray | memoryview):
            data = list(bytes(values))
            if not data:
                return
        else:
            data = _bytes_of(values)
        for start in range(0, len(data), BUFSIZ):
            self._transaction(data[start : start + BUFSIZ], 0, 0)
