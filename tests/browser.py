"""A real headless Chromium, driven over the DevTools protocol with aiohttp's WebSocket client.

No browser-automation package: Chromium speaks CDP on a local port, and a page is
driven with a handful of commands (navigate, evaluate, screenshot). Only
127.0.0.1 pages are visited; the flags keep Chromium off the network otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-port=0",
    "--window-size=1100,800",
)
PATIENCE = 30.0


class Page:
    """One browser tab."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            else:
                self._events.put_nowait(data)

    async def send(self, method: str, **params: object) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        async with asyncio.timeout(PATIENCE):
            reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _loaded(self) -> None:
        async with asyncio.timeout(PATIENCE):
            while (await self._events.get()).get("method") != "Page.loadEventFired":
                pass

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self._loaded()

    async def run(self, script: str) -> Any:
        """Evaluate JavaScript in the page and return its value."""
        result = await self.send("Runtime.evaluate", expression=script, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def submit(self, form_selector: str, **fields: str) -> None:
        """Fill a form's fields by name, submit it as a person would, wait for the next page."""
        assignments = "".join(
            f"f.querySelector({json.dumps(f'[name={name}]')}).value = {json.dumps(value)};"
            for name, value in fields.items()
        )
        script = (
            f"(() => {{ const f = document.querySelector({json.dumps(form_selector)});"
            f" {assignments} f.requestSubmit(); }})()"
        )
        await self.run(script)
        await self._loaded()

    async def text(self) -> str:
        return str(await self.run("document.body.innerText"))

    async def url(self) -> str:
        return str(await self.run("location.href"))

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    """Start headless Chromium with a fresh profile and hand out one page."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(PATIENCE):
            # Chromium writes its port into the profile once it listens; nothing to await but that.
            while not (port := _devtools_port(profile)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http:
            async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
                target = await response.json()
            ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            await page.send("Page.enable")
            try:
                yield page
            finally:
                await page.close()
    finally:
        process.terminate()
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(process.wait(), 10)


def _devtools_port(profile: Path) -> int:
    port_file = profile / "DevToolsActivePort"
    text = port_file.read_text().split() if port_file.exists() else []
    return int(text[0]) if text else 0


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
