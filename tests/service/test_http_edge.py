"""The HTTP edge of the real service process: request-head size limit (431), head and body
deadlines (slowloris: 408, connections closed by the server), and the contract's error body for
bytes that are not HTTP. Raw sockets, because an HTTP client refuses to send most of this."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from local_infra.ports import free_port
from tests.conftest import INTERNAL_API_KEY
from tests.service_process import ServiceProcess, launch_service, service_env
from tests.waiting import wait_for

MiB = 1024 * 1024
HEAD_LIMIT = 256 * 1024  # the default max_request_head_bytes
# Short, so the slowloris test sees the deadlines pass; the others keep the defaults (head 10 s,
# also how long a refused client may go on sending before the server closes on it; body 30 s).
SHORT_TIMEOUT = 2.0
HALF_HEADS = 500  # as many as the attack that held every one of them open
HALF_BODIES = 100
# Generous bound for conditions the service must reach (never a timing assertion).
WITHIN = 30.0
StartService = Callable[..., Awaitable[ServiceProcess]]


@pytest.fixture
async def start_service(
    database_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> AsyncIterator[StartService]:
    """Starts the real process on the test's (migrated) database, API only: no Redis or Kafka."""
    started: list[ServiceProcess] = []

    async def start(**settings: str) -> ServiceProcess:
        env = service_env(
            database_url=database_url,
            redis_url="redis://127.0.0.1:1/0",
            kafka_bootstrap="127.0.0.1:1",
            port=free_port(),
            internal_api_key=INTERNAL_API_KEY,
            unique_name=unique_name,
            run_consumer="false",
            run_outbox_relay="false",
            run_timeout_monitor="false",
            **settings,
        )
        service = await launch_service(env, tmp_path / "service.log", args=["--no-migrate"])
        started.append(service)
        return service

    yield start
    for service in started:
        await service.kill()


async def _connect(service: ServiceProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = service.base_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port), limit=4 * MiB)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes its side: (status, headers, body)."""
    answer = await asyncio.wait_for(reader.read(), WITHIN)
    assert answer, "the server closed the connection without an answer"
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _assert_contract_error(headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["content-type"] == "application/json", headers
    error = json.loads(body)["error"]
    assert error["code"] == code, error
    assert error["service"] == "class_management_service"
    assert headers["x-correlation-id"] == error["correlation_id"]
    uuid.UUID(error["correlation_id"])


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed while listing
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


async def test_16_mib_of_headers_is_refused_431_without_holding_them(
    start_service: StartService,
) -> None:
    service = await start_service()
    rss_before = _rss_bytes(service.pid)
    reader, writer = await _connect(service)
    try:
        writer.write(
            b"GET /v1/classes/ HTTP/1.1\r\nHost: cms\r\nX-User-ID: teacher-a\r\nX-Filler: "
            + b"a" * (16 * MiB)
            + b"\r\n\r\n"
        )
        # The server reads and discards the rest after answering, so the whole head goes out.
        await asyncio.wait_for(writer.drain(), WITHIN)
        status, headers, body = await _read_answer(reader)
    finally:
        writer.close()
    assert status == 431
    _assert_contract_error(headers, body, "REQUEST_HEADER_FIELDS_TOO_LARGE")
    # Before the limit, the head was parsed whole (16 MiB, +165 MB RSS at the time).
    assert _rss_bytes(service.pid) - rss_before < 16 * MiB

    # The service goes on serving, and a long head within the limit is still fine: 500 batch ids
    # (~18.5 KB) and headers up to the limit.
    batch_ids = ",".join(str(uuid.uuid4()) for _ in range(500))
    async with httpx.AsyncClient(base_url=service.base_url, timeout=WITHIN) as client:
        response = await client.get(
            "/internal/v1/batches/class-info",
            params={"batch_ids": batch_ids},
            headers={
                "X-Internal-API-Key": INTERNAL_API_KEY,
                "X-Service-ID": "nlp_service",
                "X-Filler": "b" * (HEAD_LIMIT - 24 * 1024),
            },
        )
    assert response.status_code == 200, response.text
    assert len(response.json()) == 500


async def test_requests_that_never_finish_arriving_are_answered_408_and_closed_by_the_server(
    start_service: StartService,
) -> None:
    service = await start_service(
        request_head_timeout_seconds=str(SHORT_TIMEOUT),
        request_body_timeout_seconds=str(SHORT_TIMEOUT),
    )
    sockets_before = _open_sockets(service.pid)
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(HALF_HEADS):
            reader, writer = await _connect(service)
            # At once, so each head has started long before its deadline passes.
            writer.write(b"GET /v1/classes/ HTTP/1.1\r\nHost: cms\r\nX-User-ID: tea")
            connections.append((reader, writer))
        for _ in range(HALF_BODIES):
            reader, writer = await _connect(service)
            # A whole head, then a tenth of the body it declares: the route waits for the rest.
            writer.write(
                b"POST /v1/classes/ HTTP/1.1\r\nHost: cms\r\nX-User-ID: teacher-a\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"name": "'
            )
            connections.append((reader, writer))
        unfinished = list(connections)
        connections.append(await _connect(service))  # connects and sends nothing at all
        await asyncio.gather(*(writer.drain() for _, writer in unfinished))

        answers = await asyncio.gather(*(_read_answer(reader) for reader, _ in unfinished))
        for status, headers, body in answers:
            assert status == 408
            _assert_contract_error(headers, body, "REQUEST_TIMEOUT")
        for _, headers, body in answers[HALF_HEADS:]:
            assert json.loads(body)["error"]["message"].startswith("The request body did not")
            assert headers["connection"] == "close"
        assert await asyncio.wait_for(connections[-1][0].read(), WITHIN) == b""

        # Closed on the server's side too, while every client still holds its end open.
        await wait_for(
            lambda: _open_sockets(service.pid) <= sockets_before,
            within=WITHIN,
            every=0.1,
            what=lambda: f"{_open_sockets(service.pid) - sockets_before} open connections to close",
        )
    finally:
        for _, writer in connections:
            writer.close()

    async with httpx.AsyncClient(base_url=service.base_url, timeout=WITHIN) as client:
        assert (await client.get("/metrics")).status_code == 200


GARBAGE = {
    "request line": b"GARBAGE\r\n\r\n",
    "header name": b"GET /v1/classes/ HTTP/1.1\r\nHost: cms\r\nBad Header Name: x\r\n\r\n",
    "content length": b"GET /v1/classes/ HTTP/1.1\r\nHost: cms\r\nContent-Length: -1\r\n\r\n",
    "TLS on the HTTP port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


async def test_bytes_that_are_not_http_get_the_contract_error_body(
    start_service: StartService,
) -> None:
    service = await start_service()
    for name, garbage in GARBAGE.items():
        reader, writer = await _connect(service)
        try:
            writer.write(garbage)
            await writer.drain()
            status, headers, body = await _read_answer(reader)
        finally:
            writer.close()
        assert status == 400, name
        _assert_contract_error(headers, body, "BAD_REQUEST")
