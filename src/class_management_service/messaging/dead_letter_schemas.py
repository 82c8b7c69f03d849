"""How a dead letter is shown: the internal HTTP route and the CLI's ``--json`` output."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from class_management_service.messaging.dead_letter_reader import Letter
from class_management_service.messaging.dead_letter_store import LetterStatus


class DeadLetterSummary(BaseModel):
    id: str = Field(description="`kafka:<topic>:<partition>:<offset>` or `db:<uuid>`.")
    location: str = Field(description="The dead-letter topic, or `dead_letters` (the table).")
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    key: str | None = Field(description="The record's key as text (undecodable bytes escaped).")
    reason: str
    error: str
    consumer_group: str
    failed_at: datetime
    value_bytes: int
    status: LetterStatus
    replay_count: int
    note: str | None
    disposed_at: datetime | None = Field(description="When it was last replayed or discarded.")


class LetterHeader(BaseModel):
    name: str
    value: str


class DeadLetterDetail(DeadLetterSummary):
    headers: list[LetterHeader] = Field(
        description="The original record's own headers (without the dead-letter ones)."
    )
    value: str | None
    value_encoding: Literal["utf-8", "base64"]


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterSummary]
    count: int


class ReplayResult(BaseModel):
    replayed: list[str]
    skipped: list[str] = Field(description="Letters no longer open when their turn came.")


class DiscardRequest(BaseModel):
    note: str | None = Field(default=None, max_length=2000, description="Why, for the next reader.")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="backslashreplace")


def summary(letter: Letter) -> DeadLetterSummary:
    return DeadLetterSummary(
        id=letter.id,
        location=letter.location,
        original_topic=letter.original_topic,
        original_partition=letter.original_partition,
        original_offset=letter.original_offset,
        key=_text(letter.key),
        reason=letter.reason,
        error=letter.error,
        consumer_group=letter.consumer_group,
        failed_at=letter.failed_at,
        value_bytes=len(letter.value or b""),
        status=letter.status,
        replay_count=letter.replay_count,
        note=letter.note,
        disposed_at=letter.disposed_at,
    )


def detail(letter: Letter) -> DeadLetterDetail:
    value, encoding = letter.value, "utf-8"
    try:
        shown = None if value is None else value.decode()
    except UnicodeDecodeError:
        shown, encoding = base64.b64encode(value or b"").decode(), "base64"
    return DeadLetterDetail(
        **summary(letter).model_dump(),
        headers=[LetterHeader(name=name, value=_text(raw) or "") for name, raw in letter.headers],
        value=shown,
        value_encoding="base64" if encoding == "base64" else "utf-8",
    )
