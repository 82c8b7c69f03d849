"""Hostile requests against the real service process: it answers each with a clean 4xx (the
contract's error body, never a 5xx or a dropped connection) and stays healthy; the internal API
key never reaches its logs (DEBUG level, right and wrong keys sent)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.reliability.conftest import AbuseRow, Fleet, ReliabilityReport

MiB = 1024 * 1024
TEACHER = {"X-User-ID": "teacher-hostile"}


@dataclass
class Hostile:
    name: str
    status: int  # the answer the contract asks for
    method: str
    path: str
    content: Any = None
    headers: dict[str, str] | None = None
    raw: bool = False  # sent over a plain socket (httpx refuses to lie about the length)


async def _send_raw(base_url: str, case: Hostile) -> tuple[int, bytes]:
    """Send the request head and ``case.content`` as they are; (status, body) of the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = f"{case.method} {case.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (case.headers or {}).items())
        writer.write(head.encode() + b"\r\n" + (case.content or b""))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _nested(depth: int) -> bytes:
    return b'{"name": ' + b"[" * depth + b"]" * depth + b', "course_codes": ["ENG5"]}'


def _nested_objects(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def _cases(class_id: str) -> list[Hostile]:
    json_headers = {**TEACHER, "Content-Type": "application/json"}
    csv_headers = {**TEACHER, "Content-Type": "text/csv"}
    import_path = f"/v1/classes/{class_id}/students/import"
    return [
        Hostile(
            "6 MiB JSON body (Content-Length)",
            413,
            "POST",
            "/v1/classes/",
            b'{"name": "' + b"a" * (6 * MiB) + b'"}',
            json_headers,
        ),
        Hostile(
            "6 MiB body, chunked (no Content-Length)",
            413,
            "POST",
            "/v1/classes/",
            _chunks(6 * MiB),
            json_headers,
        ),
        Hostile(
            "Content-Length: 10 GB (raw socket, 2 bytes sent)",
            413,
            "POST",
            "/v1/classes/",
            b"{}",
            {**json_headers, "Content-Length": str(10 * 1024**3)},
            raw=True,
        ),
        Hostile(
            "JSON nested 100,000 arrays deep",
            400,
            "POST",
            "/v1/classes/",
            _nested(100_000),
            json_headers,
        ),
        Hostile(
            "JSON nested 50,000 objects deep",
            400,
            "POST",
            "/v1/classes/",
            _nested_objects(50_000),
            json_headers,
        ),
        Hostile(
            "JSON array of 400,000 decisions",
            422,
            "POST",
            f"/v1/batches/{uuid.uuid4()}/student-associations/confirm",
            b'{"associations": [' + b",".join([b"{}"] * 400_000) + b"]}",
            json_headers,
        ),
        Hostile(
            "invalid UTF-8 in JSON",
            400,
            "POST",
            "/v1/classes/",
            b'{"name": "\xff\xfe\xc3(", "course_codes": ["ENG5"]}',
            json_headers,
        ),
        Hostile(
            "NUL character in a JSON string",
            422,
            "POST",
            "/v1/classes/",
            b'{"name": "a\\u0000b", "course_codes": ["ENG5"]}',
            json_headers,
        ),
        Hostile(
            "NUL character in a student name",
            422,
            "POST",
            "/v1/classes/students",
            b'{"person_name": {"first_name": "a\\u0000", "last_name": "b"}}',
            json_headers,
        ),
        Hostile(
            "lone surrogate in a JSON string",
            422,
            "POST",
            "/v1/classes/",
            b'{"name": "a\\ud800b", "course_codes": ["ENG5"]}',
            json_headers,
        ),
        Hostile(
            "not JSON at all", 422, "POST", "/v1/classes/", b"\x00\x01\x02garbage", json_headers
        ),
        Hostile(
            "6 MiB CSV",
            413,
            "POST",
            import_path,
            b"first_name,last_name\n" + b"Anna,Berg\n" * (6 * MiB // 10),
            csv_headers,
        ),
        Hostile(
            "CSV with 60,000 rows (limit 50,000)",
            413,
            "POST",
            import_path,
            b"first_name,last_name\n" + b"A,B\n" * 60_000,
            csv_headers,
        ),
        Hostile(
            "CSV with one 3 MiB field",
            400,
            "POST",
            import_path,
            b"first_name,last_name\n" + b"A" * (3 * MiB) + b",B\n",
            csv_headers,
        ),
        Hostile(
            "CSV with an unterminated quote",
            400,
            "POST",
            import_path,
            b'first_name,last_name\n"Anna,Berg\n' + b"x" * 100_000,
            csv_headers,
        ),
        Hostile(
            "invalid UTF-8 in CSV",
            400,
            "POST",
            import_path,
            b"first_name,last_name\n\xff\xfeAnna,B\xe9rg\n",
            csv_headers,
        ),
        Hostile(
            "NUL bytes in CSV",
            400,
            "POST",
            import_path,
            b"first_name,last_name\nAn\x00na,Berg\n",
            csv_headers,
        ),
        Hostile(
            "multipart with a broken boundary",
            400,
            "POST",
            import_path,
            b"--xyz\r\nContent-Disposition: form-data; name=file\r\n\r\nA,B",
            {**TEACHER, "Content-Type": "multipart/form-data; boundary=abc"},
        ),
        Hostile("invalid UTF-8 in the path", 400, "GET", "/v1/classes/%FF%FE", None, TEACHER),
        Hostile(
            "10,000-character path segment",
            400,
            "GET",
            "/v1/classes/" + "a" * 10_000,
            None,
            TEACHER,
        ),
        Hostile(
            "query string of 1,500 batch ids",
            401,
            "GET",
            "/internal/v1/batches/class-info?batch_ids="
            + ",".join(str(uuid.uuid4()) for _ in range(1500)),
            None,
            {"X-Internal-API-Key": "nope", "X-Service-ID": "x"},
        ),
    ]


async def test_hostile_bodies_get_clean_4xx_the_service_stays_healthy_and_never_logs_the_key(
    fleet: Fleet,
    reliability_report: ReliabilityReport,
) -> None:
    secret = f"key-{uuid.uuid4().hex}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    service = await fleet.start(consuming=False, internal_api_key=secret, log_level="DEBUG")

    failures: list[str] = []
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60.0) as client:
        created = await client.post(
            "/v1/classes/", json={"name": "Target", "course_codes": ["ENG5"]}, headers=TEACHER
        )
        assert created.status_code == 201, created.text
        cases = _cases(created.json()["id"])
        for case in cases:
            try:
                if case.raw:
                    status, content = await _send_raw(service.base_url, case)
                    response = httpx.Response(
                        status, content=content, headers={"content-type": "application/json"}
                    )
                else:
                    response = await client.request(
                        case.method, case.path, content=case.content, headers=case.headers
                    )
            except (httpx.HTTPError, OSError, ValueError, IndexError) as exc:
                failures.append(f"{case.name}: no answer ({type(exc).__name__}: {exc})")
                continue
            statuses[response.status_code] += 1
            ok = response.status_code == case.status
            if ok and response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
                ok = isinstance(body, dict) and {"code", "message", "correlation_id"} <= set(
                    body.get("error", {})
                )
            if not ok:
                failures.append(
                    f"{case.name}: {response.status_code} (expected {case.status}) "
                    f"{response.text[:300]}"
                )

        # The internal key: right and wrong, in the header the platform uses.
        path = f"/internal/v1/batches/class-info?batch_ids={uuid.uuid4()}"
        key_attempts = ((secret, 200), (wrong, 401), (secret[:-1], 401), (secret.upper(), 401))
        for key, status in key_attempts:
            response = await client.get(
                path, headers={"X-Internal-API-Key": key, "X-Service-ID": "nlp_service"}
            )
            assert response.status_code == status, response.text

        health = await client.get("/healthz")
    assert service.running, f"the service died\n{service.log_tail()}"
    assert health.status_code == 200, health.text
    assert not failures, "\n".join(failures) + "\n" + service.log_tail(20)

    log = service.log_text()
    assert "GET /internal/v1/batches/class-info" in log, "the requests were logged at all"
    leaked = {
        "the key (or a prefix)": log.count(secret[:-1]),
        "the key upper-cased": log.count(secret.upper()),
        "a wrong key": log.count(wrong),
    }
    assert not any(leaked.values()), f"presented keys found in the log: {leaked}"
    own_errors = [
        entry
        for entry in service.log_lines()
        if entry.get("level") in {"error", "critical"}
        and str(entry.get("logger", "")).startswith(("class_management_service", "uvicorn"))
    ]
    assert not own_errors, f"hostile requests logged as errors of ours: {own_errors[:3]}"

    reliability_report.record_abuse(
        AbuseRow(
            check="hostile request bodies",
            attempts=len(cases),
            failures=len(failures),
            notes=(
                "real process: oversized (Content-Length, chunked, 10 GB claimed), deeply nested "
                "JSON, 400k-item array, invalid UTF-8 / NUL / lone surrogates in JSON and CSV, "
                "6 MiB and 60k-row CSVs, a 3 MiB CSV field, broken multipart, hostile paths: "
                "each the exact 4xx the contract names "
                f"({', '.join(f'{n}x {c}' for c, n in sorted(statuses.items()))}), "
                "/healthz 200 afterwards"
            ),
        )
    )
    reliability_report.record_abuse(
        AbuseRow(
            check="internal API key: never logged",
            attempts=len(key_attempts),
            failures=sum(leaked.values()),
            notes=(
                "real process at LOG_LEVEL=DEBUG; the right key, a wrong one, a prefix and an "
                f"upper-cased copy sent; {len(log.splitlines())} log lines grepped: "
                "0 occurrences of any"
            ),
        )
    )
