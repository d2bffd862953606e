"""``eegpi set PIPELINE STAGE key=value ...``: change live params of a running pipeline's stage.

Values are YAML scalars or flow lists/mappings, as in a pipeline file (``low_hz=2``,
``gain=12``, ``gain=[24,24,12,12,24,24,24,24]``, ``enabled=false``); the daemon checks them
exactly as loading the file would. The file itself is not changed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml
from google.protobuf.struct_pb2 import Struct

from eegpi.cli.client import ControlClient
from eegpi.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from eegpi.cli.output import print_json
from eegpi.rpc import convert
from eegpi.v1 import control_pb2 as pb

__all__ = ["add_set_command", "cmd_set", "parse_assignments"]

MAX_VALUE_CHARS = 4096
"""A longer value is not a param anyone types."""


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``key=value`` words as params (values parsed as YAML); CliError (usage) when malformed."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"{item!r} is not key=value (e.g. low_hz=2)", EXIT_USAGE)
        if key in params:
            raise CliError(f"{key} is given twice", EXIT_USAGE)
        if len(text) > MAX_VALUE_CHARS:
            raise CliError(f"{key}: the value is longer than {MAX_VALUE_CHARS} characters")
        try:
            params[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise CliError(f"{key}: {text!r} is {problem}", EXIT_USAGE) from None
    return params


def cmd_set(args: argparse.Namespace) -> int:
    changes = parse_assignments(args.assignments)
    params = Struct()
    try:
        params.update(changes)
    except (ValueError, TypeError) as exc:
        raise CliError(f"cannot send these values: {exc}", EXIT_USAGE) from None
    request = pb.UpdateStageRequest(pipeline=args.pipeline, stage=args.stage, params=params)
    with ControlClient(args.grpc, token=args.token, timeout=args.timeout) as client:
        reply = client.call(client.pipelines.UpdateStage, request, timeout=max(args.timeout, 35))
    stage = convert.stage_params_from_pb(reply)
    if args.json:
        print_json(
            {
                "pipeline": stage.pipeline,
                "stage": stage.name,
                "type": stage.type_name,
                "params": stage.params,
                "live": list(stage.live),
            }
        )
        return EXIT_OK
    changed = ", ".join(f"{k}={_show(stage.params.get(k))}" for k in changes)
    print(f"{stage.pipeline}/{stage.name} ({stage.type_name}): {changed}")
    return EXIT_OK


def _show(value: Any) -> str:
    return json.dumps(value)


def add_set_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``set`` subcommand on the CLI's subparsers."""
    text = "change live params of a running pipeline's stage (the file stays as it is)"
    p = sub.add_parser(
        "set",
        parents=parents,
        help=text,
        description=f"{text[0].upper()}{text[1:]}. Values are YAML, as in a pipeline file.",
        epilog="examples: eegpi set default filter low_hz=2 high_hz=30; "
        "eegpi set default acquire gain=12; eegpi set default notch freq_hz=60",
    )
    p.set_defaults(func=cmd_set)
    p.add_argument("pipeline", metavar="PIPELINE")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("assignments", metavar="KEY=VALUE", nargs="+")
