"""The ``eegpi`` command: run the daemon (``serve``) or talk to it.

Exit codes: 0 success, 1 the daemon refused, a file is invalid or a pipeline did not reach the
state asked for within --wait, 2 bad command line, 3 no daemon answered, 130 Ctrl-C. Failures
print one line; only an unexpected error prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from eegpi.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError
from eegpi.exc import EegpiError

__all__ = ["build_parser", "main"]

DEFAULT_GRPC = "127.0.0.1:50051"
DEFAULT_WS = "127.0.0.1:9001"
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_WAIT_S = 60.0
"""How long start and stop wait for the pipeline to settle: opening can be slow on a small Pi."""


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if text.startswith("unix:") or (sep and host and port.isdigit() and int(port) <= 65535):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:50051)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of 1 or more")
    return int(text)


def _client_options() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand is not reset by the subparser's default;
    # real defaults (and the environment) are applied after parsing.
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument(
        "--grpc",
        metavar="HOST:PORT",
        type=_address,
        default=argparse.SUPPRESS,
        help=f"daemon gRPC address (env EEGPI_GRPC; default {DEFAULT_GRPC})",
    )
    g.add_argument(
        "--token-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="read the bearer token from FILE, when the daemon requires one",
    )
    g.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="the bearer token itself: other users see it in ps, prefer --token-file or the "
        "environment variable EEGPI_TOKEN",
    )
    g.add_argument(
        "--ws",
        metavar="HOST:PORT",
        type=_address,
        default=argparse.SUPPRESS,
        help=f"daemon WebSocket address, for tail and topics (env EEGPI_WS; default {DEFAULT_WS})",
    )
    g.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive,
        default=argparse.SUPPRESS,
        help=f"deadline per call (default {DEFAULT_TIMEOUT_S:g}); start and stop wait up to "
        "their --wait",
    )
    g.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    from eegpi import __version__
    from eegpi.cli.commands import (
        cmd_device,
        cmd_mark,
        cmd_pipelines,
        cmd_record,
        cmd_recordings,
        cmd_start,
        cmd_status,
        cmd_stop,
        cmd_topics,
    )
    from eegpi.cli.discover import DEFAULT_LISTEN_S, cmd_discover
    from eegpi.cli.doctor import cmd_doctor
    from eegpi.cli.set import add_set_command
    from eegpi.cli.tail import cmd_tail
    from eegpi.cli.validate import cmd_validate

    common = _client_options()
    parser = argparse.ArgumentParser(
        prog="eegpi",
        description="ADS1299 EEG appliance: run the daemon or control it.",
        parents=[common],
        epilog="exit codes: 0 ok, 1 refused/invalid/not settled in time, 2 usage, "
        "3 daemon unreachable, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"eegpi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    serve = sub.add_parser(
        "serve",
        help="run the daemon in the foreground",
        description="Run the daemon in the foreground (logs to stderr).",
    )
    serve.set_defaults(func=_cmd_serve)
    serve.add_argument(
        "--config", metavar="FILE", help="config file (default /etc/eegpi/eegpi.yaml)"
    )
    serve.add_argument("--mock", action="store_true", help="use the emulated ADS1299")
    serve.add_argument(
        "--grpc", metavar="HOST:PORT", type=_address, default=argparse.SUPPRESS, help="gRPC listen"
    )
    serve.add_argument(
        "--ws",
        metavar="HOST:PORT",
        type=_address,
        default=argparse.SUPPRESS,
        help="WebSocket listen",
    )
    serve.add_argument(
        "--token-file",
        metavar="FILE",
        help="require the bearer token in FILE from gRPC clients (overrides grpc.token and "
        "grpc.token_file; keep FILE mode 0600)",
    )
    serve.add_argument("--pipelines", metavar="DIR", help="pipelines directory")
    serve.add_argument(
        "--autostart",
        metavar="NAME",
        action="append",
        default=[],
        help="start this pipeline at startup (repeatable)",
    )
    serve.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    files = sub.add_parser(
        "install-files",
        help="install the systemd unit, sysusers.d file and udev rules that ship with eegpi",
        description="Install eegpi.service (running this installation's eegpi), the sysusers.d "
        "file (user eegpi, groups spi and gpio) and the udev rules under --prefix; files "
        "already right are left alone. Prints the commands that activate what changed.",
    )
    files.set_defaults(func=_cmd_install_files)
    files.add_argument(
        "--prefix", metavar="DIR", default="/", help="install under this root (default /)"
    )
    files.add_argument("--dry-run", action="store_true", help="only say what would change")
    native = sub.add_parser(
        "build-native",
        help="compile the native acquisition reader (device.reader: native) for this machine",
        description="Compile the C acquisition reader that ships with eegpi for this machine's "
        "CPU with its C compiler (cc, or $CC), next to the package (or into --output). Run it "
        "after installing or upgrading eegpi, as the owner of the installation; the daemon "
        "never compiles.",
    )
    native.set_defaults(func=_cmd_build_native)
    native.add_argument(
        "--output", metavar="DIR", help="write the library here (then set EEGPI_NATIVE_LIB)"
    )
    native.add_argument(
        "--if-stale",
        action="store_true",
        help="only build when the library is missing, older than its source or of another ABI",
    )

    p = add("status", cmd_status, "state and counters of one pipeline, or of all")
    p.add_argument("name", metavar="NAME", nargs="?", default="", help="pipeline (default: all)")
    for name, func, text in (
        ("start", cmd_start, "start a pipeline and wait until it runs"),
        ("stop", cmd_stop, "stop a pipeline and wait until it is down"),
    ):
        p = add(name, func, text)
        p.add_argument("name", metavar="NAME")
        p.add_argument(
            "--wait",
            metavar="SECONDS",
            type=_positive,
            default=DEFAULT_WAIT_S,
            help=f"give up waiting after this long (default {DEFAULT_WAIT_S:g}); the daemon "
            "goes on either way",
        )
    add("pipelines", cmd_pipelines, "the pipelines the daemon knows, and files that did not load")
    add("topics", cmd_topics, "WebSocket topics, their subscribers and stream metadata")
    add("recordings", cmd_recordings, "recording files in the daemon's data directory")
    p = add("record", cmd_record, "start or stop recording on a running pipeline's recorders")
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("name", metavar="PIPELINE")
    p.add_argument("--stage", metavar="STAGE", help="one recorder stage (default: every one)")
    p = add("mark", cmd_mark, "place a marker (event label) on a running pipeline's samples")
    p.add_argument("label", metavar="LABEL")
    p.add_argument("--pipeline", metavar="NAME", default="", help="default: the one running")
    p.add_argument(
        "--at",
        metavar="UNIX_TIME",
        type=float,
        help="when the event happened, Unix seconds (default: when the daemon gets it)",
    )
    add_set_command(sub, [common])
    add("device", cmd_device, "ADS1299 identity, registers and lead-off status")
    from eegpi.cli.impedance import add_impedance_arguments, cmd_impedance

    p = add("impedance", cmd_impedance, "each electrode's impedance in kOhm, graded")
    add_impedance_arguments(p)
    p = add("validate", cmd_validate, "check pipeline files locally (no daemon needed)")
    p.add_argument("files", metavar="FILE", nargs="+")
    p = add("tail", cmd_tail, "print a topic's data messages as they arrive")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--count", metavar="N", type=_count, help="stop after N data messages")
    p = add("doctor", cmd_doctor, "check this machine, its config and its daemon; say what to fix")
    p.add_argument(
        "--config", metavar="FILE", help="config file to check (default /etc/eegpi/eegpi.yaml)"
    )
    p.add_argument(
        "--mock", action="store_true", help="check against the emulated ADS1299, as serve --mock"
    )
    p = add(
        "discover",
        cmd_discover,
        "list the eegpi appliances announced on the network (mDNS) and their health; "
        f"--timeout is how long to listen (default {DEFAULT_LISTEN_S:g} s)",
    )
    p.add_argument(
        "--interface",
        metavar="ADDRESS",
        action="append",
        help="listen on the interface with this IPv4 address only (repeatable; default: all)",
    )
    return parser


def _resolve(args: argparse.Namespace) -> None:
    """Fill in what neither the command line nor the subparser set."""
    if args.func is _cmd_serve:
        args.grpc = getattr(args, "grpc", None)
        args.ws = getattr(args, "ws", None)
        return
    env = os.environ
    args.given = {n for n in ("grpc", "ws", "timeout") if getattr(args, n, None) is not None}
    for name, default in (("grpc", DEFAULT_GRPC), ("ws", DEFAULT_WS)):
        value = getattr(args, name, None)
        if value is None:
            variable = f"EEGPI_{name.upper()}"
            value = env.get(variable) or default
            try:
                _address(value)
            except argparse.ArgumentTypeError as exc:
                raise CliError(f"{variable}: {exc}", EXIT_USAGE) from None
        setattr(args, name, value)
    args.token = _token(args)
    args.timeout = getattr(args, "timeout", DEFAULT_TIMEOUT_S)
    args.json = getattr(args, "json", False)


def _token(args: argparse.Namespace) -> str | None:
    """--token, else the first line of --token-file, else EEGPI_TOKEN; None for no token."""
    token: str | None = getattr(args, "token", None)
    path: str | None = getattr(args, "token_file", None)
    if token and path:
        raise CliError("give --token or --token-file, not both", EXIT_USAGE)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--token-file: cannot read {path}: {exc}", EXIT_USAGE) from None
        if not token:
            raise CliError(f"--token-file: {path} holds no token", EXIT_USAGE)
    return token or os.environ.get("EEGPI_TOKEN") or None


def _cmd_serve(args: argparse.Namespace) -> int:
    from eegpi.daemon.app import serve_main

    return serve_main(args)


def _cmd_build_native(args: argparse.Namespace) -> int:
    from eegpi.cli.commands import cmd_build_native

    return cmd_build_native(args)


def _cmd_install_files(args: argparse.Namespace) -> int:
    from eegpi.install_files import cmd_install_files

    return cmd_install_files(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eegpi`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        _resolve(args)
        return int(args.func(args))
    except CliError as exc:
        print(f"eegpi: {exc}", file=sys.stderr)
        return exc.code
    except EegpiError as exc:  # e.g. `serve` with a bad config: the message says what to fix
        print(f"eegpi: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # output piped into `head` and the like: the reader left, which is not an error;
        # point stdout at /dev/null so the interpreter's final flush does not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
