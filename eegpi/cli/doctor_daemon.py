"""``eegpi doctor``'s look at the software: config, pipelines, the daemon, its ports, the chip."""

from __future__ import annotations

import dataclasses
import errno
import socket
from pathlib import Path

from eegpi.cli.doctor_check import Check
from eegpi.daemon.config import (
    DEFAULT_CONFIG_PATH,
    AppConfig,
    default_pipelines_dir,
    load_config,
    split_hostport,
)
from eegpi.daemon.interfaces import is_wildcard_host
from eegpi.exc import ConfigError, EegpiError
from eegpi.status import DeviceInfo

__all__ = [
    "Reachability",
    "acquisition_verdict",
    "check_acquisition",
    "check_chip",
    "check_config",
    "check_daemon",
    "check_pipelines",
    "check_ports",
    "daemon_target",
]

_HEALTH_S = 5.0


def check_config(path: str | None) -> tuple[Check, AppConfig | None]:
    """The config file loads (the same reader ``eegpi serve`` uses) and its token is readable."""
    shown = path or str(DEFAULT_CONFIG_PATH)
    if path is None and not DEFAULT_CONFIG_PATH.exists():
        return Check("config", "ok", f"no {shown}: the defaults apply"), AppConfig()
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return (
            Check(
                "config",
                "fail",
                str(exc),
                f"fix {shown} (every key is in systemd/eegpi.yaml); the checks below use the "
                "defaults",
            ),
            None,
        )
    try:
        cfg.resolved_token()
    except ConfigError as exc:
        return Check("config", "fail", str(exc), "make the token file readable by eegpi"), cfg
    return Check("config", "ok", f"{shown} is valid"), cfg


def check_pipelines(cfg: AppConfig) -> Check:
    """Every pipeline file loads and every autostart name is among them."""
    from eegpi.pipeline.spec import load_pipeline_file

    folder = Path(cfg.pipelines_dir) if cfg.pipelines_dir else default_pipelines_dir()
    if not folder.is_dir():
        return Check(
            "pipelines",
            "fail",
            f"pipelines directory {folder} does not exist",
            "create it, or set pipelines_dir to the folder with the pipeline YAML files",
        )
    names: list[str] = []
    bad: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            names.append(load_pipeline_file(path).name)
        except ConfigError as exc:
            bad.append(str(exc))
    unknown = [n for n in cfg.autostart if n not in names]
    if unknown:
        return Check(
            "pipelines",
            "fail",
            f"autostart names {', '.join(unknown)}, not among {', '.join(names) or 'none'} "
            f"in {folder}",
            "fix the autostart list or the pipeline's name: (the daemon exits with status 2)",
        )
    if bad:
        return Check(
            "pipelines",
            "warn",
            f"{len(bad)} file(s) in {folder} do not load: {bad[0]}",
            "eegpi validate FILE says what is wrong",
        )
    return Check("pipelines", "ok", f"{folder}: {', '.join(names) or 'none'}")


def daemon_target(cfg: AppConfig) -> str:
    """Where a local client reaches the configured gRPC listen address."""
    host, port = split_hostport(cfg.grpc.listen, "grpc.listen")
    if is_wildcard_host(host):
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclasses.dataclass(frozen=True)
class Reachability:
    check: Check
    reachable: bool
    """A daemon answered (whatever its health): the chip must be asked through it."""


