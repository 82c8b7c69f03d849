"""Debian's headless chromium on a closed network, driven over the DevTools protocol.

Every host name resolves to nothing but 127.0.0.1 (``--host-resolver-rules``) and every proxied
request goes to a port nobody listens on (``--proxy-server``; loopback bypasses proxies), so a
page can load only what the service on loopback serves. The protocol lets a test read what the
page rendered (shadow roots included, which ``--dump-dom`` leaves out) and every URL the page
requested.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from local_infra.ports import free_port
from tests.waiting import wait_for

CLOSED_NETWORK = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a free loopback port (in this event loop); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, within=10, what="the docs server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Page:
    """One tab: navigate, evaluate JavaScript, and the URLs it requested."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session: str | None = None
        self.requested: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._connection:
            message = json.loads(raw)
            if "id" in message:
                self._pending.pop(message["id"]).set_result(message)
            elif message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        await self._connection.send(json.dumps(message))
        answer = await asyncio.wait_for(future, 30)
        assert "error" not in answer, f"{method}: {answer['error']}"
        result: dict[str, Any] = answer["result"]
        return result

    async def open(self) -> None:
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        self._session = attached["sessionId"]
        await self.call("Network.enable")
        await self.call("Page.enable")

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def browser_page(chromium: Path, profile: Path) -> AsyncIterator[Page]:
    """A tab of a fresh headless chromium (profile: an empty directory) on a closed network."""
    refused = free_port()  # nothing listens there: every proxied request is refused
    process = await asyncio.create_subprocess_exec(
        str(chromium),
        *CLOSED_NETWORK,
        f"--proxy-server=http://127.0.0.1:{refused}",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        await wait_for(
            lambda: len(active.read_text().splitlines()) == 2 if active.exists() else False,
            within=30,
            what="chromium's DevTools port",
        )
        port, path = active.read_text().splitlines()
        async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as connection:
            page = Page(connection)
            try:
                await page.open()
                yield page
            finally:
                await page.close()
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
