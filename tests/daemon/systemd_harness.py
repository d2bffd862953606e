"""What systemd sees of a daemon: a real NOTIFY_SOCKET, and `eegpi serve` started beside it.

The socket is the one systemd reads (a unix datagram socket named in ``NOTIFY_SOCKET``); the
daemon is a real ``eegpi serve --mock`` subprocess. Waits are on messages and log lines with
generous timeouts, never on sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import Daemon, _pump, serve_command

LISTENING_RE = re.compile(r"eegpi listening: grpc ([\d.]+):(\d+), websocket ws://[^:]+:(\d+)/")
WAIT_S = 60.0


class NotifySocket:
    """A bound AF_UNIX/SOCK_DGRAM socket; every datagram is kept as a dict of its fields."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self.messages: list[dict[str, str]] = []
        self._queue: queue.Queue[dict[str, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            fields["_at"] = f"{time.monotonic():.6f}"
            self.messages.append(fields)
            self._queue.put(fields)

    def close(self) -> None:
        self._sock.close()

    def wait_for(
        self, what: Callable[[dict[str, str]], bool], timeout: float = WAIT_S, desc: str = ""
    ) -> dict[str, str]:
        """The next message (after those already consumed) for which ``what`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self._queue.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"no notify message {desc} within {timeout} s; got: {self.messages}"
                ) from None
            if what(msg):
                return msg

    def wait_field(self, key: str, value: str | None = None, timeout: float = WAIT_S) -> str:
        def match(m: dict[str, str]) -> bool:
            return key in m and (value is None or m[key] == value)

        return self.wait_for(match, timeout, f"with {key}={value or '*'}")[key]

    def seen(self, key: str, value: str) -> bool:
        return any(m.get(key) == value for m in self.messages)


@contextmanager
def serve_under_notify(
    tmp_path: Path,
    *extra: str,
    config: str | None = None,
    autostart: tuple[str, ...] = ("default",),
    pipelines: Path | None = None,
    watchdog_s: float = 1.0,
) -> Iterator[tuple[Daemon, NotifySocket]]:
    """`eegpi serve --mock` with NOTIFY_SOCKET and WATCHDOG_USEC, once it has bound its ports."""
    sock = NotifySocket(tmp_path / "notify.sock")
    args = list(extra)
    if config is not None:
        cfg = tmp_path / "eegpi.yaml"
        cfg.write_text(config)
        args += ["--config", str(cfg)]
    cmd = serve_command(*args, pipelines=pipelines, autostart=autostart)
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "NOTIFY_SOCKET")}
    env.update(NOTIFY_SOCKET=str(sock.path), WATCHDOG_USEC=str(int(watchdog_s * 1e6)))
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    d = Daemon(proc, 0, 0)
    threading.Thread(target=_pump, args=(proc, d), daemon=True).start()
    try:
        m = LISTENING_RE.search(d.wait_for_line(LISTENING_RE.pattern, timeout=WAIT_S))
        assert m is not None
        d.grpc_port, d.ws_port = int(m.group(2)), int(m.group(3))
        yield d, sock
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def children(pid: int) -> dict[int, str]:
    """Live (non-zombie) direct children of ``pid``: pid -> command line."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry)] = cmdline
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def grpcurl(venv_bin: Path, target: str, method: str, data: str = "{}") -> str:
    """One call with the real grpcurl; returns its stdout (raises on a non-zero exit)."""
    res = subprocess.run(
        [str(venv_bin / "grpcurl"), "-plaintext", "-max-time", "30", "-d", data, target, method],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def health(venv_bin: Path, target: str, service: str = "") -> str:
    out = grpcurl(venv_bin, target, "grpc.health.v1.Health/Check", f'{{"service": "{service}"}}')
    m = re.search(r'"status":\s*"(\w+)"', out)
    assert m is not None, out
    return m.group(1)
