"""Command-line parsing: usage errors exit 2, `serve` hands the daemon the documented options."""

from __future__ import annotations

import argparse

import pytest

import eegpi.cli as cli
from tests.cli.cli_runner import run_eegpi


@pytest.mark.parametrize(
    "argv",
    [
        ["stop"],
        ["frobnicate"],
        ["status", "--timeout", "0"],
        ["start", "default", "--wait", "0"],
        ["stop", "default", "--wait", "soon"],
        ["--grpc", "no-port", "status"],
        ["tail", "eeg", "--count", "0"],
        ["validate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage: eegpi" in capsys.readouterr().err


def test_help_exits_0() -> None:
    r = run_eegpi("--help")
    assert r.code == 0
    for command in ("serve", "status", "start", "stop", "pipelines", "topics", "validate"):
        assert command in r.out


def test_help_warns_that_ps_shows_the_token() -> None:
    r = run_eegpi("status", "--help")
    assert r.code == 0
    text = " ".join(r.out.split())
    assert "other users see it in ps" in text and "--token-file FILE" in text
    assert "EEGPI_TOKEN" in text


def test_serve_takes_a_token_file_not_a_token() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["serve", "--token-file", "/etc/eegpi/grpc.token"])
    assert args.token_file == "/etc/eegpi/grpc.token"
    assert not hasattr(args, "token")


def test_serve_passes_documented_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    import eegpi.daemon.app as app

    seen: list[argparse.Namespace] = []

    def serve_main(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(app, "serve_main", serve_main)
    argv = ["serve", "--mock", "--config", "c.yaml", "--grpc", "0.0.0.0:1", "--ws", "[::1]:2"]
    argv += ["--pipelines", "p", "--autostart", "a", "--autostart", "b", "-vv"]
    assert cli.main(argv) == 0
    (args,) = seen
    assert (args.config, args.mock, args.grpc, args.ws) == ("c.yaml", True, "0.0.0.0:1", "[::1]:2")
    assert (args.pipelines, args.autostart, args.verbose) == ("p", ["a", "b"], 2)

    seen.clear()
    assert cli.main(["serve"]) == 0
    (args,) = seen
    assert (args.config, args.mock, args.grpc, args.ws, args.autostart) == (
        None,
        False,
        None,
        None,
        [],
    )


def test_global_options_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    before = parser.parse_args(["--json", "--grpc", "h:1", "status"])
    after = parser.parse_args(["status", "--json", "--grpc", "h:1"])
    assert (before.json, before.grpc) == (after.json, after.grpc) == (True, "h:1")
