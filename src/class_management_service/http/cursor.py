"""The opaque ``cursor`` of keyset pagination: where the next page starts, and which list it is.

A cursor carries the sort key and id of the last item of the page that issued it, the position
reached (``pagination.offset`` of the next page), the total counted when the walk began, and a
digest of the list it belongs to (sort, filters, teacher). It is URL-safe base64 of that JSON
behind a checksum: a cursor that was altered, truncated or made up is a 400, as is one issued for
another sort, other filters or another teacher.

The checksum's key is no secret, and needs none: a cursor is not an authorization. Every page
query keeps its ownership and filter terms, so the most a hand-made cursor can do is start the
caller's own list at another place; what it must never do is reach the database in a form that
fails there, which :func:`decode` checks value by value.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from class_management_service.errors import MalformedRequest

_CHECKSUM_KEY = b"class-management-service/cursor/v1"
_CHECKSUM_BYTES = 8
_MAX_TEXT = 1000
_MAX_COUNT = 2**62


class KeyKind(enum.Enum):
    """How a sort key value travels in a cursor (JSON) and is checked on the way back."""

    TEXT = "text"
    TIMESTAMP = "timestamp"  # the ISO form reads.iso_timestamp renders
    UUID = "uuid"
    BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class Cursor:
    key: tuple[Any, ...]  # the last item's sort key values, then its id
    position: int
    total: int
    binding: str

    def parameters(self) -> dict[str, str]:
        """The page query's ``after_<n>`` parameters, as text (the query casts them)."""
        return {
            f"after_{index}": (("true" if value else "false") if isinstance(value, bool) else value)
            for index, value in enumerate(self.key)
        }


def binding(scope: str, values: Mapping[str, Any]) -> str:
    """What a cursor is valid for: the list (``scope``: items and sort) and its parameters
    (teacher and filters)."""
    canonical = json.dumps([scope, sorted(values.items())], default=str, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_CHECKSUM_KEY, digest_size=_CHECKSUM_BYTES).digest()


def encode(cursor: Cursor) -> str:
    payload = json.dumps(
        [cursor.binding, cursor.position, cursor.total, list(cursor.key)], separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(_checksum(payload) + payload).rstrip(b"=").decode("ascii")


def _invalid(reason: str) -> MalformedRequest:
    return MalformedRequest(f"Invalid cursor: {reason}.", {"cursor": reason})


def decode(token: str, expected_binding: str, kinds: Sequence[KeyKind]) -> Cursor:
    """The cursor ``token`` stands for, if it is intact and belongs to this list; else a 400."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        raise _invalid("not a cursor this service issued") from None
    tag, payload = raw[:_CHECKSUM_BYTES], raw[_CHECKSUM_BYTES:]
    if not hmac.compare_digest(tag, _checksum(payload)):
        raise _invalid("not a cursor this service issued")
    try:
        bound, position, total, key = json.loads(payload)
    except (ValueError, TypeError):
        raise _invalid("not a cursor this service issued") from None
    if bound != expected_binding:
        raise _invalid("it belongs to another list (other sort, filters or teacher)")
    if not (_is_count(position) and _is_count(total)):
        raise _invalid("bad position")
    if not isinstance(key, list) or len(key) != len(kinds):
        raise _invalid("bad sort key")
    if not all(_fits(value, kind) for value, kind in zip(key, kinds, strict=True)):
        raise _invalid("bad sort key")
    return Cursor(tuple(key), position, total, bound)


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value < _MAX_COUNT


def _fits(value: object, kind: KeyKind) -> bool:
    if kind is KeyKind.BOOLEAN:
        return isinstance(value, bool)
    if not isinstance(value, str) or len(value) > _MAX_TEXT or "\x00" in value:
        return False
    try:
        if kind is KeyKind.TIMESTAMP:
            datetime.fromisoformat(value)
        elif kind is KeyKind.UUID:
            uuid.UUID(value)
    except ValueError:
        return False
    return True
