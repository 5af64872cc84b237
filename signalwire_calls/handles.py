"""Control handles: one object per long-running operation, resolved by webhooks.

A handle is a small state machine fed by the registry (never a parked Task): it records
the operation's platform ``state``, keeps the events it saw, and resolves every waiter of
``finished()`` when a terminal event, the end of the call or the close of the session
settles it. Cancelling a waiter never affects the handle.

    play = await call.play(tts("Hello"))
    async with play:                      # stops the remote play on exit unless finished
        async for event in play.events():
            print(event.params.state)
    result = await play.finished(timeout=30)
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from . import commands as _cmd
from .errors import CallEndedError, HandleStateError, OperationFailed, SessionClosedError
from .events import (
    CollectEvent,
    DetectEvent,
    Event,
    PlayEvent,
    RecordEvent,
    StreamEvent,
    TapEvent,
    TranscriptCompletedEvent,
    TranscriptFailedEvent,
)

if TYPE_CHECKING:
    from .call import Call

__all__ = [
    "CollectHandle",
    "CollectResult",
    "DetectHandle",
    "DetectResult",
    "HandleStatus",
    "OperationHandle",
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

# Events kept per handle for events() replay and duplicate detection.
HISTORY_LIMIT = 64


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
    """A finished recording. ``state`` is ``finished`` or ``no_input`` (nothing heard)."""

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


# ----------------------------------------------------------------------------- streams


class _EventStream:
    """One consumer of ``handle.events()``: a queue with a single wake-up future."""

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


async def _follow(owner: Any, history: list[Any] | None, closed: bool) -> AsyncIterator[Any]:
    """Replay ``history``, then follow what ``owner`` pushes to its ``_streams`` until
    it closes them (a handle settling, a call ending)."""
    stream = _EventStream(history)
    if closed:
        stream.close()
    elif owner._streams is None:
        owner._streams = [stream]
    else:
        owner._streams.append(stream)
    try:
        while True:
            try:
                item = await stream.next()
            except StopAsyncIteration:
                return
            yield item
    finally:
        streams = owner._streams
        if streams is not None and stream in streams:
            streams.remove(stream)


class _Outcome(enum.Enum):
    NONE = 0


_NOTHING = _Outcome.NONE

# The value a handle's interpreter returns: nothing yet, a result, or an error.
_Step = Any


# ----------------------------------------------------------------------------- base


class OperationHandle(Generic[R]):
    """Base of every control handle: status, events, ``finished()``, ``stop()``.

    Subclasses define how platform events map to a result (``_interpret``) and which
    command stops the operation.
    """

    __slots__ = (
        "_error",
        "_history",
        "_result",
        "_streams",
        "_waiters",
        "call",
        "control_id",
        "state",
        "status",
    )

    kind: str = "operation"
    _stop_command: type[_cmd.Command] | None = None
    # Multiplier of the session's call-end grace period for this kind of handle.
    _grace_factor: float = 1.0

    def __init__(self, control_id: str, call: Call) -> None:
        self.control_id = control_id
        self.call = call
        self.state: str | None = None  # the platform's last reported state
        self.status = HandleStatus.PENDING
        self._result: R | None = None
        self._error: BaseException | None = None
        self._waiters: list[asyncio.Future[None]] | None = None
        self._history: list[Event] | None = None
        self._streams: list[_EventStream] | None = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} control_id={self.control_id!r} "
            f"status={self.status.value} state={self.state!r}>"
        )

    # -- feeding (registry side) --------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the handle settled (finished or failed)."""
        return self.status is HandleStatus.FINISHED or self.status is HandleStatus.FAILED

    def _feed(self, event: Event) -> bool:
        """Apply one event. Returns False when it was a duplicate or came too late."""
        if self.status is HandleStatus.FINISHED or self.status is HandleStatus.FAILED:
            return False
        history = self._history
        if history is None:
            self._history = [event]
        elif event in history:
            return False
        else:
            history.append(event)
            if len(history) > HISTORY_LIMIT:  # a long continuous collect: keep the tail
                del history[0]
        step = self._interpret(event)
        streams = self._streams
        if streams is not None:
            for s in streams:
                s.push(event)
        if step is not _NOTHING:
            self._settle(step)
        elif self.status is HandleStatus.PENDING:
            self.status = HandleStatus.RUNNING
        return True

    def _interpret(self, event: Event) -> _Step:  # pragma: no cover - overridden
        raise NotImplementedError

    def _settle(self, outcome: R | BaseException) -> None:
        if self.status is HandleStatus.FINISHED or self.status is HandleStatus.FAILED:
            return
        if isinstance(outcome, BaseException):
            self._error = outcome
            self.status = HandleStatus.FAILED
        else:
            self._result = outcome
            self.status = HandleStatus.FINISHED
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            for w in waiters:
                if not w.done():
                    w.set_result(None)
        streams = self._streams
        if streams is not None:
            for s in streams:
                s.close()
        self.call._operation_settled(self)

    def _settle_call_ended(self, end_reason: str | None) -> None:
        self._settle(
            CallEndedError(
                f"the call ended before {self.kind} {self.control_id!r} finished",
                control_id=self.control_id,
                end_reason=end_reason,
            )
        )

    def _settle_session_closed(self) -> None:
        self._settle(
            SessionClosedError(
                f"the session closed while {self.kind} {self.control_id!r} was pending",
                control_id=self.control_id,
            )
        )

    def _fail(self, message: str, event: Event) -> OperationFailed:
        return OperationFailed(
            f"{self.kind} {self.control_id!r} failed: {message}",
            control_id=self.control_id,
            event=event,
        )

    # -- user side ------------------------------------------------------------------

    async def finished(self, timeout: float | None = None) -> R:
        """Wait until the operation ends and return its result.

        Raises ``OperationFailed`` when the platform reported an error,
        ``CallEndedError`` when the call ended first, ``SessionClosedError`` when the
        session closed, and ``TimeoutError`` when ``timeout`` seconds pass (the handle
        stays intact and can be awaited again).
        """
        if not self.done:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters.append(waiter)
            try:
                if timeout is None:
                    await waiter
                else:
                    async with asyncio.timeout(timeout):
                        await waiter
            finally:
                waiters = self._waiters
                if waiters is not None and (not waiter.done() or waiter.cancelled()):
                    waiters.remove(waiter)
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def result(self) -> R:
        """The result of a handle that already finished; ``HandleStateError`` otherwise."""
        if not self.done:
            raise HandleStateError(f"{self.kind} {self.control_id!r} has not finished yet")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def events(self) -> AsyncIterator[Event]:
        """Every event of this operation, from the first one seen, until it settles."""
        return _follow(self, self._history, self.done)

    async def stop(self) -> None:
        """Stop the remote operation. A no-op once the handle settled."""
        if self.done or self._stop_command is None:
            return
        await self._control(self._stop_command)

    async def _control(self, command_cls: type[_cmd.Command], **params: Any) -> None:
        await self.call._send_command(command_cls(control_id=self.control_id, **params))

    def _require_active(self, action: str) -> None:
        if self.done:
            raise HandleStateError(
                f"cannot {action} {self.kind} {self.control_id!r}: it is {self.status.value}"
            )

    async def __aenter__(self) -> OperationHandle[R]:
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


