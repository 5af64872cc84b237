"""The correlation core: the one owner of every pending operation and live call.

``Core`` holds the transport, the id source, the status URL, the grace periods and the
routing of webhooks. Calls and handles report to it only through ``CallOwner`` (see
``call``): a call asks it to send a command or start an operation; the core registers
the handle *before* the command is sent, routes each webhook to its handle or call,
decides when a handle settles and with what, and forgets it once settled. See
``docs/architecture.md`` for the protocol in full; in short:

* **Register before send.** A handle is indexed by ``control_id`` (and by call) before
  its command leaves, so a webhook that beats the HTTP response finds it. A control_id
  already active is refused before anything is sent or counted.
* **Route.** Operation events by ``control_id``; transcripts (which carry none) by call
  to the call's active transcribe; call-state and refer events by ``call_id``.
  Events for control_ids this process never issued are not buffered: handles register
  before their command is sent, so such events are forgeries or another process's
  (counted as ``unmatched``). Only call-state events may race a dial's response, so
  only they wait in the early buffer, while a dial is in flight, bounded in count, in
  bytes and per call, for ``early_event_ttl`` seconds.
* **Settle.** A terminal event settles its handle, unless the call is known to have
  ended (then the handle's kind says whether that end is still a result: a recording
  is, a play is not, ``CallEndedError``), or it is an error on a live call: errors
  are held for the grace period, since an operation cut by a hang-up ends in an error
  just before the call's ``ended`` arrives.
* **Call end.** When a call ends (its ``ended`` webhook, a 404, the library ending it
  because the webhook was lost), pending handles get ``call_end_grace`` seconds (times
  their kind's ``grace_factor``) for their own terminal event, then settle with
  ``CallEndedError``. Then the call is forgotten.
* **Late events.** Keys of settled operations and ended calls are remembered (bounded)
  so late duplicates are counted and dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol, cast

import msgspec

from . import commands as _cmd
from ._codec import encode_command
from ._logthrottle import LogThrottle
from ._transport import DEFAULT, TimeoutArg, Transport, has_control_id
from .call import Call
from .errors import (
    CallEndedError,
    CallNotFoundError,
    NotFoundError,
    OperationFailed,
    SessionClosedError,
    SessionStateError,
    ValidationError,
)
from .events import (
    CallStateEvent,
    CollectEvent,
    Event,
    ReferEvent,
    TranscriptCompletedEvent,
    TranscriptFailedEvent,
    UnknownEvent,
    describe_event,
)
from .handles import NOTHING, OperationHandle, OperationKind
from .legs import AnyLeg

__all__ = ["Core", "MeteredCore", "RegistryStats", "WaitMeter"]

logger = logging.getLogger("signalwire_calls.core")
_DEBUG: Final = logging.DEBUG

#: Control ids: 96 random bits from the OS (what ``secrets`` uses), base64url, read in
#: batches: one ``os.urandom`` per 256 ids (a syscall costs ~1.5 us in some sandboxes).
_ID_BYTES: Final = 12
_ID_BATCH: Final = 256
_ID_CHARS: Final = _ID_BYTES * 4 // 3
#: An event size for the early buffer's byte budget: its encoded length.
_encode = msgspec.json.Encoder().encode
#: The probe sent to a call that gets no call-state webhooks when an operation event
#: suggests the caller hung up: a user event is forwarded only to a browser client on
#: the call (none for a phone caller), and a 404 confirms the call is gone.
#: [inferred] -- see ``_suggests_call_gone``.
_PROBE: Final = _cmd.UserEvent(event={"type": "signalwire_calls.liveness_probe"})


def _suggests_call_gone(event: Event) -> bool:
    """[inferred] Whether an operation event suggests the call it belongs to is gone.

    The platform documents no call-state callback for calls the library did not dial
    (inbound calls answered by SWML, calls attached by id). An operation cut by the
    caller's hang-up ends in an error: a collect reports a result of type ``error``.
    This is the one place that inference lives; the core confirms it with a probe
    command (a 404 means the call is gone) before it ends the call.
    """
    if type(event) is CollectEvent:
        result = event.params.result
        return (result is not None and result.type == "error") or event.params.state == "error"
    state = getattr(getattr(event, "params", None), "state", None)
    return state == "error"


class RegistryStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the correlation core (a snapshot).

    ``routed`` events reached a handle or call; ``duplicates`` were seen before;
    ``late`` arrived for an operation or call already settled; ``unmatched`` named a
    control_id this process never issued (not buffered); ``unknown`` had no key or an
    unknown type; ``buffered`` call-state events waited for their dial's answer,
    ``replayed`` were delivered from the buffer, ``expired`` were dropped from it
    (too old, or over its count/byte/per-call bounds); ``buffered_now`` and
    ``buffered_bytes`` are its content now. ``pending_operations`` and ``live_calls``
    are what the session tracks now; ``calls_ended_locally`` counts calls the library
    ended itself (a 404, a lost ``ended`` webhook, the maximum call length).
    """

    routed: int
    buffered: int
    replayed: int
    expired: int
    duplicates: int
    late: int
    unmatched: int
    unknown: int
    pending_operations: int
    live_calls: int
    buffered_now: int
    buffered_bytes: int
    calls_ended_locally: int
    trace_errors: int


