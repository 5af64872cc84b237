"""Typed webhook payloads (what each command's ``status_url`` receives).

Decoded by ``_codec.decode_event``.

Inbound data is read tolerantly: every field is optional, enum-like fields are plain
``str`` (a new state value never fails decoding) and unknown fields are ignored. The known
values are listed in the docstrings and in the ``*_STATES`` / ``*_EVENTS`` constants.
Anything that does not fit a typed event becomes an ``UnknownEvent``.

Usage::

    match event:
        case PlayEvent(params=PlayParams(state="finished")):
            ...
        case RecordEvent() if event.is_terminal:
            print(event.params.url)
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec

__all__ = [
    "CALL_DOCUMENT_EVENT_TYPE",
    "CALL_STATES",
    "CALL_TERMINAL_STATES",
    "COLLECT_RESULT_TYPES",
    "COLLECT_TERMINAL_STATES",
    "DETECT_TERMINAL_EVENTS",
    "END_REASONS",
    "FAX_TERMINAL_TYPES",
    "PLAY_TERMINAL_STATES",
    "RECORD_TERMINAL_STATES",
    "STREAM_TERMINAL_STATES",
    "TAP_TERMINAL_STATES",
    "AnyEvent",
    "CallStateEvent",
    "CallStateParams",
    "CollectEvent",
    "CollectParams",
    "CollectResultInfo",
    "CollectResultParams",
    "DetectEvent",
    "DetectInfo",
    "DetectParams",
    "DetectResultParams",
    "DeviceInfo",
    "DeviceInfoParams",
    "Event",
    "FaxEvent",
    "FaxInfo",
    "FaxInfoParams",
    "FaxParams",
    "KnownEvent",
    "PeerInfo",
    "PlayEvent",
    "PlayParams",
    "RecordAudioInfo",
    "RecordEvent",
    "RecordInfo",
    "RecordParams",
    "ReferEvent",
    "ReferParams",
    "StreamEvent",
    "StreamParams",
    "TapDeviceInfo",
    "TapDeviceParams",
    "TapEvent",
    "TapInfo",
    "TapInfoParams",
    "TapParams",
    "TranscriptCompletedEvent",
    "TranscriptFailedEvent",
    "TranscriptParams",
    "UnknownEvent",
    "describe_event",
]

# --------------------------------------------------------------------------- known values

#: ``call_state`` values of ``calling.call.state``.
CALL_STATES: Final = frozenset({"created", "ringing", "answered", "ending", "ended"})
#: The ``call_state`` after which a call sends nothing more.
CALL_TERMINAL_STATES: Final = frozenset({"ended"})
#: ``end_reason`` values of both vocabularies (SWML and RELAY); not exhaustive.
END_REASONS: Final = frozenset(
    {
        "hangup",
        "busy",
        "no_answer",
        "noAnswer",
        "cancel",
        "declined",
        "decline",
        "error",
        "abandoned",
        "max_duration",
        "not_found",
    }
)
#: Play ``state`` values that end the operation (others: ``playing``, ``paused``).
PLAY_TERMINAL_STATES: Final = frozenset({"finished", "error"})
#: Record ``state`` values that end the operation (others: ``recording``, ``paused``).
RECORD_TERMINAL_STATES: Final = frozenset({"finished", "no_input", "error"})
#: Collect ``result.type`` values (``finished`` appears only on the SWML prompt page).
COLLECT_RESULT_TYPES: Final = frozenset(
    {"digit", "speech", "no_input", "no_match", "start_of_input", "error", "finished"}
)
#: Continuous-collect ``state`` values that end the operation (other: ``collecting``).
COLLECT_TERMINAL_STATES: Final = frozenset({"finished", "error"})
#: Detect ``detect.params.event`` values that end the operation.
DETECT_TERMINAL_EVENTS: Final = frozenset({"finished", "error"})
#: Tap ``state`` values that end the operation (other: ``tapping``).
TAP_TERMINAL_STATES: Final = frozenset({"finished"})
#: Stream ``state`` values that end the operation (other: ``streaming``).
STREAM_TERMINAL_STATES: Final = frozenset({"finished"})
#: Fax ``fax.type`` values that end the operation (other: ``page``).
FAX_TERMINAL_TYPES: Final = frozenset({"finished", "error"})
#: ``event_type`` given to a ``{"call": {...}, "vars": {...}}`` document
#: (the SWML request for a call),
#: which carries no ``event_type`` of its own; it decodes to an ``UnknownEvent``.
CALL_DOCUMENT_EVENT_TYPE: Final = "call"


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Base of the nested inbound objects: keyword-only, ``None`` fields not re-encoded."""


