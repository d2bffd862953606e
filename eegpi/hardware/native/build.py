"""Compile the native reader for the machine that runs it.

A wheel is built once (on an x86 control machine) and installed on Pis (aarch64), so a
compiled library inside it would be the wrong architecture. The wheel ships ``reader.c``
instead, and ``eegpi build-native`` (run by the Ansible role after installing, and by hand
during development) compiles it with the host's C compiler. The daemon never compiles: under
systemd its file system is read-only (``ProtectSystem=strict``).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from eegpi.exc import HardwareError

__all__ = [
    "LIBRARY_NAME",
    "SOURCE_NAME",
    "build_library",
    "compiler",
    "default_library_dir",
    "library_file",
    "source_digest",
    "stale_reason",
]

LIBRARY_NAME = "libeegpi_reader.so"
SOURCE_NAME = "reader.c"
_FLAGS = ("-O2", "-std=c11", "-Wall", "-Wextra", "-shared", "-fPIC", "-pthread")


def default_library_dir() -> Path:
    """Where the library goes by default: next to this package's ``reader.c``."""
    return Path(__file__).resolve().parent


def library_file(output_dir: Path | None = None) -> Path:
    """The library's path in ``output_dir`` (default: the package directory)."""
    return (output_dir or default_library_dir()) / LIBRARY_NAME


def source_digest() -> str:
    """SHA-256 of the shipped ``reader.c``, compiled into the library: a library is current
    when it was built from exactly this source (file times change with every reinstall)."""
    return hashlib.sha256((default_library_dir() / SOURCE_NAME).read_bytes()).hexdigest()


def stale_reason(output_dir: Path | None = None) -> str | None:
    """Why the library in ``output_dir`` needs building; None when it is up to date (built
    from this ``reader.c``, so of the ABI this eegpi speaks)."""
    from eegpi.hardware.native.library import load_library

    target = library_file(output_dir)
    if not target.is_file():
        return "not built"
    try:
        load_library(target)
    except HardwareError as exc:
        return str(exc)
    return None


def compiler() -> list[str] | None:
    """The C compiler command: ``$CC``, else ``cc``, ``gcc`` or ``clang``; None when none."""
    chosen = os.environ.get("CC")
    if chosen:
        words = shlex.split(chosen)
        return words if words and shutil.which(words[0]) else None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def build_library(output_dir: Path | None = None) -> Path:
    """Compile ``reader.c`` into ``output_dir/libeegpi_reader.so`` (default: the package
    directory) and return its path. The file is replaced atomically, so a daemon that has the
    old one loaded keeps it intact.

    Raises:
        HardwareError: no C compiler, no write access, or the compilation failed (with the
            compiler's output).
    """
    cc = compiler()
    if cc is None:
        raise HardwareError(
            "no C compiler (cc, gcc or clang; or $CC) to build the native reader: install one "
            "(Debian/Raspberry Pi OS: sudo apt-get install gcc libc6-dev) and run "
            "`eegpi build-native` again"
        )
    target_dir = output_dir or default_library_dir()
    source = default_library_dir() / SOURCE_NAME
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".reader-", suffix=".so", dir=target_dir)
        os.close(fd)
    except OSError as exc:
        raise HardwareError(
            exc.errno,
            f"cannot write the native reader into {target_dir}: {exc.strerror}; run "
            "`eegpi build-native` as the owner of that directory (root for /opt/eegpi), or "
            "pass --output DIR and set EEGPI_NATIVE_LIB=DIR/" + LIBRARY_NAME,
        ) from exc
    digest = f'-DEEGPI_READER_SOURCE="{source_digest()}"'
    command = [*cc, *_FLAGS, digest, "-o", tmp, str(source), "-lm"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise HardwareError(
                f"compiling the native reader failed ({shlex.join(command)}):\n"
                f"{(done.stderr or done.stdout).strip()}\n"
                "is libc6-dev (C headers, linux/spi/spidev.h) installed?"
            )
        os.chmod(tmp, 0o644)
        target = target_dir / LIBRARY_NAME
        os.replace(tmp, target)
        return target
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
