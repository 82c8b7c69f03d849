"""The contract between the consumer loop and a consumed event type's handler.

A handler has three stages per partition batch; only the last one has effects. ``decode`` and
``prepare`` of the next batch run while ``apply`` of the current one waits on I/O, so they must
not change anything (reading is fine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
P = TypeVar("P")

# aiokafka ships no type information; records are ``aiokafka.ConsumerRecord[bytes, bytes]``.
Record = Any


class PoisonMessage(Exception):
    """A message that can never be processed as it is; it goes to the dead-letter topic.

    ``reason`` is a short machine-readable code (``invalid_json``, ``malformed_id``,
    ``unknown_class``...), ``error`` the human explanation.
    """

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class Inbound(Generic[T_co]):
    """A decoded message together with the record it came from."""

    record: Record
    message: T_co


@dataclass
class BatchOutcome:
    """What a handler did with a batch (when it returns, all non-poison effects are durable)."""

    #: Positions (in the batch handed to the handler) of poison messages, with why.
    poisoned: dict[int, PoisonMessage] = field(default_factory=dict)
    #: Messages whose effects this call committed.
    applied: int = 0
    #: Messages whose effects had been committed before (redelivery, concurrent duplicate).
    duplicates: int = 0


class BatchHandler(Protocol[T, P]):
    def decode(self, record: Record) -> T:
        """Decode one record; raise :class:`PoisonMessage` if it can never be processed."""
        ...

    async def prepare(self, batch: Sequence[Inbound[T]]) -> P:
        """Read-only preparation of a batch (lookups, decisions); raise if it fails."""
        ...

    async def apply(self, prepared: P) -> BatchOutcome:
        """Apply a batch idempotently; raise on a transient failure (nothing is committed)."""
        ...
