"""`eegpi serve`: wires the broker, the pipeline manager and the gRPC server on one event loop.

Threads and loops (docs/architecture.md has the picture):

* the asyncio loop (main thread): WebSocket broker, gRPC server, pipeline manager;
* one acquisition process per running source (a thread with ``device.acquisition: thread``):
  DRDY -> SPI frame -> shared-memory ring buffer;
* one pipeline thread per running pipeline: ring buffer -> stages -> bounded hand-off to the loop.

Start order: broker, manager, gRPC, autostart pipelines, then READY=1 for systemd. Shutdown
(SIGTERM or SIGINT) runs in reverse: health NOT_SERVING, pipelines stopped (files finalised),
WebSocket clients closed with 1001, gRPC stopped; exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import faulthandler
import logging
import signal
import sys
from pathlib import Path

from eegpi.daemon.config import AppConfig, default_pipelines_dir, load_config, split_hostport
from eegpi.daemon.manager import PipelineManager
from eegpi.daemon.systemd import Notifier
from eegpi.exc import ConfigError, EegpiError

__all__ = ["build_config", "run", "serve_main"]

log = logging.getLogger("eegpi.daemon")


def serve_main(args: argparse.Namespace) -> int:
    """Entry point of ``eegpi serve``; returns the process exit code."""
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
    from eegpi.broker import LoopPublisher, TopicHub, start_ws_server
    from eegpi.rpc.server import start_grpc_server

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    notifier = Notifier()
    notifier.status("starting")

    token = cfg.resolved_token()
    grpc_host, _ = split_hostport(cfg.grpc.listen, "grpc.listen")
    ws_host, ws_port = split_hostport(cfg.websocket.listen, "websocket.listen")
    pipelines_dir = Path(cfg.pipelines_dir) if cfg.pipelines_dir else default_pipelines_dir()

    hub = TopicHub()
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
    publisher = LoopPublisher(loop, hub)
    manager = PipelineManager(
        pipelines_dir=pipelines_dir,
        device=cfg.device,
        publisher=publisher,
        subscriber_counts=hub.subscriber_counts,
        data_dir=cfg.data_dir,
        on_topics=hub.set_expected_topics,
    )
    loaded = manager.load()
    log.info("pipelines from %s: %s", pipelines_dir, ", ".join(loaded.loaded) or "none loaded")
    try:
        grpc = await start_grpc_server(
            manager, cfg.grpc.listen, token=token or None, insecure=cfg.grpc.insecure
        )
    except BaseException:
        await hub.close()
        ws.close()
        await ws.wait_closed()
        raise

    for name in cfg.autostart:
        try:
            await manager.start(name)
        except EegpiError as exc:
            log.error("autostart of pipeline '%s' failed: %s", name, exc)

    shown_host = ws_host if ws_host not in ("0.0.0.0", "::", "") else "localhost"
    grpc_shown = f"{grpc_host}:{grpc.port}"
    log.info(
        "eegpi ready: grpc %s, websocket ws://%s:%d/ws/data, viewer http://%s:%d/",
        grpc_shown,
        shown_host,
        ws.port,
        shown_host,
        ws.port,
    )
    running = ", ".join(manager.running()) or "no pipeline running"
    notifier.ready(f"serving on {grpc_shown} and :{ws.port}; {running}")
    watchdog = asyncio.create_task(_watchdog(notifier, manager))

    await stop.wait()
    log.info("stopping")
    notifier.stopping()
    watchdog.cancel()
    await grpc.set_serving(False)
    await manager.stop_all()
    await hub.close()
    ws.close()
    await ws.wait_closed()
    await grpc.stop(1.0)
    log.info("stopped")
    return 0


async def _watchdog(notifier: Notifier, manager: PipelineManager) -> None:
    """Ping systemd only while every running pipeline acquires (a stall gets us restarted)."""
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    last: dict[str, int] = {}
    while True:
        await asyncio.sleep(interval)  # a blocked loop also stops the pings
        healthy = True
        for st in manager.status():
            if st.state.value != "RUNNING":
                continue
            if st.samples_acquired <= last.get(st.name, -1):
                healthy = False
                log.error("pipeline %s acquired nothing for %.1f s", st.name, interval)
            last[st.name] = st.samples_acquired
        if healthy:
            notifier.watchdog()


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
