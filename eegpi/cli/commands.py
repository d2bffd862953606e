"""The client subcommands that talk to the daemon over gRPC."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from eegpi.cli.client import ControlClient
from eegpi.cli.errors import EXIT_FAILED, EXIT_OK
from eegpi.cli.output import (
    format_duration,
    key_values,
    print_json,
    record_json,
    table,
    uptime,
)
from eegpi.cli.tail import fetch_topic_meta
from eegpi.cli.wait import START, STOP, Action, settle
from eegpi.rpc import convert
from eegpi.status import PipelineStatus, RecordingStatus
from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import device_pb2 as dpb

__all__ = [
    "cmd_build_native",
    "cmd_device",
    "cmd_pipelines",
    "cmd_record",
    "cmd_recordings",
    "cmd_start",
    "cmd_status",
    "cmd_stop",
    "cmd_topics",
]


def _client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(args.grpc, token=args.token, timeout=args.timeout)


def _status_json(status: PipelineStatus) -> dict[str, Any]:
    data: dict[str, Any] = record_json(status)
    up = uptime(status)
    data["uptime_s"] = None if up is None else round(up, 3)
    return data


def _print_statuses(statuses: list[PipelineStatus]) -> None:
    rows = []
    for s in statuses:
        up = uptime(s)
        topics = " ".join(f"{t.name}({t.subscribers})" for t in s.topics) or "-"
        rows.append(
            (
                s.name,
                s.state.value,
                "-" if up is None else format_duration(up),
                s.samples_acquired,
                s.samples_dropped,
                topics,
            )
        )
    print(table(("NAME", "STATE", "UPTIME", "ACQUIRED", "DROPPED", "TOPICS(SUBSCRIBERS)"), rows))
    for s in statuses:
        if s.device is not None and uptime(s) is not None:
            d = s.device
            serving = ""
            if d.reader:
                memory = "memory locked" if d.memory_locked else "memory not locked"
                serving = f"; {d.reader} reader at {d.scheduling} priority, {memory}"
            print(
                f"{s.name}: {d.chip} x{d.chips} via {d.backend} ({d.path}), "
                f"{d.channels} channels at {d.sample_rate} SPS{serving}"
            )
        if s.trigger_markers or s.trigger_lost or s.gpio_markers:
            print(
                f"{s.name}: hardware markers: {s.trigger_markers} trigger "
                f"({s.trigger_lost} lost), {s.gpio_markers} GPIO"
            )
        if s.last_error:
            print(f"{s.name}: last error: {s.last_error}")
        for r in s.recordings:
            print("\n".join(_recording_lines(s.name, r)))


def _recording_lines(pipeline: str, r: RecordingStatus) -> list[str]:
    state = "recording" if r.active else "not recording"
    where = f" {r.file} ({format_duration(r.duration_s)}, {r.bytes} bytes)" if r.file else ""
    lines = [f"{pipeline}/{r.stage}: {state}{where}"]
    if r.last_error:
        lines.append(f"{pipeline}/{r.stage}: last error: {r.last_error}")
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reply = client.call(client.pipelines.GetStatus, pb.GetStatusRequest(name=args.name or ""))
    statuses = [convert.pipeline_status_from_pb(m) for m in reply.pipelines]
    if args.json:
        print_json([_status_json(s) for s in statuses])
    elif not statuses:
        print("no pipelines (eegpi pipelines shows files that did not load)")
    else:
        _print_statuses(statuses)
    return 0


def _start_stop(args: argparse.Namespace, action: Action) -> int:
    with _client(args) as client:
        status = settle(client, action, args.name, args.wait)
    if args.json:
        print_json(_status_json(status))
    else:
        print(f"{status.name}: {status.state.value}")
        if status.last_error:
            print(f"{status.name}: last error: {status.last_error}")
    return EXIT_OK if status.state in action.done else EXIT_FAILED


def cmd_start(args: argparse.Namespace) -> int:
    return _start_stop(args, START)


def cmd_stop(args: argparse.Namespace) -> int:
    return _start_stop(args, STOP)


def cmd_pipelines(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reply = client.call(client.pipelines.ListPipelines, pb.ListPipelinesRequest())
    infos = [convert.pipeline_info_from_pb(m) for m in reply.pipelines]
    errors = [convert.load_error_from_pb(m) for m in reply.errors]
    if args.json:
        print_json(
            {
                "pipelines": [record_json(i) for i in infos],
                "errors": [record_json(e) for e in errors],
            }
        )
        return 0
    rows = [
        (i.name, i.state.value, len(i.stages), ", ".join(i.topics) or "-", i.path) for i in infos
    ]
    print(table(("NAME", "STATE", "STAGES", "TOPICS", "PATH"), rows))
    if errors:
        print(f"\n{len(errors)} file(s) did not load:")
        for e in errors:
            # Load errors usually name their file already.
            print(f"  {e.message}" if e.message.startswith(e.path) else f"  {e.path}: {e.message}")
    return 0


def cmd_recordings(args: argparse.Namespace) -> int:
    """The recording files in the daemon's data directory (download: /recordings/NAME)."""
    with _client(args) as client:
        reply = client.call(client.pipelines.ListRecordings, pb.ListRecordingsRequest())
    files = [convert.recording_file_from_pb(m) for m in reply.recordings]
    if args.json:
        print_json([record_json(f) for f in files])
        return 0
    if not files:
        print("no recordings (a pipeline with a recorder stage makes them)")
        return 0
    rows = [
        (
            f.name,
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.start_time)) if f.start_time else "-",
            format_duration(f.duration_s),
            f.bytes,
            "complete" if f.complete else "being written (or not finalised)",
        )
        for f in files
    ]
    print(table(("NAME", "START (UTC)", "DURATION", "BYTES", "STATE"), rows))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """StartRecording / StopRecording on a running pipeline's recorder stages."""
    request = pb.RecordingRequest(pipeline=args.name, stage=args.stage or "")
    with _client(args) as client:
        method = (
            client.pipelines.StartRecording
            if args.action == "start"
            else client.pipelines.StopRecording
        )
        reply = client.call(method, request)
    statuses = [convert.recording_status_from_pb(m) for m in reply.recordings]
    if args.json:
        print_json([record_json(s) for s in statuses])
    else:
        for s in statuses:
            print("\n".join(_recording_lines(args.name, s)))
    failed = args.action == "start" and any(not s.active for s in statuses)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_mark(args: argparse.Namespace) -> int:
    """PostMarker: print on which sample of which pipeline the marker was placed."""
    request = pb.PostMarkerRequest(pipeline=args.pipeline, label=args.label)
    if args.at is not None:
        request.time.FromNanoseconds(int(args.at * 1e9))
    with _client(args) as client:
        reply = client.call(client.pipelines.PostMarker, request)
    when = reply.time.ToNanoseconds() / 1e9
    if args.json:
        print_json(
            {
                "pipeline": reply.pipeline,
                "label": reply.label,
                "seq": reply.seq,
                "timestamp": when,
                "source": reply.source,
            }
        )
    else:
        print(f"marked {reply.label!r} on {reply.pipeline} at sample {reply.seq} ({when:.6f})")
    return EXIT_OK


