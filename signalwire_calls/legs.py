"""The call leg every successful command returns (the API's call-leg object).

Decoded by ``_codec.decode_leg``.

The response is ``CallLeg | FabricSubscriberDeviceLeg`` told apart by ``type``; any other
``type`` (``video_room_pstn_leg``, ``dialogflow_call``, ...) decodes to ``GenericLeg``.
Decoding is lenient: only ``id`` is required, extra fields are ignored, enum-like fields
are plain ``str`` (known values in ``CALL_LEG_TYPES``, ``LEG_STATUSES``, ``DIRECTIONS``).

Usage::

    leg = await transport.send(Dial(...), None)
    match leg:
        case CallLeg(status="queued"):
            ...
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec

__all__ = [
    "CALL_LEG_TYPES",
    "DIRECTIONS",
    "FABRIC_LEG_TYPE",
    "LEG_STATUSES",
    "LEG_TERMINAL_STATUSES",
    "AnyLeg",
    "CallLeg",
    "ChargeDetail",
    "FabricSubscriberDeviceLeg",
    "GenericLeg",
]

#: ``type`` values of a ``CallLeg``.
CALL_LEG_TYPES: Final = frozenset({"relay_pstn_call", "relay_sip_call", "relay_webrtc_call"})
#: ``type`` of a ``FabricSubscriberDeviceLeg``.
FABRIC_LEG_TYPE: Final = "fabric_subscriber_device_leg"
#: ``direction`` values (a REST ``dial`` yields ``outbound-api``).
DIRECTIONS: Final = frozenset({"inbound", "outbound", "outbound-api"})
#: Leg ``status`` values, as the API lists them.
LEG_STATUSES: Final = frozenset(
    {
        "queued",
        "initiated",
        "created",
        "ringing",
        "answered",
        "ending",
        "ended",
        "failed",
        "canceled",
        "completed",
    }
)
#: Leg ``status`` values after which the call is over.
LEG_TERMINAL_STATUSES: Final = frozenset({"ended", "failed", "canceled", "completed"})


class ChargeDetail(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One item of ``charge_details``, e.g. ``{"description": "Outbound Voice",
    "charge": 0.004}``."""

    description: str | None = None
    charge: float | None = None


class _LegBase(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Fields common to every leg (``CallBase``); all but ``id`` may be missing."""

    id: str
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    direction: str | None = None
    source: str | None = None
    url: str | None = None
    charge: float | None = None
    created_at: str | None = None
    charge_details: list[ChargeDetail] = msgspec.field(default_factory=list)
    status: str | None = None
    type: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether ``status`` says the call is over."""
        return self.status in LEG_TERMINAL_STATUSES


class CallLeg(_LegBase):
    """A PSTN, SIP or WebRTC call leg (``type`` in ``CALL_LEG_TYPES``).

    ``status`` is one of ``LEG_STATUSES`` (``queued`` after ``dial``); durations are
    ``None`` until known; ``qos_metrics`` is ``None`` until the call ended.
    """

    duration: int | None = None
    duration_ms: int | None = None
    billing_ms: int | None = None
    parent_id: str | None = None
    qos_metrics: dict[str, Any] | None = None


class FabricSubscriberDeviceLeg(_LegBase):
    """A Fabric subscriber device leg: the common fields only, ``status`` always ``None``."""

    type: str | None = FABRIC_LEG_TYPE


class GenericLeg(_LegBase):
    """A leg of a ``type`` this client does not model (video room, Dialogflow, ...).

    The common fields are read when they are readable; ``raw`` holds the whole body.
    """

    duration: int | None = None
    duration_ms: int | None = None
    billing_ms: int | None = None
    parent_id: str | None = None
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


#: Whatever ``decode_leg`` can return.
AnyLeg: TypeAlias = CallLeg | FabricSubscriberDeviceLeg | GenericLeg