# --------------------------------------------------------------------------- params bases


class _Params(_Wire):
    """Members common to every ``params`` object of the envelope."""

    call_id: str | None = None
    node_id: str | None = None
    segment_id: str | None = None
    tag: str | None = None


class _ControlParams(_Params):
    """``params`` of an event about one operation, addressed by ``control_id``."""

    control_id: str | None = None


# --------------------------------------------------------------------------- events


class Event(msgspec.Struct, tag_field="event_type", kw_only=True, omit_defaults=True, gc=False):
    """Base of every webhook event; the envelope fields are optional.

    ``event_type`` is the wire discriminator; ``call_id``/``control_id`` are ``None``
    where the event has none; ``is_terminal`` says the event ends its operation (or call).
    """

    timestamp: float | None = None
    project_id: str | None = None
    space_id: str | None = None
    event_channel: str | None = None

    @property
    def event_type(self) -> str:
        """The wire ``event_type`` of this event."""
        return str(self.__struct_config__.tag)

    @property
    def call_id(self) -> str | None:
        """The call this event is about, when it names one."""
        return None

    @property
    def control_id(self) -> str | None:
        """The operation this event is about, when it names one."""
        return None

    @property
    def is_terminal(self) -> bool:
        """Whether this event ends its operation (or, for call state, the call)."""
        return False


class _CallEvent(Event):
    params: _Params

    @property
    def call_id(self) -> str | None:
        return self.params.call_id


class _ControlEvent(_CallEvent):
    params: _ControlParams

    @property
    def control_id(self) -> str | None:
        return self.params.control_id


# ---- call state (3.1)


class PeerInfo(_Wire):
    """The other leg of a connected call."""

    call_id: str | None = None
    node_id: str | None = None


class DeviceInfoParams(_Wire):
    """Addresses of a call's device: ``from_number``/``to_number`` (phone) or
    ``from``/``to`` (sip, webrtc)."""

    from_number: str | None = None
    to_number: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None


class DeviceInfo(_Wire):
    """``device`` of a call-state event; ``type`` is ``phone``, ``sip``, ``webrtc``, ..."""

    type: str | None = None
    params: DeviceInfoParams | None = None


class CallStateParams(_Params):
    """``params`` of ``calling.call.state``.

    ``call_state``: see ``CALL_STATES``; ``end_reason`` (meaningful on ``ended``): see
    ``END_REASONS`` (both vocabularies are accepted, kept verbatim).
    """

    call_state: str | None = None
    direction: str | None = None
    device: DeviceInfo | None = None
    end_reason: str | None = None
    peer: PeerInfo | None = None

    @property
    def is_terminal(self) -> bool:
        """``True`` once the call has ended."""
        return self.call_state in CALL_TERMINAL_STATES


class CallStateEvent(_CallEvent, tag="calling.call.state"):
    """A call changed state (``created`` -> ``ringing`` -> ``answered`` -> ``ended``)."""

    params: CallStateParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- play (3.2)


class PlayParams(_ControlParams):
    """``params`` of ``calling.call.play``; ``state``: playing, paused, finished, error."""

    state: str | None = None

    @property
    def is_terminal(self) -> bool:
        """``True`` on ``finished`` or ``error``."""
        return self.state in PLAY_TERMINAL_STATES


class PlayEvent(_ControlEvent, tag="calling.call.play"):
    """Progress of a ``calling.play`` operation."""

    params: PlayParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- record (3.3)


class RecordAudioInfo(_Wire):
    """``record.audio``: the echo of the recording configuration."""

    format: str | None = None
    direction: str | None = None
    stereo: bool | None = None


