"""The only module that builds msgspec encoders and decoders; each is built once.

Encoding: ``encode_command(cmd, call_id)`` emits the spec's envelope
``{"command", "id"?, "params"}``: top-level ``id`` for ``calling.*``, none for ``dial``
and ``update`` (whose call id is ``params.id``); ``params`` always present.

Decoding is tolerant: ``decode_event`` turns any JSON object with a string ``event_type``
into an event (``UnknownEvent`` when it is not a readable known type) and raises only
``MalformedWebhookError`` (also for an id over ``MAX_ID_LENGTH`` characters);
``decode_leg`` turns any JSON object with a string ``id`` into a leg (``GenericLeg`` for
unknown types) and raises only ``MalformedLegError``.
"""

from __future__ import annotations

from math import isfinite
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .errors import MalformedWebhookError, ValidationError
from .events import (
    CALL_DOCUMENT_EVENT_TYPE,
    AnyEvent,
    Event,
    KnownEvent,
    UnknownEvent,
    _ControlParams,
)
from .legs import (
    CALL_LEG_TYPES,
    FABRIC_LEG_TYPE,
    AnyLeg,
    CallLeg,
    FabricSubscriberDeviceLeg,
    GenericLeg,
)

if TYPE_CHECKING:
    from .commands import Command

__all__ = [
    "MAX_ID_LENGTH",
    "MalformedLegError",
    "decode_event",
    "decode_json",
    "decode_leg",
    "encode_command",
    "encode_event",
    "encode_json",
]

#: The longest ``control_id`` or ``call_id`` an event may carry. Ids are UUID-sized (36);
#: a longer one is junk, and would become an oversized key in the correlation registry.
MAX_ID_LENGTH: Final = 128

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
# strict=False: "12" reads as 12 and "true" as True, tolerating drift in number encoding.
_event_decoder: msgspec.json.Decoder[KnownEvent] = msgspec.json.Decoder(
    KnownEvent,
    strict=False,
)
_call_leg_decoder: msgspec.json.Decoder[CallLeg] = msgspec.json.Decoder(CallLeg, strict=False)


class _Envelope(msgspec.Struct, omit_defaults=True, gc=False):
    command: str
    params: Any
    id: str | msgspec.UnsetType = msgspec.UNSET


def encode_json(obj: Any) -> bytes:
    """Encode any msgspec-supported value as JSON bytes."""
    return _encoder.encode(obj)


def decode_json(data: bytes | str) -> Any:
    """Decode JSON bytes into plain Python objects (dict, list, str, ...)."""
    return _any_decoder.decode(data)


def encode_command(cmd: Command, call_id: str | None = None) -> bytes:
    """The wire body of ``cmd`` addressed to ``call_id``.

    ``call_id`` is required for commands whose ``id_location`` is ``"top"`` and ignored
    for ``dial`` (no id) and ``update`` (id inside params).
    """
    if cmd.id_location == "top":
        if not call_id:
            raise ValidationError("id", f"{cmd.command} needs the id of the call it acts on")
        return _encoder.encode(_Envelope(cmd.command, cmd, call_id))
    return _encoder.encode(_Envelope(cmd.command, cmd))


# --------------------------------------------------------------------------- events


def decode_event(data: bytes) -> AnyEvent:
    """Decode a webhook body into a typed event, or ``UnknownEvent``.

    The happy path is one msgspec decode. Raises ``MalformedWebhookError`` (and nothing
    else) when ``data`` is not a JSON object with a string ``event_type``, or when its
    ``control_id`` or ``call_id`` is longer than ``MAX_ID_LENGTH``; a ``{"call": {...}}``
    document becomes an ``UnknownEvent`` of type ``CALL_DOCUMENT_EVENT_TYPE``. A
    ``timestamp`` that is no finite float (``"nan"``, an integer of 309 digits) reads as
    ``None``.
    """
    try:
        event = _event_decoder.decode(data)
    except msgspec.ValidationError:
        # an unknown type or an unreadable field: read it generically
        unknown = _decode_unknown_event(data)
        _check_id("control_id", unknown.control_id)
        _check_id("call_id", unknown.call_id)
        return unknown
    except (ValueError, RecursionError) as exc:  # DecodeError, bad UTF-8, deep nesting
        raise MalformedWebhookError(f"body: not valid JSON ({exc})") from None
    timestamp = event.timestamp
    if timestamp is not None and not isfinite(timestamp):
        event.timestamp = None  # "inf" or "nan" in a string, read with strict=False
    # the hot path: plain attribute reads (the event's id properties cost more)
    params = event.params
    call_id = params.call_id
    if call_id is not None and len(call_id) > MAX_ID_LENGTH:
        raise _too_long("call_id", call_id)
    if isinstance(params, _ControlParams):
        _check_id("control_id", params.control_id)
    return event


