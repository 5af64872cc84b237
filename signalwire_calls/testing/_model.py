"""The simulator's data: calls, operations, HTTP error answers and the state vocabulary.

Kept apart from the engine so the per-kind operation modules can use these types
without importing the engine that dispatches to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._callees import Callee
from ._webhooks import WebhookRecord

__all__ = [
    "ACTIVE_STATES",
    "CURRENT_STATUS_EVENTS",
    "ERROR_DOCS_URL",
    "OLD_STATUS_EVENTS",
    "PRE_ANSWER",
    "TERMINAL_STATES",
    "ApiError",
    "OpKind",
    "Operation",
    "SimCall",
    "leg_type",
    "stop_action",
]

ERROR_DOCS_URL = "https://signalwire.com/docs/apis/error-codes"
TERMINAL_STATES = frozenset(("ended", "failed", "canceled", "completed"))
ACTIVE_STATES = frozenset(("queued", "initiated", "created", "ringing", "answered"))
PRE_ANSWER = frozenset(("queued", "initiated", "created", "ringing"))
CURRENT_STATUS_EVENTS = ("created", "ringing", "answered", "ended")
OLD_STATUS_EVENTS = ("queued", "initiated", "ending")

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


class ApiError(Exception):
    """An HTTP error answer: ``status`` and the JSON ``body`` the platform documents."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body

    @classmethod
    def plain(cls, status: int) -> ApiError:
        """``{"error": "<reason phrase>"}`` with ``status``."""
        return cls(status, {"error": _REASONS[status]})

    @classmethod
    def unprocessable(
        cls, code: str, message: str, attribute: str | None, *, type_: str = "validation_error"
    ) -> ApiError:
        """A 422 with one ``errors[]`` item naming ``attribute``."""
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


def leg_type(address: str) -> str:
    """The call-leg ``type`` for a destination (or origin) address."""
    if address.startswith(("sip:", "sips:")):
        return "relay_sip_call"
    if address.startswith(("verto:", "client:", "/")):
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
        """Cancel every pending timer of this operation."""
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()


@dataclass(slots=True, eq=False)
class SimCall:
    """One simulated call leg and everything that happened on it.

    ``started_mono`` is when the call left ``queued`` (None while it waits its turn under
    the space's calls-per-second limit; ``waiting`` is true meanwhile). For an inbound
    call, ``swml`` holds the steps of its SWML, ``swml_step`` the next one to run, and
    ``swml_error`` why the call failed (its SWML could not be fetched, read or run).
    """

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
    started_mono: float | None = None
    answered_mono: float | None = None
    ended_mono: float | None = None
    end_reason: str | None = None
    swml_error: str | None = None
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
    swml: tuple[tuple[str, Any], ...] = ()
    swml_step: int = 0
    waiting: bool = False

    @property
    def ended(self) -> bool:
        """True once the call reached a terminal status."""
        return self.status in TERMINAL_STATES

    @property
    def active(self) -> bool:
        """True while the call is not in a terminal status."""
        return self.status in ACTIVE_STATES

    @property
    def inbound(self) -> bool:
        """True for a call the simulator placed to an SWML URL."""
        return self.direction == "inbound"

    def operations(self, kind: str | None = None) -> list[Operation]:
        """The operations started on this call (optionally of one kind)."""
        return [op for op in self.ops.values() if kind is None or op.kind == kind]


class Engine(Protocol):
    """What an operation module needs of the engine (``_engine.Engine`` is the one)."""

    space: str
    time_scale: float
    audio_lengths: dict[str, float]
    unplayable: set[str]

    def new_id(self) -> str: ...

    def later(
        self, timers: list[asyncio.TimerHandle], delay: float, fn: Callable[..., None], *args: Any
    ) -> None: ...

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None: ...

    def notify(self) -> None: ...

    def emit(
        self,
        url: str | None,
        event_type: str,
        params: dict[str, Any],
        *,
        call_id: str,
        control_id: str | None,
        state: str | None,
    ) -> WebhookRecord | None: ...

    def start_op(self, call: SimCall, kind: str, params: dict[str, Any]) -> Operation: ...

    def op_event(
        self,
        op: Operation,
        state: str,
        params: dict[str, Any],
        *,
        terminal: bool = False,
        event_type: str | None = None,
    ) -> None: ...

    def base(self, op: Operation) -> dict[str, Any]: ...

    def stop_op(self, op: Operation) -> None: ...

    def pause_clock(self, op: Operation) -> bool: ...

    def resume_clock(self, op: Operation) -> float | None: ...


StartHandler = Callable[["Engine", SimCall, dict[str, Any]], Operation]
ActionHandler = Callable[["Engine", Operation, dict[str, Any]], None]
EndHandler = Callable[["Engine", Operation, str], None]


@dataclass(frozen=True, slots=True)
class OpKind:
    """How the simulator runs one kind of operation.

    ``start`` begins one (for the command that starts it) and returns it; ``actions``
    are its sub-commands by verb (``stop``, ``pause``, ``resume``, ``volume``,
    ``start_input_timers``), each called with the operation and the command's params;
    ``end`` finishes it early with its terminal event(s), ``why`` being ``"stop"`` (its
    stop sub-command) or ``"hangup"`` (the call ended). Handlers are no-ops on an
    operation that is already done.
    """

    name: str
    start: StartHandler
    end: EndHandler
    actions: Mapping[str, ActionHandler]


def stop_action(engine: Engine, op: Operation, _params: dict[str, Any]) -> None:
    """The ``stop`` sub-command every kind shares: end the operation with ``why="stop"``."""
    engine.stop_op(op)
