"""The HTTP/1.1 connection protocol the service is served with: uvicorn's httptools protocol plus
the limits uvicorn does not have.

uvicorn reads a request head of any size (16 MiB of headers were parsed, answered 200 and cost
+165 MB of RSS) and waits forever for a head that never completes (slowloris: connections that
send half a head are held as long as the client likes). :class:`GuardedHttpToolsProtocol` adds:

- a head size limit: more than ``max_head_bytes`` before the end of the headers is answered 431;
- a head deadline: a head still incomplete ``head_timeout_seconds`` after the connection opened
  (or after the previous response) is answered 408; a connection that sent nothing of a new
  request by then is closed silently (an unsolicited 408 could be read as the answer to a
  request the client sends at that very moment);
- the contract's JSON error body on these and on the 400 for bytes that are not HTTP/1.1
  (uvicorn answers plain text), with a fresh correlation id.

After such an answer the connection is half-closed and what the client still sends is read and
discarded, for at most ``head_timeout_seconds``: closing a socket with unread input resets the
connection, and the reset can destroy the answer before the client reads it.

It also sends a response's head together with its body: uvicorn writes the head when the app
starts the response and the body in a second write, and each write to a socket is a system call
plus the receiver's TCP processing (on loopback, in the sender's time): the two writes were a
sixth of a GET's CPU. :class:`_HeadWithBody` holds the head until the body's first write, or
until the loop runs anything else (a streamed body, a HEAD answer): never longer.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from class_management_service.http.errors import error_response
from class_management_service.observability.context import current_correlation_id

logger = logging.getLogger(__name__)


def _error_answer(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the contract's error body, closing the connection."""
    response = error_response(status, code, message)
    head = [STATUS_LINE[status]]
    head += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
    head.append(b"x-correlation-id: " + str(current_correlation_id()).encode() + b"\r\n")
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + response.body


# Beyond this the body is written after the head rather than copied into one buffer with it.
_COALESCED_BODY_BYTES = 64 * 1024


class _HeadWithBody(asyncio.Transport):
    """The connection's transport as one response cycle sees it (uvicorn's cycle calls only
    ``write``, ``close`` and ``is_closing``): the cycle's first write (the head, or a
    ``100 Continue`` before it) is held and joined to its second (the body, or its first chunk)
    when that comes in the same step of the app; otherwise it goes out as soon as the loop runs
    anything else. Only the number of
    writes changes, never the bytes or their order: a cycle writes only while it is the
    connection's current response (pipelined requests wait for it)."""

    __slots__ = ("_first", "_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._first = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _COALESCED_BODY_BYTES:
                self._transport.write(head + data)
                return
            self._transport.write(head)
        elif self._first:
            self._first = False
            self._head = bytes(data)
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        head, self._head = self._head, None
        # A connection closed meanwhile gets nothing more, as uvicorn's own writes after a
        # disconnect get nothing.
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection. Limits are class attributes: uvicorn builds one protocol object
    per connection from the class alone (see :func:`guarded_http_protocol`)."""

    max_head_bytes: ClassVar[int]
    head_timeout_seconds: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Counted per read while a head is incomplete: a head grows by at most one read (uvloop
        # reads up to 256 KiB) past the limit before it is refused.
        self._reading_head = True
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        self._answered_error = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._answered_error:
            return  # lingering after an error answer: discard
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._reading_head
            and self._head_bytes > self.max_head_bytes
            and not self._answered_error
        ):
            self._answer_error(
                431,
                "REQUEST_HEADER_FIELDS_TOO_LARGE",
                f"The request line and headers exceed {self.max_head_bytes} bytes.",
            )

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._disarm_head_deadline()
        super().on_headers_complete()
        self.cycle.transport = _HeadWithBody(self.transport, self.loop)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head gets its own deadline, unless it already arrived (pipelined).
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm_head_deadline()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for bytes httptools cannot parse as HTTP/1.1 (and logs `msg`).
        self._answer_error(400, "BAD_REQUEST", "The request is not valid HTTP/1.1.")

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._head_bytes == 0:
            self.transport.close()
            return
        self._answer_error(
            408,
            "REQUEST_TIMEOUT",
            f"The request head did not arrive within {self.head_timeout_seconds:g} s.",
        )

    def _answer_error(self, status: int, code: str, message: str) -> None:
        self._answered_error = True
        self._disarm_head_deadline()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's response is still being written: no room for another.
            self.transport.close()
            return
        logger.warning("request refused before routing: %s %s", status, code)
        # A fresh context: this runs outside any request, and every answer gets its own id.
        self.transport.write(contextvars.Context().run(_error_answer, status, code, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._head_deadline = self.loop.call_later(self.head_timeout_seconds, self.transport.close)


def guarded_http_protocol(
    max_head_bytes: int, head_timeout_seconds: float
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` option, with these limits."""

    class Configured(GuardedHttpToolsProtocol):
        pass

    Configured.max_head_bytes = max_head_bytes
    Configured.head_timeout_seconds = head_timeout_seconds
    return Configured