def _check_id(name: str, value: str | None) -> None:
    if value is not None and len(value) > MAX_ID_LENGTH:
        raise _too_long(name, value)


def _too_long(name: str, value: str) -> MalformedWebhookError:
    return MalformedWebhookError(f"{name}: longer than {MAX_ID_LENGTH} characters ({len(value)})")


def _decode_unknown_event(data: bytes) -> UnknownEvent:
    try:
        doc = _any_decoder.decode(data)
    except (ValueError, RecursionError) as exc:  # DecodeError, bad UTF-8, deep nesting
        raise MalformedWebhookError(f"body: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MalformedWebhookError(f"body: expected a JSON object, got {type(doc).__name__}")
    event_type = doc.get("event_type")
    if not isinstance(event_type, str):
        if event_type is None and isinstance(doc.get("call"), dict):
            call: dict[str, Any] = doc["call"]
            return UnknownEvent(
                event_type=CALL_DOCUMENT_EVENT_TYPE,
                params=doc,
                project_id=_opt_str(call.get("project_id")),
                space_id=_opt_str(call.get("space_id")),
            )
        raise MalformedWebhookError("event_type: missing or not a string")
    params = doc.get("params")
    return UnknownEvent(
        event_type=event_type,
        params=params if isinstance(params, dict) else {},
        timestamp=_opt_float(doc.get("timestamp")),
        project_id=_opt_str(doc.get("project_id")),
        space_id=_opt_str(doc.get("space_id")),
        event_channel=_opt_str(doc.get("event_channel")),
    )


def _opt_float(value: Any) -> float | None:
    """A JSON number as a finite float, else ``None`` (an integer of 309 or more digits
    overflows a float)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        if isfinite(number):
            return number
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def encode_event(event: Event) -> bytes:
    """The wire body of ``event`` (``None`` fields left out); used by the simulator."""
    return _encoder.encode(event)


# --------------------------------------------------------------------------- legs


class MalformedLegError(ValueError):
    """A 200 body that is not a JSON object with a string ``id``."""


def decode_leg(data: bytes) -> AnyLeg:
    """Decode a command's 200 body into ``CallLeg``, ``FabricSubscriberDeviceLeg`` or
    ``GenericLeg`` (any other ``type``, or a body whose fields could not be read).

    Raises ``MalformedLegError`` (a ``ValueError``) only when ``data`` is not a JSON
    object with a string ``id``.
    """
    try:
        leg = _call_leg_decoder.decode(data)
    except msgspec.ValidationError:
        pass
    except (ValueError, RecursionError) as exc:  # DecodeError, bad UTF-8, deep nesting
        raise MalformedLegError(f"body: not valid JSON ({exc})") from None
    else:
        if leg.type in CALL_LEG_TYPES:
            return leg
    return _decode_other_leg(data)


def _decode_other_leg(data: bytes) -> AnyLeg:
    try:
        doc = _any_decoder.decode(data)
    except (ValueError, RecursionError) as exc:  # DecodeError, bad UTF-8, deep nesting
        raise MalformedLegError(f"body: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MalformedLegError(f"body: expected a JSON object, got {type(doc).__name__}")
    leg_id = doc.get("id")
    if not isinstance(leg_id, str):
        raise MalformedLegError("id: missing or not a string")
    leg_type = doc.get("type")
    if leg_type == FABRIC_LEG_TYPE:
        try:
            return msgspec.convert(doc, FabricSubscriberDeviceLeg, strict=False)
        except msgspec.ValidationError:
            pass  # an unreadable field: keep what can be read, below
    try:
        generic = msgspec.convert(doc, GenericLeg, strict=False)
    except msgspec.ValidationError:
        generic = GenericLeg(id=leg_id, type=_opt_str(leg_type))
    generic.raw = doc
    return generic
