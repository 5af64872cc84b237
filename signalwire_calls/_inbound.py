"""Answering inbound calls: the SWML reply, the handler tasks, the cap on them.

``InboundDispatcher.answer(body)`` runs in the receiver, after the request's signature
was checked: it decodes the platform's SWML request, replies at once with SWML, and
starts the user's handler for the call as a task the session owns, unless
``max_concurrent`` handlers already run: then the call gets the overflow SWML.

The handler tasks are plain asyncio tasks held in a set, not an anyio task group's
children: ``TaskGroup.start_soon`` costs several times an ``asyncio.Task`` (a wrapper
coroutine, two events, the group's bookkeeping), which was most of an inbound call's
cost over a bare aiohttp handler's. ``aclose`` gives them the task group's semantics
at close: every running handler is cancelled, again until it ends (as a cancel scope
re-delivers cancellation), except one hanging its call up, which is shielded and bounded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
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
#: How often ``aclose`` cancels handlers again that have not ended.
_RECANCEL_INTERVAL = 0.05


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
    """Serves one session's inbound SWML webhook and owns its handler tasks.

    A reply given as a document is checked and encoded once, here; a function of the
    request is called, checked and encoded per call.
    """

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
        self._swml = _prepared(swml if swml is not None else DEFAULT_SWML)
        self._overflow = _prepared(overflow_swml if overflow_swml is not None else BUSY_SWML)
        self._max = max_concurrent
        #: running handler tasks; those hanging their call up are in ``_hanging_up`` too
        self._tasks: set[asyncio.Task[None]] = set()
        self._hanging_up: set[asyncio.Task[None]] = set()
        self._open = False
        self._overflow_log = LogThrottle(logger)
        self._failure_log = LogThrottle(logger, logging.ERROR)
        self.received = 0
        self.handled = 0
        self.overflow = 0
        self.failed = 0

    def open(self) -> None:
        """Start handing calls to the handler (the session opened)."""
        self._open = True

    async def aclose(self) -> None:
        """Stop taking calls (they get the overflow SWML), cancel the running handlers
        and wait until each has ended and hung its call up."""
        self._open = False
        tasks = self._tasks
        while tasks:
            for task in tasks - self._hanging_up:
                task.cancel()
            await asyncio.wait(set(tasks), timeout=_RECANCEL_INTERVAL)

    def stats(self) -> InboundStats:
        return InboundStats(
            received=self.received,
            handled=self.handled,
            overflow=self.overflow,
            running=len(self._tasks),
            failed=self.failed,
        )

    def answer(self, body: bytes) -> bytes:
        """The SWML reply to one (verified) request; starts its handler. Raises
        ``MalformedWebhookError`` for a body that is not an SWML request (a 400)."""
        request = decode_inbound(body)
        self.received += 1
        tasks = self._tasks
        if not self._open or len(tasks) >= self._max:
            self.overflow += 1
            self._overflow_log(
                "inbound call %r from %r answered with the overflow SWML: %s",
                request.call_id,
                request.from_,
                "the session is not open" if not self._open else "too many handlers running",
            )
            return _reply(self._overflow, request)
        call = self._owner.attach(request.call_id, direction="inbound")
        self.handled += 1
        task = asyncio.get_running_loop().create_task(
            self._run(call, request), name=f"inbound {call.id}"
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return _reply(self._swml, request)

    async def _run(self, call: Call, request: InboundRequest) -> None:
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
            if not request.kept and not call.is_ended:
                task = asyncio.current_task()
                assert task is not None
                self._hanging_up.add(task)
                try:
                    with anyio.move_on_after(_HANGUP_TIMEOUT, shield=True):
                        await call.end()
                except (RequestError, CallEndedError, SessionClosedError) as exc:
                    logger.debug("hanging up inbound call %r: %r", call.id, exc)
                finally:
                    self._hanging_up.discard(task)


def check_document(document: object, what: str) -> dict[str, Any]:
    """An SWML reply document, or ``ValueError`` saying what is wrong with it."""
    if not isinstance(document, dict) or not isinstance(document.get("sections"), dict):
        raise ValueError(f"{what}: an SWML document needs sections, e.g. {DEFAULT_SWML!r}")
    main = document["sections"].get("main")
    if not isinstance(main, list) or not main:
        raise ValueError(f"{what}: an SWML document needs a non-empty main section")
    return document


_swml_failure_log = LogThrottle(logger, logging.ERROR)
_DEFAULT_BYTES = _encode(DEFAULT_SWML)


_Prepared = bytes | Callable[[InboundRequest], dict[str, Any]]


def _prepared(reply: SwmlReply) -> _Prepared:
    """A document encoded once; a function as it is."""
    return reply if callable(reply) else _encode(reply)


def _reply(reply: _Prepared, request: InboundRequest) -> bytes:
    if isinstance(reply, bytes):
        return reply
    try:
        return _encode(check_document(reply(request), "the swml function's reply"))
    except Exception as exc:
        _swml_failure_log(
            "the inbound swml function failed for call %r; answering with the default",
            request.call_id,
            exc_info=exc,
        )
        return _DEFAULT_BYTES
