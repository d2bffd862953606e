"""Who may use the WebSocket port: the request's Host and Origin, and the bearer token.

Every check runs in the HTTP handshake, so a refusal is a status a client can act on:

- **Host** must be a name this appliance answers to (loopback names, its hostname and
  ``hostname.local``, its interface addresses, ``websocket.allowed_hosts``). A page that
  rebinds its own DNS name to the appliance's address sends its own name as Host, so this
  closes DNS rebinding on every path, the viewer included (403).
- **Origin** (only browsers send it) must be the viewer's own origin (a name above, on this
  port) or one of ``websocket.allowed_origins``: any other web page the operator visits is
  refused (403) instead of reading the EEG.
- **Token**: when one is configured, ``/ws/data`` and ``/healthz`` need it (401 otherwise).
  Programs send ``Authorization: Bearer TOKEN``; browsers cannot set headers on a WebSocket,
  so they offer the subprotocols ``eegpi.bearer.<base64url token>`` and ``eegpi.v1``, and the
  server selects ``eegpi.v1`` (it never echoes the token). Tokens are compared in constant
  time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import http
import ipaddress
import itertools
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from websockets.datastructures import Headers

__all__ = [
    "BEARER_SUBPROTOCOL_PREFIX",
    "SUBPROTOCOL",
    "AccessPolicy",
    "HostNames",
    "Refusal",
    "bearer_subprotocol",
    "interface_addresses",
    "split_host",
]

SUBPROTOCOL = "eegpi.v1"
"""The subprotocol the server selects when a client offers it (browsers sending a token must)."""
BEARER_SUBPROTOCOL_PREFIX = "eegpi.bearer."
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
REFRESH_INTERVAL_S = 5.0
"""Interface addresses change (DHCP); an unknown Host re-reads them at most this often."""


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer instead of the page or the upgrade."""

    status: http.HTTPStatus
    message: str
    """For the client: says what to do. Never contains the token."""
    log: str
    """For the log: says what was wrong. Never contains the token or a query string."""
    headers: tuple[tuple[str, str], ...] = ()


def bearer_subprotocol(token: str) -> str:
    """The subprotocol a browser offers to carry ``token`` (base64url, no padding)."""
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return BEARER_SUBPROTOCOL_PREFIX + encoded


def split_host(value: str) -> tuple[str, int | None]:
    """``"Eegpi.local.:9001"`` -> ``("eegpi.local", 9001)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    text = value.strip().lower()
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        host, rest = (text[1:end], text[end + 1 :]) if end > 0 else (text, "")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if port_text.isdigit():
            port = int(port_text)
    else:
        host = text  # a bare name, or a bare IPv6 address
    return host.rstrip("."), port


def _normal(host: str) -> str:
    """One spelling per address: ``0:0::1`` and ``::1`` are the same host."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def interface_addresses() -> set[str]:
    """Every local IPv4 and IPv6 address of this machine (Linux /proc; empty elsewhere)."""
    found: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if line.strip() == "/32 host LOCAL" and "|--" in previous:
                found.add(previous.split("|--", 1)[1].strip())
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(ipaddress.IPv6Address(int(line.split()[0], 16)).compressed)
    except (OSError, ValueError, IndexError):
        pass
    return found


@dataclass
class HostNames:
    """The names and addresses this appliance answers to, for the Host check."""

    listen_host: str
    extra: frozenset[str] = frozenset()
    """``websocket.allowed_hosts``: names or addresses, lower case; ``*`` disables the check."""
    _names: set[str] = field(default_factory=set)
    _refreshed: float = -REFRESH_INTERVAL_S

    def __post_init__(self) -> None:
        self.extra = frozenset(_normal(split_host(h)[0]) for h in self.extra)
        self._refresh()

    def _refresh(self) -> None:
        names = set(LOOPBACK_NAMES) | set(self.extra)
        if self.listen_host not in ("", "0.0.0.0", "::"):
            names.add(_normal(self.listen_host.lower()))
        hostname = socket.gethostname().lower().rstrip(".")
        if hostname:
            short = hostname.split(".", 1)[0]
            names |= {hostname, f"{hostname}.local", short, f"{short}.local"}
        names |= interface_addresses()
        self._names = names
        self._refreshed = time.monotonic()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def allows(self, host: str) -> bool:
        """Whether a Host (or Origin host), without port, is one of ours."""
        if "*" in self.extra:
            return True
        host = _normal(host)
        if host in self._names or _is_loopback(host):
            return True
        if time.monotonic() - self._refreshed >= REFRESH_INTERVAL_S:
            self._refresh()
            return host in self._names
        return False


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _printable(value: str, limit: int = 100) -> str:
    return repr(value[:limit])


class AccessPolicy:
    """Host, Origin and token checks for one server (see the module docstring)."""

    def __init__(
        self,
        *,
        listen_host: str,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        token: str | None = None,
    ) -> None:
        self.hosts = HostNames(listen_host, frozenset(h.lower() for h in allowed_hosts))
        self._origins = frozenset(o.strip().lower().rstrip("/") for o in allowed_origins)
        self._token = token.encode() if token else None
        self.port = 0
        """The bound port (set once listening): the viewer's own origin uses it."""

    @property
    def token_required(self) -> bool:
        return self._token is not None

    def check_host(self, headers: Headers) -> Refusal | None:
        """Every path: the Host must be ours (no Host at all: not a browser, nothing to check)."""
        values = headers.get_all("Host")
        if not values:
            return None
        if len(values) > 1:
            return Refusal(
                http.HTTPStatus.BAD_REQUEST,
                "one Host header per request\n",
                f"{len(values)} Host headers",
            )
        host, _ = split_host(values[0])
        if self.hosts.allows(host):
            return None
        return Refusal(
            http.HTTPStatus.FORBIDDEN,
            f"host {_printable(host)} is not a name of this eegpi; use its address or hostname, "
            "or add the name to websocket.allowed_hosts\n",
            f"host {_printable(host)} is not a name of this eegpi",
        )

    def check_origin(self, headers: Headers) -> Refusal | None:
        """``/ws/data``: no Origin (not a browser), the viewer's own, or a listed one."""
        origin = headers.get("Origin")
        if origin is None or self.origin_allowed(origin):
            return None
        return Refusal(
            http.HTTPStatus.FORBIDDEN,
            f"origin {_printable(origin)} may not read this eegpi's data; only its own viewer "
            "and the origins in websocket.allowed_origins may\n",
            f"origin {_printable(origin)} is not allowed",
        )

    def origin_allowed(self, origin: str) -> bool:
        normal = origin.strip().lower().rstrip("/")
        if "*" in self._origins or normal in self._origins:
            return True
        try:
            parts = urlsplit(normal)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        host = parts.hostname
        if parts.scheme not in ("http", "https") or host is None or port != self.port:
            return False
        return self.hosts.allows(host)

    def check_token(self, headers: Headers) -> Refusal | None:
        """``/ws/data`` and ``/healthz`` when a token is configured."""
        if self._token is None:
            return None
        given = _bearer(headers)
        if given is not None and hmac.compare_digest(given, self._token):
            return None
        what = "no token" if given is None else "a wrong token"
        return Refusal(
            http.HTTPStatus.UNAUTHORIZED,
            "this eegpi requires a token: send 'Authorization: Bearer <token>', or from a "
            f"browser offer the subprotocols '{BEARER_SUBPROTOCOL_PREFIX}<base64url token>' "
            f"and '{SUBPROTOCOL}'\n",
            f"{what} given",
            (("WWW-Authenticate", 'Bearer realm="eegpi"'),),
        )


def _bearer(headers: Headers) -> bytes | None:
    """The token a request carries, from Authorization or the bearer subprotocol."""
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        return value.strip().encode() if scheme.lower() == "bearer" else b""
    for header in headers.get_all("Sec-WebSocket-Protocol"):
        for offered in header.split(","):
            offered = offered.strip()
            if offered.startswith(BEARER_SUBPROTOCOL_PREFIX):
                encoded = offered[len(BEARER_SUBPROTOCOL_PREFIX) :]
                try:
                    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                except (binascii.Error, ValueError):
                    return b""
    return None