class RecordInfo(_Wire):
    """``params.record``: the config echo, and in the SWML variant also the results."""

    audio: RecordAudioInfo | None = None
    url: str | None = None
    duration: float | None = None
    size: int | float | None = None
    format: str | None = None
    recording_id: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    pause_behavior: str | None = None


class RecordParams(_ControlParams):
    """``params`` of ``calling.call.record``.

    ``state``: recording, paused, finished, no_input, error. Results may come top-level or
    nested under ``record``: read them through the properties ``url``, ``duration``,
    ``size``, ``format``, ``recording_id``, ``start_time``, ``end_time`` and
    ``pause_behavior``, which prefer ``record.*`` and fall back to the top-level value
    (as RELAY does). The ``top_*`` fields hold the top-level wire values.
    """

    state: str | None = None
    record: RecordInfo | None = None
    top_url: str | None = msgspec.field(default=None, name="url")
    top_duration: float | None = msgspec.field(default=None, name="duration")
    top_size: int | float | None = msgspec.field(default=None, name="size")
    top_format: str | None = msgspec.field(default=None, name="format")
    top_recording_id: str | None = msgspec.field(default=None, name="recording_id")
    top_start_time: float | None = msgspec.field(default=None, name="start_time")
    top_end_time: float | None = msgspec.field(default=None, name="end_time")
    top_pause_behavior: str | None = msgspec.field(default=None, name="pause_behavior")

    @property
    def is_terminal(self) -> bool:
        """``True`` on ``finished``, ``no_input`` or ``error``."""
        return self.state in RECORD_TERMINAL_STATES

    @property
    def url(self) -> str | None:
        """Download URL of the recording."""
        r = self.record
        return r.url if r is not None and r.url is not None else self.top_url

    @property
    def duration(self) -> float | None:
        """Length of the recording in seconds."""
        r = self.record
        return r.duration if r is not None and r.duration is not None else self.top_duration

    @property
    def size(self) -> int | float | None:
        """Size of the recording in bytes."""
        r = self.record
        return r.size if r is not None and r.size is not None else self.top_size

    @property
    def format(self) -> str | None:
        """File format: ``record.format``, top-level ``format``, then ``record.audio.format``."""
        r = self.record
        if r is not None and r.format is not None:
            return r.format
        if self.top_format is not None:
            return self.top_format
        if r is not None and r.audio is not None:
            return r.audio.format
        return None

    @property
    def recording_id(self) -> str | None:
        """The platform's id of the recording."""
        r = self.record
        if r is not None and r.recording_id is not None:
            return r.recording_id
        return self.top_recording_id

    @property
    def start_time(self) -> float | None:
        """Unix time the recording started."""
        r = self.record
        return r.start_time if r is not None and r.start_time is not None else self.top_start_time

    @property
    def end_time(self) -> float | None:
        """Unix time the recording ended."""
        r = self.record
        return r.end_time if r is not None and r.end_time is not None else self.top_end_time

    @property
    def pause_behavior(self) -> str | None:
        """``silence`` or ``skip``, only with ``state`` ``paused``."""
        r = self.record
        if r is not None and r.pause_behavior is not None:
            return r.pause_behavior
        return self.top_pause_behavior


class RecordEvent(_ControlEvent, tag="calling.call.record"):
    """Progress, then the result, of a ``calling.record`` operation."""

    params: RecordParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- collect (3.4)


class CollectResultParams(_Wire):
    """``result.params``: ``digits``/``terminator`` (digit) or ``text``/``confidence``
    (speech)."""

    digits: str | None = None
    terminator: str | None = None
    text: str | None = None
    confidence: float | None = None


class CollectResultInfo(_Wire):
    """``result`` of a collect event; ``type``: see ``COLLECT_RESULT_TYPES``."""

    type: str | None = None
    params: CollectResultParams | None = None


