"""``eegpi install-files``: put the unit and its companions where systemd and udev read them.

A pip-only install (``pip install eegpi`` into a venv) has everything but these system files;
the wheel ships them (``eegpi/systemd``), and this copies them under ``--prefix`` (``/`` on the
appliance), pointing the unit at the venv it runs from. Files already right are left alone, so
running it again changes nothing. It prints the commands that activate what changed, instead of
running them: they need root and a running systemd.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FILES",
    "SHIPPED_PREFIX",
    "InstallFile",
    "cmd_install_files",
    "install",
    "installed_program",
    "source_dir",
]

SHIPPED_PREFIX = "/opt/eegpi"
"""The venv the shipped unit names (ExecStart=, Documentation=)."""


@dataclass(frozen=True)
class InstallFile:
    source: str
    """Name in the shipped systemd directory."""
    target: str
    """Absolute path on the installed system."""


FILES = (
    InstallFile("eegpi.service", "/etc/systemd/system/eegpi.service"),
    InstallFile("eegpi.sysusers", "/etc/sysusers.d/eegpi.conf"),
    InstallFile("60-eegpi.rules", "/etc/udev/rules.d/60-eegpi.rules"),
)

_NEXT = {
    "eegpi.sysusers": "systemd-sysusers /etc/sysusers.d/eegpi.conf",
    "60-eegpi.rules": "udevadm control --reload && udevadm trigger --action=change "
    "--subsystem-match=spidev --subsystem-match=gpio",
    "eegpi.service": "systemctl daemon-reload && systemctl enable --now eegpi",
}


def installed_program() -> Path:
    """The ``eegpi`` script of this installation (a venv's bin/, or /usr/local/bin)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "eegpi" and argv0.is_file():
        return argv0.absolute()
    return Path(sys.prefix) / "bin" / "eegpi"


def source_dir() -> Path:
    """The shipped files: inside the installed package, or systemd/ of a source checkout."""
    package = Path(__file__).resolve().parent
    bundled = package / "systemd"
    return bundled if bundled.is_dir() else package.parent / "systemd"


def _content(item: InstallFile, program: Path, data_prefix: Path) -> bytes:
    text = (source_dir() / item.source).read_text(encoding="utf-8")
    if item.source.endswith(".service"):
        text = text.replace(f"{SHIPPED_PREFIX}/bin/eegpi", str(program))
        text = text.replace(f"{SHIPPED_PREFIX}/share/", f"{data_prefix}/share/")
    return text.encode()


def install(
    prefix: Path, program: Path, data_prefix: Path, *, dry_run: bool = False
) -> list[tuple[InstallFile, bool]]:
    """Copy every file under ``prefix``, the unit running ``program`` and naming the docs
    under ``data_prefix``; returns each file with whether it changed."""
    done = []
    for item in FILES:
        target = prefix / item.target.lstrip("/")
        data = _content(item, program, data_prefix)
        changed = not target.is_file() or target.read_bytes() != data
        if changed and not dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(data)
            partial.chmod(0o644)
            partial.replace(target)
        done.append((item, changed))
    return done


def cmd_install_files(args: argparse.Namespace) -> int:
    prefix = Path(args.prefix)
    program = installed_program()
    try:
        done = install(prefix, program, Path(sys.prefix), dry_run=args.dry_run)
    except OSError as exc:
        print(f"eegpi: install-files: {exc} (as root, or give --prefix)", file=sys.stderr)
        return 1
    verb = "would install" if args.dry_run else "installed"
    for item, changed in done:
        target = prefix / item.target.lstrip("/")
        print(f"{verb if changed else 'unchanged'}: {target}")
    print(f"the unit runs {program}")
    steps = [_NEXT[item.source] for item, changed in done if changed]
    if steps and prefix == Path("/") and not args.dry_run:
        print("then, as root:")
        for step in steps:
            print(f"  {step}")
    return 0
