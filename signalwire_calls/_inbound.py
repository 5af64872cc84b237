"""Answering inbound calls: the SWML reply, the handler tasks, the cap on them.

``InboundDispatcher.answer(body)`` runs in the receiver, after the request's signature
was checked: it decodes the platform's SWML request, replies at once with SWML, and
starts the user's handler for the call in the session's task group (anyio), unless
``max_concurrent`` handlers already run: then the call gets the overflow SWML.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import anyio.abc
import msgspec

from ._logthrottle import LogThrottle
from .call import Call
from .errors import CallEndedError, RequestError, SessionClosedError
from .inbound import BUSY_SWML, DEFAULT_SWML, InboundRequest, decode_inbound

__all__ = ["InboundDispatcher", "InboundHandler", "InboundStats", "check_document"]

logger = logging.getLogger("signalwire_calls.inbound")

InboundHandler = Callable[[Call, InboundRequest], Awaitable[Any]]
#: SWML to reply with: a document, or a function of the request returning one.
SwmlReply = dict[str, Any] | Callable[[InboundRequest], dict[str, Any]]

_encode = msgspec.json.Encoder().encode
#: How long hanging up a call after its handler may take (also when cancelled).
_HANGUP_TIMEOUT = 10.0


class _Attacher(Protocol):
    def attach(self, call_id: str, *, direction: Any) -> Call: ...


class InboundStats(msgspec.Struct, frozen=True, kw_only=True):
    """Inbound calls: ``received`` SWML requests answered, ``handled`` calls handed to the
    handler, ``overflow`` calls answered with the overflow SWML (too many handlers
    running), ``running`` handlers now, ``failed`` handlers that raised."""

    received: int
    handled: int
    overflow: int
    running: int
    failed: int


class InboundDispatcher:
    """Serves one session's inbound SWML webhook."""

    def __init__(
        self,
        owner: _Attacher,
        handler: InboundHandler,
        *,
        swml: SwmlReply | None,
        overflow_swml: SwmlReply | None,
        max_concurrent: int,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        for name, reply in (("swml", swml), ("overflow_swml", overflow_swml)):
            if reply is not None and not callable(reply):
                check_document(reply, name)
        self._owner = owner
        self._handler = handler
        self._swml = swml if swml is not None else DEFAULT_SWML
        self._overflow = overflow_swml if overflow_swml is not None else BUSY_SWML
        self._limiter = anyio.CapacityLimiter(max_concurrent)
        self._group: anyio.abc.TaskGroup | None = None
        self._overflow_log = LogThrottle(logger)
        self._failure_log = LogThrottle(logger, logging.ERROR)
        self.received = 0
        self.handled = 0
        self.overflow = 0
        self.failed = 0

    def bind(self, group: anyio.abc.TaskGroup | None) -> None:
        """The task group handlers run in (``None`` once the session closes)."""
        self._group = group

    def stats(self) -> InboundStats:
        return InboundStats(
            received=self.received,
            handled=self.handled,
            overflow=self.overflow,
            running=int(self._limiter.borrowed_tokens),
            failed=self.failed,
        )

    def answer(self, body: bytes) -> bytes:
        """The SWML reply to one (verified) request; starts its handler. Raises
        ``MalformedWebhookError`` for a body that is not an SWML request (a 400)."""
        request = decode_inbound(body)
        self.received += 1
        group = self._group
        if group is None or self._limiter.available_tokens < 1:
            self.overflow += 1
            self._overflow_log(
                "inbound call %r from %r answered with the overflow SWML: %s",
                request.call_id,
                request.from_,
                "the session is closing" if group is None else "too many handlers running",
            )
            return _encode(_document(self._overflow, request))
        call = self._owner.attach(request.call_id, direction="inbound")
        borrower = object()
        self._limiter.acquire_on_behalf_of_nowait(borrower)
        self.handled += 1
        group.start_soon(self._run, call, request, borrower, name=f"inbound {request.call_id}")
        return _encode(_document(self._swml, request))

    async def _run(self, call: Call, request: InboundRequest, borrower: object) -> None:
        try:
            await self._handler(call, request)
        except Exception:
            self.failed += 1
            self._failure_log(
                "inbound handler failed on call %r; hanging up",
                call.id,
                exc_info=sys.exc_info()[1],
            )
        finally:
            try:
                if not request.kept and not call.is_ended:
                    with anyio.move_on_after(_HANGUP_TIMEOUT, shield=True):
                        await call.end()
            except (RequestError, CallEndedError, SessionClosedError) as exc:
                logger.debug("hanging up inbound call %r: %r", call.id, exc)
            finally:
                self._limiter.release_on_behalf_of(borrower)


def check_document(document: object, what: str) -> dict[str, Any]:
    """An SWML reply document, or ``ValueError`` saying what is wrong with it."""
    if not isinstance(document, dict) or not isinstance(document.get("sections"), dict):
        raise ValueError(f"{what}: an SWML document needs sections, e.g. {DEFAULT_SWML!r}")
    main = document["sections"].get("main")
    if not isinstance(main, list) or not main:
        raise ValueError(f"{what}: an SWML document needs a non-empty main section")
    return document


_swml_failure_log = LogThrottle(logger, logging.ERROR)


def _document(reply: SwmlReply, request: InboundRequest) -> dict[str, Any]:
    if not callable(reply):
        return reply
    try:
        return check_document(reply(request), "the swml function's reply")
    except Exception as exc:
        _swml_failure_log(
            "the inbound swml function failed for call %r; answering with the default",
            request.call_id,
            exc_info=exc,
        )
        return DEFAULT_SWML
