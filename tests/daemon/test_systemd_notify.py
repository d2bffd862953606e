"""What a real `eegpi serve` tells systemd over NOTIFY_SOCKET, and health, under chip faults.

Each test binds the datagram socket systemd would read, runs the daemon with NOTIFY_SOCKET and
a 1 s WATCHDOG_USEC, and injects the fault through the emulator's config.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import REPO, Daemon
from tests.daemon.systemd_harness import WAIT_S, children, grpcurl, health, serve_under_notify

NO_DRDY = "no DRDY from the ADS1299"
WATCH = "grpc.health.v1.Health/Watch"
UP = re.compile(r"serving on \S+ and :\d+; running: default$")


def _retry(initial: float, attempts: int) -> str:
    return f"autostart_retry: {{initial_delay_s: {initial}, max_attempts: {attempts}}}\n"


def test_ready_only_after_samples_then_watchdog_keeps_pinging(
    tmp_path: Path, venv_bin: Path
) -> None:
    with serve_under_notify(tmp_path) as (d, sock):
        msg = sock.wait_for(lambda m: m.get("READY") == "1", desc="READY=1")
        assert "running: default" in msg["STATUS"] and "waiting" not in msg["STATUS"]
        d.wait_for_line(r"eegpi ready: grpc")
        for _ in range(3):  # pings keep coming after READY
            sock.wait_field("WATCHDOG", "1")
        out = grpcurl(venv_bin, d.grpc_target, "eegpi.v1.PipelineControl/GetStatus")
        m = re.search(r'"samples_acquired":\s*"?(\d+)', out)
        assert m is not None and int(m.group(1)) > 0, out
        assert health(venv_bin, d.grpc_target) == "SERVING"
        assert d.terminate() == 0
    assert sock.seen("STOPPING", "1")


def test_stuck_drdy_at_start_is_retried_then_the_daemon_fails_without_ready(
    tmp_path: Path,
) -> None:
    cfg = "device: {emulator: {stuck_drdy_after: 0}}\n" + _retry(0.2, 3)
    with serve_under_notify(tmp_path, config=cfg) as (d, sock):
        down = sock.wait_for(
            lambda m: "pipeline default down" in m.get("STATUS", ""), desc="STATUS= down"
        )
        assert NO_DRDY in down["STATUS"] and "attempt 2 of 3 in 0.2 s" in down["STATUS"]
        assert d.proc.wait(WAIT_S) == 1  # systemd's Restart=on-failure applies
    log = "\n".join(d.lines)
    assert log.count("autostart pipeline default is down") == 2  # two retries after the first
    assert "autostart pipeline 'default' failed 3 time(s) in a row" in log
    assert any(line.endswith("daemon: stopped") for line in d.lines)  # a clean shutdown
    assert not sock.seen("READY", "1")
    assert any("EXTEND_TIMEOUT_USEC" in m for m in sock.messages)  # start kept alive meanwhile


def test_no_chip_health_not_serving_while_grpc_answers(tmp_path: Path, venv_bin: Path) -> None:
    # the first retry is 30 s away: the checks below all see the pipeline down
    cfg = "device: {emulator: {miso_stuck: 0}}\n" + _retry(30, 1000)
    with serve_under_notify(tmp_path, config=cfg) as (d, sock):
        sock.wait_for(lambda m: "no ADS1299" in m.get("STATUS", ""), desc="STATUS= no chip")
        assert health(venv_bin, d.grpc_target) == "NOT_SERVING"
        assert health(venv_bin, d.grpc_target, "eegpi.v1.PipelineControl") == "SERVING"
        out = grpcurl(
            venv_bin, d.grpc_target, "eegpi.v1.PipelineControl/GetStatus", '{"name": "default"}'
        )
        assert "no ADS1299" in out
        assert d.terminate() == 0  # stopped on purpose while retrying: a clean exit
    assert not sock.seen("READY", "1")


def _watch_health(venv_bin: Path, target: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [str(venv_bin / "grpcurl"), "-plaintext", "-d", '{"service": ""}', target, WATCH],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r'"status":\s*"(\w+)"', line)
            if m:
                seen.append(m.group(1))

    threading.Thread(target=read, daemon=True).start()
    return proc, seen


def test_chip_failing_mid_run_flips_health_and_status_then_the_unit_fails(
    tmp_path: Path, venv_bin: Path
) -> None:
    # every run of the emulated chip stops converting after 3 s: it comes back when restarted
    # (health flips back) and fails again, until the supervisor gives up
    cfg = "device: {emulator: {stuck_drdy_after: 750}}\n" + _retry(0.5, 3)
    with serve_under_notify(tmp_path, config=cfg) as (d, sock):
        sock.wait_field("READY", "1")
        watcher, seen = _watch_health(venv_bin, d.grpc_target)
        try:
            down = sock.wait_for(
                lambda m: "pipeline default down" in m.get("STATUS", ""), desc="STATUS= down"
            )
            assert NO_DRDY in down["STATUS"] and "attempt 2 of 3" in down["STATUS"]
            sock.wait_for(lambda m: bool(UP.match(m.get("STATUS", ""))), desc="back up")
            assert d.proc.wait(WAIT_S) == 1
            watcher.wait(WAIT_S)  # the stream ends with the server
        finally:
            if watcher.poll() is None:
                watcher.kill()
    # Watch reports every change: up, down, up again, down ... and NOT_SERVING at shutdown
    assert seen[:3] == ["SERVING", "NOT_SERVING", "SERVING"], seen
    assert seen[-1] == "NOT_SERVING", seen
    assert "autostart pipeline default delivers samples again" in "\n".join(d.lines)


def test_quick_stop_start_does_not_starve_the_watchdog(tmp_path: Path, venv_bin: Path) -> None:
    # At 1000 SPS the first run's counter gets far ahead of a fresh run's; a baseline carried
    # over from the old run would make the new run look stalled and cost a ping.
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    text = (REPO / "pipelines" / "default.yaml").read_text()
    (pipelines / "default.yaml").write_text(text.replace("sample_rate: 250", "sample_rate: 1000"))
    get = "eegpi.v1.PipelineControl/GetStatus"
    with serve_under_notify(tmp_path, pipelines=pipelines, watchdog_s=2.0) as (d, sock):
        sock.wait_field("READY", "1")
        old = 0
        while old < 4000:  # wait for the condition: counters only grow
            sock.wait_field("WATCHDOG", "1")
            out = grpcurl(venv_bin, d.grpc_target, get, '{"name": "default"}')
            m = re.search(r'"samples_acquired":\s*"?(\d+)', out)
            old = int(m.group(1)) if m else 0
        stop = "eegpi.v1.PipelineControl/StopPipeline"
        grpcurl(venv_bin, d.grpc_target, stop, '{"name": "default"}')
        start = "eegpi.v1.PipelineControl/StartPipeline"
        grpcurl(venv_bin, d.grpc_target, start, '{"name": "default"}')
        started = time.monotonic()
        for _ in range(2):
            sock.wait_for(
                lambda m: "WATCHDOG" in m and float(m["_at"]) > started, desc="a new ping"
            )
        out = grpcurl(venv_bin, d.grpc_target, get, '{"name": "default"}')
        m = re.search(r'"samples_acquired":\s*"?(\d+)', out)
        assert m is not None
        assert int(m.group(1)) < old, (m.group(1), old)  # still behind the old run: judged alone
        assert d.terminate() == 0
    # every check through the restart passed: no ping was held back
    assert not [line for line in d.lines if "acquired nothing" in line], d.lines


def test_sighup_reloads_and_keeps_streaming(tmp_path: Path, venv_bin: Path) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "default.yaml").write_text((REPO / "pipelines" / "default.yaml").read_text())
    get = "eegpi.v1.PipelineControl/GetStatus"
    with serve_under_notify(tmp_path, pipelines=pipelines) as (d, sock):
        sock.wait_field("READY", "1")
        before = grpcurl(venv_bin, d.grpc_target, get, '{"name": "default"}')
        spectrum = (REPO / "pipelines" / "spectrum.yaml").read_text()
        (pipelines / "spectrum.yaml").write_text(spectrum)
        d.proc.send_signal(signal.SIGHUP)
        reloading = sock.wait_for(lambda m: m.get("RELOADING") == "1", desc="RELOADING=1")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        sock.wait_field("READY", "1")
        d.wait_for_line(r"SIGHUP: pipelines reloaded from .*: default, spectrum")
        listed = grpcurl(venv_bin, d.grpc_target, "eegpi.v1.PipelineControl/ListPipelines")
        assert '"spectrum"' in listed
        after = grpcurl(venv_bin, d.grpc_target, get, '{"name": "default"}')
        assert "PIPELINE_STATE_RUNNING" in after
        start = re.compile(r'"start_time":\s*"([^"]+)"')
        assert start.findall(after) == start.findall(before)  # the same run goes on
        assert d.proc.poll() is None
        assert d.terminate() == 0


def test_an_autostart_pipeline_stopped_by_the_operator_is_not_restarted(
    tmp_path: Path, venv_bin: Path
) -> None:
    with serve_under_notify(tmp_path) as (d, sock):
        sock.wait_field("READY", "1")
        stop = "eegpi.v1.PipelineControl/StopPipeline"
        grpcurl(venv_bin, d.grpc_target, stop, '{"name": "default"}')
        d.wait_for_line(r"autostart pipeline default stopped by the operator")
        sock.wait_for(lambda m: m.get("STATUS", "").endswith("; no pipeline running"))
        assert health(venv_bin, d.grpc_target) == "SERVING"  # an idle appliance serves
        assert d.terminate() == 0
    assert sum("pipeline default running" in line for line in d.lines) == 1


def test_a_pipeline_started_by_hand_that_fails_is_reported_not_restarted(
    tmp_path: Path, venv_bin: Path
) -> None:
    cfg = "device: {emulator: {stuck_drdy_after: 250}}\n" + _retry(0.2, 2)
    with serve_under_notify(tmp_path, config=cfg, autostart=()) as (d, sock):
        sock.wait_field("READY", "1")  # nothing to wait for
        start = "eegpi.v1.PipelineControl/StartPipeline"
        grpcurl(venv_bin, d.grpc_target, start, '{"name": "default"}')
        failed = sock.wait_for(lambda m: "default failed (" in m.get("STATUS", ""))
        assert NO_DRDY in failed["STATUS"]
        assert health(venv_bin, d.grpc_target) == "SERVING"
        assert d.terminate() == 0
    log = "\n".join(d.lines)
    assert log.count("pipeline default running") == 1 and "is down" not in log


def _wait_count(d: Daemon, text: str, n: int) -> None:
    """Until the daemon has logged ``n`` lines containing ``text``."""
    while sum(text in line for line in d.lines) < n:
        try:
            line = d._queue.get(timeout=WAIT_S)
        except queue.Empty:
            lines = "\n".join(d.lines)
            raise AssertionError(f"fewer than {n} lines with {text!r}:\n{lines}") from None
        if line is None:
            raise AssertionError("daemon exited; log:\n" + "\n".join(d.lines))


def test_a_frozen_acquisition_process_stops_the_pings(tmp_path: Path) -> None:
    with serve_under_notify(tmp_path) as (d, sock):
        sock.wait_field("READY", "1")
        sock.wait_field("WATCHDOG", "1")
        acquisition = [
            pid
            for pid, cmd in children(d.proc.pid).items()
            if "spawn_main" in cmd and "resource_tracker" not in cmd
        ]
        assert len(acquisition) == 1, children(d.proc.pid)
        os.kill(acquisition[0], signal.SIGSTOP)  # the stall systemd's watchdog must see
        stalled = "watchdog: pipeline(s) default acquired nothing"
        try:
            _wait_count(d, stalled, 1)
            frozen = len(sock.messages)
            _wait_count(d, stalled, 4)  # three more checks in a row, none of them pinging
            assert not any("WATCHDOG" in m for m in sock.messages[frozen:]), sock.messages
        finally:
            os.kill(acquisition[0], signal.SIGCONT)
        sock.wait_field("WATCHDOG", "1")  # progress again: pings again
        assert d.terminate() == 0
