"""Runs the real grpcurl binary (from the test interpreter's bin directory) from async tests."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
TOKEN = "s3cret-token"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def grpcurl(
    target: str,
    *method: str,
    data: str | None = None,
    token: str | None = None,
    max_time: float = 10.0,
) -> Result:
    """Run the real grpcurl binary without blocking the event loop the server runs on."""
    cmd = [GRPCURL, "-plaintext", "-max-time", str(max_time)]
    if data is not None:
        cmd += ["-d", data]
    if token is not None:
        cmd += ["-H", f"authorization: Bearer {token}"]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        target,
        *method,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
