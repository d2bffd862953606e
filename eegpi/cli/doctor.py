"""``eegpi doctor``: is this machine ready to be an appliance, and if not, what to do.

Each check says ok, warn, fail or skip, with one line to fix what is wrong. The exit status is
1 when any check fails (warnings do not count), so provisioning can gate on it. ``--mock``
checks against the emulated ADS1299: the SPI and GPIO checks are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from eegpi.cli.doctor_check import Check
from eegpi.cli.doctor_daemon import (
    check_acquisition,
    check_chip,
    check_config,
    check_daemon,
    check_pipelines,
    check_ports,
    daemon_target,
)
from eegpi.cli.doctor_host import (
    check_clock,
    check_governor,
    check_gpio,
    check_groups,
    check_power,
    check_spi,
)
from eegpi.cli.errors import EXIT_FAILED, EXIT_OK
from eegpi.cli.output import print_json
from eegpi.daemon.config import AppConfig
from eegpi.exc import ConfigError

__all__ = ["cmd_doctor", "run_checks"]


def run_checks(
    config: str | None, *, mock: bool, target: str | None, token: str | None
) -> list[Check]:
    """Every check, in the order a user fixes things: config, hardware, system, daemon, chip,
    and how the daemon's acquisition is served."""
    config_check, loaded = check_config(config)
    cfg = loaded or AppConfig()
    if mock:
        cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, backend="mock"))
    if token is None and loaded is not None:
        try:
            token = cfg.resolved_token() or None
        except ConfigError:
            token = None  # reported by the config check
    if target is None:
        try:
            target = daemon_target(cfg)
        except ConfigError:
            target = "127.0.0.1:50051"
    checks = [config_check]
    if loaded is not None:
        checks.append(check_pipelines(cfg))
    daemon = check_daemon(target, token)
    emulated = cfg.device.backend == "mock"
    if emulated:
        why = "emulated ADS1299 (--mock or device.backend: mock)"
        checks += [Check(n, "skip", why) for n in ("spi", "spi access", "gpio", "drdy line")]
        spi_present = False
    else:
        spi = check_spi(cfg.device)
        spi_present = spi[0].status == "ok"
        checks += spi
        checks += check_gpio(cfg.device, daemon_running=daemon.reachable)
    checks += check_groups()
    checks += [check_clock(), check_power(), check_governor()]
    checks.append(daemon.check)
    checks.append(check_ports(cfg, target=target, daemon_reachable=daemon.reachable))
    checks.append(
        check_chip(
            cfg, target=target, token=token, reachable=daemon.reachable, spi_present=spi_present
        )
    )
    checks.append(check_acquisition(target=target, token=token, reachable=daemon.reachable))
    return checks


_MARK = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def render(checks: list[Check]) -> str:
    """The human table: status, check, detail, and an indented fix under each problem."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{_MARK[c.status]:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in ("warn", "fail"):
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        lines.append(f"\n{failed} check(s) failed, {warned} warning(s): fix the FAIL lines first")
    elif warned:
        lines.append(f"\nno check failed; {warned} warning(s)")
    else:
        lines.append("\nall checks passed")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": not any(c.status == "fail" for c in checks),
        "failed": sum(c.status == "fail" for c in checks),
        "warnings": sum(c.status == "warn" for c in checks),
        "checks": [dataclasses.asdict(c) for c in checks],
    }


def cmd_doctor(args: argparse.Namespace) -> int:
    given: set[str] = getattr(args, "given", set())
    checks = run_checks(
        args.config,
        mock=args.mock,
        target=args.grpc if "grpc" in given else None,
        token=args.token,
    )
    if args.json:
        print_json(as_json(checks))
    else:
        print(render(checks))
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK
