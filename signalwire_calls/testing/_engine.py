"""The simulated space: calls, their state machine, and the control operations on them.

Everything runs on event-loop timers (``loop.call_later``), never a task per call or
per operation, so thousands of concurrent calls stay cheap. Every simulated duration
is multiplied by ``time_scale``. The engine works on validated wire dicts (spec names);
the typed command Structs are used only to validate them (see ``_protocol``).

Choices where the spec is silent ([INF] in the spec): a leg ends as ``ended`` unless an
``update`` made it ``canceled``/``completed``, or it ``failed`` before reaching media;
``end_reason`` uses the RELAY vocabulary (``hangup``, ``cancel``, ``busy``, ``noAnswer``,
``error``, ``max_duration``). When a call ends, play/tap/stream/detect send ``finished``,
record sends ``finished`` (``no_input`` if nothing was heard), collect sends a result
of type ``error``, transcribe sends its transcript callback. A stopped collect sends
``no_input``. Calls must be ``answered`` for every ``calling.*`` command but
``calling.end`` (422 ``invalid_state`` otherwise).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from ._callees import DEFAULT_CALLEE, Callee
from ._faults import FaultPlan
from ._webhooks import WebhookRecord, WebhookSender

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "ApiError",
    "Engine",
    "Operation",
    "SimCall",
]

_encode = msgspec.json.Encoder().encode

ERROR_DOCS_URL = "https://signalwire.com/docs/apis/error-codes"
TERMINAL_STATES = frozenset(("ended", "failed", "canceled", "completed"))
ACTIVE_STATES = frozenset(("queued", "initiated", "created", "ringing", "answered"))
_PRE_ANSWER = frozenset(("queued", "initiated", "created", "ringing"))
CURRENT_STATUS_EVENTS = ("created", "ringing", "answered", "ended")
OLD_STATUS_EVENTS = ("queued", "initiated", "ending")

# Simulated latencies (seconds) of the platform itself.
_T_INITIATED = 0.01
_T_CREATED = 0.02
_T_RINGING = 0.05
_T_ENDING = 0.05
_TTS_CHARS_PER_SECOND = 15.0
_SPEECH_WORD_SECONDS = 0.3


class ApiError(Exception):
    """An HTTP error answer: ``status`` and the JSON ``body`` of the spec's section 5."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body

    @classmethod
    def plain(cls, status: int) -> ApiError:
        return cls(status, {"error": _REASONS[status]})

    @classmethod
    def unprocessable(
        cls, code: str, message: str, attribute: str | None, *, type_: str = "validation_error"
    ) -> ApiError:
        return cls(
            422,
            {
                "errors": [
                    {
                        "type": type_,
                        "code": code,
                        "message": message,
                        "attribute": attribute,
                        "url": ERROR_DOCS_URL,
                    }
                ]
            },
        )


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _leg_type(to: str) -> str:
    if to.startswith(("sip:", "sips:")):
        return "relay_sip_call"
    if to.startswith(("verto:", "client:", "/")):
        return "relay_webrtc_call"
    return "relay_pstn_call"


@dataclass(slots=True, eq=False)
class Operation:
    """One control operation (play, record, collect, detect, tap, stream, transcribe)."""

    kind: str
    control_id: str
    call: SimCall
    params: dict[str, Any]
    status_url: str | None
    state: str = "starting"
    done: bool = False
    started_at: float = 0.0
    history: list[str] = field(default_factory=list)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    terminal_first: bool = False
    held: tuple[str, dict[str, Any], str | None] | None = None
    first_record: WebhookRecord | None = None

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()


@dataclass(slots=True, eq=False)
class SimCall:
    """One simulated call leg and everything that happened on it."""

    id: str
    node_id: str
    segment_id: str
    from_: str
    to: str
    callee: Callee
    created_at: str
    created_mono: float
    url: str | None = None
    status: str = "queued"
    direction: str = "outbound-api"
    leg_type: str = "relay_pstn_call"
    status_url: str | None = None
    status_events: frozenset[str] = frozenset(("ended",))
    dial_params: dict[str, Any] = field(default_factory=dict)
    answered_mono: float | None = None
    ended_mono: float | None = None
    end_reason: str | None = None
    history: list[str] = field(default_factory=list)
    ops: dict[tuple[str, str], Operation] = field(default_factory=dict)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    input_index: dict[str, int] = field(default_factory=lambda: {"digits": 0, "speech": 0})
    transcribe: Operation | None = None
    denoise: bool = False
    ai: dict[str, Any] = field(default_factory=lambda: {"on_hold": False, "messages": []})
    live_transcribe: dict[str, Any] | None = None
    live_translate: dict[str, Any] | None = None
    user_events: list[Any] = field(default_factory=list)
    transfers: list[Any] = field(default_factory=list)
    redirects: list[Any] = field(default_factory=list)
    fax_stops: list[str] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        """True once the call reached a terminal status."""
        return self.status in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    def operations(self, kind: str | None = None) -> list[Operation]:
        """The operations started on this call (optionally of one kind)."""
        return [op for op in self.ops.values() if kind is None or op.kind == kind]


