"""Headless Chromium driven over the DevTools protocol, collecting what the console reports.

The tab starts blank, the Runtime and Log domains are enabled, and only then is the viewer
loaded, so errors while its modules load are caught too. Screenshots go under
build/test-artifacts/viewer/ (named by test, at desktop and phone sizes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "viewer"
DESKTOP = (1280, 800)
PHONE = (390, 844)
CALL_TIMEOUT_S = 60.0


class Tab:
    """One page: DevTools calls, page-state polling, console problems, screenshots."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.problems: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                future = self.replies.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                self._note(message.get("method", ""), message.get("params", {}))

    def _note(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
            self.problems.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.problems.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            where = entry.get("url", "")
            self.problems.append(f"log {entry.get('source')}: {entry.get('text')} {where}")

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[self.next_id] = future
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    async def poll(
        self, expression: str, done: Callable[[Any], bool], timeout: float = 60.0
    ) -> Any:
        """Evaluate ``expression`` until ``done(value)``; fails with the last value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        value = await self.evaluate(expression)
        while not done(value):
            assert loop.time() < deadline, f"page never reached the state; last: {value!r}"
            await self.frames(2)  # the page's own clock: the next frames may change its state
            value = await self.evaluate(expression)
        return value

    async def frames(self, count: int) -> None:
        """Wait until the page has rendered ``count`` more animation frames."""
        await self.evaluate(
            f"new Promise((done) => {{ let n = {count}; const step = () => --n ? "
            "requestAnimationFrame(step) : done(true); requestAnimationFrame(step); })"
        )

    async def state(self) -> dict[str, Any]:
        value: dict[str, Any] = await self.evaluate(
            "JSON.parse(JSON.stringify(window.eegpiViewer || {}))"
        )
        return value

    async def viewport(self, size: tuple[int, int], mobile: bool) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=size[0],
            height=size[1],
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )
        await self.frames(3)

    async def screenshots(self, name: str) -> list[Path]:
        """Save the page at desktop and phone sizes as ``name-desktop.png``, ``name-phone.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        saved = []
        for label, size, mobile in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
            await self.viewport(size, mobile)
            shot = await self.call("Page.captureScreenshot", format="png")
            path = ARTIFACTS / f"{name}-{label}.png"
            path.write_bytes(base64.b64decode(shot["data"]))
            saved.append(path)
        await self.viewport(DESKTOP, False)
        return saved


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process) -> tuple[str, str]:
    """Chromium writes its DevTools port to a file in the profile; read it once it is there."""
    port_file = profile / "DevToolsActivePort"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline and proc.returncode is None:
        if port_file.exists() and port_file.read_text().count("\n") >= 1:
            port, path = port_file.read_text().split("\n")[:2]
            return port, path
        await asyncio.sleep(0.1)  # polls a file Chromium writes; there is no event for it
    raise AssertionError(f"chromium wrote no {port_file} (exit code {proc.returncode})")


@contextlib.asynccontextmanager
async def open_page(url: str, profile: Path) -> AsyncIterator[Tab]:
    """Headless Chromium showing ``url`` at desktop size, console watched from the start."""
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port, browser_path = await _devtools_port(profile, proc)
        async with connect(f"ws://127.0.0.1:{port}{browser_path}", max_size=2**26) as ws:
            browser = Tab(ws)
            targets = await browser.call("Target.getTargets")
            page = next(t for t in targets["targetInfos"] if t["type"] == "page")
            browser.reader.cancel()
        async with connect(
            f"ws://127.0.0.1:{port}/devtools/page/{page['targetId']}", max_size=2**26
        ) as ws:
            tab = Tab(ws)
            try:
                for domain in ("Runtime", "Log", "Page"):
                    await tab.call(f"{domain}.enable")
                await tab.call("Page.navigate", url=url)
                yield tab
            finally:
                tab.reader.cancel()
    finally:
        proc.kill()
        await proc.wait()