class CollectParams(_ControlParams):
    """``params`` of ``calling.call.collect``.

    ``final`` appears only with partial results (``False`` = interim); ``state``
    (collecting, finished, error) only for a continuous collect.
    """

    result: CollectResultInfo | None = None
    final: bool | None = None
    state: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Continuous: ``state`` finished/error. Otherwise any result except
        ``start_of_input`` and except an interim (``final: false``) one."""
        if self.state is not None:
            return self.state in COLLECT_TERMINAL_STATES
        result = self.result
        if result is None or result.type is None:
            return False
        return result.type != "start_of_input" and self.final is not False


class CollectEvent(_ControlEvent, tag="calling.call.collect"):
    """A result (partial, final or continuous) of a ``calling.collect`` operation."""

    params: CollectParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- detect (3.5)


class DetectResultParams(_Wire):
    """``detect.params``: ``event`` (HUMAN, MACHINE, UNKNOWN, READY, NOT_READY, CED, CNG,
    a digit, finished, error) and ``beep`` once a beep was heard."""

    event: str | None = None
    beep: bool | None = None


class DetectInfo(_Wire):
    """``detect`` of a detect event; ``type``: machine, fax, digit."""

    type: str | None = None
    params: DetectResultParams | None = None


class DetectParams(_ControlParams):
    """``params`` of ``calling.call.detect``."""

    detect: DetectInfo | None = None

    @property
    def event(self) -> str | None:
        """Shortcut for ``detect.params.event``."""
        d = self.detect
        return d.params.event if d is not None and d.params is not None else None

    @property
    def is_terminal(self) -> bool:
        """``True`` when the detector reports ``finished`` or ``error``."""
        return self.event in DETECT_TERMINAL_EVENTS


class DetectEvent(_ControlEvent, tag="calling.call.detect"):
    """One detection (several per operation) of a ``calling.detect`` operation."""

    params: DetectParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- tap (3.6)


class TapInfoParams(_Wire):
    """``tap.params``: ``direction`` (listen, speak, both)."""

    direction: str | None = None


class TapInfo(_Wire):
    """``tap``: what is tapped (``type`` ``audio``)."""

    type: str | None = None
    params: TapInfoParams | None = None


class TapDeviceParams(_Wire):
    """``device.params`` as negotiated: ``addr``/``port``/``codec``/``ptime`` (rtp) or
    ``uri``/``codec`` (ws)."""

    addr: str | None = None
    port: int | None = None
    codec: str | None = None
    ptime: int | None = None
    rate: int | None = None
    uri: str | None = None


class TapDeviceInfo(_Wire):
    """``device`` of a tap event; ``type`` ``rtp`` or ``ws``."""

    type: str | None = None
    params: TapDeviceParams | None = None


class TapParams(_ControlParams):
    """``params`` of ``calling.call.tap``; ``state``: tapping, finished."""

    state: str | None = None
    tap: TapInfo | None = None
    device: TapDeviceInfo | None = None

    @property
    def is_terminal(self) -> bool:
        """``True`` on ``finished``."""
        return self.state in TAP_TERMINAL_STATES


class TapEvent(_ControlEvent, tag="calling.call.tap"):
    """Start or end of a ``calling.tap`` operation."""

    params: TapParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- stream (3.7)


class StreamParams(_ControlParams):
    """``params`` of ``calling.call.stream``; ``state``: streaming, finished."""

    state: str | None = None
    url: str | None = None
    name: str | None = None

    @property
    def is_terminal(self) -> bool:
        """``True`` on ``finished``."""
        return self.state in STREAM_TERMINAL_STATES


class StreamEvent(_ControlEvent, tag="calling.call.stream"):
    """Start or end of a ``calling.stream`` operation."""

    params: StreamParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- transcript (3.8)


class TranscriptParams(_Params):
    """``params`` of a transcript callback: transcript ``id`` and ``text`` (omitted when
    nothing was transcribed). There is no ``control_id``."""

    id: str | None = None
    text: str | None = None


class TranscriptCompletedEvent(_CallEvent, tag="calling.transcript.completed"):
    """The transcript of a ``calling.transcribe`` is ready; always terminal."""

    params: TranscriptParams

    @property
    def is_terminal(self) -> bool:
        return True


class TranscriptFailedEvent(_CallEvent, tag="calling.transcript.failed"):
    """The transcript of a ``calling.transcribe`` failed; always terminal."""

    params: TranscriptParams

    @property
    def is_terminal(self) -> bool:
        return True


# ---- refer (3.9)


class ReferParams(_ControlParams):
    """``params`` of ``calling.call.refer``.

    ``state`` is the overall result (e.g. ``success``; the enum is undocumented). The SIP
    response codes are strings on the wire (``"202"``); a number is kept as an ``int``.
    """

    sip_refer_to: str | None = None
    state: str | None = None
    sip_refer_response_code: str | int | None = None
    sip_notify_response_code: str | int | None = None

    @property
    def is_terminal(self) -> bool:
        """``True`` once an overall ``state`` is reported (best effort: undocumented)."""
        return self.state is not None


class ReferEvent(_ControlEvent, tag="calling.call.refer"):
    """Progress or result of a ``calling.refer``."""

    params: ReferParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- fax (3.10)


class FaxInfoParams(_Wire):
    """``fax.params``: ``direction`` and the page ``number`` on ``page``; the outcome on
    ``finished`` (``result`` 0 = OK)."""

    direction: str | None = None
    number: int | None = None
    identity: str | None = None
    remote_identity: str | None = None
    document: str | None = None
    pages: int | None = None
    success: bool | None = None
    result: int | str | None = None
    result_text: str | None = None
    format: str | None = None


class FaxInfo(_Wire):
    """``fax`` of a fax event; ``type``: page, finished, error."""

    type: str | None = None
    params: FaxInfoParams | None = None


class FaxParams(_ControlParams):
    """``params`` of ``calling.call.fax``."""

    fax: FaxInfo | None = None

    @property
    def is_terminal(self) -> bool:
        """``True`` on ``finished`` or ``error``."""
        return self.fax is not None and self.fax.type in FAX_TERMINAL_TYPES


class FaxEvent(_ControlEvent, tag="calling.call.fax"):
    """Progress or result of a fax operation."""

    params: FaxParams

    @property
    def is_terminal(self) -> bool:
        return self.params.is_terminal


# ---- anything else


class UnknownEvent(Event, tag=False):
    """An event of an unknown type, or of a known type whose fields could not be read.

    ``params`` is the raw ``params`` object (``{}`` when it was not an object). A
    ``{"call": ...}`` document has ``event_type`` ``CALL_DOCUMENT_EVENT_TYPE`` and the
    whole document as ``params``.
    """

    event_type: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def call_id(self) -> str | None:
        value = self.params.get("call_id")
        if value is None:
            call = self.params.get("call")
            if isinstance(call, dict):
                value = call.get("call_id")
        return value if isinstance(value, str) else None

    @property
    def control_id(self) -> str | None:
        value = self.params.get("control_id")
        return value if isinstance(value, str) else None


#: Every typed event (the tagged union ``_codec`` decodes).
KnownEvent: TypeAlias = (
    CallStateEvent
    | PlayEvent
    | RecordEvent
    | CollectEvent
    | DetectEvent
    | TapEvent
    | StreamEvent
    | TranscriptCompletedEvent
    | TranscriptFailedEvent
    | ReferEvent
    | FaxEvent
)
#: Whatever ``decode_event`` can return.
AnyEvent: TypeAlias = KnownEvent | UnknownEvent


def describe_event(event: Event) -> str:
    """A short description for messages and logs: the event type and its state
    (``calling.call.play finished``, ``calling.call.collect result digit``)."""
    params = getattr(event, "params", None)
    if isinstance(params, dict):  # UnknownEvent
        state = params.get("state")
        return f"{event.event_type} {state}" if isinstance(state, str) else event.event_type
    for attr in ("call_state", "state"):
        value = getattr(params, attr, None)
        if isinstance(value, str):
            return f"{event.event_type} {value}"
    result = getattr(params, "result", None)
    if result is not None and getattr(result, "type", None):
        return f"{event.event_type} result {result.type}"
    detect = getattr(params, "detect", None)
    if detect is not None and getattr(detect, "params", None) is not None:
        return f"{event.event_type} {detect.params.event}"
    return event.event_type