def cmd_topics(args: argparse.Namespace) -> int:
    with _client(args) as client:
        listed = client.call(client.pipelines.ListPipelines, pb.ListPipelinesRequest())
        status = client.call(client.pipelines.GetStatus, pb.GetStatusRequest())
    subscribers = {t.name: t.subscribers for s in status.pipelines for t in s.topics}
    # Stream metadata is only known to the WebSocket side; the table stands without it.
    meta = fetch_topic_meta(
        args.ws, timeout=min(args.timeout, 2.0), token=getattr(args, "token", None)
    )
    topics = []
    for p in listed.pipelines:
        state = convert.state_from_pb(p.state).value
        for name in p.topics:
            topics.append(
                {
                    "name": name,
                    "pipeline": p.name,
                    "state": state,
                    "subscribers": subscribers.get(name, 0),
                    "meta": None if meta is None else meta.get(name),
                }
            )
    if args.json:
        print_json(topics)
        return 0
    rows = []
    for t in topics:
        m = t["meta"] or {}
        channels = m.get("channels")
        rows.append(
            (
                t["name"],
                t["pipeline"],
                t["state"],
                t["subscribers"],
                m.get("sample_rate", "-"),
                len(channels) if isinstance(channels, list) else "-",
                m.get("units", "-"),
            )
        )
    print(table(("TOPIC", "PIPELINE", "STATE", "SUBSCRIBERS", "RATE", "CHANNELS", "UNITS"), rows))
    if meta is None:
        print(f"(no stream metadata: WebSocket at {args.ws} not reachable)", file=sys.stderr)
    return 0