def check_daemon(target: str, token: str | None) -> Reachability:
    """gRPC health ``Check`` of the daemon at ``target``."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from eegpi.rpc.auth import bearer_metadata

    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=_HEALTH_S,
                metadata=bearer_metadata(token) if token else (),
            )
        except grpc.RpcError as err:
            code = err.code()
            if code is grpc.StatusCode.UNAUTHENTICATED:
                return Reachability(
                    Check(
                        "daemon",
                        "fail",
                        f"eegpi at {target} wants a token this check did not have",
                        "run as root or a member of group eegpi (to read grpc.token_file), or "
                        "pass --token-file",
                    ),
                    True,
                )
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return Reachability(
                    Check(
                        "daemon",
                        "warn",
                        f"no eegpi answers at {target}",
                        "start it: sudo systemctl start eegpi (or eegpi serve); "
                        "journalctl -u eegpi says why it stopped",
                    ),
                    False,
                )
            return Reachability(
                Check("daemon", "fail", f"{target}: {err.details() or code.name} ({code.name})"),
                True,
            )
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if status == "SERVING":
        return Reachability(Check("daemon", "ok", f"eegpi at {target} is SERVING"), True)
    return Reachability(
        Check(
            "daemon",
            "warn",
            f"eegpi at {target} answers {status}: an autostart pipeline is not delivering",
            "eegpi status says which and why; journalctl -u eegpi has the details",
        ),
        True,
    )


def check_ports(cfg: AppConfig, *, target: str, daemon_reachable: bool) -> Check:
    """The gRPC and WebSocket ports can be bound, or the daemon holds them."""
    listens = (("grpc.listen", cfg.grpc.listen), ("websocket.listen", cfg.websocket.listen))
    if daemon_reachable:
        return Check("ports", "ok", f"in use by the daemon that answers at {target}")
    problems = []
    for key, listen in listens:
        host, port = split_hostport(listen, key)
        why = _bind_problem(host, port)
        if why:
            problems.append((key, listen, port, why))
    if not problems:
        return Check("ports", "ok", f"{cfg.grpc.listen} and {cfg.websocket.listen} are free")
    key, listen, port, why = problems[0]
    return Check(
        "ports",
        "fail",
        "; ".join(f"{lst}: {w}" for _, lst, _, w in problems),
        f"find who holds it: sudo ss -ltnp 'sport = :{port}'; stop it or change {key}",
    )


def _bind_problem(host: str, port: int) -> str:
    """Why a server could not listen on host:port; empty when it could."""
    if port == 0:
        return ""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_host = "" if is_wildcard_host(host) else host
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bind_host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "in use by another program (no eegpi answers there)"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "the address is not on this host"
        if exc.errno == errno.EACCES:
            return "a port below 1024 needs privileges"
        return exc.strerror or str(exc)
    return ""


def check_chip(
    cfg: AppConfig,
    *,
    target: str,
    token: str | None,
    reachable: bool,
    spi_present: bool,
) -> Check:
    """The ADS1299 answers with its ID: through the daemon when one runs, else a brief probe."""
    fix = "check the wiring and the board's power (docs/hardware.md); `eegpi device` shows more"
    if reachable:
        from eegpi.cli.client import ControlClient
        from eegpi.cli.errors import CliError
        from eegpi.v1 import device_pb2 as dpb

        try:
            with ControlClient(target, token=token, timeout=10.0) as client:
                ident = client.call(client.device.GetIdentity, dpb.GetIdentityRequest())
        except CliError as exc:
            return Check("chip", "fail", f"the daemon could not read the chip: {exc}", fix)
        held = f", held by {ident.held_by}" if ident.held_by else ""
        return Check(
            "chip",
            "ok",
            f"{ident.chip} (ID 0x{ident.id_register:02X}), {ident.channels} channels, "
            f"{ident.backend} {ident.path} (asked the daemon{held})",
        )
    if cfg.device.backend != "mock" and not spi_present:
        return Check("chip", "skip", "no SPI device to ask")
    from eegpi import hardware

    try:
        report = hardware.probe(cfg.device)
    except (EegpiError, OSError) as exc:
        return Check("chip", "fail", f"no ADS1299 answered: {exc}", fix)
    return Check(
        "chip",
        "ok",
        f"{report.chip} (ID 0x{report.id_register:02X}), {report.channels} channels, "
        f"{report.backend} {report.path}",
    )


def acquisition_verdict(name: str, device: DeviceInfo) -> Check:
    """Whether a running pipeline's reader can keep its deadline with other work beside it:
    SCHED_FIFO (or the emulator's nice) and its memory locked in RAM."""
    what = f"{name}: {device.reader} reader at {device.scheduling} priority"
    fixes = []
    if device.scheduling == "normal":
        fixes.append(
            "let the reader raise its priority: run the shipped unit (LimitRTPRIO=50), or for "
            "`eegpi serve` by hand an rtprio limit (a line `USER - rtprio 50` in "
            "/etc/security/limits.d/eegpi.conf, then log in again)"
        )
    if not device.memory_locked and device.acquisition == "thread":
        fixes.append(
            "run the reader in its own process, which locks its memory: device.acquisition: "
            "process (the default)"
        )
    elif not device.memory_locked:
        fixes.append(
            "let it lock its memory: the shipped unit has LimitMEMLOCK=infinity; by hand, "
            "`ulimit -l unlimited` (or `USER - memlock unlimited` in limits.d)"
        )
    if not fixes:
        return Check("acquisition", "ok", f"{what}, memory locked")
    memory = "memory locked" if device.memory_locked else "memory not locked"
    return Check(
        "acquisition",
        "warn",
        f"{what}, {memory}: work beside it or memory pressure can cost conversions",
        "; ".join(fixes),
    )


def check_acquisition(*, target: str, token: str | None, reachable: bool) -> Check:
    """How the daemon's running acquisition is served (``eegpi status``'s device line)."""
    if not reachable:
        return Check("acquisition", "skip", "no daemon to ask")
    from eegpi.cli.client import ControlClient
    from eegpi.cli.errors import CliError
    from eegpi.rpc import convert
    from eegpi.v1 import control_pb2 as pb

    try:
        with ControlClient(target, token=token, timeout=10.0) as client:
            reply = client.call(client.pipelines.GetStatus, pb.GetStatusRequest(name=""))
    except CliError as exc:
        return Check("acquisition", "fail", f"the daemon could not report its pipelines: {exc}")
    running = [
        (s.name, s.device)
        for s in (convert.pipeline_status_from_pb(m) for m in reply.pipelines)
        if s.device is not None and s.device.reader
    ]
    if not running:
        return Check("acquisition", "skip", "no pipeline is acquiring")
    checks = [acquisition_verdict(name, device) for name, device in running]
    worst = next((c for c in checks if c.status != "ok"), checks[0])
    if len(checks) > 1:
        detail = "; ".join(c.detail for c in checks)
        return dataclasses.replace(worst, detail=detail)
    return worst
