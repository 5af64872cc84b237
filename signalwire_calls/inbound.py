"""Inbound calls: the SWML request SignalWire sends when a call comes in, and the reply.

When a call arrives at a number routed to an SWML webhook, the platform POSTs JSON to
that URL (signed like every webhook) and runs the SWML document it gets back. The
session serves that URL (``CallSession.on_inbound``): it answers at once with SWML that
answers the call and keeps it idle (``answer``, then ``sleep: -1``), and hands the call
to your coroutine, which drives it with REST commands like any other call::

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        menu = await call.prompt(tts("Press 1 for sales"), digits=Digits(max=1))
        choice = await menu.finished(timeout=30)
        ...                        # returning hangs the call up (request.keep_call() not)

What the platform documents and what this module infers are kept apart:

* documented: the request's ``call`` object (``call_id``, ``node_id``, ``segment_id``,
  ``call_state``, ``direction``, ``type``, ``from``, ``to``, ``headers``,
  ``project_id``, ``space_id``), ``vars``, and sometimes ``envs`` and ``params``
  (decoded tolerantly: a real request had neither); the reply is an SWML document;
  ``answer`` then ``sleep: -1`` keeps the call answered and idle; calls last at most
  4 hours by default; call commands work on "an existing call".
* inferred (each in one place): that REST operations run alongside the ``sleep``
  (``DEFAULT_SWML``); that no call-state callback comes for a call answered by SWML,
  so its end is learned from a 404, from an operation event that shows the call is
  gone (confirmed by a probe), or from the maximum call length (``_core``); that
  ``call_id`` is the id REST commands take (in the one real sample it equalled
  ``segment_id``; ``InboundRequest.call_id``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from .errors import MalformedWebhookError

__all__ = [
    "BUSY_SWML",
    "DEFAULT_SWML",
    "InboundCallInfo",
    "InboundRequest",
    "decode_inbound",
]

#: The reply by default: answer, then stay idle until REST commands act on the call
#: (``sleep`` takes milliseconds; -1 sleeps until the call ends). [inferred: REST
#: operations run alongside the sleep.]
DEFAULT_SWML: Final[dict[str, Any]] = {
    "version": "1.0.0",
    "sections": {"main": [{"answer": {}}, {"sleep": -1}]},
}

#: The reply to a call beyond ``max_concurrent`` handlers, by default: a short busy
#: message, then hang up.
BUSY_SWML: Final[dict[str, Any]] = {
    "version": "1.0.0",
    "sections": {
        "main": [
            {"answer": {}},
            {"play": {"url": "say:All our lines are busy. Please call again later."}},
            {"hangup": {"reason": "busy"}},
        ]
    },
}


class InboundCallInfo(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """The ``call`` object of the platform's SWML request. Every field is optional."""

    call_id: str | None = None
    node_id: str | None = None
    segment_id: str | None = None
    call_state: str | None = None
    direction: str | None = None
    type: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    headers: Any = None
    project_id: str | None = None
    space_id: str | None = None


class InboundRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The platform's SWML request for an inbound call.

    ``call`` describes the call; ``vars``, ``envs`` and ``params`` are passed through as
    the platform sent them (``envs``/``params`` are often absent). ``keep_call()`` asks
    the session not to hang up when the handler returns.
    """

    call: InboundCallInfo
    vars: dict[str, Any] = msgspec.field(default_factory=dict)
    envs: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    _keep: bool = False

    @property
    def call_id(self) -> str:
        """The id REST commands take for this call. [inferred: ``call.call_id``, else
        ``call.segment_id``; they were equal in the one real sample.]"""
        return self.call.call_id or self.call.segment_id or ""

    @property
    def from_(self) -> str | None:
        """The caller (``call.from``, else ``call.from_number``)."""
        return self.call.from_ or self.call.from_number

    @property
    def to(self) -> str | None:
        """The number called (``call.to``, else ``call.to_number``)."""
        return self.call.to or self.call.to_number

    def keep_call(self) -> None:
        """Leave the call up when the handler returns (by default it is hung up)."""
        self._keep = True

    @property
    def kept(self) -> bool:
        """Whether ``keep_call()`` was called."""
        return self._keep


_decoder: msgspec.json.Decoder[InboundRequest] = msgspec.json.Decoder(InboundRequest, strict=False)


def decode_inbound(body: bytes) -> InboundRequest:
    """Decode the platform's SWML request; ``MalformedWebhookError`` (and nothing else)
    when it is not a JSON object with a ``call`` object naming a call id."""
    try:
        request = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise MalformedWebhookError(f"inbound SWML request: {exc}") from None
    info = request.call
    call_id = info.call_id or info.segment_id  # as the call_id property, once
    if not call_id or len(call_id) > 128:
        raise MalformedWebhookError("inbound SWML request: call.call_id missing or too long")
    request._keep = False  # never taken from the wire
    return request