class PlayHandle(OperationHandle[PlayResult]):
    """A running ``calling.play``: ``pause()``, ``resume()``, ``volume(db)``, ``stop()``."""

    __slots__ = ()
    kind = "play"
    _stop_command = _cmd.PlayStop

    def _interpret(self, event: Event) -> _Step:
        if not isinstance(event, PlayEvent):
            return _NOTHING
        state = event.params.state
        self.state = state
        if state == "finished":
            return PlayResult(state=state)
        if state == "error":
            return self._fail("the platform reported state=error", event)
        return _NOTHING

    async def pause(self) -> None:
        """Pause playback (``calling.play.pause``)."""
        self._require_active("pause")
        await self._control(_cmd.PlayPause)

    async def resume(self) -> None:
        """Resume paused playback (``calling.play.resume``)."""
        self._require_active("resume")
        await self._control(_cmd.PlayResume)

    async def volume(self, db: float) -> None:
        """Change the volume, -40..40 dB (``calling.play.volume``)."""
        self._require_active("change the volume of")
        await self._control(_cmd.PlayVolume, volume=db)


class RecordHandle(OperationHandle[RecordResult]):
    """A running ``calling.record``: ``pause()``, ``resume()``, ``stop()``; the result
    carries the recording's url, duration and size."""

    __slots__ = ()
    kind = "record"
    _stop_command = _cmd.RecordStop

    def _interpret(self, event: Event) -> _Step:
        if not isinstance(event, RecordEvent):
            return _NOTHING
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
        return _NOTHING

    async def pause(self, behavior: Literal["skip", "silence"] | None = None) -> None:
        """Pause the recording; ``behavior`` ``skip`` drops paused audio, ``silence``
        keeps the timing (``calling.record.pause``)."""
        self._require_active("pause")
        if behavior is None:
            await self._control(_cmd.RecordPause)
        else:
            await self._control(_cmd.RecordPause, behavior=behavior)

    async def resume(self) -> None:
        """Resume a paused recording (``calling.record.resume``)."""
        self._require_active("resume")
        await self._control(_cmd.RecordResume)