def cmd_device(args: argparse.Namespace) -> int:
    with _client(args) as client:
        ident = client.call(client.device.GetIdentity, dpb.GetIdentityRequest())
        regs = client.call(client.device.GetRegisters, dpb.GetRegistersRequest())
        lead = client.call(client.device.GetLeadOff, dpb.GetLeadOffRequest())
    registers = convert.registers_from_pb(regs)
    channels, bias_off = convert.lead_off_from_pb(lead)
    if args.json:
        print_json(
            {
                "identity": {
                    "backend": ident.backend,
                    "path": ident.path,
                    "chip": ident.chip,
                    "id_register": ident.id_register,
                    "revision": ident.revision,
                    "chips": ident.chips,
                    "channels": ident.channels,
                    "sample_rate": ident.sample_rate,
                    "held_by": ident.held_by,
                },
                "registers": [record_json(r) for r in registers],
                "lead_off": {"channels": [record_json(c) for c in channels], "bias_off": bias_off},
            }
        )
        return 0
    rate = f"{ident.sample_rate} SPS" if ident.sample_rate else "- (no pipeline running)"
    print(
        key_values(
            [
                ("chip", f"{ident.chip} (ID 0x{ident.id_register:02X}, revision {ident.revision})"),
                ("backend", f"{ident.backend} ({ident.path})"),
                ("chain", f"{ident.chips} chip(s), {ident.channels} channels"),
                ("sample rate", rate),
                ("held by", ident.held_by or "- (idle)"),
            ]
        )
    )
    print()
    print(
        table(
            ("ADDR", "NAME", "VALUE", "BITS"),
            [
                (f"0x{r.address:02X}", r.name, f"0x{r.value:02X}", f"{r.value:08b}")
                for r in registers
            ],
        )
    )
    print()
    print(f"lead-off (bias {'OFF' if bias_off else 'ok'}):")
    print(
        table(
            ("CHANNEL", "SENSED", "P", "N"),
            [
                (
                    c.channel,
                    "yes" if c.sensed else "no",
                    "OFF" if c.p_off else "ok",
                    "OFF" if c.n_off else "ok",
                )
                for c in channels
            ],
        )
    )
    return 0


def cmd_build_native(args: argparse.Namespace) -> int:
    """``eegpi build-native``: compile the native reader; prints ``built PATH`` or
    ``up to date: PATH`` (the Ansible role reports a change on the first)."""
    from pathlib import Path

    from eegpi.exc import HardwareError
    from eegpi.hardware.native.build import build_library, library_file, stale_reason

    output = Path(args.output) if args.output else None
    try:
        if args.if_stale and stale_reason(output) is None:
            print(f"up to date: {library_file(output)}")
            return EXIT_OK
        path = build_library(output)
    except HardwareError as exc:
        print(f"eegpi build-native: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"built {path}")
    if output is not None:
        print(f"the daemon loads it with EEGPI_NATIVE_LIB={path}")
    return EXIT_OK
