"""The daemon's configuration: /etc/eegpi/eegpi.yaml, then command-line overrides.

Example (every key optional; unknown keys are an error, so a typo never goes unnoticed)::

    device:
      backend: auto            # auto | pi | mock
      gpio: auto               # auto | gpiod | rpigpio (RPi.GPIO / rpi-lgpio fallback)
      spi_bus: 0
      spi_device: 0
      drdy_pin: 26
    pipelines_dir: /etc/eegpi/pipelines
    autostart: [default]
    autostart_retry:           # an autostart pipeline that fails is started again
      initial_delay_s: 1.0     # then 2, 4, 8 ... s
      max_delay_s: 30.0
      max_attempts: 5          # failures in a row before the daemon exits with status 1
      stable_s: 60.0           # a run this long clears the failure count
    data_dir: /var/lib/eegpi
    grpc:
      listen: 127.0.0.1:50051
      token: ""                # required to listen beyond loopback (or insecure: true)
      insecure: false
    websocket:
      listen: 127.0.0.1:9001
      allowed_origins: []      # pages besides the viewer that may read data; ["*"]: any page
      allowed_hosts: []        # names besides localhost, hostname(.local), interface addresses
      max_clients: 64
      max_clients_per_address: 32
      idle_timeout_s: 60       # a connection with no subscription this long is closed
                               # (the grpc token, when set, is required here too)
    discovery:                 # mDNS/DNS-SD: _eegpi._tcp (gRPC) and _http._tcp (viewer)
      enabled: true            # announced only where the servers listen (loopback stays local)
      name: ""                 # instance name; empty = the hostname
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegpi.exc import ConfigError
from eegpi.hardware.config import DeviceConfig
from eegpi.safe_yaml import clip_message, load_yaml_file, short_repr

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AppConfig",
    "AutostartRetry",
    "DiscoveryConfig",
    "GrpcConfig",
    "WebSocketConfig",
    "default_pipelines_dir",
    "from_mapping",
    "load_config",
    "split_hostport",
]

DEFAULT_CONFIG_PATH = Path("/etc/eegpi/eegpi.yaml")


@dataclass(frozen=True)
class GrpcConfig:
    listen: str = "127.0.0.1:50051"
    token: str = ""
    """Bearer token clients must send (``authorization: Bearer ...``); empty = none."""
    token_file: str = ""
    """Read the token from this file instead (keeps it out of the config)."""
    insecure: bool = False
    """Allow listening beyond loopback without a token. Say so explicitly or not at all."""


@dataclass(frozen=True)
class WebSocketConfig:
    listen: str = "127.0.0.1:9001"
    allowed_origins: tuple[str, ...] = ()
    """Web pages besides the viewer that may read data (e.g. ``http://lab-portal:8080``);
    ``"*"`` allows any page. Clients that send no Origin (programs) are always allowed."""
    allowed_hosts: tuple[str, ...] = ()
    """Names the appliance answers to besides loopback, its hostname, ``hostname.local`` and
    its interface addresses (e.g. a DNS alias); other Host headers get 403 (DNS rebinding)."""
    max_clients: int = 64
    max_clients_per_address: int = 32
    """WebSocket connections one IP address may hold; beyond it, HTTP 503."""
    idle_timeout_s: float = 60.0
    """A connection that holds no subscription this long is closed with 1008."""

    def __post_init__(self) -> None:
        if self.max_clients < 1 or self.max_clients_per_address < 1:
            raise ValueError("max_clients and max_clients_per_address must be at least 1")
        if self.idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be positive")


@dataclass(frozen=True)
class AutostartRetry:
    """How the daemon restarts a failed autostart pipeline before it gives up.

    Delays double from ``initial_delay_s`` up to ``max_delay_s``. After ``max_attempts``
    failures in a row the daemon stops and exits with status 1, so that systemd's
    ``Restart=on-failure`` and start limit take over; a run that delivers samples for
    ``stable_s`` seconds clears the count.
    """

    initial_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_attempts: int = 5
    stable_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("autostart_retry.max_attempts: must be at least 1")
        for name in ("initial_delay_s", "max_delay_s", "stable_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"autostart_retry.{name}: must not be negative")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1-based)."""
        return float(
            min(self.initial_delay_s * 2 ** min(max(failures - 1, 0), 30), self.max_delay_s)
        )


@dataclass(frozen=True)
class DiscoveryConfig:
    """How the daemon announces itself with mDNS/DNS-SD (``eegpi discover`` finds it).

    Each service is announced only where its server listens: on the LAN for a wildcard or LAN
    address, on loopback alone for a loopback address, so no one is told of a port they
    cannot reach.
    """

    enabled: bool = True
    name: str = ""
    """DNS-SD instance name; empty = the hostname. A clash on the LAN makes it "name-2"."""

    def __post_init__(self) -> None:
        if len(self.name.encode("utf-8")) > 63 or any(ord(c) < 32 for c in self.name):
            raise ValueError(
                "discovery.name: at most 63 bytes and no control characters (a DNS label)"
            )


@dataclass(frozen=True)
class AppConfig:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    pipelines_dir: str = ""
    """Empty: /etc/eegpi/pipelines when it exists, else the pipelines shipped with eegpi."""
    autostart: tuple[str, ...] = ()
    autostart_retry: AutostartRetry = field(default_factory=AutostartRetry)
    data_dir: str = "/var/lib/eegpi"
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    log_level: str = "info"

    def resolved_token(self) -> str:
        if self.grpc.token_file:
            try:
                token = Path(self.grpc.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"grpc.token_file: cannot read {self.grpc.token_file}: {exc}"
                ) from None
            if not token:
                # An empty file must not quietly turn authentication off.
                raise ConfigError(
                    f"grpc.token_file: {self.grpc.token_file} is empty; put the token in it"
                )
            return token
        return self.grpc.token


def load_config(path: str | Path | None) -> AppConfig:
    """Load the config file; ``None`` means the default path if it exists, else defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return AppConfig()
        path = DEFAULT_CONFIG_PATH
    p = Path(path)
    doc = load_yaml_file(p, "config file")  # YAML 1.2 booleans, bounded, duplicate keys refused
    if doc is None:
        doc = {}
    try:
        return from_mapping(AppConfig, doc, "")
    except ConfigError as exc:
        raise ConfigError(clip_message(f"{p}: {exc}")) from None


_T = typing.TypeVar("_T")


def from_mapping(cls: type[_T], doc: Any, where: str) -> _T:
    """Build a (nested) frozen dataclass from YAML, rejecting unknown keys and wrong types."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {short_repr(doc)}")
    assert dataclasses.is_dataclass(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(doc) - set(fields)
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise ConfigError(
            f"unknown key(s) {names} in {where or 'config'}; allowed: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in doc.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_mapping(hint, value if value is not None else {}, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {short_repr(value)}")
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(map(str, args))
            raise ConfigError(f"{where}: {short_repr(value)} is not one of {allowed}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {short_repr(value)}")
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {short_repr(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {short_repr(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {short_repr(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {short_repr(value)}")
        return value
    return value


def split_hostport(text: str, what: str) -> tuple[str, int]:
    """``"127.0.0.1:9001"`` -> ("127.0.0.1", 9001); ``[::1]:9001`` works too."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {short_repr(text)} is not HOST:PORT (e.g. 127.0.0.1:9001)")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(
            f"{what}: port {short_repr(port_s)} in {short_repr(text)} is not a number"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what}: port {port} out of range 0..65535")
    return host.strip("[]"), port


def default_pipelines_dir() -> Path:
    """Where pipelines live when the config does not say."""
    etc = Path("/etc/eegpi/pipelines")
    if etc.is_dir():
        return etc
    here = Path(__file__).resolve().parent.parent
    bundled = here / "pipelines"  # shipped inside the wheel
    if bundled.is_dir():
        return bundled
    return here.parent / "pipelines"  # a source checkout