class CollectHandle(OperationHandle[CollectResult]):
    """A running ``calling.collect``. ``events()`` yields partial results and
    ``start_of_input``; ``finished()`` the final result. Continuous collects settle when
    stopped (``finished()`` then returns the last result)."""

    __slots__ = ("_continuous", "_last")
    kind = "collect"
    _stop_command = _cmd.CollectStop

    def __init__(self, control_id: str, call: Call, *, continuous: bool = False) -> None:
        super().__init__(control_id, call)
        self._continuous = continuous
        self._last: CollectResult | None = None

    def _interpret(self, event: Event) -> _Step:
        if not isinstance(event, CollectEvent):
            return _NOTHING
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
            return _NOTHING
        if rtype is None or rtype == "start_of_input" or p.final is False:
            self.state = "collecting"
            return _NOTHING
        if rtype == "error":
            self.state = "error"
            return self._fail("the platform reported result type error", event)
        self.state = "finished"
        return _collect_result(event)

    async def start_input_timers(self) -> None:
        """Start the initial-timeout clock now (``calling.collect.start_input_timers``)."""
        self._require_active("start the input timers of")
        await self._control(_cmd.CollectStartInputTimers)


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


class DetectHandle(OperationHandle[DetectResult]):
    """A running ``calling.detect``. ``finished()`` returns the last decisive outcome
    (human/machine/unknown, the fax tone, the digit) once the detector ends;
    ``outcome()`` returns the first decisive outcome without waiting for the end."""

    __slots__ = ("_beep", "_decision", "_decision_waiters")
    kind = "detect"
    _stop_command = _cmd.DetectStop

    def __init__(self, control_id: str, call: Call) -> None:
        super().__init__(control_id, call)
        self._decision: DetectResult | None = None
        self._beep = False
        self._decision_waiters: list[asyncio.Future[None]] | None = None

    def _interpret(self, event: Event) -> _Step:
        if not isinstance(event, DetectEvent):
            return _NOTHING
        detect = event.params.detect
        if detect is None:
            return _NOTHING
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
            return _NOTHING
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
        return _NOTHING

    def _wake_decision(self) -> None:
        waiters = self._decision_waiters
        if waiters is not None:
            self._decision_waiters = None
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def _settle(self, outcome: DetectResult | BaseException) -> None:
        super()._settle(outcome)
        self._wake_decision()

    async def outcome(self, timeout: float | None = None) -> DetectResult:
        """The first decisive outcome (e.g. ``MACHINE``), as soon as it is known; falls
        back to ``finished()`` when the detector ends without one."""
        if self._decision is None and not self.done:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._decision_waiters is None:
                self._decision_waiters = [waiter]
            else:
                self._decision_waiters.append(waiter)
            async with asyncio.timeout(timeout):
                await waiter
        if self._decision is not None:
            return self._decision
        return self.result()


class TapHandle(OperationHandle[TapResult]):
    """A running ``calling.tap``; ``stop()`` ends it."""

    __slots__ = ()
    kind = "tap"
    _stop_command = _cmd.TapStop

    def _interpret(self, event: Event) -> _Step:
        if not isinstance(event, TapEvent):
            return _NOTHING
        state = event.params.state
        self.state = state
        if state == "finished":
            return TapResult(state=state)
        if state == "error":
            return self._fail("the platform reported state=error", event)
        return _NOTHING


class StreamHandle(OperationHandle[StreamResult]):
    """A running ``calling.stream``; ``stop()`` ends it."""

    __slots__ = ()
    kind = "stream"
    _stop_command = _cmd.StreamStop

    def _interpret(self, event: Event) -> _Step:
        if not isinstance(event, StreamEvent):
            return _NOTHING
        p = event.params
        self.state = p.state
        if p.state == "finished":
            return StreamResult(state=p.state, url=p.url, name=p.name)
        if p.state == "error":
            return self._fail("the platform reported state=error", event)
        return _NOTHING


class TranscribeHandle(OperationHandle[TranscribeResult]):
    """A background ``calling.transcribe``. The transcript arrives after ``stop()`` or
    the end of the call, so this handle waits longer than others once the call ends."""

    __slots__ = ()
    kind = "transcribe"
    _stop_command = _cmd.TranscribeStop
    _grace_factor = 10.0

    def _interpret(self, event: Event) -> _Step:
        if isinstance(event, TranscriptCompletedEvent):
            self.state = "completed"
            return TranscribeResult(text=event.params.text, transcript_id=event.params.id)
        if isinstance(event, TranscriptFailedEvent):
            self.state = "failed"
            return self._fail("the transcript failed", event)
        return _NOTHING
