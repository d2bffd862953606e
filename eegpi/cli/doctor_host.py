"""``eegpi doctor``'s look at the machine: SPI, GPIO, groups, clock, power, CPU governor.

Everything here works unprivileged and only reads. ``root`` lets the tests lay out a fake
``/dev``, ``/boot`` and ``/sys``; the command always looks at ``/``.
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path

from eegpi.cli.doctor_check import Check, run_tool
from eegpi.hardware.config import DeviceConfig

__all__ = [
    "BOOT_CONFIGS",
    "GROUPS",
    "SERVICE_USER",
    "check_clock",
    "check_governor",
    "check_gpio",
    "check_groups",
    "check_power",
    "check_spi",
    "decode_throttled",
]

BOOT_CONFIGS = ("boot/firmware/config.txt", "boot/config.txt")
"""Raspberry Pi OS bookworm and later, then older images."""
SERVICE_USER = "eegpi"
"""The unit's User=."""
GROUPS = ("spi", "gpio")

ENABLE_SPI = "enable SPI: dtparam=spi=on in /{boot}, reboot"


def _boot_config(root: Path) -> Path | None:
    return next((root / p for p in BOOT_CONFIGS if (root / p).is_file()), None)


def spi_enabled_in(text: str) -> bool:
    """Whether a config.txt turns SPI on (``dtparam=spi=on``, alone or in a list)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().replace(" ", "")
        if line.startswith("dtparam=") and "spi=on" in line[len("dtparam=") :].split(","):
            return True
    return False


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _mode(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "?"
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"{stat.filemode(st.st_mode)} {owner}:{group}"


def _access(path: Path, group: str, name: str) -> Check:
    who = _who()
    if os.access(path, os.R_OK | os.W_OK):
        return Check(name, "ok", f"{who} may read and write {path.name} ({_mode(path)})")
    return Check(
        name,
        "fail",
        f"{who} cannot open /dev/{path.name} for reading and writing ({_mode(path)})",
        f"add {who} to group {group}: sudo usermod -aG {group} {who}, then log in again "
        f"(the service gets it from SupplementaryGroups=); a udev rule must give the device "
        f"to group {group}",
    )


def check_spi(device: DeviceConfig, *, root: Path = Path("/")) -> list[Check]:
    """SPI enabled, the configured /dev/spidevB.D present and readable/writable."""
    name = f"spidev{device.spi_bus}.{device.spi_device}"
    path = root / "dev" / name
    boot = _boot_config(root)
    shown_boot = str(boot.relative_to(root)) if boot is not None else BOOT_CONFIGS[0]
    if path.exists():
        return [
            Check("spi", "ok", f"/dev/{name} present"),
            _access(path, "spi", "spi access"),
        ]
    others = sorted(p.name for p in (root / "dev").glob("spidev*"))
    no_access = Check("spi access", "skip", f"no /dev/{name} to open")
    if others:
        return [
            Check(
                "spi",
                "fail",
                f"no /dev/{name}; this machine has {', '.join('/dev/' + o for o in others)}",
                "set device.spi_bus and device.spi_device to the bus the board is on, or enable "
                "that bus with its dtoverlay in /" + shown_boot + ", reboot",
            ),
            no_access,
        ]
    try:
        enabled = boot is not None and spi_enabled_in(boot.read_text(errors="replace"))
    except OSError:
        enabled = False
    if enabled:
        return [
            Check(
                "spi",
                "fail",
                f"SPI is enabled in /{shown_boot} but there is no /dev/{name}",
                "reboot to apply it; if it persists, check that the dtparam=spi=on line is not "
                "inside a [section] that does not match this Pi, and run `ls /dev/spidev*`",
            ),
            no_access,
        ]
    return [
        Check(
            "spi",
            "fail",
            f"SPI is not enabled: no /dev/{name} (no /dev/spidev* at all)",
            ENABLE_SPI.format(boot=shown_boot),
        ),
        no_access,
    ]


def check_gpio(
    device: DeviceConfig,
    *,
    daemon_running: bool,
    root: Path = Path("/"),
    line_info: Callable[[DeviceConfig], tuple[str, bool, str]] | None = None,
) -> list[Check]:
    """A gpiochip present and accessible, and the DRDY line free (or held by eegpi itself).

    ``line_info`` returns (chip path, used, consumer) of the DRDY line; by default gpiod's.
    """
    chips = sorted((root / "dev").glob("gpiochip*"))
    if not chips:
        return [
            Check(
                "gpio",
                "fail",
                "no /dev/gpiochip*: this kernel offers no GPIO character device",
                "run on a Raspberry Pi (its kernel has /dev/gpiochip0), or pass --mock",
            ),
            Check("drdy line", "skip", "no gpiochip to look at"),
        ]
    unreadable = [c for c in chips if not os.access(c, os.R_OK | os.W_OK)]
    if unreadable:
        gpio = _access(unreadable[0], "gpio", "gpio")
    else:
        gpio = Check("gpio", "ok", f"{', '.join('/dev/' + c.name for c in chips)} accessible")
    return [gpio, _drdy(device, daemon_running, line_info)]


def _gpiod_line_info(device: DeviceConfig) -> tuple[str, bool, str]:
    import gpiod

    from eegpi.hardware.pi import find_gpiochip

    path = find_gpiochip(device.gpiochip)
    with gpiod.Chip(path) as chip:
        info = chip.get_line_info(device.drdy_pin)
    return path, bool(info.used), str(info.consumer or "")


def _drdy(
    device: DeviceConfig,
    daemon_running: bool,
    line_info: Callable[[DeviceConfig], tuple[str, bool, str]] | None,
) -> Check:
    pin = f"GPIO{device.drdy_pin}"
    if line_info is None:
        try:
            import gpiod  # noqa: F401
        except ImportError:
            return Check(
                "drdy line",
                "warn",
                f"cannot look at {pin}: the gpiod Python package is not installed",
                "install it: pip install 'eegpi[pi]' (or apt install python3-libgpiod)",
            )
        line_info = _gpiod_line_info
    try:
        chip, used, consumer = line_info(device)
    except Exception as exc:  # HardwareError, OSError, gpiod's own errors
        return Check(
            "drdy line",
            "fail",
            f"cannot look at {pin}: {exc}",
            "set device.gpiochip to the chip's path or label (gpiodetect lists them)",
        )
    if not used:
        return Check("drdy line", "ok", f"{pin} on {chip} is free")
    if consumer.startswith("eegpi"):
        if daemon_running:
            return Check("drdy line", "ok", f"{pin} on {chip} is held by the running daemon")
        return Check(
            "drdy line",
            "warn",
            f"{pin} on {chip} is held by {consumer!r}, but no daemon answered",
            "another eegpi process holds it: find it with `gpioinfo` and `ps -ef | grep eegpi`",
        )
    return Check(
        "drdy line",
        "fail",
        f"{pin} on {chip} is used by {consumer or 'another program'!r}",
        "free it (stop that program or remove the dtoverlay that claims it), or set "
        "device.drdy_pin to the pin the board wires DRDY to",
    )


def check_groups(*, service_user: str = SERVICE_USER) -> list[Check]:
    """The spi and gpio groups and the service user exist; the current user is in the groups."""
    checks = []
    missing = [g for g in GROUPS if not _group_exists(g)]
    sysusers = (
        "sudo systemd-sysusers after `sudo eegpi install-files` (/etc/sysusers.d/eegpi.conf), "
        "or the Ansible role"
    )
    if missing:
        checks.append(
            Check(
                "groups",
                "warn",
                f"group(s) {', '.join(missing)} do not exist: the unit's SupplementaryGroups= "
                "fails with 216/GROUP",
                f"create them: {sysusers}",
            )
        )
    else:
        who = _who()
        mine = _groups_of(who)
        lacking = [g for g in GROUPS if g not in mine]
        if os.geteuid() == 0 or not lacking:
            checks.append(Check("groups", "ok", f"spi and gpio exist; {who} may use them"))
        else:
            checks.append(
                Check(
                    "groups",
                    "warn",
                    f"{who} is not in {', '.join(lacking)} (fine for the service, which adds "
                    "them; `eegpi serve` by hand cannot open the device)",
                    f"sudo usermod -aG {','.join(lacking)} {who}, then log in again",
                )
            )
    try:
        pwd.getpwnam(service_user)
    except KeyError:
        checks.append(
            Check(
                "service user",
                "warn",
                f"no user {service_user!r}: the unit's User= fails with 217/USER",
                f"create it: {sysusers}",
            )
        )
    else:
        lacking = [g for g in GROUPS if g not in _groups_of(service_user)]
        detail = f"user {service_user!r} exists, in groups spi and gpio"
        if lacking:
            detail = (
                f"user {service_user!r} exists, not in {', '.join(lacking)} (the unit adds them "
                "with SupplementaryGroups=; `sudo -u eegpi eegpi serve` would lack them)"
            )
        checks.append(Check("service user", "ok", detail))
    return checks


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _groups_of(user: str) -> set[str]:
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    with contextlib.suppress(KeyError):
        names.add(grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name)
    return names


def check_clock(run: Callable[..., str | None] = run_tool) -> Check:
    """The clock is synchronised (sample timestamps come from it)."""
    fix = (
        "turn NTP on: sudo timedatectl set-ntp true (systemd-timesyncd), or install chrony; "
        "a Pi has no battery clock, so it boots with a stale time"
    )
    answer = run("timedatectl", "show", "-p", "NTPSynchronized", "--value")
    if answer is not None and answer.strip() in ("yes", "no"):
        if answer.strip() == "yes":
            return Check("clock", "ok", "synchronised (timedatectl)")
        return Check("clock", "warn", "not synchronised (timedatectl)", fix)
    tracking = run("chronyc", "tracking")
    if tracking is not None:
        leap = next(
            (ln.split(":", 1)[1].strip() for ln in tracking.splitlines() if "Leap status" in ln),
            "",
        )
        if leap == "Normal":
            return Check("clock", "ok", "synchronised (chronyc tracking)")
        return Check("clock", "warn", f"chrony: leap status {leap or 'unknown'!r}", fix)
    return Check(
        "clock",
        "skip",
        "cannot tell: neither timedatectl (systemd) nor chronyc answered",
    )


_THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage since boot",
    17: "frequency capped since boot",
    18: "throttled since boot",
    19: "soft temperature limit since boot",
}


def decode_throttled(value: int) -> list[str]:
    """The flags of ``vcgencmd get_throttled``, in words."""
    return [text for bit, text in _THROTTLE_BITS.items() if value & (1 << bit)]


def check_power(run: Callable[..., str | None] = run_tool) -> Check:
    """Under-voltage and throttling, which corrupt SPI reads and slow DRDY service."""
    answer = run("vcgencmd", "get_throttled")
    if answer is None or "=" not in answer:
        return Check("power", "skip", "vcgencmd not available (not Raspberry Pi OS firmware)")
    raw = answer.strip().split("=", 1)[1]
    try:
        value = int(raw, 16)
    except ValueError:
        return Check("power", "skip", f"vcgencmd get_throttled said {answer.strip()!r}")
    flags = decode_throttled(value)
    if not flags:
        return Check("power", "ok", "no under-voltage or throttling since boot (0x0)")
    fix = (
        "use the official 5.1 V supply (5 V 5 A on a Pi 5) and a short cable; add a heatsink "
        "or fan if it is the temperature"
    )
    if value & 0xF:
        return Check("power", "fail", f"{raw}: {', '.join(flags)}", fix)
    return Check("power", "warn", f"{raw}: {', '.join(flags)}", fix)


def check_governor(*, root: Path = Path("/")) -> Check:
    """The CPU frequency governor: ``performance`` serves DRDY with the least jitter."""
    path = root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    try:
        governor = path.read_text().strip()
    except OSError:
        return Check("cpu governor", "skip", "no cpufreq here (a VM or container)")
    fix = (
        "for the steadiest DRDY service: echo performance | sudo tee "
        "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor (persist with cpufrequtils)"
    )
    if governor == "performance":
        return Check("cpu governor", "ok", "performance")
    if governor in ("ondemand", "schedutil"):
        return Check(
            "cpu governor",
            "ok",
            f"{governor} (fine; performance trims wake-up latency further)",
        )
    return Check("cpu governor", "warn", f"{governor}: slow to ramp up under acquisition", fix)
