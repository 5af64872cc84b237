"""The simulated space's core: calls, their state machine, pacing, webhooks, operations.

Everything runs on event-loop timers (``loop.call_later``), never a task per call or
per operation, so thousands of concurrent calls stay cheap. Every simulated duration
is multiplied by ``time_scale``. The engine works on validated wire dicts (the
platform's names). What each kind of operation does lives in its ``_op_<kind>`` module,
found through the registry in ``_operations``; the engine keeps their bookkeeping
(control ids, events, ending them when the call ends).

Choices where the platform documents nothing: a leg ends as ``ended`` unless an
``update`` made it ``canceled``/``completed``, or it ``failed`` before reaching media;
``end_reason`` uses the RELAY vocabulary (``hangup``, ``cancel``, ``busy``,
``noAnswer``, ``error``, ``max_duration``). Calls must be ``answered`` for every
``calling.*`` command but ``calling.end`` (422 ``invalid_state`` otherwise).

Dials are paced like the platform paces them: at most ``cps`` calls per simulated
second leave ``queued``, first in first out; the rest wait (the dial is still answered
200 with ``status: "queued"``), up to ``max_queued_calls`` waiting, beyond which a dial
is refused with 422 ``max_queued_calls_exceeded``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from .._logthrottle import LogThrottle
from ._callees import DEFAULT_CALLEE, Callee
from ._faults import FaultPlan
from ._model import (
    ACTIVE_STATES,
    CURRENT_STATUS_EVENTS,
    OLD_STATUS_EVENTS,
    PRE_ANSWER,
    TERMINAL_STATES,
    ApiError,
    Operation,
    SimCall,
    leg_type,
)
from ._operations import OP_KINDS
from ._webhooks import WebhookRecord, WebhookSender

__all__ = [
    "ACTIVE_STATES",
    "CURRENT_STATUS_EVENTS",
    "OLD_STATUS_EVENTS",
    "TERMINAL_STATES",
    "ApiError",
    "Engine",
    "Operation",
    "SimCall",
]

_encode = msgspec.json.Encoder().encode
_log = logging.getLogger("signalwire_calls.testing")

# Simulated latencies (seconds) of the platform itself.
_T_INITIATED = 0.01
_T_CREATED = 0.02
_T_RINGING = 0.05
_T_ENDING = 0.05

DEFAULT_MAX_QUEUED_CALLS = 10_000


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
        cps: float | None = None,
        max_queued_calls: int = DEFAULT_MAX_QUEUED_CALLS,
    ) -> None:
        self.project = project
        self.space = space
        # One per simulator: a test's simulator reports its own failures.
        self._inbound_failed_log = LogThrottle(_log)
        self.time_scale = time_scale
        self.faults = faults
        self.sender = sender
        self.callees = callees
        self.max_call_length = max_call_length
        self.audio_lengths = audio_lengths
        self.unplayable = unplayable
        self.calls: dict[str, SimCall] = {}
        self.webhooks: deque[WebhookRecord] = deque(maxlen=history_limit)
        self.dial_times: deque[float] = deque(maxlen=history_limit)
        self.start_times: deque[float] = deque(maxlen=history_limit)
        self.live_calls = 0
        self.peak_live_calls = 0
        self.cps = cps
        self.max_queued_calls = max_queued_calls
        self._history_limit = history_limit
        self._ended: deque[str] = deque()
        self._queue: deque[SimCall] = deque()
        self._waiting = 0
        self._next_slot = -math.inf
        self._pump_handle: asyncio.TimerHandle | None = None
        self._rng = random.Random(seed)
        self.space_id = self.new_id()
        self.event_channel = f"swml:{self.space_id}"
        self._notify = notify
        self.loop = asyncio.get_running_loop()
        self.closed = False

    # ------------------------------------------------------------------ helpers

    def new_id(self) -> str:
        """A UUID4 string drawn from the seeded generator (deterministic per seed)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def sim_now(self, since: float) -> float:
        """Simulated seconds elapsed since the monotonic instant ``since``."""
        return (time.monotonic() - since) / self.time_scale

    def later(
        self, timers: list[asyncio.TimerHandle], delay: float, fn: Callable[..., None], *args: Any
    ) -> None:
        """Run ``fn(*args)`` after ``delay`` simulated seconds, on the timer list ``timers``
        (a call's or an operation's, cancelled together when it ends)."""
        timers.append(self.loop.call_later(max(delay, 0.0) * self.time_scale, fn, *args))

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` after ``delay`` simulated seconds, tied to nothing."""
        self.loop.call_later(max(delay, 0.0) * self.time_scale, fn, *args)

    def notify(self) -> None:
        """Tell the simulator's waiters that something changed."""
        self._notify()

    def callee_for(self, number: str) -> Callee:
        """The script of ``number`` (else the ``"*"`` script, else the default)."""
        return self.callees.get(number) or self.callees.get("*") or DEFAULT_CALLEE

    @property
    def queued_calls(self) -> int:
        """Dials waiting for their turn under the calls-per-second limit."""
        return self._waiting

    def close(self) -> None:
        """Stop everything: no more timers fire, no more webhooks are produced."""
        self.closed = True
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None
        for call in self.calls.values():
            for timer in call.timers:
                timer.cancel()
            for op in call.ops.values():
                op.cancel_timers()

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

    # ------------------------------------------------------------------ creating calls

    def _register(self, call: SimCall) -> None:
        self.calls[call.id] = call
        self.live_calls += 1
        if self.live_calls > self.peak_live_calls:
            self.peak_live_calls = self.live_calls

    def dial(self, params: dict[str, Any], extra_events: Iterable[str] = ()) -> SimCall:
        """Accept a validated ``dial``: the call is queued and starts when its turn comes."""
        if self.cps is not None and self._waiting >= self.max_queued_calls:
            raise ApiError.unprocessable(
                "max_queued_calls_exceeded",
                f"more than {self.max_queued_calls} calls are queued in this space",
                None,
            )
        to = str(params.get("to") or "")
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
            callee=self.callee_for(to),
            created_at=_utc_now(),
            created_mono=now,
            url=params.get("url") if isinstance(params.get("url"), str) else None,
            leg_type=leg_type(to),
            status_url=params.get("status_url"),
            status_events=frozenset(status_events),
            dial_params=params,
        )
        call.history.append("queued")
        self._register(call)
        self.dial_times.append(now)
        if self.cps is None and not self._queue:
            self._admit(call)
        else:
            call.waiting = True
            self._queue.append(call)
            self._waiting += 1
            if self._pump_handle is None:
                self._pump()
        self._notify()
        return call

    def set_cps(self, cps: float | None) -> None:
        """Change the pace; waiting calls follow it from now on."""
        self.cps = cps
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None
        if cps is not None:
            self._next_slot = min(self._next_slot, time.monotonic() + self.time_scale / cps)
        self._pump()

    def _pump(self) -> None:
        """Let the waiting dials start, one every ``1 / cps`` simulated seconds, in order."""
        self._pump_handle = None
        now = time.monotonic()
        while self._queue:
            call = self._queue[0]
            if not call.waiting:  # ended (canceled) while it waited
                self._queue.popleft()
                continue
            if self.cps is not None:
                if now < self._next_slot:
                    self._pump_handle = self.loop.call_later(self._next_slot - now, self._pump)
                    return
                self._next_slot = max(self._next_slot, now) + self.time_scale / self.cps
            # (with the limit lifted while calls waited, they all go now)
            self._queue.popleft()
            call.waiting = False
            self._waiting -= 1
            self._admit(call)

    def _admit(self, call: SimCall) -> None:
        """The call leaves the queue: schedule its way to the callee's outcome."""
        callee = call.callee
        self.later(call.timers, _T_INITIATED, self._set_state, call, "initiated")
        if callee.behavior == "fail":
            self.later(call.timers, max(callee.after, _T_INITIATED), self._fail, call)
            return
        self.later(call.timers, _T_CREATED, self._set_state, call, "created")
        self.later(call.timers, _T_RINGING, self._set_state, call, "ringing")
        ring_timeout = call.dial_params.get("timeout")
        ring_limit = float(ring_timeout) if isinstance(ring_timeout, int | float) else None
        if callee.behavior == "busy":
            self.later(call.timers, _T_RINGING + callee.after, self.end, call, "busy")
        elif callee.behavior == "no_answer" or (
            ring_limit is not None and ring_limit < callee.after
        ):
            limit = ring_limit if ring_limit is not None else callee.after
            if callee.behavior == "no_answer" and ring_limit is None:
                limit = callee.after
            self.later(call.timers, _T_RINGING + limit, self.end, call, "noAnswer")
        else:
            self.later(call.timers, _T_RINGING + callee.after, self._answer, call)

    def new_inbound(self, *, from_: str, to: str, url: str, callee: Callee | None) -> SimCall:
        """A call from ``from_`` arriving at ``to``, to be handled by the SWML at ``url``.

        It starts in ``created`` (the state the SWML request reports) and sends no
        call-state webhooks; the caller behaves as ``callee`` (else the script of
        ``from_``).
        """
        call_id = self.new_id()
        call = SimCall(
            id=call_id,
            node_id=f"{self.new_id()}@sim",
            segment_id=call_id,
            from_=from_,
            to=to,
            callee=callee if callee is not None else self.callee_for(from_),
            created_at=_utc_now(),
            created_mono=time.monotonic(),
            url=url,
            status="created",
            direction="inbound",
            leg_type=leg_type(from_),
            status_events=frozenset(),
            started_mono=time.monotonic(),
        )
        call.history.append("created")
        self._register(call)
        self._notify()
        return call

    # ------------------------------------------------------------------ the state machine

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
        if call.status == "queued":
            call.started_mono = time.monotonic()
            self.start_times.append(call.started_mono)
        call.status = state
        call.history.append(state)
        self._state_event(call, state)
        self._notify()

    def _answer(self, call: SimCall) -> None:
        if call.status not in PRE_ANSWER:
            return
        call.answered_mono = time.monotonic()
        self._set_state(call, "answered")
        callee = call.callee
        if callee.hangup_after is not None:
            self.later(call.timers, callee.hangup_after, self.end, call, "hangup")
        if self.max_call_length > 0:
            self.later(call.timers, self.max_call_length, self.end, call, "max_duration")

    def answer(self, call: SimCall) -> None:
        """Answer a call that is not answered yet (an inbound call's SWML ``answer``)."""
        self._answer(call)

    def _fail(self, call: SimCall) -> None:
        if call.status not in PRE_ANSWER:
            return
        call.end_reason = "error"
        self._finish(call, "failed")

    def fail_inbound(self, call: SimCall, reason: str) -> None:
        """Fail an inbound call whose SWML could not be fetched, read or run: ``reason``
        goes to ``call.swml_error`` and to the log as a warning."""
        if call.status in TERMINAL_STATES:
            return
        call.swml_error = reason
        self._inbound_failed_log("inbound call %s from %s failed: %s", call.id, call.from_, reason)
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        for op in list(call.ops.values()):
            if not op.done:
                self._end_op_on_hangup(op)
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
            self.later(call.timers, _T_ENDING, self._finish, call, final)
        else:
            self._finish(call, final)

    def _finish(self, call: SimCall, final: str) -> None:
        if call.status in TERMINAL_STATES:
            return
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        if call.waiting:
            call.waiting = False
            self._waiting -= 1
        call.ended_mono = time.monotonic()
        call.status = final
        call.history.append(final)
        self.live_calls -= 1
        self._state_event(call, "ended")
        self._forget_old_calls(call)
        self._notify()

    def _forget_old_calls(self, call: SimCall) -> None:
        """Keep at most ``history_limit`` ended calls (the oldest go; commands get 404)."""
        if self._history_limit is None:
            return
        self._ended.append(call.id)
        while len(self._ended) > self._history_limit:
            self.calls.pop(self._ended.popleft(), None)

    def leg(self, call: SimCall) -> dict[str, Any]:
        """The call-leg object the platform answers every command with."""
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
                what = "Inbound Voice" if call.inbound else "Outbound Voice"
                details = [{"description": what, "charge": charge}]
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

    # ------------------------------------------------------------------ update / misc

    def update(self, call: SimCall, params: dict[str, Any]) -> None:
        """``update``: cancel a call not yet answered, complete an answered one, redirect."""
        if call.status not in ACTIVE_STATES:
            raise ApiError.unprocessable(
                "cannot_update_completed", "the call has already ended and cannot be updated", "id"
            )
        status = params.get("status")
        if isinstance(params.get("status_url"), str):
            call.status_url = params["status_url"]
        if status == "canceled":
            if call.status not in PRE_ANSWER:
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

    def refer(self, call: SimCall, params: dict[str, Any]) -> None:
        """``calling.refer``: the SIP transfer succeeds shortly, then the call ends."""
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

        self.later(call.timers, 0.3, send)

    def hangup(self, call: SimCall) -> None:
        """The callee (or an inbound call's caller) hangs up now."""
        self.end(call, "hangup")

    # ------------------------------------------------------------------ operations

    def start_operation(self, kind: str, call: SimCall, params: dict[str, Any]) -> Operation:
        """Start an operation of ``kind`` on ``call`` through its registered handler."""
        return OP_KINDS[kind].start(self, call, params)

    def operation_action(
        self, call: SimCall, kind: str, action: str, params: dict[str, Any]
    ) -> Operation:
        """Apply the sub-command ``action`` to the ``kind`` operation ``params["control_id"]``
        (404 when the call has no such operation)."""
        op = self.find_op(call, kind, str(params["control_id"]))
        OP_KINDS[kind].actions[action](self, op, params)
        return op

    def start_op(self, call: SimCall, kind: str, params: dict[str, Any]) -> Operation:
        """Book a new operation (422 when its control id is taken by an active one)."""
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
        """The ``kind`` operation ``control_id`` of ``call`` (404 when there is none)."""
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

    def base(self, op: Operation) -> dict[str, Any]:
        """The params every event of ``op`` carries."""
        return {
            "call_id": op.call.id,
            "node_id": op.call.node_id,
            "control_id": op.control_id,
        }

    def stop_op(self, op: Operation) -> None:
        """End ``op`` as its stop sub-command does (no-op once done)."""
        if not op.done:
            OP_KINDS[op.kind].end(self, op, "stop")

    def _end_op_on_hangup(self, op: Operation) -> None:
        OP_KINDS[op.kind].end(self, op, "hangup")

    def pause_clock(self, op: Operation) -> bool:
        """Pause a timed operation (play, record): bank the time it has left and cancel its
        timers. False when it is done or already paused."""
        if op.done or op.data.get("paused"):
            return False
        now = time.monotonic()
        op.data["remaining"] = op.data["remaining"] - (now - op.data["resumed"]) / self.time_scale
        op.data["paused"] = now
        op.cancel_timers()
        return True

    def resume_clock(self, op: Operation) -> float | None:
        """Resume a paused operation's clock; the simulated seconds it was paused, or None
        when it is done or not paused."""
        if op.done or not op.data.get("paused"):
            return None
        now = time.monotonic()
        paused_at: float = op.data.pop("paused")
        op.data["resumed"] = now
        return (now - paused_at) / self.time_scale


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
