"""`eegpi serve`: wires the broker, the pipeline manager and the gRPC server on one event loop.

Threads and loops (docs/architecture.md has the picture):

* the asyncio loop (main thread): WebSocket broker, gRPC server, pipeline manager;
* one acquisition process per running source (a thread with ``device.acquisition: thread``):
  DRDY -> SPI frame -> shared-memory ring buffer;
* one pipeline thread per running pipeline: ring buffer -> stages -> bounded hand-off to the loop.

Start order: broker, manager, gRPC, autostart pipelines; READY=1 for systemd once every
autostart pipeline delivers samples (daemon/supervisor.py has the restart policy). SIGHUP
reloads the pipelines directory (RELOADING=1 ... READY=1 around it). Shutdown (SIGTERM or
SIGINT) runs in reverse: health NOT_SERVING, pipelines stopped (files finalised), WebSocket
clients closed with 1001, gRPC stopped; exit code 0, or 1 when an autostart pipeline kept
failing (so that systemd restarts the unit), 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import faulthandler
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegpi.daemon.config import AppConfig, default_pipelines_dir, load_config, split_hostport
from eegpi.daemon.manager import PipelineManager
from eegpi.daemon.stage_control import ManagerStageControl
from eegpi.daemon.supervisor import AutostartSupervisor, report_status, status_line
from eegpi.daemon.systemd import Notifier
from eegpi.daemon.watchdog import run_watchdog
from eegpi.exc import ConfigError, EegpiError
from eegpi.pipeline.markers import MARKERS_META, MARKERS_TOPIC

if TYPE_CHECKING:
    from eegpi.broker.server import MarkerPoster

__all__ = ["build_config", "run", "serve_main"]

log = logging.getLogger("eegpi.daemon")


def serve_main(args: argparse.Namespace) -> int:
    """Entry point of ``eegpi serve``; returns the process exit code."""
    # SIGHUP reloads once the loop runs; until then it must not end the daemon (its default)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _setup_logging(2 if getattr(args, "verbose", 0) else 1)
    faulthandler.enable()  # a watchdog SIGABRT leaves every thread's traceback in the journal
    try:
        cfg = build_config(args)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    if not getattr(args, "verbose", 0):
        _setup_logging(_LEVELS.get(cfg.log_level, 1))
    try:
        return asyncio.run(run(cfg))
    except EegpiError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


def build_config(args: argparse.Namespace) -> AppConfig:
    """The config file, then the command-line flags on top."""
    cfg = load_config(getattr(args, "config", None))
    device = cfg.device
    if getattr(args, "mock", False):
        device = dataclasses.replace(device, backend="mock")
    grpc_cfg = cfg.grpc
    if getattr(args, "token_file", None):
        grpc_cfg = dataclasses.replace(grpc_cfg, token="", token_file=args.token_file)
    if getattr(args, "grpc", None):
        split_hostport(args.grpc, "--grpc")
        grpc_cfg = dataclasses.replace(grpc_cfg, listen=args.grpc)
    ws_cfg = cfg.websocket
    if getattr(args, "ws", None):
        split_hostport(args.ws, "--ws")
        ws_cfg = dataclasses.replace(ws_cfg, listen=args.ws)
    pipelines_dir = getattr(args, "pipelines", None) or cfg.pipelines_dir
    autostart = tuple(getattr(args, "autostart", None) or ()) or cfg.autostart
    return dataclasses.replace(
        cfg,
        device=device,
        grpc=grpc_cfg,
        websocket=ws_cfg,
        pipelines_dir=pipelines_dir,
        autostart=autostart,
    )


async def run(cfg: AppConfig, *, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code."""
    from grpc_health.v1.health_pb2 import HealthCheckResponse

    from eegpi.broker import LoopPublisher, TopicHub, start_ws_server
    from eegpi.rpc.server import start_grpc_server

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    reload_wanted = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
    notifier = Notifier()
    notifier.status("starting")

    token = cfg.resolved_token()
    grpc_host, _ = split_hostport(cfg.grpc.listen, "grpc.listen")
    ws_host, ws_port = split_hostport(cfg.websocket.listen, "websocket.listen")
    pipelines_dir = Path(cfg.pipelines_dir) if cfg.pipelines_dir else default_pipelines_dir()

    hub = TopicHub()
    hub.declare(MARKERS_TOPIC, MARKERS_META)  # every pipeline's markers, whichever runs
    try:
        ws = await start_ws_server(
            hub,
            ws_host,
            ws_port,
            allowed_origins=cfg.websocket.allowed_origins,
            allowed_hosts=cfg.websocket.allowed_hosts,
            token=token or None,
            max_clients=cfg.websocket.max_clients,
            max_clients_per_address=cfg.websocket.max_clients_per_address,
            idle_timeout_s=cfg.websocket.idle_timeout_s,
        )
    except OSError as exc:
        await hub.close()
        raise ConfigError(_ws_bind_error(cfg.websocket.listen, exc)) from None
    publisher = LoopPublisher(loop, hub)
    manager = PipelineManager(
        pipelines_dir=pipelines_dir,
        device=cfg.device,
        publisher=publisher,
        subscriber_counts=hub.subscriber_counts,
        data_dir=cfg.data_dir,
        on_topics=hub.set_expected_topics,
        on_start=hub.set_pipeline,
    )
    ws.post_marker = _marker_poster(manager)
    ws.stage_control = ManagerStageControl(manager)
    loaded = manager.load()
    manager.preload(cfg.autostart)
    log.info("pipelines from %s: %s", pipelines_dir, ", ".join(loaded.loaded) or "none loaded")
    unknown = [name for name in cfg.autostart if name not in loaded.loaded]
    grpc = None
    try:
        if unknown:
            log.error(
                "configuration error: autostart names %s, not among the pipelines loaded from "
                "%s (%s); fix the name or the pipeline file",
                ", ".join(repr(n) for n in unknown),
                pipelines_dir,
                ", ".join(loaded.loaded) or "none",
            )
            return 2
        grpc = await start_grpc_server(
            manager, cfg.grpc.listen, token=token or None, insecure=cfg.grpc.insecure
        )
    finally:
        if grpc is None:
            publisher.close()
            await hub.close()
            ws.close()
            await ws.wait_closed()

    async def set_health(serving: bool) -> None:
        status = HealthCheckResponse.SERVING if serving else HealthCheckResponse.NOT_SERVING
        await grpc.health.set("", status)

    shown_host = ws_host if ws_host not in ("0.0.0.0", "::", "") else "localhost"
    grpc_shown = f"{grpc_host}:{grpc.port}"
    serving_on = f"{grpc_shown} and :{ws.port}"
    urls = (
        f"grpc {grpc_shown}, websocket ws://{shown_host}:{ws.port}/ws/data, "
        f"viewer http://{shown_host}:{ws.port}/"
    )
    supervisor = AutostartSupervisor(
        manager, cfg.autostart, cfg.autostart_retry, notifier, manager.changes
    )
    await set_health(not cfg.autostart)  # the whole server serves once autostart delivers
    log.info("eegpi listening: %s", urls)
    from eegpi.daemon.discovery import start_advertiser  # mDNS; never stops the daemon

    advertiser = start_advertiser(
        cfg, grpc_port=grpc.port, ws_port=ws.port, token_required=bool(token), status=manager.status
    )
    supervisor.start()
    background = [
        asyncio.create_task(report_status(manager, supervisor, serving_on, notifier, set_health)),
        asyncio.create_task(
            _reload_on_sighup(reload_wanted, manager, supervisor, serving_on, notifier)
        ),
    ]
    interval = notifier.watchdog_interval()
    if interval is not None:
        background.append(
            asyncio.create_task(run_watchdog(interval, manager.status, notifier.watchdog))
        )

    await _first(supervisor.ready, stop, supervisor.gave_up)
    if not (stop.is_set() or supervisor.gave_up.is_set()):
        serving, text = status_line(manager, supervisor, serving_on)
        await set_health(serving)  # health agrees before systemd hears READY
        log.info("eegpi ready: %s", urls)
        notifier.ready(text)
        await _first(stop, supervisor.gave_up)
    code = 0
    if supervisor.gave_up.is_set() and not stop.is_set():
        log.error("%s; giving up: stopping with exit status 1", supervisor.reason)
        code = 1
    log.info("stopping")
    notifier.stopping()
    # Supervision ends first: a SIGTERM sent to the whole process group (timeout(1), kill
    # -- -PGID) also ends the acquisition process, and that failure is no reason to restart.
    await supervisor.close()
    await advertiser.close()  # goodbye packets first: browsers drop the appliance at once
    for task in background:
        task.cancel()
    await grpc.set_serving(False)
    await manager.stop_all()
    publisher.close()
    await hub.close()
    ws.close()
    await ws.wait_closed()
    await grpc.stop(1.0)
    for task in background:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    log.info("stopped")
    return code


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _reload_on_sighup(
    wanted: asyncio.Event,
    manager: PipelineManager,
    supervisor: AutostartSupervisor,
    serving_on: str,
    notifier: Notifier,
) -> None:
    """SIGHUP = ReloadPipelines: what runs keeps running; signals in a burst reload once."""
    while True:
        await wanted.wait()
        wanted.clear()
        was_ready = notifier.is_ready
        if was_ready:
            notifier.reloading()
        try:
            result = await manager.reload()
        except Exception:
            log.exception("SIGHUP: reloading the pipelines failed; nothing was changed")
        else:
            log.info(
                "SIGHUP: pipelines reloaded from %s: %s%s",
                manager.pipelines_dir,
                ", ".join(result.loaded) or "none loaded",
                f"; {len(result.errors)} file(s) not loaded" if result.errors else "",
            )
        if was_ready:
            notifier.ready(status_line(manager, supervisor, serving_on)[1])


def _ws_bind_error(listen: str, exc: OSError) -> str:
    why = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        why = "the port is in use"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "the address is not on this host"
    return (
        f"cannot listen for WebSocket on {listen}: {why} "
        "(another eegpi running? change --ws or websocket.listen)"
    )


_LEVELS = {"debug": 2, "info": 1, "warning": 0, "error": -1}


def _setup_logging(verbosity: int) -> None:
    level = {2: logging.DEBUG, 1: logging.INFO, 0: logging.WARNING}.get(verbosity, logging.ERROR)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    # journald adds its own timestamps; keep lines short and greppable
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # the broker logs one line per connection itself; the library's own lines would double it
    for name in ("websockets", "eegpi.broker.websockets"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _marker_poster(manager: PipelineManager) -> MarkerPoster:
    """``{"marker": ...}`` from a WebSocket client, placed like a PostMarker call."""

    def post(pipeline: str, label: str, at: float | None) -> dict[str, Any]:
        name, marker = manager.post_marker(pipeline, label, "websocket", at)
        return {**marker.to_json(), "pipeline": name}

    return post
