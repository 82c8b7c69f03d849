"""The guarded protocol writes a response's head and complete body in one socket write, and
still streams, answers HEAD, pipelines and sends ``100 Continue`` as uvicorn does. Real loopback
sockets, the server in this test's event loop; the protocol's transport is wrapped to record each
write it makes to the socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import uvicorn
from uvicorn.server import ServerState

from class_management_service.http.server import GuardedHttpToolsProtocol, guarded_http_protocol

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# Generous bound for an answer that must come (never a timing assertion).
WITHIN = 10.0
LARGE = 200 * 1024  # beyond the size that is copied into one buffer with the head


class _RecordedTransport:
    """The socket's transport, with every write recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Server:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.stream_may_go_on = asyncio.Event()
        self.port = 0

    async def app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            # The client reads the head before it lets the body come: a head held until the
            # body would hang this test.
            await self.stream_may_go_on.wait()
            for chunk in (b"first", b"second"):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/echo":
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        else:
            body = b"x" * LARGE if path == "/large" else path.encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[_Server]:
    served = _Server()
    config = uvicorn.Config(served.app, interface="asgi3", lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    guarded = guarded_http_protocol(max_head_bytes=64 * 1024, head_timeout_seconds=WITHIN)

    class Recorded(guarded):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(
                cast(asyncio.Transport, _RecordedTransport(transport, served.writes))
            )

    def protocol() -> GuardedHttpToolsProtocol:
        return Recorded(config=config, server_state=state, app_state={})

    listener = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    served.port = listener.sockets[0].getsockname()[1]
    yield served
    listener.close()
    for task in list(state.tasks):
        task.cancel()
    await listener.wait_closed()


async def _connect(server: _Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response with a content-length: (head, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
    length = _content_length(head)
    body = await asyncio.wait_for(reader.readexactly(length), WITHIN) if length else b""
    return head, body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _is_head(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.1 200")


async def test_a_complete_response_is_one_write_of_head_and_body(server: _Server) -> None:
    reader, writer = await _connect(server)
    for path in ("/one", "/two"):  # keep-alive: each response its own single write
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        head, body = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body == path.encode()
        assert server.writes[-1] == head + body
    assert len(server.writes) == 2
    writer.close()


async def test_a_large_body_arrives_whole(server: _Server) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /large HTTP/1.1\r\nHost: t\r\n\r\n")
    head, body = await _read_response(reader)
    assert body == b"x" * LARGE
    assert b"".join(server.writes) == head + body
    writer.close()


async def test_a_streamed_head_goes_out_before_its_body_exists(server: _Server) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
    assert b"transfer-encoding: chunked" in head
    server.stream_may_go_on.set()
    body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), WITHIN)
    assert body == b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"
    assert server.writes[0] == head
    writer.close()


async def test_head_requests_and_pipelined_requests_are_answered_in_order(
    server: _Server,
) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"HEAD /first HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /third HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
    assert _is_head(head)
    assert _content_length(head) == len(b"/first")  # announced, not sent
    for path in (b"/second", b"/third"):
        head, body = await _read_response(reader)
        assert _is_head(head)
        assert body == path
    writer.close()


async def test_100_continue_comes_before_the_body_is_sent(server: _Server) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    head, body = await _read_response(reader)
    assert _is_head(head)
    assert body == b"hello"
    writer.close()
