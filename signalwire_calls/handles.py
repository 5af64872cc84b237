"""Control handles: one object per long-running operation, resolved by webhooks; and the
table of operation kinds (``KINDS``).

A handle is a small state machine (never a parked Task). The session's core feeds it
the operation's events (``apply``) and decides when it settles (``settle``); the handle
keeps the platform ``state``, the events it saw, and wakes every waiter of
``finished()`` when it settles. Cancelling a waiter never affects the handle.

    play = await call.play(tts("Hello"))
    async with play:                      # stops the remote play on exit unless finished
        async for event in play.events():
            print(event.params.state)
    result = await play.finished(timeout=30)

Each kind of operation is described once, by the ``OperationKind`` row its handle class
declares (``class PlayHandle(OperationHandle[PlayResult], kind=OperationKind(...))``):
the command that starts it, its sub-commands, the events it is fed, how events are
routed to it, how long it may outlive its call, and whether its end at the call's end
is still a result. ``KINDS`` and the maps derived from it are what the rest of the
package (``Call``, the core, the simulator) looks operations up in.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Final, Generic, Literal, Protocol, Self, TypeVar

import msgspec

from . import commands as _cmd
from ._transport import DEFAULT, TimeoutArg
from .errors import HandleStateError, OperationFailed, WaitTimeout
from .events import (
    CollectEvent,
    DetectEvent,
    Event,
    FaxEvent,
    PlayEvent,
    RecordEvent,
    StreamEvent,
    TapEvent,
    TranscriptCompletedEvent,
    TranscriptFailedEvent,
    describe_event,
)


class Call(Protocol):
    """What a handle needs of the call it runs on (``signalwire_calls.Call`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def is_ended(self) -> bool: ...

    @property
    def wait_timeout(self) -> float | None: ...

    async def send(self, cmd: Any, *, request_timeout: TimeoutArg = ...) -> Any: ...


__all__ = [
    "HISTORY_LIMIT",
    "KINDS",
    "KIND_BY_NAME",
    "KIND_BY_START",
    "START_COMMANDS",
    "SUB_COMMANDS",
    "CollectHandle",
    "CollectResult",
    "DetectHandle",
    "DetectResult",
    "HandleStatus",
    "OperationHandle",
    "OperationKind",
    "PlayHandle",
    "PlayResult",
    "RecordHandle",
    "RecordResult",
    "StreamHandle",
    "StreamResult",
    "TapHandle",
    "TapResult",
    "TranscribeHandle",
    "TranscribeResult",
]

R = TypeVar("R")

#: Events kept per handle (and per call) for ``events()`` replay and duplicate detection.
HISTORY_LIMIT: Final = 64


class HandleStatus(enum.Enum):
    """Where an operation stands on the client's side."""

    PENDING = "pending"  # sent; no event seen yet
    RUNNING = "running"  # the platform reported it started (playing, recording, ...)
    FINISHED = "finished"  # ended with a result
    FAILED = "failed"  # ended with an error (remote error, call ended, session closed)


# ----------------------------------------------------------------------------- results


class PlayResult(msgspec.Struct, frozen=True, kw_only=True):
    """A play that finished (played out or stopped)."""

    state: str = "finished"


class RecordResult(msgspec.Struct, frozen=True, kw_only=True):
    """A finished recording. ``state`` is ``finished`` or ``no_input`` (nothing heard).
    A recording cut by the call's end is still a result: that is how most end."""

    state: str
    url: str | None = None
    duration: float | None = None
    size: int | None = None


class CollectResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a collect gathered. ``kind`` is ``digit``, ``speech``, ``no_input``,
    ``no_match`` (or ``finished`` for a continuous collect stopped without a result)."""

    kind: str
    digits: str | None = None
    terminator: str | None = None
    text: str | None = None
    confidence: float | None = None


class DetectResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a detector decided. ``kind`` is ``machine``, ``human``, ``unknown``, ``fax``
    or ``digit``; ``value`` the raw decisive event (``MACHINE``, ``CED``, ``5``, ...)."""

    kind: str
    value: str | None = None
    beep: bool = False


#: The result of every finished play (frozen: one instance serves them all).
_PLAY_FINISHED: Final = PlayResult(state="finished")


class TapResult(msgspec.Struct, frozen=True, kw_only=True):
    """A tap that ended."""

    state: str = "finished"


class StreamResult(msgspec.Struct, frozen=True, kw_only=True):
    """A media stream that ended."""

    state: str = "finished"
    url: str | None = None
    name: str | None = None


class TranscribeResult(msgspec.Struct, frozen=True, kw_only=True):
    """A completed transcript. ``text`` is ``None`` when nothing was transcribed."""

    text: str | None = None
    transcript_id: str | None = None


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class OperationKind:
    """One kind of operation, described once.

    ``start`` is the command that starts it (``None`` for stop-only kinds such as a fax
    started by SWML); ``sub`` maps each action (``stop``, ``pause``, ``resume``,
    ``volume``, ``start_input_timers``) to its command; ``events`` are the event classes
    fed to its handle; ``route_by`` is the key events are routed by (``control_id``, or
    ``call_id`` for transcripts, which carry none); ``grace_factor`` multiplies the
    session's call-end grace for kinds whose result comes only after the call ends;
    ``call_end`` says what the operation's end at (or after) the call's end means:
    ``"fail"`` (``CallEndedError``) or ``"result"`` (a recording, a transcript).
    ``handle`` is the handle class (set by the class that declares the row).
    """

    name: str
    start: type[_cmd.Command] | None
    events: tuple[type[Event], ...]
    sub: Mapping[str, type[_cmd.Command]] = field(default_factory=dict)
    route_by: Literal["control_id", "call_id"] = "control_id"
    grace_factor: float = 1.0
    call_end: Literal["fail", "result"] = "fail"
    handle: type[OperationHandle[Any]] | None = None

    @property
    def stop(self) -> type[_cmd.Command] | None:
        """The command that stops the operation, if any."""
        return self.sub.get("stop")


_DECLARED: list[OperationKind] = []


# ----------------------------------------------------------------------------- streams


class _EventStream:
    """One consumer of ``events()``: a queue with a single wake-up future."""

    __slots__ = ("_closed", "_items", "_wakeup")

    def __init__(self, history: list[Any] | None) -> None:
        self._items: deque[Any] = deque(history or ())
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False

    def push(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        w = self._wakeup
        if w is not None and not w.done():
            w.set_result(None)

    async def next(self) -> Any:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        return self._items.popleft()


class _FirstEvent(_EventStream):
    """A stand-in consumer of a handle's events that only calls ``fn`` once, on the
    first event or when the handle settles."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], None] | None) -> None:
        super().__init__(None)
        self._fn = fn

    def push(self, item: Any) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()

    def close(self) -> None:
        self.push(None)


class EventLog:
    """Events of a handle or a call: bounded history (duplicate detection, replay) and
    the live ``events()`` consumers. Created on the first event."""

    __slots__ = ("history", "streams")

    def __init__(self) -> None:
        self.history: list[Event] = []
        self.streams: list[_EventStream] | None = None

    def add(self, event: Event) -> bool:
        """Record ``event``; ``False`` when it is a duplicate of one already seen."""
        history = self.history
        if event in history:
            return False
        history.append(event)
        if len(history) > HISTORY_LIMIT:  # a long continuous collect: keep the tail
            del history[0]
        streams = self.streams
        if streams is not None:
            for s in streams:
                s.push(event)
        return True

    def close(self) -> None:
        streams = self.streams
        if streams is not None:
            for s in streams:
                s.close()


async def follow(log: EventLog, closed: bool) -> AsyncIterator[Event]:
    """Replay ``log``'s history, then follow new events until it closes."""
    stream = _EventStream(log.history)
    if closed:
        stream.close()
    elif log.streams is None:
        log.streams = [stream]
    else:
        log.streams.append(stream)
    try:
        while True:
            try:
                item = await stream.next()
            except StopAsyncIteration:
                return
            yield item
    finally:
        streams = log.streams
        if streams is not None and stream in streams:
            streams.remove(stream)


async def _closed_stream() -> AsyncIterator[Event]:
    return
    yield  # pragma: no cover - makes this an async generator


class _Pending(enum.Enum):
    PENDING = 0


#: The outcome of a handle that has not settled; also "not terminal" from ``apply``.
NOTHING: Final = _Pending.PENDING
#: ``apply``'s answer for an event seen before (or one arriving after the handle settled).
DUPLICATE: Final = None

_Outcome = Any  # a result, a BaseException, or NOTHING


def _wake_all(waiter: asyncio.Future[None] | list[asyncio.Future[None]] | None) -> None:
    if waiter is None:
        return
    if isinstance(waiter, list):
        for w in waiter:
            if not w.done():
                w.set_result(None)
    elif not waiter.done():
        waiter.set_result(None)


# ----------------------------------------------------------------------------- base


class OperationHandle(Generic[R]):
    """Base of every control handle: status, events, ``finished()``, ``stop()``.

    Producer side (the session's core, nothing else): ``apply(event)`` interprets an
    event of this operation and returns its outcome when the event ends it; ``settle``
    ends the handle with a result or an error. Subclasses declare their
    ``OperationKind`` and build results from events (``_outcome``).
    """

    __slots__ = ("_log", "_outcome", "_waiter", "call", "control_id", "state")

    kind: ClassVar[OperationKind]

    def __init_subclass__(cls, kind: OperationKind | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = replace(kind, handle=cls)
            _DECLARED.append(cls.kind)

    def __init__(self, control_id: str, call: Call) -> None:
        self.control_id = control_id
        self.call = call
        self.state: str | None = None  # the platform's last reported state
        self._outcome: _Outcome = NOTHING
        self._waiter: asyncio.Future[None] | list[asyncio.Future[None]] | None = None
        self._log: EventLog | None = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} control_id={self.control_id!r} "
            f"status={self.status.value} state={self.state!r}>"
        )

    @classmethod
    def from_command(cls, cmd: Any, call: Call) -> OperationHandle[R]:
        """The handle for a start command about to be sent on ``call``."""
        return cls(cmd.control_id, call)

    # -- status ---------------------------------------------------------------------

    @property
    def status(self) -> HandleStatus:
        """``PENDING`` until the first event, ``RUNNING``, then ``FINISHED``/``FAILED``."""
        outcome = self._outcome
        if outcome is NOTHING:
            log = self._log
            return HandleStatus.RUNNING if log is not None and log.history else HandleStatus.PENDING
        return HandleStatus.FAILED if isinstance(outcome, BaseException) else HandleStatus.FINISHED

    @property
    def done(self) -> bool:
        """True once the handle settled (finished or failed)."""
        return self._outcome is not NOTHING

    @property
    def last_event(self) -> Event | None:
        """The last event seen for this operation."""
        log = self._log
        return log.history[-1] if log is not None and log.history else None

    # -- producer side --------------------------------------------------------------

    def apply(self, event: Event) -> _Outcome:
        """Interpret one event. Returns ``DUPLICATE`` (``None``) for an event seen before
        or arriving after the handle settled, ``NOTHING`` when the operation goes on,
        else the outcome the event ends it with (a result, or ``OperationFailed``).
        The handle does not settle itself: its owner decides (see ``settle``)."""
        if self._outcome is not NOTHING:
            return DUPLICATE
        log = self._log
        if log is None:  # the first event: nothing to compare with, nobody following
            log = self._log = EventLog()
            log.history.append(event)
        elif not log.add(event):
            return DUPLICATE
        return self._interpret(event)

    def settle(self, outcome: R | BaseException) -> bool:
        """End the handle with a result or an error (first call wins); wakes every
        waiter and closes ``events()``. Returns whether it settled now."""
        if self._outcome is not NOTHING:
            return False
        self._outcome = outcome
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            _wake_all(waiter)
        log = self._log
        if log is not None and log.streams is not None:
            log.close()
        return True

    def result_at_call_end(self, outcome: Any) -> Any:
        """What this operation keeps when it ends with (or after) its call's end:
        ``outcome`` when it is a result and the kind's ``call_end`` is ``"result"``,
        else ``NOTHING`` (the owner settles it with ``CallEndedError``)."""
        if (
            self.kind.call_end == "result"
            and outcome is not NOTHING
            and not isinstance(outcome, BaseException)
        ):
            return outcome
        return NOTHING

    def _interpret(self, event: Event) -> _Outcome:  # pragma: no cover - overridden
        raise NotImplementedError

    def _fail(self, message: str, event: Event) -> OperationFailed:
        return OperationFailed(
            f"{self.kind.name} {self.control_id!r} failed: {message}",
            control_id=self.control_id,
            event=event,
        )

    # -- user side ------------------------------------------------------------------

    async def finished(self, timeout: float | None = None) -> R:
        """Wait until the operation ends and return its result.

        Raises ``OperationFailed`` when the platform reported an error,
        ``CallEndedError`` when the operation ended because the call ended (see the
        handle kinds for which), ``SessionClosedError`` when the session closed, and
        ``WaitTimeout`` (a ``TimeoutError``) when ``timeout`` seconds pass (the handle
        stays intact and can be awaited again). Without ``timeout`` the session's
        ``wait_timeout`` applies (none by default).
        """
        if self._outcome is NOTHING:
            if timeout is None:
                timeout = self.call.wait_timeout
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            waiter = self._waiter
            if waiter is None:
                self._waiter = fut
            elif isinstance(waiter, list):
                waiter.append(fut)
            else:
                self._waiter = [waiter, fut]
            try:
                if timeout is None:
                    await fut
                else:
                    try:
                        async with asyncio.timeout(timeout):
                            await fut
                    except TimeoutError:
                        raise self._timed_out(timeout) from None
            finally:
                if not fut.done() or fut.cancelled():
                    self._forget(fut)
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    def _forget(self, fut: asyncio.Future[None]) -> None:
        waiter = self._waiter
        if waiter is fut:
            self._waiter = None
        elif isinstance(waiter, list) and fut in waiter:
            waiter.remove(fut)

    def _timed_out(self, timeout: float) -> WaitTimeout:
        last = self.last_event
        seen = describe_event(last) if last is not None else "no event yet"
        return WaitTimeout(
            f"{self.kind.name} {self.control_id!r} on call {self.call.id!r} did not finish "
            f"within {timeout:g} s (last event: {seen})",
            awaited=f"{self.kind.name} {self.control_id}",
            timeout=timeout,
            last_event=last,
        )

    def result(self) -> R:
        """The result of a handle that already finished; ``HandleStateError`` otherwise."""
        outcome = self._outcome
        if outcome is NOTHING:
            raise HandleStateError(f"{self.kind.name} {self.control_id!r} has not finished yet")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    def events(self) -> AsyncIterator[Event]:
        """Every event of this operation, from the first one seen, until it settles."""
        log = self._log
        if log is None:
            if self.done:
                return _closed_stream()
            log = self._log = EventLog()
        return follow(log, self.done)

    def add_done_callback(self, fn: Callable[[OperationHandle[R]], None]) -> None:
        """Call ``fn(handle)`` once the handle settles (at once if it already has)."""
        if self.done:
            fn(self)
            return
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda _: fn(self))
        waiter = self._waiter
        if waiter is None:
            self._waiter = fut
        elif isinstance(waiter, list):
            waiter.append(fut)
        else:
            self._waiter = [waiter, fut]

    def add_first_event_callback(self, fn: Callable[[OperationHandle[R]], None]) -> None:
        """Call ``fn(handle)`` on the first event of this operation, or when it settles
        without one (at once if either already happened)."""
        log = self._log
        if self.done or (log is not None and log.history):
            fn(self)
            return
        if log is None:
            log = self._log = EventLog()
        first = _FirstEvent(lambda: fn(self))
        if log.streams is None:
            log.streams = [first]
        else:
            log.streams.append(first)

    async def stop(self, *, request_timeout: TimeoutArg = DEFAULT) -> None:
        """Stop the remote operation. A no-op once the handle settled."""
        stop = self.kind.stop
        if self.done or stop is None:
            return
        await self._control("stop", request_timeout)

    async def _control(self, action: str, request_timeout: TimeoutArg, **params: Any) -> None:
        command = self.kind.sub[action](control_id=self.control_id, **params)
        await self.call.send(command, request_timeout=request_timeout)

    def _require_active(self, action: str) -> None:
        if self.done:
            raise HandleStateError(
                f"cannot {action} {self.kind.name} {self.control_id!r}: it is {self.status.value}"
            )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.done and not self.call.is_ended:
            try:
                await self.stop()
            except Exception:
                if exc is None:
                    raise


# ----------------------------------------------------------------------------- kinds


class PlayHandle(
    OperationHandle[PlayResult],
    kind=OperationKind(
        "play",
        start=_cmd.Play,
        events=(PlayEvent,),
        sub={
            "stop": _cmd.PlayStop,
            "pause": _cmd.PlayPause,
            "resume": _cmd.PlayResume,
            "volume": _cmd.PlayVolume,
        },
    ),
):
    """A running ``calling.play``: ``pause()``, ``resume()``, ``volume(db)``, ``stop()``.

    Settles with ``CallEndedError`` when the play ends at the call's end (its
    ``finished`` arriving once the call is known to have ended, or not at all)."""

    __slots__ = ()

    def _interpret(self, event: Event) -> _Outcome:
        if not isinstance(event, PlayEvent):
            return NOTHING
        state = event.params.state
        self.state = state
        if state == "finished":
            return _PLAY_FINISHED
        if state == "error":
            return self._fail("the platform reported state=error", event)
        return NOTHING

    async def pause(self, *, request_timeout: TimeoutArg = DEFAULT) -> None:
        """Pause playback (``calling.play.pause``)."""
        self._require_active("pause")
        await self._control("pause", request_timeout)

    async def resume(self, *, request_timeout: TimeoutArg = DEFAULT) -> None:
        """Resume paused playback (``calling.play.resume``)."""
        self._require_active("resume")
        await self._control("resume", request_timeout)

    async def volume(self, db: float, *, request_timeout: TimeoutArg = DEFAULT) -> None:
        """Change the volume, -40..40 dB (``calling.play.volume``)."""
        self._require_active("change the volume of")
        await self._control("volume", request_timeout, volume=db)


class RecordHandle(
    OperationHandle[RecordResult],
    kind=OperationKind(
        "record",
        start=_cmd.Record,
        events=(RecordEvent,),
        sub={"stop": _cmd.RecordStop, "pause": _cmd.RecordPause, "resume": _cmd.RecordResume},
        call_end="result",
    ),
):
    """A running ``calling.record``: ``pause()``, ``resume()``, ``stop()``; the result
    carries the recording's url, duration and size (also when the call's end ended it)."""

    __slots__ = ()

    def _interpret(self, event: Event) -> _Outcome:
        if not isinstance(event, RecordEvent):
            return NOTHING
        p = event.params
        state = p.state
        self.state = state
        if state == "finished" or state == "no_input":
            size = p.size
            return RecordResult(
                state=state,
                url=p.url,
                duration=p.duration,
                size=int(size) if size is not None else None,
            )
        if state == "error":
            return self._fail("the platform reported state=error", event)
        return NOTHING

    async def pause(
        self,
        behavior: Literal["skip", "silence"] | None = None,
        *,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> None:
        """Pause the recording; ``behavior`` ``skip`` drops paused audio, ``silence``
        keeps the timing (``calling.record.pause``)."""
        self._require_active("pause")
        if behavior is None:
            await self._control("pause", request_timeout)
        else:
            await self._control("pause", request_timeout, behavior=behavior)

    async def resume(self, *, request_timeout: TimeoutArg = DEFAULT) -> None:
        """Resume a paused recording (``calling.record.resume``)."""
        self._require_active("resume")
        await self._control("resume", request_timeout)


class CollectHandle(
    OperationHandle[CollectResult],
    kind=OperationKind(
        "collect",
        start=_cmd.Collect,
        events=(CollectEvent,),
        sub={"stop": _cmd.CollectStop, "start_input_timers": _cmd.CollectStartInputTimers},
    ),
):
    """A running ``calling.collect``. ``events()`` yields partial results and
    ``start_of_input``; ``finished()`` the final result. Continuous collects settle when
    stopped (``finished()`` then returns the last result). A collect cut by the call's
    end (a result of type ``error`` with or shortly before it) raises
    ``CallEndedError``."""

    __slots__ = ("_continuous", "_last")

    def __init__(self, control_id: str, call: Call, *, continuous: bool = False) -> None:
        super().__init__(control_id, call)
        self._continuous = continuous
        self._last: CollectResult | None = None

    @classmethod
    def from_command(cls, cmd: Any, call: Call) -> CollectHandle:
        return cls(cmd.control_id, call, continuous=cmd.continuous is True)

    def _interpret(self, event: Event) -> _Outcome:
        if not isinstance(event, CollectEvent):
            return NOTHING
        p = event.params
        result = p.result
        rtype = result.type if result is not None else None
        if self._continuous or p.state is not None:
            state = p.state
            self.state = state
            if state == "finished":
                # the closing event of a stopped continuous collect carries no new input
                if self._last is not None:
                    return self._last
                return _collect_result(event) if rtype else CollectResult(kind="finished")
            if rtype is not None and rtype != "start_of_input" and p.final is not False:
                self._last = _collect_result(event)
            if state == "error":
                return self._fail("the platform reported state=error", event)
            return NOTHING
        if rtype is None or rtype == "start_of_input" or p.final is False:
            self.state = "collecting"
            return NOTHING
        if rtype == "error":
            self.state = "error"
            return self._fail("the platform reported result type error", event)
        self.state = "finished"
        return _collect_result(event)

    async def start_input_timers(self, *, request_timeout: TimeoutArg = DEFAULT) -> None:
        """Start the initial-timeout clock now (``calling.collect.start_input_timers``)."""
        self._require_active("start the input timers of")
        await self._control("start_input_timers", request_timeout)


def _collect_result(event: CollectEvent) -> CollectResult:
    result = event.params.result
    assert result is not None
    rp = result.params
    if result.type == "digit" and rp is not None:
        return CollectResult(kind="digit", digits=rp.digits, terminator=rp.terminator or None)
    if result.type == "speech" and rp is not None:
        return CollectResult(kind="speech", text=rp.text, confidence=rp.confidence)
    return CollectResult(kind=result.type or "unknown")


_MACHINE_KINDS = {"HUMAN": "human", "MACHINE": "machine", "UNKNOWN": "unknown"}


class DetectHandle(
    OperationHandle[DetectResult],
    kind=OperationKind(
        "detect", start=_cmd.Detect, events=(DetectEvent,), sub={"stop": _cmd.DetectStop}
    ),
):
    """A running ``calling.detect``. ``finished()`` returns the last decisive outcome
    (human/machine/unknown, the fax tone, the digit) once the detector ends;
    ``outcome()`` returns the first decisive outcome without waiting for the end. A
    detector that ends with the call before deciding raises ``CallEndedError``."""

    __slots__ = ("_beep", "_decision", "_decision_waiters")

    def __init__(self, control_id: str, call: Call) -> None:
        super().__init__(control_id, call)
        self._decision: DetectResult | None = None
        self._beep = False
        self._decision_waiters: list[asyncio.Future[None]] | None = None

    @property
    def decision(self) -> DetectResult | None:
        """The decisive outcome seen so far, if any."""
        return self._decision

    def result_at_call_end(self, outcome: Any) -> Any:
        """A detector that had decided keeps its decision when the call ends."""
        if self._decision is None or isinstance(outcome, BaseException):
            return NOTHING
        return self._decision if outcome is NOTHING else outcome

    def _interpret(self, event: Event) -> _Outcome:
        if not isinstance(event, DetectEvent):
            return NOTHING
        detect = event.params.detect
        if detect is None:
            return NOTHING
        dp = detect.params
        value = dp.event if dp is not None else None
        if dp is not None and dp.beep:
            self._beep = True
        self.state = value
        if value == "finished":
            return self._decision or DetectResult(kind="unknown", beep=self._beep)
        if value == "error":
            return self._fail("the detector reported error", event)
        if value is None:
            return NOTHING
        decision: DetectResult | None = None
        if detect.type == "machine":
            mkind = _MACHINE_KINDS.get(value)
            if mkind is not None:
                decision = DetectResult(kind=mkind, value=value, beep=self._beep)
            elif value == "READY" and self._decision is not None:
                decision = DetectResult(
                    kind=self._decision.kind, value=self._decision.value, beep=self._beep
                )
        elif detect.type == "fax":
            decision = DetectResult(kind="fax", value=value)
        elif detect.type == "digit":
            decision = DetectResult(kind="digit", value=value)
        if decision is not None:
            self._decision = decision
            self._wake_decision()
        return NOTHING

    def _wake_decision(self) -> None:
        waiters, self._decision_waiters = self._decision_waiters, None
        if waiters is not None:
            _wake_all(waiters)

    def settle(self, outcome: DetectResult | BaseException) -> bool:
        """As ``OperationHandle.settle``; also wakes the waiters of ``outcome()``."""
        if not super().settle(outcome):
            return False
        self._wake_decision()
        return True

    async def outcome(self, timeout: float | None = None) -> DetectResult:
        """The first decisive outcome (e.g. ``MACHINE``), as soon as it is known; falls
        back to ``finished()`` when the detector ends without one."""
        if self._decision is None and not self.done:
            if timeout is None:
                timeout = self.call.wait_timeout
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._decision_waiters is None:
                self._decision_waiters = [waiter]
            else:
                self._decision_waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise self._timed_out(timeout or 0.0) from None
        if self._decision is not None:
            return self._decision
        return self.result()


class TapHandle(
    OperationHandle[TapResult],
    kind=OperationKind("tap", start=_cmd.Tap, events=(TapEvent,), sub={"stop": _cmd.TapStop}),
):
    """A running ``calling.tap``; ``stop()`` ends it."""

    __slots__ = ()

    def _interpret(self, event: Event) -> _Outcome:
        if not isinstance(event, TapEvent):
            return NOTHING
        state = event.params.state
        self.state = state
        if state == "finished":
            return TapResult(state=state)
        if state == "error":
            return self._fail("the platform reported state=error", event)
        return NOTHING


class StreamHandle(
    OperationHandle[StreamResult],
    kind=OperationKind(
        "stream", start=_cmd.Stream, events=(StreamEvent,), sub={"stop": _cmd.StreamStop}
    ),
):
    """A running ``calling.stream``; ``stop()`` ends it."""

    __slots__ = ()

    def _interpret(self, event: Event) -> _Outcome:
        if not isinstance(event, StreamEvent):
            return NOTHING
        p = event.params
        self.state = p.state
        if p.state == "finished":
            return StreamResult(state=p.state, url=p.url, name=p.name)
        if p.state == "error":
            return self._fail("the platform reported state=error", event)
        return NOTHING


class TranscribeHandle(
    OperationHandle[TranscribeResult],
    kind=OperationKind(
        "transcribe",
        start=_cmd.Transcribe,
        events=(TranscriptCompletedEvent, TranscriptFailedEvent),
        sub={"stop": _cmd.TranscribeStop},
        route_by="call_id",
        grace_factor=10.0,
        call_end="result",
    ),
):
    """A background ``calling.transcribe``. The transcript arrives after ``stop()`` or
    the end of the call, so this handle waits longer than others once the call ends."""

    __slots__ = ()

    def _interpret(self, event: Event) -> _Outcome:
        if isinstance(event, TranscriptCompletedEvent):
            self.state = "completed"
            return TranscribeResult(text=event.params.text, transcript_id=event.params.id)
        if isinstance(event, TranscriptFailedEvent):
            self.state = "failed"
            return self._fail("the transcript failed", event)
        return NOTHING


# Stop-only kinds: operations started outside this API (SWML, RELAY) that a REST command
# can stop; their events never reach a REST status_url, so they have no handle.
_DECLARED.append(
    OperationKind("send_fax", start=None, events=(FaxEvent,), sub={"stop": _cmd.SendFaxStop})
)
_DECLARED.append(
    OperationKind("receive_fax", start=None, events=(FaxEvent,), sub={"stop": _cmd.ReceiveFaxStop})
)

#: Every kind of operation, in declaration order.
KINDS: Final[tuple[OperationKind, ...]] = tuple(_DECLARED)
#: Kind name -> kind.
KIND_BY_NAME: Final[Mapping[str, OperationKind]] = MappingProxyType({k.name: k for k in KINDS})
#: Start command class -> kind (kinds with a handle).
KIND_BY_START: Final[Mapping[type[_cmd.Command], OperationKind]] = MappingProxyType(
    {k.start: k for k in KINDS if k.start is not None}
)
#: Wire name of a start command -> kind.
START_COMMANDS: Final[Mapping[str, OperationKind]] = MappingProxyType(
    {k.start.command: k for k in KINDS if k.start is not None}
)
#: Wire name of a sub-command -> (kind, action).
SUB_COMMANDS: Final[Mapping[str, tuple[OperationKind, str]]] = MappingProxyType(
    {cmd.command: (k, action) for k in KINDS for action, cmd in k.sub.items()}
)