class Engine:
    """The call state machine and operations; owned by a :class:`Simulator`."""

    def __init__(
        self,
        *,
        project: str,
        space: str,
        time_scale: float,
        faults: FaultPlan,
        sender: WebhookSender,
        callees: dict[str, Callee],
        seed: int,
        max_call_length: float,
        audio_lengths: dict[str, float],
        unplayable: set[str],
        history_limit: int | None,
        notify: Callable[[], None],
    ) -> None:
        self.project = project
        self.space = space
        self.time_scale = time_scale
        self.faults = faults
        self.sender = sender
        self.callees = callees
        self.max_call_length = max_call_length
        self.audio_lengths = audio_lengths
        self.unplayable = unplayable
        self.calls: dict[str, SimCall] = {}
        self.webhooks: deque[WebhookRecord] = deque(maxlen=history_limit)
        self._rng = random.Random(seed)
        self.space_id = self.new_id()
        self.event_channel = f"swml:{self.space_id}"
        self._notify = notify
        self._loop = asyncio.get_running_loop()
        self.closed = False

    # ------------------------------------------------------------------ helpers

    def new_id(self) -> str:
        """A UUID4 string drawn from the seeded generator (deterministic per seed)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def sim_now(self, since: float) -> float:
        """Simulated seconds elapsed since the monotonic instant ``since``."""
        return (time.monotonic() - since) / self.time_scale

    def _later(
        self, timers: list[asyncio.TimerHandle], delay: float, fn: Callable[..., None], *args: Any
    ) -> None:
        timers.append(self._loop.call_later(max(delay, 0.0) * self.time_scale, fn, *args))

    def callee_for(self, number: str) -> Callee:
        return self.callees.get(number) or self.callees.get("*") or DEFAULT_CALLEE

    # ------------------------------------------------------------------ webhooks

    def _envelope(self, event_type: str, params: dict[str, Any]) -> bytes:
        if event_type.startswith("calling.transcript."):
            return _encode(
                {
                    "event_type": event_type,
                    "timestamp": time.time(),
                    "project_id": self.project,
                    "space_id": self.space_id,
                    "params": params,
                }
            )
        return _encode(
            {
                "event_type": event_type,
                "event_channel": self.event_channel,
                "timestamp": time.time(),
                "project_id": self.project,
                "space_id": self.space_id,
                "params": params,
            }
        )

    def emit(
        self,
        url: str | None,
        event_type: str,
        params: dict[str, Any],
        *,
        call_id: str,
        control_id: str | None,
        state: str | None,
    ) -> WebhookRecord | None:
        """Sign-and-send ``params`` as ``event_type`` to ``url`` (through the fault plan)."""
        if not url or self.closed:
            return None
        body = self._envelope(event_type, params)
        fault = self.faults.webhook_fault(event_type, state, control_id)
        now = time.monotonic()
        record = WebhookRecord(url, body, event_type, call_id, control_id, state, created_at=now)
        self.webhooks.append(record)
        if fault.drop:
            record.outcome = "dropped"
            self._notify()
            return record
        record.delay = fault.delay * self.time_scale
        key = (url, control_id or call_id)
        self.sender.enqueue(record, key, reorder=fault.reorder)
        if fault.duplicate:
            dup = WebhookRecord(
                url, body, event_type, call_id, control_id, state, duplicate=True, created_at=now
            )
            dup.delay = record.delay
            self.webhooks.append(dup)
            self.sender.enqueue(dup, key)
        self._notify()
        return record

    # ------------------------------------------------------------------ call lifecycle

    def dial(self, params: dict[str, Any], extra_events: Iterable[str] = ()) -> SimCall:
        to = str(params.get("to") or "")
        callee = self.callee_for(to)
        now = time.monotonic()
        events = params.get("status_events")
        status_events = set(events) if isinstance(events, list) else {"ended"}
        status_events.update(extra_events)
        call = SimCall(
            id=self.new_id(),
            node_id=f"{self.new_id()}@sim",
            segment_id=self.new_id(),
            from_=str(params.get("from") or ""),
            to=to,
            callee=callee,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            created_mono=now,
            url=params.get("url") if isinstance(params.get("url"), str) else None,
            leg_type=_leg_type(to),
            status_url=params.get("status_url"),
            status_events=frozenset(status_events),
            dial_params=params,
        )
        call.history.append("queued")
        self.calls[call.id] = call
        self._later(call.timers, _T_INITIATED, self._set_state, call, "initiated")
        if callee.behavior == "fail":
            self._later(call.timers, max(callee.after, _T_INITIATED), self._fail, call)
        else:
            self._later(call.timers, _T_CREATED, self._set_state, call, "created")
            self._later(call.timers, _T_RINGING, self._set_state, call, "ringing")
            ring_timeout = params.get("timeout")
            ring_limit = float(ring_timeout) if isinstance(ring_timeout, int | float) else None
            if callee.behavior == "busy":
                self._later(call.timers, _T_RINGING + callee.after, self.end, call, "busy")
            elif callee.behavior == "no_answer" or (
                ring_limit is not None and ring_limit < callee.after
            ):
                limit = ring_limit if ring_limit is not None else callee.after
                if callee.behavior == "no_answer" and ring_limit is None:
                    limit = callee.after
                self._later(call.timers, _T_RINGING + limit, self.end, call, "noAnswer")
            else:
                self._later(call.timers, _T_RINGING + callee.after, self._answer, call)
        self._notify()
        return call

    def _state_event(self, call: SimCall, state: str) -> None:
        if state not in call.status_events or not call.status_url:
            return
        device: dict[str, Any]
        if call.leg_type == "relay_sip_call":
            device = {"type": "sip", "params": {"from": call.from_, "to": call.to}}
        else:
            device = {
                "type": "phone",
                "params": {"from_number": call.from_, "to_number": call.to},
            }
        params = {
            "call_id": call.id,
            "node_id": call.node_id,
            "segment_id": call.segment_id,
            "call_state": state,
            "direction": "outbound",
            "device": device,
            "end_reason": call.end_reason if state in ("ending", "ended") else None,
        }
        self.emit(
            call.status_url,
            "calling.call.state",
            params,
            call_id=call.id,
            control_id=None,
            state=state,
        )

    def _set_state(self, call: SimCall, state: str) -> None:
        if call.status not in ACTIVE_STATES:
            return
        call.status = state
        call.history.append(state)
        self._state_event(call, state)
        self._notify()

    def _answer(self, call: SimCall) -> None:
        if call.status not in _PRE_ANSWER:
            return
        call.answered_mono = time.monotonic()
        self._set_state(call, "answered")
        callee = call.callee
        if callee.hangup_after is not None:
            self._later(call.timers, callee.hangup_after, self.end, call, "hangup")
        if self.max_call_length > 0:
            self._later(call.timers, self.max_call_length, self.end, call, "max_duration")

    def _fail(self, call: SimCall) -> None:
        if call.status not in _PRE_ANSWER:
            return
        call.end_reason = "error"
        self._finish(call, "failed")

    def end(self, call: SimCall, reason: str = "hangup", final: str = "ended") -> None:
        """End ``call``: its operations finish, then ``ending`` (if answered) and ``ended``."""
        if call.status not in ACTIVE_STATES:
            return
        call.end_reason = reason
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        for op in list(call.ops.values()):
            if not op.done:
                self._end_op_on_hangup(op)
        if call.status == "answered":
            call.status = "ending"
            call.history.append("ending")
            self._state_event(call, "ending")
            self._notify()
            self._later(call.timers, _T_ENDING, self._finish, call, final)
        else:
            self._finish(call, final)

    def _finish(self, call: SimCall, final: str) -> None:
        if call.status in TERMINAL_STATES:
            return
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        call.ended_mono = time.monotonic()
        call.status = final
        call.history.append(final)
        self._state_event(call, "ended")
        self._notify()

    def leg(self, call: SimCall) -> dict[str, Any]:
        """The spec 1.2 call-leg object for ``call``."""
        duration: int | None = None
        duration_ms: int | None = None
        billing_ms: int | None = None
        charge = 0.0
        details: list[dict[str, Any]] = []
        if call.status in TERMINAL_STATES:
            if call.answered_mono is not None and call.ended_mono is not None:
                seconds = (call.ended_mono - call.answered_mono) / self.time_scale
                duration_ms = int(seconds * 1000)
                duration = int(seconds)
                billing_ms = duration_ms
                minutes = max(1, math.ceil(seconds / 60.0))
                charge = round(minutes * 0.004, 6)
                details = [{"description": "Outbound Voice", "charge": charge}]
            else:
                duration, duration_ms, billing_ms = 0, 0, 0
        return {
            "id": call.id,
            "from": call.from_,
            "to": call.to,
            "direction": call.direction,
            "source": "realtime_api",
            "url": call.url,
            "charge": charge,
            "created_at": call.created_at,
            "charge_details": details,
            "status": call.status,
            "duration": duration,
            "duration_ms": duration_ms,
            "billing_ms": billing_ms,
            "type": call.leg_type,
            "parent_id": None,
        }

    # ------------------------------------------------------------------ update / end / misc

    def update(self, call: SimCall, params: dict[str, Any]) -> None:
        if call.status not in ACTIVE_STATES:
            raise ApiError.unprocessable(
                "cannot_update_completed", "the call has already ended and cannot be updated", "id"
            )
        status = params.get("status")
        if isinstance(params.get("status_url"), str):
            call.status_url = params["status_url"]
        if status == "canceled":
            if call.status not in _PRE_ANSWER:
                raise ApiError.unprocessable(
                    "cannot_cancel_in_progress",
                    "status canceled is only allowed while the call is queued or ringing",
                    "status",
                )
            self.end(call, "cancel", "canceled")
            return
        if status == "completed":
            if call.status != "answered":
                raise ApiError.unprocessable(
                    "invalid_state",
                    "status completed is only allowed while the call is answered",
                    "status",
                )
            self.end(call, "hangup", "completed")
            return
        if "url" in params or "swml" in params:
            if call.status != "answered":
                raise ApiError.unprocessable(
                    "cannot_redirect_not_in_progress",
                    "url/swml redirects are only allowed while the call is answered",
                    "url" if "url" in params else "swml",
                )
            call.redirects.append(params.get("url", params.get("swml")))
            if isinstance(params.get("url"), str):
                call.url = params["url"]
            self._notify()

    # ------------------------------------------------------------------ operations: common

    def start_op(self, call: SimCall, kind: str, params: dict[str, Any]) -> Operation:
        control_id = params["control_id"]
        existing = call.ops.get((kind, control_id))
        if existing is not None and not existing.done:
            raise ApiError.unprocessable(
                "invalid_parameter",
                f"control_id {control_id!r} is already used by an active {kind} on this call",
                "control_id",
            )
        status_url = params.get("status_url")
        op = Operation(
            kind,
            control_id,
            call,
            params,
            status_url if isinstance(status_url, str) else None,
            started_at=time.monotonic(),
            terminal_first=self.faults.terminal_first(),
        )
        call.ops[(kind, control_id)] = op
        return op

    def find_op(self, call: SimCall, kind: str, control_id: str) -> Operation:
        op = call.ops.get((kind, control_id))
        if op is None:
            raise ApiError.plain(404)
        return op

    def op_event(
        self,
        op: Operation,
        state: str,
        params: dict[str, Any],
        *,
        terminal: bool = False,
        event_type: str | None = None,
    ) -> None:
        """Send one event of ``op`` (holding a start event back under ``terminal_first``)."""
        etype = event_type or f"calling.call.{op.kind}"
        op.state = state
        op.history.append(state)
        if terminal:
            op.done = True
            op.cancel_timers()
        if op.terminal_first and op.held is None and not terminal and len(op.history) == 1:
            op.held = (etype, params, state)
            self._notify()
            return
        record = self.emit(
            op.status_url,
            etype,
            params,
            call_id=op.call.id,
            control_id=op.control_id,
            state=state,
        )
        if op.first_record is None:
            op.first_record = record
        if terminal and op.held is not None:
            held, op.held = op.held, None
            self.emit(
                op.status_url,
                held[0],
                held[1],
                call_id=op.call.id,
                control_id=op.control_id,
                state=held[2],
            )
        if terminal:
            self._notify()

    def _base(self, op: Operation) -> dict[str, Any]:
        return {
            "call_id": op.call.id,
            "node_id": op.call.node_id,
            "control_id": op.control_id,
        }

    def stop_op(self, op: Operation) -> None:
        if op.done:
            return
        stopper = _STOPPERS[op.kind]
        stopper(self, op, "stop")

    def _end_op_on_hangup(self, op: Operation) -> None:
        _STOPPERS[op.kind](self, op, "hangup")

    # ------------------------------------------------------------------ play

    def _media_seconds(self, item: Mapping[str, Any]) -> float:
        kind = item.get("type")
        p = item.get("params") or {}
        if kind == "tts":
            return max(0.3, len(str(p.get("text", ""))) / _TTS_CHARS_PER_SECOND)
        if kind == "silence":
            return float(p.get("duration", 0.0))
        if kind == "audio":
            return float(self.audio_lengths.get(str(p.get("url")), 3.0))
        if kind == "ringtone":
            d = p.get("duration")
            return float(d) if d is not None else math.inf
        return 1.0

    def play(self, call: SimCall, params: dict[str, Any]) -> Operation:
        op = self.start_op(call, "play", params)
        items = params.get("play") or []
        loop = int(params.get("loop", 1))
        once = sum(self._media_seconds(i) for i in items)
        total = math.inf if loop == 0 and once > 0 else once * max(loop, 1)
        broken = any(
            i.get("type") == "audio" and (i.get("params") or {}).get("url") in self.unplayable
            for i in items
        )
        op.data.update(volume=params.get("volume", 0), remaining=total, resumed=time.monotonic())
        self.op_event(op, "playing", {**self._base(op), "state": "playing"})
        if broken:
            self._later(op.timers, 0.05, self._play_error, op)
        elif math.isfinite(total):
            self._later(op.timers, total, self._play_done, op)
        return op

    def _play_error(self, op: Operation) -> None:
        if not op.done:
            self.op_event(op, "error", {**self._base(op), "state": "error"}, terminal=True)

    def _play_done(self, op: Operation, _why: str = "done") -> None:
        if not op.done:
            self.op_event(op, "finished", {**self._base(op), "state": "finished"}, terminal=True)

    def pause(self, op: Operation, behavior: str | None = None) -> None:
        if op.done or op.data.get("paused"):
            return
        elapsed = (time.monotonic() - op.data["resumed"]) / self.time_scale
        op.data["remaining"] = op.data["remaining"] - elapsed
        op.data["paused"] = time.monotonic()
        if op.kind == "record":
            op.data["behavior"] = behavior or "skip"
        op.cancel_timers()
        params = {**self._base(op), "state": "paused"}
        if op.kind == "record":
            params = self._record_params(op, "paused")
            params["pause_behavior"] = op.data["behavior"]
        self.op_event(op, "paused", params)

    def resume(self, op: Operation) -> None:
        if op.done or not op.data.get("paused"):
            return
        paused_at = op.data.pop("paused")
        paused_for = (time.monotonic() - paused_at) / self.time_scale
        if op.kind == "record" and op.data.get("behavior", "skip") == "skip":
            op.data["skipped"] = op.data.get("skipped", 0.0) + paused_for
        op.data["resumed"] = time.monotonic()
        if op.kind == "play":
            self.op_event(op, "playing", {**self._base(op), "state": "playing"})
            if math.isfinite(op.data["remaining"]):
                self._later(op.timers, op.data["remaining"], self._play_done, op)
        else:
            self.op_event(op, "recording", self._record_params(op, "recording"))
            if math.isfinite(op.data["remaining"]):
                self._later(op.timers, op.data["remaining"], self._record_done, op, "done")

    # ------------------------------------------------------------------ record

    def record(self, call: SimCall, params: dict[str, Any]) -> Operation:
        op = self.start_op(call, "record", params)
        audio = dict((params.get("record") or {}).get("audio") or {})
        callee = call.callee
        initial_timeout = float(audio.get("initial_timeout", 4.0))
        end_silence = float(audio.get("end_silence_timeout", 0.5))
        max_length = float(audio.get("max_length", 0) or 0)
        rec_id = self.new_id()
        op.data.update(
            audio=audio,
            recording_id=rec_id,
            url=f"https://{self.space}.signalwire.com/api/v1/recordings/{rec_id}/download",
            start_time=time.time(),
            resumed=time.monotonic(),
            heard=False,
        )
        beep = 0.5 if audio.get("beep") else 0.0
        talk = callee.talk
        if talk <= 0 or (initial_timeout > 0 and callee.input_delay > initial_timeout):
            length = initial_timeout + beep if initial_timeout > 0 else math.inf
            outcome = "no_input" if initial_timeout > 0 else "done"
        else:
            op.data["heard"] = True
            length = beep + callee.input_delay + talk + end_silence if end_silence > 0 else math.inf
            outcome = "done"
        if max_length > 0 and max_length < length:
            length, outcome = max_length, "done"
            op.data["heard"] = talk > 0
        op.data["remaining"] = length
        self.op_event(op, "recording", self._record_params(op, "recording"))
        if math.isfinite(length):
            self._later(op.timers, length, self._record_done, op, outcome)
        return op

    def _record_params(self, op: Operation, state: str) -> dict[str, Any]:
        audio = op.data["audio"]
        return {
            **self._base(op),
            "state": state,
            "url": op.data["url"],
            "recording_id": op.data["recording_id"],
            "record": {
                "audio": {
                    "format": audio.get("format", "mp3"),
                    "direction": audio.get("direction", "speak"),
                    "stereo": bool(audio.get("stereo", False)),
                }
            },
        }

    def _record_done(self, op: Operation, why: str) -> None:
        if op.done:
            return
        if op.data.get("paused"):
            self.resume_silently(op)
        elapsed = (time.monotonic() - op.started_at) / self.time_scale
        duration = max(0.0, elapsed - op.data.get("skipped", 0.0))
        heard = op.data["heard"] or (why in ("stop", "hangup") and op.call.callee.talk > 0)
        state = "no_input" if why == "no_input" or not heard else "finished"
        audio = op.data["audio"]
        rate = 16000 * (2 if audio.get("stereo") else 1)
        params = self._record_params(op, state)
        params.update(
            duration=round(duration, 3),
            size=int(duration * rate) if state == "finished" else 0,
            start_time=op.data["start_time"],
            end_time=op.data["start_time"] + duration,
        )
        self.op_event(op, state, params, terminal=True)

    def resume_silently(self, op: Operation) -> None:
        paused_at = op.data.pop("paused")
        if op.data.get("behavior", "skip") == "skip":
            op.data["skipped"] = (
                op.data.get("skipped", 0.0) + (time.monotonic() - paused_at) / self.time_scale
            )

    # ------------------------------------------------------------------ collect

    def collect(self, call: SimCall, params: dict[str, Any]) -> Operation:
        op = self.start_op(call, "collect", params)
        op.data.update(
            continuous=bool(params.get("continuous", False)),
            partial=bool(params.get("partial_results", False)),
            soi=bool(params.get("send_start_of_input", False)),
            timers_started=params.get("start_input_timers", True) is not False,
            input_started=False,
            round=0,
        )
        self._collect_round(op)
        return op

    def _collect_event(
        self,
        op: Operation,
        result: dict[str, Any],
        *,
        final: bool | None = None,
        state: str | None = None,
        terminal: bool = False,
    ) -> None:
        params = {**self._base(op), "result": result}
        if op.data["partial"] and final is not None:
            params["final"] = final
        if op.data["continuous"]:
            params["state"] = state or ("finished" if terminal else "collecting")
        self.op_event(op, result["type"] if state is None else state, params, terminal=terminal)

    def _collect_round(self, op: Operation) -> None:
        """Schedule the callee's answer to one collect round (and the no-input timer)."""
        call, params, callee = op.call, op.params, op.call.callee
        digits_cfg = params.get("digits")
        speech_cfg = params.get("speech")
        initial_timeout = float(params.get("initial_timeout", 5.0))
        op.data.update(initial_timeout=initial_timeout, input_started=False, no_input_timer=None)
        continuous = op.data["continuous"]
        idx_d = call.input_index["digits"]
        idx_s = call.input_index["speech"]
        if continuous:
            d = callee.digits[idx_d] if idx_d < len(callee.digits) else None
            s = callee.speech[idx_s] if idx_s < len(callee.speech) else None
        else:
            d = callee.input_for("digits", idx_d)
            s = callee.input_for("speech", idx_s)
        t0 = callee.input_delay
        late = t0 >= initial_timeout
        if late:
            pass
        elif callee.no_match and (d or s or callee.talk > 0):
            self._later(op.timers, t0, self._collect_start_of_input, op)
            self._later(op.timers, t0 + 0.5, self._collect_result, op, {"type": "no_match"})
        elif digits_cfg is not None and d:
            call.input_index["digits"] += 1
            self._schedule_digits(op, digits_cfg, d, t0)
        elif speech_cfg is not None and s:
            call.input_index["speech"] += 1
            self._schedule_speech(op, speech_cfg, s, t0)
        elif d or s:
            # The callee answers in a mode this collect does not listen to.
            self._later(op.timers, t0, self._collect_start_of_input, op)
            self._later(op.timers, t0 + 0.5, self._collect_result, op, {"type": "no_match"})
        if op.data["timers_started"]:
            self._arm_no_input(op)

    def _arm_no_input(self, op: Operation) -> None:
        if continuous_exhausted(op):
            return
        self._later(op.timers, op.data["initial_timeout"], self._collect_no_input, op)

    def _collect_no_input(self, op: Operation) -> None:
        if op.done or op.data["input_started"]:
            return
        self._collect_result(op, {"type": "no_input"})

    def _collect_start_of_input(self, op: Operation) -> None:
        if op.done or op.data["input_started"]:
            return
        op.data["input_started"] = True
        if op.data["soi"]:
            self._collect_event(op, {"type": "start_of_input"})

    def _schedule_digits(
        self, op: Operation, cfg: Mapping[str, Any], script: str, t0: float
    ) -> None:
        maximum = int(cfg.get("max", 1))
        terminators = str(cfg.get("terminators", "#"))
        digit_timeout = float(cfg.get("digit_timeout", 5.0))
        interval = op.call.callee.digit_interval
        pressed = ""
        t = t0
        self._later(op.timers, t0, self._collect_start_of_input, op)
        for ch in script:
            if terminators and ch in terminators:
                self._later(
                    op.timers,
                    t,
                    self._collect_result,
                    op,
                    {"type": "digit", "params": {"digits": pressed, "terminator": ch}},
                )
                return
            pressed += ch
            if len(pressed) >= maximum:
                self._later(
                    op.timers,
                    t,
                    self._collect_result,
                    op,
                    {"type": "digit", "params": {"digits": pressed, "terminator": ""}},
                )
                return
            t += interval
        result: dict[str, Any] = (
            {"type": "digit", "params": {"digits": pressed, "terminator": ""}}
            if pressed
            else {"type": "no_input"}
        )
        self._later(op.timers, t - interval + digit_timeout, self._collect_result, op, result)

    def _schedule_speech(self, op: Operation, cfg: Mapping[str, Any], text: str, t0: float) -> None:
        words = text.split() or [text]
        end_silence = float(cfg.get("end_silence_timeout", 1.0))
        confidence = op.call.callee.confidence
        self._later(op.timers, t0, self._collect_start_of_input, op)
        t = t0
        if op.data["partial"]:
            for i in range(1, len(words)):
                t = t0 + i * _SPEECH_WORD_SECONDS
                partial = {
                    "type": "speech",
                    "params": {
                        "text": " ".join(words[:i]),
                        "confidence": round(confidence * 0.8, 3),
                    },
                }
                self._later(op.timers, t, self._collect_partial, op, partial)
        t = t0 + len(words) * _SPEECH_WORD_SECONDS + end_silence
        self._later(
            op.timers,
            t,
            self._collect_result,
            op,
            {"type": "speech", "params": {"text": text, "confidence": confidence}},
        )

    def _collect_partial(self, op: Operation, result: dict[str, Any]) -> None:
        if not op.done:
            self._collect_event(op, result, final=False)

    def _collect_result(self, op: Operation, result: dict[str, Any]) -> None:
        if op.done:
            return
        if op.data["continuous"]:
            if result["type"] == "no_input":
                # Continuous collects keep listening; silence is not reported.
                op.data["exhausted"] = True
                return
            self._collect_event(op, result, final=True)
            op.cancel_timers()
            op.data["round"] += 1
            self._collect_round(op)
            return
        self._collect_event(op, result, final=True, terminal=True)

    def start_input_timers(self, op: Operation) -> None:
        if op.done or op.data.get("timers_started"):
            return
        op.data["timers_started"] = True
        self._arm_no_input(op)

    # ------------------------------------------------------------------ detect

    def detect(self, call: SimCall, params: dict[str, Any]) -> Operation:
        op = self.start_op(call, "detect", params)
        detect = params.get("detect") or {}
        kind = detect.get("type", "machine")
        dp = detect.get("params") or {}
        timeout = float(params.get("timeout", 30.0))
        callee = call.callee
        op.data.update(dtype=kind)
        plan: list[tuple[float, str, bool]] = []  # (at, event, beep)
        finish_at = timeout
        if kind == "machine":
            initial_timeout = float(dp.get("initial_timeout", 4.5))
            if callee.behavior == "voicemail":
                t_machine = min(
                    callee.greeting, float(dp.get("machine_voice_threshold", 1.25)) + 0.75
                )
                plan.append((t_machine, "MACHINE", False))
                if dp.get("detect_message_end", True) is not False:
                    plan.append((t_machine + 0.01, "NOT_READY", False))
                    t_ready = max(callee.greeting, t_machine + 0.02)
                    plan.append((t_ready, "READY", callee.beep))
                    finish_at = t_ready + 0.01
                else:
                    finish_at = t_machine + 0.01
            elif callee.behavior == "answer" and callee.talk > 0:
                plan.append((min(1.0, initial_timeout), "HUMAN", False))
                finish_at = min(1.0, initial_timeout) + 0.01
            else:
                plan.append((initial_timeout, "UNKNOWN", False))
                finish_at = initial_timeout + 0.01
        elif kind == "fax":
            tone = dp.get("tone")
            if callee.behavior == "fax" and (tone is None or str(tone).upper() == callee.fax_tone):
                plan.append((1.0, callee.fax_tone, False))
                finish_at = 1.01
        elif kind == "digit":
            wanted = str(dp.get("digits", "")).upper()
            script = callee.input_for("digits", call.input_index["digits"]) or ""
            t = callee.input_delay
            for ch in script:
                if not wanted or ch.upper() in wanted:
                    plan.append((t, ch, False))
                t += callee.digit_interval
        for at, event, beep in plan:
            if at < timeout:
                self._later(op.timers, at, self._detect_event, op, event, beep)
        self._later(op.timers, min(finish_at, timeout), self._detect_finished, op, "done")
        return op

    def _detect_params(self, op: Operation, event: str, beep: bool = False) -> dict[str, Any]:
        inner: dict[str, Any] = {"event": event}
        if beep:
            inner["beep"] = True
        return {
            **self._base(op),
            "segment_id": op.call.segment_id,
            "detect": {"type": op.data["dtype"], "params": inner},
        }

    def _detect_event(self, op: Operation, event: str, beep: bool) -> None:
        if not op.done:
            self.op_event(op, event, self._detect_params(op, event, beep))

    def _detect_finished(self, op: Operation, _why: str) -> None:
        if not op.done:
            self.op_event(op, "finished", self._detect_params(op, "finished"), terminal=True)

    # ------------------------------------------------------------------ tap / stream

    def tap(self, call: SimCall, params: dict[str, Any]) -> Operation:
        op = self.start_op(call, "tap", params)
        device = params.get("device") or {}
        dparams = dict(device.get("params") or {})
        dparams.setdefault("codec", "PCMU")
        if device.get("type") == "rtp":
            dparams.setdefault("ptime", 20)
        op.data["tap"] = params.get("tap")
        op.data["device"] = {"type": device.get("type"), "params": dparams}
        self.op_event(op, "tapping", self._tap_params(op, "tapping"))
        return op

    def _tap_params(self, op: Operation, state: str) -> dict[str, Any]:
        return {
            **self._base(op),
            "state": state,
            "tap": op.data["tap"],
            "device": op.data["device"],
        }

    def _tap_done(self, op: Operation, _why: str) -> None:
        if not op.done:
            self.op_event(op, "finished", self._tap_params(op, "finished"), terminal=True)

    def stream(self, call: SimCall, params: dict[str, Any]) -> Operation:
        op = self.start_op(call, "stream", params)
        self.op_event(op, "streaming", self._stream_params(op, "streaming"))
        return op

    def _stream_params(self, op: Operation, state: str) -> dict[str, Any]:
        p = {
            **self._base(op),
            "segment_id": op.call.segment_id,
            "state": state,
            "url": op.params.get("url"),
        }
        if isinstance(op.params.get("name"), str):
            p["name"] = op.params["name"]
        return p

    def _stream_done(self, op: Operation, _why: str) -> None:
        if not op.done:
            self.op_event(op, "finished", self._stream_params(op, "finished"), terminal=True)

    # ------------------------------------------------------------------ transcribe

    def transcribe(self, call: SimCall, params: dict[str, Any]) -> Operation:
        if call.transcribe is not None and not call.transcribe.done:
            raise ApiError.plain(409)
        op = self.start_op(call, "transcribe", params)
        op.state = "transcribing"
        op.history.append("transcribing")
        call.transcribe = op
        self._notify()
        return op

    def _transcribe_done(self, op: Operation, _why: str) -> None:
        if op.done:
            return
        op.done = True
        op.state = "finished"
        op.history.append("finished")
        call = op.call
        if call.transcribe is op:
            call.transcribe = None
        self._notify()
        # The transcript is ready a moment after the recording stops.
        self._loop.call_later(0.2 * self.time_scale, self._transcript_ready, op)

    def _transcript_ready(self, op: Operation) -> None:
        callee = op.call.callee
        params: dict[str, Any] = {
            "id": self.new_id(),
            "call_id": op.call.id,
            "segment_id": op.call.segment_id,
        }
        if callee.transcribe_fails:
            event_type, state = "calling.transcript.failed", "failed"
        else:
            event_type, state = "calling.transcript.completed", "completed"
            text = callee.transcript
            if text is None and callee.speech:
                text = " ".join(callee.speech)
            if text is None and callee.digits == () and callee.talk > 0:
                text = "hello"
            if text:
                params["text"] = text
        op.history.append(state)
        self.emit(
            op.status_url,
            event_type,
            params,
            call_id=op.call.id,
            control_id=op.control_id,
            state=state,
        )

    # ------------------------------------------------------------------ refer

    def refer(self, call: SimCall, params: dict[str, Any]) -> None:
        if call.leg_type != "relay_sip_call":
            raise ApiError.unprocessable(
                "invalid_state", "calling.refer works on SIP calls only", "device"
            )
        device = params.get("device") or {}
        to = (device.get("params") or {}).get("to")
        status_url = params.get("status_url")

        def send() -> None:
            self.emit(
                status_url if isinstance(status_url, str) else None,
                "calling.call.refer",
                {
                    "call_id": call.id,
                    "node_id": call.node_id,
                    "segment_id": call.segment_id,
                    "sip_refer_to": to,
                    "state": "success",
                    "sip_refer_response_code": "202",
                    "sip_notify_response_code": "200",
                },
                call_id=call.id,
                control_id=None,
                state="success",
            )
            self.end(call, "hangup")

        self._later(call.timers, 0.3, send)

    def hangup(self, call: SimCall) -> None:
        """The callee hangs up now."""
        self.end(call, "hangup")


