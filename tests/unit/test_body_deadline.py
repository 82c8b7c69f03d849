"""The request body deadline of RequestContextMiddleware, driven as an ASGI server drives it.

A body that stops arriving is answered 408 with the contract's error body and ``connection:
close`` (FastAPI's own 400 for a body it could not read is replaced), a body read whole in time is
served, and what a route reads after the body (waiting for a disconnect) has no deadline. The
real process, uvicorn included, is in tests/service/test_http_edge.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.types import Message

from class_management_service.http.middleware import RequestContextMiddleware
from class_management_service.observability.metrics import HttpMetrics

DEADLINE = 0.02


class _Body(BaseModel):
    name: str


def _service() -> tuple[RequestContextMiddleware, CollectorRegistry, list[float]]:
    app = FastAPI()
    disconnects_seen_at: list[float] = []

    @app.post("/things")
    async def create(body: _Body) -> dict[str, str]:
        return {"name": body.name}

    @app.post("/things/watch")
    async def watch(request: Request) -> dict[str, str]:
        body = await request.json()
        # What a streamed response does while it streams: wait for the client to go away.
        message = await request.receive()
        assert message["type"] == "http.disconnect"
        disconnects_seen_at.append(asyncio.get_running_loop().time())
        return {"name": body["name"]}

    registry = CollectorRegistry()
    middleware = RequestContextMiddleware(
        app, metrics=HttpMetrics(registry), max_body_bytes=1024, body_timeout_seconds=DEADLINE
    )
    return middleware, registry, disconnects_seen_at


async def _serve(
    middleware: RequestContextMiddleware, path: str, receive: Callable[[], Awaitable[Message]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await middleware(scope, receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in bodies)


def _requests_total(registry: CollectorRegistry, status: str) -> float | None:
    labels = {"method": "POST", "route": "/things", "status": status}
    return registry.get_sample_value("http_requests_total", labels)


async def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed() -> None:
    middleware, registry, _ = _service()
    parts = [{"type": "http.request", "body": b'{"name": "ha', "more_body": True}]
    client_gone = asyncio.Event()

    async def receive() -> Message:
        if parts:
            return parts.pop(0)
        await client_gone.wait()  # the rest never comes
        return {"type": "http.disconnect"}

    status, headers, body = await _serve(middleware, "/things", receive)

    assert status == 408
    assert headers[b"connection"] == b"close"
    error = json.loads(body)["error"]
    assert error["code"] == "REQUEST_TIMEOUT"
    assert error["message"] == f"The request body did not arrive within {DEADLINE:g} s."
    assert headers[b"x-correlation-id"].decode() == error["correlation_id"]
    assert _requests_total(registry, "408") == 1
    assert _requests_total(registry, "400") is None


async def test_a_body_read_in_time_is_served_and_reads_after_it_have_no_deadline() -> None:
    middleware, registry, disconnects_seen_at = _service()
    loop = asyncio.get_running_loop()
    started = loop.time()
    parts = [
        {"type": "http.request", "body": b'{"name": ', "more_body": True},
        {"type": "http.request", "body": b'"hanna"}', "more_body": False},
    ]

    async def receive() -> Message:
        if parts:
            return parts.pop(0)
        # The client stays connected well past the body's deadline, then goes.
        await asyncio.sleep(DEADLINE * 2)
        return {"type": "http.disconnect"}

    status, _, body = await _serve(middleware, "/things/watch", receive)

    assert status == 200, body
    assert json.loads(body) == {"name": "hanna"}
    assert disconnects_seen_at[0] - started > DEADLINE
    assert _requests_total(registry, "200") is None  # counted under its own route
    labels = {"method": "POST", "route": "/things/watch", "status": "200"}
    assert registry.get_sample_value("http_requests_total", labels) == 1