class _Recent:
    """A bounded set of recently retired keys: the newest ``maximum // 2`` at least,
    ``maximum`` at most. Two generations of plain sets: a key goes into the young one;
    when that is full it becomes the old one and the previous old one is dropped whole
    (one set insert per key, which runs once per command)."""

    __slots__ = ("_half", "_old", "_young")

    def __init__(self, maximum: int) -> None:
        self._half = max(maximum // 2, 1)
        self._young: set[str] = set()
        self._old: set[str] = set()

    def add(self, key: str) -> None:
        young = self._young
        young.add(key)
        if len(young) >= self._half:
            self._old = young
            self._young = set()

    def __contains__(self, key: object) -> bool:
        return key in self._young or key in self._old


class Core:
    """Owns pending operations and live calls; implements ``CallOwner`` and the
    receiver's ``EventSink`` (``deliver``). Created and driven by ``CallSession``."""

    def __init__(
        self,
        transport: Transport,
        *,
        call_end_grace: float = 2.0,
        early_event_ttl: float = 15.0,
        early_event_max: int = 10_000,
        early_event_max_bytes: int = 8 * 1024 * 1024,
        early_events_per_call: int = 8,
        recent_max: int = 100_000,
        wait_timeout: float | None = None,
        max_call_length: float = 4 * 3600.0,
        webhook_warning_after: float | None = 10.0,
        trace_command: Callable[[_cmd.Command, str | None], None] | None = None,
        trace_event: Callable[[Event], None] | None = None,
        rejections: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self.call_end_grace = call_end_grace
        self._early_ttl = early_event_ttl
        self._early_max = early_event_max
        self._early_max_bytes = early_event_max_bytes
        self._early_per_call = early_events_per_call
        self._wait_timeout = wait_timeout
        self._max_call_length = max_call_length
        self._watchdog_after = webhook_warning_after
        self._trace_command = trace_command
        self._trace_event = trace_event
        self._rejections = rejections
        self._clock = clock
        self._status_url: str | None = None
        self._state: Literal["unopened", "open", "closed"] = "unopened"
        # the indexes: every pending operation by control_id and by call, live calls by id
        self.ops: dict[str, OperationHandle[Any]] = {}
        self._by_call: dict[str, dict[str, OperationHandle[Any]]] = {}
        self._transcribes: dict[str, OperationHandle[Any]] = {}
        self.calls: dict[str, Call] = {}
        # timers: per call (grace after its end, or the wait for a lost "ended"), and
        # per held handle (an error waiting to see whether the call ends)
        self._call_timers: dict[str, asyncio.TimerHandle] = {}
        self._held: dict[OperationHandle[Any], tuple[BaseException, asyncio.TimerHandle]] = {}
        self._watchdogs: dict[str, asyncio.TimerHandle] = {}
        self._heard: dict[str, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._probing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # the early buffer (call-state events racing their dial's answer)
        self._early: dict[str, list[tuple[Event, int]]] = {}
        self._expiry: deque[tuple[float, str]] = deque()
        self._early_count = 0
        self._early_bytes = 0
        self._dials_in_flight = 0
        self._recent_ops = _Recent(recent_max)
        self._recent_calls = _Recent(recent_max)
        self._ids = ""
        self._id_pos = 0
        self._no_webhook_log = LogThrottle(logger, clock=clock)
        self._early_full_log = LogThrottle(logger, clock=clock)
        self._expired_log = LogThrottle(logger, logging.INFO, clock=clock)
        self._trace_log = LogThrottle(logger, logging.ERROR, clock=clock)
        self._max_length_log = LogThrottle(logger, clock=clock)
        self._end_lost_log = LogThrottle(logger, logging.INFO, clock=clock)
        self._route_log = LogThrottle(logger, logging.ERROR, clock=clock)
        self.commands_sent = 0
        self.routed = 0
        self.buffered = 0
        self.replayed = 0
        self.expired = 0
        self.duplicates = 0
        self.late = 0
        self.unmatched = 0
        self.unknown = 0
        self.calls_ended_locally = 0
        self.trace_errors = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def check_unopened(self) -> None:
        if self._state != "unopened":
            raise SessionStateError(
                "a CallSession can be opened only once; create a new one"
                if self._state == "closed"
                else "the session is already open"
            )

    def open(self, status_url: str) -> None:
        self.check_unopened()
        self._state = "open"
        self._status_url = status_url
        if self._max_call_length > 0:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def check_open(self) -> None:
        if self._state != "open":
            raise SessionStateError(
                "the session is closed"
                if self._state == "closed"
                else "the session is not open yet: use `async with session:` "
                "or `await session.open()`"
            )

    def close(self) -> None:
        """Settle every pending handle and call with ``SessionClosedError``; cancel timers."""
        if self._state == "closed":
            return
        self._state = "closed"
        for timer in (
            *self._call_timers.values(),
            *(t for _, t in self._held.values()),
            *self._watchdogs.values(),
        ):
            timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._call_timers.clear()
        self._held.clear()
        self._watchdogs.clear()
        for task in self._tasks:
            task.cancel()
        for handle in list(self.ops.values()):
            handle.settle(
                SessionClosedError(
                    f"the session closed while {handle.kind.name} "
                    f"{handle.control_id!r} was pending",
                    control_id=handle.control_id,
                )
            )
        self.ops.clear()
        self._by_call.clear()
        self._transcribes.clear()
        for call in self.calls.values():
            call.close()
        self.calls.clear()

    # -- CallOwner --------------------------------------------------------------------------

    @property
    def status_url(self) -> str:
        url = self._status_url
        if url is None:
            self.check_open()
            raise AssertionError("unreachable")  # pragma: no cover
        return url

    @property
    def wait_timeout(self) -> float | None:
        return self._wait_timeout

    def new_control_id(self) -> str:
        """96 unpredictable bits, base64url (16 characters)."""
        pos = self._id_pos
        ids = self._ids
        if pos >= len(ids):
            ids = self._ids = base64.urlsafe_b64encode(os.urandom(_ID_BYTES * _ID_BATCH)).decode()
            pos = 0
        self._id_pos = pos + _ID_CHARS
        return ids[pos : pos + _ID_CHARS]

    def correlated_status_url(self, given: object) -> str:
        """The session's status_url for a correlated command; a caller's own is refused."""
        if given is not None and given is not msgspec.UNSET:
            raise ValidationError(
                "status_url",
                "the session sets status_url itself to correlate webhooks; "
                "pass correlate=False to send your own",
            )
        return self.status_url

    def pending(self, call: Call) -> list[OperationHandle[Any]]:
        ops = self._by_call.get(call.id)
        return list(ops.values()) if ops else []

    async def send(
        self, call: Call | None, cmd: _cmd.Command, request_timeout: TimeoutArg = DEFAULT
    ) -> Any:
        """The one send path: checks, encode, count, trace, POST; a 404 ends the call."""
        if self._state != "open":
            self.check_open()
        call_id = None
        if call is not None:
            call_id = call.id
            if call.is_ended:
                if type(cmd) is _cmd.End:
                    return None
                raise self._ended_error(call, f"cannot send {cmd.command}")
        body = encode_command(cmd, call_id)
        self.commands_sent += 1
        if self._trace_command is not None:
            self._guarded(self._trace_command, cmd, call_id)
        try:
            leg: AnyLeg = await self._transport.post(
                body, cmd.command, has_control_id=has_control_id(cmd), timeout=request_timeout
            )
        except NotFoundError as exc:
            if call is None:
                raise
            self._gone(call, "not_found")
            if type(cmd) is _cmd.End:
                return None  # a retried end, or an end after the platform ended the call
            gone = CallNotFoundError(exc, call_id=call.id)
        else:
            if call is not None:
                call.leg = leg
                if _ends_call(cmd) and not call.is_ended:
                    self._expect_end(call, cmd)
            return leg
        raise gone  # outside the except clause: nothing of the HTTP layer is chained

    async def start(
        self,
        call: Call,
        kind: OperationKind,
        cmd: Any,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> OperationHandle[Any]:
        """Register the operation's handle, then send its command.

        ``send``'s path for a start command, inline (one coroutine frame fewer on every
        resumption of the request): ``register`` has made ``send``'s checks (the
        session is open, the call has not ended), and a start command ends no call.
        """
        handle = self.register(call, kind, cmd)
        call_id = call.id
        try:
            body = encode_command(cmd, call_id)
            self.commands_sent += 1
            if self._trace_command is not None:
                self._guarded(self._trace_command, cmd, call_id)
            control_id = handle.control_id
            leg: AnyLeg = await self._transport.post(
                body,
                cmd.command,
                has_control_id=isinstance(control_id, str) and control_id != "",
                timeout=request_timeout,
            )
        except NotFoundError:
            self._gone(call, "not_found")
            self._forget(handle, remember=False)
            raise
        except BaseException:
            # never sent, or refused: forget the handle without remembering its key
            self._forget(handle, remember=False)
            raise
        call.leg = leg
        return handle

    def register(self, call: Call, kind: OperationKind, cmd: Any) -> OperationHandle[Any]:
        """Index a new handle for ``cmd`` on ``call`` (before the command is sent)."""
        if self._state != "open":
            self.check_open()
        if call.state == "ended":  # call.is_ended
            raise self._ended_error(call, f"cannot start {kind.name}")
        control_id: str = cmd.control_id
        ops = self.ops
        if control_id in ops:
            raise ValidationError("control_id", f"{control_id!r} is already active")
        handle_cls = kind.handle
        assert handle_cls is not None
        handle = handle_cls.from_command(cmd, call)
        call_id = call.id
        ops[control_id] = handle
        by_call = self._by_call.get(call_id)
        if by_call is None:
            self._by_call[call_id] = {control_id: handle}
            if call_id not in self._heard:  # a call not followed: the sweep watches it too
                self._heard[call_id] = self._clock()
        else:
            by_call[control_id] = handle
        if kind.route_by == "call_id":
            # a second transcribe is refused by the platform (409): it must not displace
            self._transcribes.setdefault(call_id, handle)
        return handle

    def settle(self, handle: OperationHandle[Any], outcome: Any) -> None:
        """Settle ``handle`` and forget it (for tools that stand in for webhooks)."""
        self._settle(handle, outcome)

    # -- dial and attach ----------------------------------------------------------------

    async def dial(self, cmd: _cmd.Dial, *, correlate: bool, request_timeout: TimeoutArg) -> Call:
        """Send a dial; a correlated call is followed (its webhooks routed, its end
        watched). Call-state events for it that beat the answer wait in the buffer."""
        if self._state != "open":
            self.check_open()
        self._dials_in_flight += 1
        try:
            leg: AnyLeg = await self.send(None, cmd, request_timeout)
        finally:
            self._dials_in_flight -= 1
        call = Call(self, leg.id, leg, followed=correlate)
        if correlate:
            self._follow(call)
            if self._watchdog_after is not None and call.last_event is None:
                self._arm_watchdog(call)
        return call

    def attach(self, call_id: str, *, direction: Literal["inbound", "attached"]) -> Call:
        """A call the session did not dial (no call-state webhooks will come).

        Once per inbound call, so ``_follow`` is inlined: its calls were a measurable
        part of an inbound call's cost (benchmarks/inbound_bench.py)."""
        if self._state != "open":
            self.check_open()
        calls = self.calls
        existing = calls.get(call_id)
        if existing is not None:
            return existing
        call = Call(self, call_id, direction=direction, answered=True)
        calls[call_id] = call
        self._heard.setdefault(call_id, self._clock())
        if self._early_count:
            self._replay_early(call)
        return call

    def _follow(self, call: Call) -> None:
        call_id = call.id
        self.calls[call_id] = call
        self._heard.setdefault(call_id, self._clock())
        self._replay_early(call)

    def _replay_early(self, call: Call) -> None:
        early = self._take_early(call.id)
        if early is not None:
            for event in early:
                self._apply_call(call, event)

    # -- the sink -----------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Route one decoded webhook (the receiver's ``EventSink``). Never raises."""
        try:
            cls = type(event)
            if cls not in _NOT_BY_CONTROL_ID:  # an operation's event: the usual one, inline
                control_id = event.control_id
                handle = self.ops.get(control_id) if control_id is not None else None
                if handle is not None:
                    self._feed(handle, event)
                else:
                    self._route(event)
            else:
                self._route(event)
        except Exception as exc:  # a bug here must not become a 500 for the platform
            self._route_log("failed to route %s", type(event).__name__, exc_info=exc)
        if logger.isEnabledFor(_DEBUG):
            logger.debug(
                "webhook %s (call %r, operation %r)",
                describe_event(event),
                event.call_id,
                event.control_id,
            )
        trace = self._trace_event
        if trace is not None:  # after routing: a failing callback cannot lose the event
            self._guarded(trace, event)

    def _route(self, event: Event) -> None:
        cls = type(event)
        if cls not in _NOT_BY_CONTROL_ID:  # deliver() found no handle for it
            control_id = event.control_id
            if control_id is None:
                self.unknown += 1
            elif control_id in self._recent_ops:
                self.late += 1
            else:
                self.unmatched += 1
            return
        if cls is CallStateEvent or cls is ReferEvent:
            call_id = event.call_id
            if call_id is None:
                self.unknown += 1
                return
            call = self.calls.get(call_id)
            if call is not None:
                self._apply_call(call, event)
            elif call_id in self._recent_calls:
                self.late += 1
            elif self._dials_in_flight:
                self._buffer(call_id, event)
            else:
                self.unmatched += 1
            return
        if cls is TranscriptCompletedEvent or cls is TranscriptFailedEvent:
            call_id = event.call_id
            handle = self._transcribes.get(call_id) if call_id is not None else None
            if handle is not None:
                self._feed(handle, event)
            elif call_id is None:
                self.unknown += 1
            elif call_id in self._recent_ops:
                self.late += 1
            else:
                self.unmatched += 1
            return
        self.unknown += 1  # UnknownEvent

    def _apply_call(self, call: Call, event: Event) -> None:
        was_ended = call.is_ended
        if not call.apply(event):
            self.duplicates += 1
            return
        self.routed += 1
        call_id = call.id
        self._heard[call_id] = self._clock()
        watchdog = self._watchdogs.pop(call_id, None)
        if watchdog is not None:
            watchdog.cancel()
        if call.is_ended and not was_ended:
            self._call_ended(call)

    def _feed(self, handle: OperationHandle[Any], event: Event) -> None:
        outcome = handle.apply(event)
        if outcome is None:
            self.duplicates += 1
            return
        self.routed += 1
        call: Call = handle.call  # type: ignore[assignment]  # the core's own calls only
        self._heard[call.id] = self._clock()
        if outcome is NOTHING:
            return
        if call.state == "ended":  # call.is_ended
            outcome = self._outcome_at_call_end(handle, outcome, call)
        elif isinstance(outcome, OperationFailed) and handle.kind.call_end == "fail":
            self._hold(handle, outcome)
            if (not call.followed or call.direction != "outbound") and _suggests_call_gone(event):
                self._probe(call)
            return
        handle.settle(outcome)  # self._settle, inline
        self._forget(handle, remember=True)

    def _outcome_at_call_end(self, handle: OperationHandle[Any], outcome: Any, call: Call) -> Any:
        """What an operation that ended with (or after) its call's end settles with: what
        its kind keeps as a result (a recording, a transcript, a detector's decision),
        else ``CallEndedError`` carrying its last event."""
        kept = handle.result_at_call_end(outcome)
        if kept is not NOTHING:
            return kept
        last = handle.last_event
        return CallEndedError(
            f"{handle.kind.name} {handle.control_id!r} ended because call {call.id!r} "
            f"ended ({call.end_reason}); last event: "
            f"{describe_event(last) if last is not None else 'none'}",
            control_id=handle.control_id,
            end_reason=call.end_reason,
            call_id=call.id,
            event=last,
        )

    def _settle(self, handle: OperationHandle[Any], outcome: Any) -> None:
        handle.settle(outcome)
        self._forget(handle, remember=True)

    def _forget(self, handle: OperationHandle[Any], *, remember: bool) -> None:
        control_id = handle.control_id
        ops = self.ops
        if ops.get(control_id) is handle:
            del ops[control_id]
        call: Call = handle.call  # type: ignore[assignment]  # the core's own calls only
        call_id = call.id
        by_call = self._by_call.get(call_id)
        if by_call is not None and by_call.get(control_id) is handle:
            del by_call[control_id]
            if not by_call:
                del self._by_call[call_id]
        if self._transcribes and self._transcribes.get(call_id) is handle:
            del self._transcribes[call_id]
            if remember:
                self._recent_ops.add(call_id)
        if self._held:
            held = self._held.pop(handle, None)
            if held is not None:
                held[1].cancel()
        if remember:
            self._recent_ops.add(control_id)
        if call.state == "ended" and call_id not in self._by_call:  # call.is_ended
            self._forget_call(call)

    # -- errors held while the call may be ending ----------------------------------------

    def _hold(self, handle: OperationHandle[Any], error: BaseException) -> None:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.call_end_grace, self._release_held, handle)
        self._held[handle] = (error, timer)

    def _release_held(self, handle: OperationHandle[Any]) -> None:
        held = self._held.pop(handle, None)
        if held is not None and not handle.done:
            self._settle(handle, held[0])

    # -- the end of a call ----------------------------------------------------------------

    def _call_ended(self, call: Call) -> None:
        """The call ended: held errors become CallEndedError now; other pending handles
        get the grace period for their own terminal event."""
        call_id = call.id
        for timer in (self._watchdogs.pop(call_id, None), self._call_timers.pop(call_id, None)):
            if timer is not None:
                timer.cancel()
        pending = self._by_call.get(call_id)
        if not pending:
            self._forget_call(call)
            return
        for handle in list(pending.values()):
            if handle in self._held:
                self._settle(handle, self._outcome_at_call_end(handle, NOTHING, call))
        if call_id not in self._by_call:
            return  # all settled (and the call forgotten)
        loop = asyncio.get_running_loop()
        self._call_timers[call_id] = loop.call_later(
            self.call_end_grace, self._grace_over, call, False
        )

    def _grace_over(self, call: Call, final: bool) -> None:
        """Settle what is still pending on an ended call; kinds that expect their result
        only after the call ends (transcribe) get longer."""
        call_id = call.id
        self._call_timers.pop(call_id, None)
        longest = 1.0
        for handle in list(self._by_call.get(call_id, {}).values()):
            factor = handle.kind.grace_factor
            if not final and factor > 1.0:
                longest = max(longest, factor)
            else:
                self._settle(handle, self._outcome_at_call_end(handle, NOTHING, call))
        if call_id in self._by_call and longest > 1.0:
            loop = asyncio.get_running_loop()
            self._call_timers[call_id] = loop.call_later(
                self.call_end_grace * (longest - 1.0), self._grace_over, call, True
            )

    def _forget_call(self, call: Call) -> None:
        call_id = call.id
        if self.calls.get(call_id) is call:
            del self.calls[call_id]
        self._heard.pop(call_id, None)
        self._probing.discard(call_id)
        for timers in (self._call_timers, self._watchdogs):
            timer = timers.pop(call_id, None)
            if timer is not None:
                timer.cancel()
        self._recent_calls.add(call_id)

    def _gone(self, call: Call, reason: str) -> None:
        """The library learned otherwise than by webhook that the call ended."""
        if call.mark_ended(reason):
            self.calls_ended_locally += 1
            self._call_ended(call)

    def _ended_error(self, call: Call, what: str) -> CallEndedError:
        return CallEndedError(
            f"{what}: call {call.id!r} has ended ({call.end_reason})",
            end_reason=call.end_reason,
            call_id=call.id,
            event=call.last_event,
        )

    def _expect_end(self, call: Call, cmd: _cmd.Command) -> None:
        """After a successful end (or update status=completed/canceled), the call is
        ended locally if its ``ended`` webhook has not arrived within the grace."""
        if not call.followed or call.direction != "outbound":
            # no call-state webhooks will come: the command's success is the end
            self._gone(call, getattr(cmd, "reason", None) or "hangup")
            return
        old = self._call_timers.pop(call.id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._call_timers[call.id] = loop.call_later(
            max(self.call_end_grace, 0.001), self._end_webhook_lost, call
        )

    def _end_webhook_lost(self, call: Call) -> None:
        self._call_timers.pop(call.id, None)
        if not call.is_ended:
            self._end_lost_log(
                "call %r: no 'ended' webhook after it was ended; ending it locally", call.id
            )
            self._gone(call, "end_webhook_lost")

    # -- liveness: probes, the maximum call length, the dial watchdog ---------------------

    def _probe(self, call: Call) -> None:
        if call.id in self._probing or self._state != "open":
            return
        self._probing.add(call.id)
        task = asyncio.get_running_loop().create_task(self._run_probe(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_probe(self, call: Call) -> None:
        try:
            await self.send(call, _PROBE, 5.0)
        except CallEndedError:
            pass
        except NotFoundError:
            pass  # send() ended the call
        except Exception as exc:
            logger.debug("liveness probe of call %r failed: %r", call.id, exc)
        finally:
            self._probing.discard(call.id)

    def _sweep_interval(self) -> float:
        return max(min(self._max_call_length / 8, 300.0), 0.01)

    def _sweep(self) -> None:
        """End calls not heard from for the platform's maximum call length."""
        now = self._clock()
        limit = self._max_call_length
        for call_id, heard in list(self._heard.items()):
            if now - heard > limit:
                call = self.calls.get(call_id)
                if call is None:  # not followed, but operations may be pending on it
                    pending = self._by_call.get(call_id)
                    call = _call_of(next(iter(pending.values()))) if pending else None
                if call is not None:
                    self._max_length_log(
                        "call %r: nothing heard for %.0f s (the maximum call length); "
                        "ending it locally",
                        call_id,
                        limit,
                    )
                    self._gone(call, "max_call_length")
                else:
                    self._heard.pop(call_id, None)
        if self._state == "open":
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def _arm_watchdog(self, call: Call) -> None:
        assert self._watchdog_after is not None
        rejections = self._rejections() if self._rejections is not None else 0
        loop = asyncio.get_running_loop()
        self._watchdogs[call.id] = loop.call_later(
            self._watchdog_after, self._no_webhook, call, rejections
        )

    def _no_webhook(self, call: Call, rejections_then: int) -> None:
        self._watchdogs.pop(call.id, None)
        rejected = (self._rejections() if self._rejections is not None else 0) - rejections_then
        self._no_webhook_log(
            "no webhook arrived for call %r within %g s of its dial; the platform was told "
            "to send them to %r. Signature rejections meanwhile: %d (a wrong signing key or "
            "public URL?). Check that this URL reaches this process",
            call.id,
            self._watchdog_after,
            self._status_url,
            rejected,
        )

    # -- the early buffer -----------------------------------------------------------------

    def _buffer(self, call_id: str, event: Event) -> None:
        now = self._clock()
        self._expire(now)
        size = len(_encode(event))
        bucket = self._early.get(call_id)
        if (
            self._early_count >= self._early_max
            or self._early_bytes + size > self._early_max_bytes
            or (bucket is not None and len(bucket) >= self._early_per_call)
        ):
            self.expired += 1
            self._early_full_log(
                "early-event buffer full (%d events, %d bytes; %d for this call): dropped a "
                "call-state event for %r",
                self._early_count,
                self._early_bytes,
                len(bucket) if bucket is not None else 0,
                call_id,
            )
            return
        if bucket is None:
            self._early[call_id] = [(event, size)]
            self._expiry.append((now + self._early_ttl, call_id))
        else:
            bucket.append((event, size))
        self._early_count += 1
        self._early_bytes += size
        self.buffered += 1

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, key = expiry.popleft()
            bucket = self._early.pop(key, None)
            if bucket:
                self._drop(bucket)
                self.expired += len(bucket)
                self._expired_log(
                    "expired %d unmatched call-state event(s) for %r after %.1fs",
                    len(bucket),
                    key,
                    self._early_ttl,
                )

    def _drop(self, bucket: list[tuple[Event, int]]) -> None:
        self._early_count -= len(bucket)
        self._early_bytes -= sum(size for _, size in bucket)

    def _take_early(self, call_id: str) -> list[Event] | None:
        if not self._early_count:
            return None
        bucket = self._early.pop(call_id, None)
        if bucket is None:
            return None
        self._drop(bucket)
        self.replayed += len(bucket)
        return [event for event, _ in bucket]

    # -- tracing ----------------------------------------------------------------------

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self.trace_errors += 1
            self._trace_log("the trace callback raised", exc_info=exc)

    # -- introspection ----------------------------------------------------------------

    def stats(self) -> RegistryStats:
        self._expire(self._clock())
        return RegistryStats(
            routed=self.routed,
            buffered=self.buffered,
            replayed=self.replayed,
            expired=self.expired,
            duplicates=self.duplicates,
            late=self.late,
            unmatched=self.unmatched,
            unknown=self.unknown,
            pending_operations=len(self.ops),
            live_calls=len(self.calls),
            buffered_now=self._early_count,
            buffered_bytes=self._early_bytes,
            calls_ended_locally=self.calls_ended_locally,
            trace_errors=self.trace_errors,
        )


class WaitMeter(Protocol):
    """What a ``MeteredCore`` reports the waits it completes to (the session's
    ``signalwire_calls.metrics.SessionMetrics``).

    ``webhook_started`` is the clock reading taken when the receiver began handling the
    webhook being delivered, ``None`` outside a webhook's delivery (a timer, a 404, a
    replayed early event); ``observe_wait(started)`` is called once for each wait that
    webhook completes.
    """

    @property
    def webhook_started(self) -> float | None: ...

    def observe_wait(self, started: float) -> None: ...


class MeteredCore(Core):
    """A ``Core`` that reports each wait a webhook completes to a ``WaitMeter``: an
    operation settled (``finished()``), a call answered (``answered()``), a call ended
    (``ended()``, and operations its end settles at once).

    A subclass, so a session without metrics pays nothing on its webhook path.
    """

    #: Set by the session right after construction, before any webhook.
    meter: WaitMeter

    def _waited(self) -> None:
        meter = self.meter
        started = meter.webhook_started
        if started is not None:
            meter.observe_wait(started)

    def _feed(self, handle: OperationHandle[Any], event: Event) -> None:
        super()._feed(handle, event)
        if handle.done:  # a pending handle: the core forgets handles once settled
            self._waited()

    def _apply_call(self, call: Call, event: Event) -> None:
        before = call.state
        super()._apply_call(call, event)
        after = call.state
        if after != before and (after == "answered" or after == "ended"):
            self._waited()

    def _settle(self, handle: OperationHandle[Any], outcome: Any) -> None:
        done = handle.done
        super()._settle(handle, outcome)
        if not done:
            self._waited()


#: Event classes not routed by ``control_id``: call state and refer events (by call),
#: transcripts (by call, to the call's transcribe), and events of unknown types.
_NOT_BY_CONTROL_ID: Final = frozenset(
    {CallStateEvent, ReferEvent, TranscriptCompletedEvent, TranscriptFailedEvent, UnknownEvent}
)


def _call_of(handle: OperationHandle[Any]) -> Call:
    """The ``Call`` a handle runs on: the core registers handles for its own calls only."""
    return cast(Call, handle.call)


def _ends_call(cmd: _cmd.Command) -> bool:
    if type(cmd) is _cmd.End:
        return True
    return type(cmd) is _cmd.Update and cmd.status in ("completed", "canceled")