def continuous_exhausted(op: Operation) -> bool:
    return bool(
        op.data.get("continuous") and op.data.get("round", 0) > 0 and op.data.get("exhausted")
    )


def _stop_play(engine: Engine, op: Operation, why: str) -> None:
    engine._play_done(op, why)


def _stop_record(engine: Engine, op: Operation, why: str) -> None:
    engine._record_done(op, why)


def _stop_collect(engine: Engine, op: Operation, why: str) -> None:
    if op.done:
        return
    if why == "hangup":
        engine._collect_event(
            op,
            {"type": "error"},
            final=True,
            terminal=True,
            state="error" if op.data["continuous"] else None,
        )
    else:
        engine._collect_event(
            op,
            {"type": "no_input"},
            final=True,
            terminal=True,
            state="finished" if op.data["continuous"] else None,
        )


def _stop_detect(engine: Engine, op: Operation, why: str) -> None:
    engine._detect_finished(op, why)


_STOPPERS: dict[str, Callable[[Engine, Operation, str], None]] = {
    "play": _stop_play,
    "record": _stop_record,
    "collect": _stop_collect,
    "detect": _stop_detect,
    "tap": lambda e, op, why: e._tap_done(op, why),
    "stream": lambda e, op, why: e._stream_done(op, why),
    "transcribe": lambda e, op, why: e._transcribe_done(op, why),
}
