"""Errors the CLI reports as one line and an exit code, never as a traceback."""

from __future__ import annotations

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
]

EXIT_OK = 0
EXIT_FAILED = 1
"""The daemon refused (NOT_FOUND, FAILED_PRECONDITION, ...), a file did not validate, or a
pipeline did not reach the state asked for (in time)."""
EXIT_USAGE = 2
"""Bad command line (argparse's own convention)."""
EXIT_UNREACHABLE = 3
"""No daemon answered at the address."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, the shell's convention)."""


class CliError(Exception):
    """A failure the user can act on: printed as ``eegpi: <message>``, then exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
