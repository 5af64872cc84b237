"""One msgspec Struct per call command, and per nested option, of ``POST /api/calling/calls``.

An instance IS the command's ``params`` object; ``_codec.encode_command(cmd, call_id)``
wraps it in the ``{"command", "id", "params"}`` envelope. Unset options are
``msgspec.UNSET`` and left out of the body::

    cmd = Play(control_id="p1", play=[tts("Hello"), silence(1)], volume=-3)
    body = encode_command(cmd, call_id)

Each rule the spec states is written once, in the field's annotation: ``Literal[...]``
for enums, ``Annotated[..., msgspec.Meta(...)]`` for bounds, lengths and patterns (so
msgspec enforces them on decode and ``msgspec.json.schema(Play)`` shows them), and a
named checker for what ``Meta`` cannot say (URLs, E.164, public IPv4, ...). A command is
checked against those annotations when it is built (and when it is decoded), raising
``errors.ValidationError(field, message)`` with the dotted wire path of the bad field, so
a typo fails before anything is sent. ``__post_init__`` holds only the rules that span
several fields.

Commands and options are frozen, and their lists are stored as tuples: a command cannot
change after it was checked. Nested options are checked by the command that holds them
(so the error names the full path, e.g. ``play[0].params.text``); factories (``tts()``,
``machine_detector()``, ``rtp_device()``, ...) spare spelling ``{type, params}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ._validate import (
    VALIDATORS,
    CodecString,
    Destination,
    HeaderName,
    HeaderValue,
    MaxUtf8Bytes,
    NonEmpty,
    PublicIPv4,
    ReservedPrefix,
    SwmlObject,
    Url,
    fail,
    freeze,
    whole,
)

__all__ = [
    "COMMANDS",
    "SWML",
    "TTS",
    "AIHold",
    "AIMessage",
    "AIReset",
    "AIRole",
    "AIStop",
    "AIUnhold",
    "Audio",
    "AudioParams",
    "Codec",
    "Collect",
    "CollectStartInputTimers",
    "CollectStop",
    "Command",
    "Denoise",
    "DenoiseStop",
    "Detect",
    "DetectStop",
    "Detector",
    "Dial",
    "DigitDetector",
    "DigitDetectorParams",
    "Digits",
    "Direction",
    "Disconnect",
    "End",
    "EndReason",
    "FaxDetector",
    "FaxDetectorParams",
    "FaxTone",
    "Gender",
    "HTTPMethod",
    "Header",
    "LiveDirection",
    "LiveInject",
    "LiveSpeechEngine",
    "LiveSummarize",
    "LiveTranscribe",
    "LiveTranscribeAction",
    "LiveTranscribeStart",
    "LiveTranslate",
    "LiveTranslateAction",
    "LiveTranslateStart",
    "MachineDetector",
    "MachineDetectorParams",
    "MediaItem",
    "Play",
    "PlayPause",
    "PlayResume",
    "PlayStop",
    "PlayVolume",
    "RTPDevice",
    "RTPDeviceParams",
    "ReceiveFaxStop",
    "Record",
    "RecordAudio",
    "RecordFormat",
    "RecordOptions",
    "RecordPause",
    "RecordPauseBehavior",
    "RecordResume",
    "RecordStop",
    "Refer",
    "Ringtone",
    "RingtoneName",
    "RingtoneParams",
    "SIPDevice",
    "SIPDeviceParams",
    "SendFaxStop",
    "Silence",
    "SilenceParams",
    "Speech",
    "SpeechEngine",
    "StatusEvent",
    "Stream",
    "StreamStop",
    "StreamTrack",
    "TTSParams",
    "Tap",
    "TapAudio",
    "TapAudioParams",
    "TapCodec",
    "TapDevice",
    "TapStop",
    "Transcribe",
    "TranscribeStop",
    "Transfer",
    "Update",
    "UpdateStatus",
    "UserEvent",
    "WSDevice",
    "WSDeviceParams",
    "audio",
    "digit_detector",
    "fax_detector",
    "live_transcribe_start",
    "live_transcribe_summarize",
    "live_translate_inject",
    "live_translate_start",
    "live_translate_summarize",
    "machine_detector",
    "ringtone",
    "rtp_device",
    "silence",
    "sip_device",
    "tap_audio",
    "tts",
    "ws_device",
]

# --------------------------------------------------------------------------- enums

SWML: TypeAlias = dict[str, Any]
"""An inline SWML document, e.g. ``{"version": "1.0.0", "sections": {"main": [...]}}``."""

Direction: TypeAlias = Literal["listen", "speak", "both"]
Gender: TypeAlias = Literal["male", "female"]
RingtoneName: TypeAlias = Literal[
    "au", "be", "ca", "cn", "cy", "cz", "de", "dk", "dz", "eg", "es", "fi", "fr", "hu",
    "il", "in", "jp", "ko", "pk", "pl", "ro", "rs", "ru", "sa", "tr", "uk", "us", "at",
    "bg", "br", "ch", "cl", "ee", "gr", "it", "lt", "mx", "my", "nl", "no", "nz", "ph",
    "pt", "se", "sg", "th", "za", "tw", "ve", "bong",
]  # fmt: skip
RecordFormat: TypeAlias = Literal["mp3", "wav", "mp4"]
EndReason: TypeAlias = Literal["hangup", "cancel", "busy", "noAnswer", "decline", "error"]
UpdateStatus: TypeAlias = Literal["canceled", "completed"]
StatusEvent: TypeAlias = Literal["created", "ringing", "answered", "ended"]
HTTPMethod: TypeAlias = Literal["GET", "POST"]
Codec: TypeAlias = Literal[
    "OPUS", "OPUS@48000H@20I", "OPUS@24000H@20I", "OPUS@16000H@20I", "OPUS@8000H@20I",
    "G722", "PCMU", "PCMA", "G729", "VP8", "H264",
]  # fmt: skip
SpeechEngine: TypeAlias = Literal["Google", "Google.V2", "Deepgram"]
FaxTone: TypeAlias = Literal["CNG", "CED", "cng", "ced"]
TapCodec: TypeAlias = Literal["PCMA", "PCMU", "pcma", "pcmu", "OPUS", "opus"]
StreamTrack: TypeAlias = Literal["inbound_track", "outbound_track", "both_tracks"]
RecordPauseBehavior: TypeAlias = Literal["skip", "silence"]
AIRole: TypeAlias = Literal["system", "user", "assistant"]
LiveDirection: TypeAlias = Literal["remote-caller", "local-caller"]
LiveSpeechEngine: TypeAlias = Literal["deepgram", "google"]


# --------------------------------------------------------------------------- registry

COMMANDS: dict[str, type[Command]] = {}
"""Wire name -> command class, for all 37 commands; a ``Command`` subclass that sets
``command`` is added here by being defined."""


# --------------------------------------------------------------------------- rule aliases
# Annotations shared by several fields: each states its rule once.

_Text: TypeAlias = Annotated[str, Meta(min_length=1)]
_WEB_URL = Url("http://", "https://")
_WebUrl: TypeAlias = Annotated[str, _WEB_URL]
_Seconds: TypeAlias = Annotated[float, Meta(ge=0)]
_PositiveSeconds: TypeAlias = Annotated[float, Meta(gt=0)]
_Volume: TypeAlias = Annotated[float, Meta(ge=-40, le=40)]
_NonNegativeInt: TypeAlias = Annotated[int, Meta(ge=0)]
_Int32Count: TypeAlias = Annotated[int, Meta(ge=0, le=2**31 - 1)]
_CallId: TypeAlias = Annotated[
    str,
    Meta(
        pattern=whole(
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
        ),
        description="a call id (a UUID)",
    ),
]
_Dtmf: TypeAlias = Annotated[
    str,
    Meta(
        pattern=whole("[0-9A-Da-d*#]*"),
        description="DTMF characters: 0-9, A-D (either case), * and #",
    ),
]
_Voice: TypeAlias = Annotated[
    str,
    Meta(
        pattern=whole("[A-Za-z0-9.-]+"),
        description="a voice name of letters, digits, '.' and '-'",
    ),
]
_SwmlDocument: TypeAlias = Annotated[
    Annotated[SWML, SwmlObject()] | _Text,
    Meta(description="an SWML document: an object with sections, or a non-empty string"),
]
_SipUri: TypeAlias = Annotated[
    str, Meta(pattern="^sip:", min_length=5, description="a SIP URI starting with 'sip:'")
]


def _opt(value: Any) -> Any:
    """Factories take ``None`` for "leave it out"."""
    return UNSET if value is None else value


# --------------------------------------------------------------------------- bases


class _Options(
    msgspec.Struct,
    kw_only=True,
    frozen=True,
    omit_defaults=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """Base of nested option objects; the command holding one checks it, so an error
    names the full path. An option with list fields stores them as tuples (its
    ``__post_init__`` calls ``freeze``); a ``_check`` method holds rules spanning fields."""


class Command(
    msgspec.Struct,
    kw_only=True,
    frozen=True,
    omit_defaults=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """Base of every command; an instance is the command's ``params`` object.

    ``command`` is the wire name, ``id_location`` where the call id goes (``"top"``
    envelope ``id``, ``"params"`` for ``update``, ``"none"`` for ``dial``), ``control``
    whether it starts an operation addressed by ``control_id``. A subclass that sets
    ``command`` is registered in ``COMMANDS``. Commands are frozen; a subclass passes
    ``frozen=True`` as well, so that type checkers know it too.
    """

    command: ClassVar[str]
    id_location: ClassVar[Literal["top", "params", "none"]] = "top"
    control: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register a subclass that names a ``command`` (at most one class per name)."""
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("command")
        if name is None:
            return
        if name in COMMANDS:
            other = COMMANDS[name].__qualname__
            raise TypeError(f"{cls.__qualname__}: command {name!r} is already defined by {other}")
        COMMANDS[name] = cls

    def __post_init__(self) -> None:
        """Store lists as tuples, then check every rule stated in the annotations."""
        VALIDATORS[type(self)](self)


class _ControlIdCommand(Command, frozen=True):
    """A sub-command addressed to a running operation by its ``control_id``."""

    control_id: _Text


# --------------------------------------------------------------------------- media items


class TTSParams(_Options, frozen=True):
    """``tts`` media params: ``text`` and optional per-item language/gender/voice."""

    text: Annotated[str, NonEmpty()]
    language: str | UnsetType = UNSET
    gender: Gender | UnsetType = UNSET
    voice: _Voice | UnsetType = UNSET


class TTS(_Options, tag_field="type", tag="tts", frozen=True):
    """Media item ``{"type": "tts", "params": {...}}``; build it with ``tts()``."""

    params: TTSParams


class AudioParams(_Options, frozen=True):
    """``audio`` media params: the http(s) ``url`` of the file."""

    url: _WebUrl


class Audio(_Options, tag_field="type", tag="audio", frozen=True):
    """Media item ``{"type": "audio", "params": {"url": ...}}``; see ``audio()``."""

    params: AudioParams


class SilenceParams(_Options, frozen=True):
    """``silence`` media params: ``duration`` in seconds (> 0)."""

    duration: _PositiveSeconds


class Silence(_Options, tag_field="type", tag="silence", frozen=True):
    """Media item ``{"type": "silence", "params": {"duration": s}}``; see ``silence()``."""

    params: SilenceParams


class RingtoneParams(_Options, frozen=True):
    """``ringtone`` media params: a country ``name``, and ``duration`` s (> 0) or until
    stopped."""

    name: RingtoneName
    duration: _PositiveSeconds | UnsetType = UNSET


class Ringtone(_Options, tag_field="type", tag="ringtone", frozen=True):
    """Media item ``{"type": "ringtone", "params": {"name": ...}}``; see ``ringtone()``."""

    params: RingtoneParams


MediaItem: TypeAlias = TTS | Audio | Silence | Ringtone
_MediaItem: TypeAlias = Annotated[
    MediaItem, Meta(description="a media item: tts(), audio(), silence() or ringtone()")
]


def tts(
    text: str,
    *,
    language: str | UnsetType | None = UNSET,
    gender: Gender | UnsetType | None = UNSET,
    voice: str | UnsetType | None = UNSET,
) -> TTS:
    """A text-to-speech media item."""
    return TTS(
        params=TTSParams(text=text, language=_opt(language), gender=_opt(gender), voice=_opt(voice))
    )


def audio(url: str) -> Audio:
    """An audio-file media item (http/https URL)."""
    return Audio(params=AudioParams(url=url))


def silence(duration: float) -> Silence:
    """``duration`` seconds (> 0) of silence."""
    return Silence(params=SilenceParams(duration=duration))


def ringtone(name: RingtoneName, *, duration: float | UnsetType | None = UNSET) -> Ringtone:
    """A country's ringtone (``"us"``, ``"uk"``, ...), for ``duration`` s or until stopped."""
    return Ringtone(params=RingtoneParams(name=name, duration=_opt(duration)))


# --------------------------------------------------------------------------- record


class RecordAudio(_Options, frozen=True):
    """Audio recording options (wire ``params.record.audio``); all optional."""

    beep: bool | UnsetType = UNSET
    format: RecordFormat | UnsetType = UNSET
    stereo: bool | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    initial_timeout: _Seconds | UnsetType = UNSET
    end_silence_timeout: _Seconds | UnsetType = UNSET
    max_length: _NonNegativeInt | UnsetType = UNSET
    terminators: _Dtmf | UnsetType = UNSET
    input_sensitivity: Annotated[float, Meta(ge=0, le=100)] | UnsetType = UNSET


class RecordOptions(_Options, frozen=True):
    """The ``record`` wrapper of ``calling.record``: ``{"audio": RecordAudio}``."""

    audio: RecordAudio


# --------------------------------------------------------------------------- collect


class Digits(_Options, frozen=True):
    """DTMF collection: up to ``max`` digits, ended early by a ``terminators`` digit."""

    max: Annotated[int, Meta(ge=1)]
    terminators: _Dtmf | UnsetType = UNSET
    digit_timeout: _PositiveSeconds | UnsetType = UNSET


class Speech(_Options, frozen=True):
    """Speech collection options; all optional."""

    end_silence_timeout: _PositiveSeconds | UnsetType = UNSET
    speech_timeout: _PositiveSeconds | UnsetType = UNSET
    language: str | UnsetType = UNSET
    hints: Sequence[str] | UnsetType = UNSET
    model: str | UnsetType = UNSET
    engine: SpeechEngine | UnsetType = UNSET

    def __post_init__(self) -> None:
        freeze(self)


# --------------------------------------------------------------------------- detect


class MachineDetectorParams(_Options, frozen=True):
    """Answering-machine detection settings (seconds, words)."""

    initial_timeout: _Seconds | UnsetType = UNSET
    end_silence_timeout: _Seconds | UnsetType = UNSET
    machine_ready_timeout: _Seconds | UnsetType = UNSET
    machine_voice_threshold: _Seconds | UnsetType = UNSET
    machine_words_threshold: _NonNegativeInt | UnsetType = UNSET
    detect_interruptions: bool | UnsetType = UNSET
    detect_message_end: bool | UnsetType = UNSET


class MachineDetector(_Options, tag_field="type", tag="machine", frozen=True):
    """Detector ``{"type": "machine", "params": {...}}``; see ``machine_detector()``."""

    params: MachineDetectorParams | UnsetType = UNSET


class FaxDetectorParams(_Options, frozen=True):
    """Fax detection: which ``tone`` to listen for (either when omitted)."""

    tone: FaxTone | UnsetType = UNSET


class FaxDetector(_Options, tag_field="type", tag="fax", frozen=True):
    """Detector ``{"type": "fax", "params": {"tone"?}}``; see ``fax_detector()``."""

    params: FaxDetectorParams | UnsetType = UNSET


class DigitDetectorParams(_Options, frozen=True):
    """DTMF detection: the ``digits`` to match (any when omitted or empty)."""

    digits: _Dtmf | UnsetType = UNSET


class DigitDetector(_Options, tag_field="type", tag="digit", frozen=True):
    """Detector ``{"type": "digit", "params": {"digits"?}}``; see ``digit_detector()``."""

    params: DigitDetectorParams | UnsetType = UNSET


Detector: TypeAlias = MachineDetector | FaxDetector | DigitDetector


def machine_detector(
    *,
    initial_timeout: float | UnsetType | None = UNSET,
    end_silence_timeout: float | UnsetType | None = UNSET,
    machine_ready_timeout: float | UnsetType | None = UNSET,
    machine_voice_threshold: float | UnsetType | None = UNSET,
    machine_words_threshold: int | UnsetType | None = UNSET,
    detect_interruptions: bool | UnsetType | None = UNSET,
    detect_message_end: bool | UnsetType | None = UNSET,
) -> MachineDetector:
    """An answering-machine detector (``params`` always sent, ``{}`` for the defaults)."""
    return MachineDetector(
        params=MachineDetectorParams(
            initial_timeout=_opt(initial_timeout),
            end_silence_timeout=_opt(end_silence_timeout),
            machine_ready_timeout=_opt(machine_ready_timeout),
            machine_voice_threshold=_opt(machine_voice_threshold),
            machine_words_threshold=_opt(machine_words_threshold),
            detect_interruptions=_opt(detect_interruptions),
            detect_message_end=_opt(detect_message_end),
        )
    )


def fax_detector(tone: FaxTone | UnsetType | None = UNSET) -> FaxDetector:
    """A fax-tone detector; no ``tone`` means either CNG or CED."""
    return FaxDetector(params=FaxDetectorParams(tone=_opt(tone)))


def digit_detector(digits: str | UnsetType | None = UNSET) -> DigitDetector:
    """A DTMF detector matching ``digits`` (any digit when omitted)."""
    return DigitDetector(params=DigitDetectorParams(digits=_opt(digits)))


# --------------------------------------------------------------------------- tap


class TapAudioParams(_Options, frozen=True):
    """What to tap: the audio heard (``listen``), spoken (``speak``) or ``both``."""

    direction: Direction


class TapAudio(_Options, tag_field="type", tag="audio", frozen=True):
    """What to tap: ``{"type": "audio", "params": {"direction"}}``; see ``tap_audio()``."""

    params: TapAudioParams


class RTPDeviceParams(_Options, frozen=True):
    """RTP tap target: a public IPv4 ``addr`` and ``port``, optional ``codec``/``ptime``."""

    addr: Annotated[str, PublicIPv4()]
    port: Annotated[int, Meta(ge=1, le=65535)]
    codec: TapCodec | UnsetType = UNSET
    ptime: (
        Annotated[
            int,
            Meta(ge=10, le=120, multiple_of=10, description="a multiple of 10 from 10 to 120 ms"),
        ]
        | UnsetType
    ) = UNSET


class RTPDevice(_Options, tag_field="type", tag="rtp", frozen=True):
    """Tap target ``{"type": "rtp", "params": {...}}``; see ``rtp_device()``."""

    params: RTPDeviceParams


class WSDeviceParams(_Options, frozen=True):
    """WebSocket tap target: a ``ws://``/``wss://`` ``uri``, optional ``codec``."""

    uri: Annotated[str, Url("ws://", "wss://")]
    codec: TapCodec | UnsetType = UNSET


class WSDevice(_Options, tag_field="type", tag="ws", frozen=True):
    """Tap target ``{"type": "ws", "params": {"uri", "codec"?}}``; see ``ws_device()``."""

    params: WSDeviceParams


TapDevice: TypeAlias = RTPDevice | WSDevice


def tap_audio(direction: Direction) -> TapAudio:
    """Tap the audio heard (``listen``), spoken (``speak``) or ``both``."""
    return TapAudio(params=TapAudioParams(direction=direction))


def rtp_device(
    addr: str,
    port: int,
    *,
    codec: TapCodec | UnsetType | None = UNSET,
    ptime: int | UnsetType | None = UNSET,
) -> RTPDevice:
    """Send tapped audio as RTP to a public IPv4 ``addr``:``port``."""
    return RTPDevice(
        params=RTPDeviceParams(addr=addr, port=port, codec=_opt(codec), ptime=_opt(ptime))
    )


def ws_device(uri: str, *, codec: TapCodec | UnsetType | None = UNSET) -> WSDevice:
    """Send tapped audio to a ``ws://`` or ``wss://`` endpoint."""
    return WSDevice(params=WSDeviceParams(uri=uri, codec=_opt(codec)))


# --------------------------------------------------------------------------- refer


class SIPDeviceParams(_Options, frozen=True):
    """SIP REFER target: ``to`` (and optional ``from``) ``sip:`` URIs, optional auth."""

    to: _SipUri
    from_: _SipUri | UnsetType = msgspec.field(default=UNSET, name="from")
    username: str | UnsetType = UNSET
    password: str | UnsetType = UNSET


class SIPDevice(_Options, tag_field="type", tag="sip", frozen=True):
    """REFER target ``{"type": "sip", "params": {"to", ...}}``; see ``sip_device()``."""

    params: SIPDeviceParams


def sip_device(
    to: str,
    *,
    from_: str | UnsetType | None = UNSET,
    username: str | UnsetType | None = UNSET,
    password: str | UnsetType | None = UNSET,
) -> SIPDevice:
    """A SIP REFER target (``to``/``from_`` are ``sip:`` URIs)."""
    return SIPDevice(
        params=SIPDeviceParams(
            to=to, from_=_opt(from_), username=_opt(username), password=_opt(password)
        )
    )


# --------------------------------------------------------------------------- dial


class Header(_Options, frozen=True):
    """One SIP header sent with ``dial``: a token ``name`` (not ``Identity`` or
    ``X-ProjectId``) and a ``value`` of at most 1024 bytes without CR, LF or NUL."""

    name: Annotated[str, Meta(min_length=1), HeaderName("identity", "x-projectid")]
    value: Annotated[str, HeaderValue(), MaxUtf8Bytes(1024)]


_VariableName: TypeAlias = Annotated[
    str,
    Meta(
        pattern=whole("[A-Za-z_][A-Za-z0-9_]*"),
        description="a name matching ^[A-Za-z_][A-Za-z0-9_]*$",
    ),
    ReservedPrefix("signalwire_", "sw_", "rtc_", "internal_"),
]
_VariableValue: TypeAlias = Annotated[str, Meta(min_length=1), MaxUtf8Bytes(1024)]


# --------------------------------------------------------------------------- AI


class AIReset(_Options, frozen=True):
    """``calling.ai_message`` ``reset``: reset the conversation and/or its prompts."""

    full_reset: bool | UnsetType = UNSET
    user_prompt: str | UnsetType = UNSET
    system_prompt: str | UnsetType = UNSET


# --------------------------------------------------------------------------- live sessions


class _LiveStartOptions(_Options, frozen=True):
    """Options shared by live transcribe and live translate ``start``."""

    direction: Annotated[
        Sequence[LiveDirection],
        Meta(min_length=1, description="a non-empty list of 'remote-caller', 'local-caller'"),
    ]
    webhook: _WebUrl | UnsetType = UNSET
    live_events: bool | UnsetType = UNSET
    ai_summary: bool | UnsetType = UNSET
    ai_summary_prompt: str | UnsetType = UNSET
    speech_engine: LiveSpeechEngine | UnsetType = UNSET
    speech_timeout: Annotated[int, Meta(ge=1500)] | UnsetType = UNSET
    vad_silence_ms: _NonNegativeInt | UnsetType = UNSET
    vad_thresh: Annotated[int, Meta(ge=0, le=1800)] | UnsetType = UNSET
    debug_level: Annotated[int, Meta(ge=0, le=2)] | UnsetType = UNSET

    def __post_init__(self) -> None:
        freeze(self)


class LiveTranscribeStart(_LiveStartOptions, kw_only=True, frozen=True):
    """``live_transcribe`` ``start``: ``lang`` and ``direction`` required."""

    lang: _Text


_Filter: TypeAlias = Annotated[
    str,
    Meta(
        pattern=whole("polite|rude|professional|shakespeare|gen-z|prompt:.+"),
        description="polite, rude, professional, shakespeare, gen-z or 'prompt:<text>'",
    ),
]


class LiveTranslateStart(_LiveStartOptions, kw_only=True, frozen=True):
    """``live_translate`` ``start``: ``from_lang``, ``to_lang``, ``direction`` required."""

    from_lang: _Text
    to_lang: _Text
    from_voice: str | UnsetType = UNSET
    to_voice: str | UnsetType = UNSET
    filter_from: _Filter | UnsetType = UNSET
    filter_to: _Filter | UnsetType = UNSET


class LiveSummarize(_Options, frozen=True):
    """``summarize`` action: an on-demand summary (``{}`` uses the defaults)."""

    webhook: _WebUrl | UnsetType = UNSET
    prompt: str | UnsetType = UNSET


class LiveInject(_Options, frozen=True):
    """``live_translate`` ``inject`` action: speak ``message`` to one side."""

    message: _Text
    direction: LiveDirection


def _exactly_one(owner: _Options, names: tuple[str, ...]) -> None:
    if sum(getattr(owner, name) is not UNSET for name in names) != 1:
        fail("", f"must have exactly one of {', '.join(names)} (or be the string 'stop')")


class LiveTranscribeAction(_Options, frozen=True):
    """A ``live_transcribe`` action object with exactly one key; see
    ``live_transcribe_start()`` / ``live_transcribe_summarize()``; ``"stop"`` stops."""

    start: LiveTranscribeStart | UnsetType = UNSET
    summarize: LiveSummarize | UnsetType = UNSET

    def _check(self) -> None:
        _exactly_one(self, ("start", "summarize"))


class LiveTranslateAction(_Options, frozen=True):
    """A ``live_translate`` action object with exactly one key; see
    ``live_translate_start()``, ``live_translate_summarize()``, ``live_translate_inject()``."""

    start: LiveTranslateStart | UnsetType = UNSET
    summarize: LiveSummarize | UnsetType = UNSET
    inject: LiveInject | UnsetType = UNSET

    def _check(self) -> None:
        _exactly_one(self, ("start", "summarize", "inject"))


def live_transcribe_start(
    lang: str, direction: Sequence[LiveDirection], **options: Any
) -> LiveTranscribeAction:
    """``{"start": {...}}`` for ``LiveTranscribe``; ``options`` are the other
    ``LiveTranscribeStart`` fields (``webhook``, ``ai_summary``, ``speech_engine``, ...)."""
    return LiveTranscribeAction(
        start=LiveTranscribeStart(lang=lang, direction=direction, **options)
    )


def live_translate_start(
    from_lang: str, to_lang: str, direction: Sequence[LiveDirection], **options: Any
) -> LiveTranslateAction:
    """``{"start": {...}}`` for ``LiveTranslate``; ``options`` are the other
    ``LiveTranslateStart`` fields (``from_voice``, ``filter_to``, ``webhook``, ...)."""
    return LiveTranslateAction(
        start=LiveTranslateStart(
            from_lang=from_lang, to_lang=to_lang, direction=direction, **options
        )
    )


def live_transcribe_summarize(
    *, webhook: str | UnsetType | None = UNSET, prompt: str | UnsetType | None = UNSET
) -> LiveTranscribeAction:
    """``{"summarize": {...}}`` for ``LiveTranscribe`` (``{}`` uses the defaults)."""
    return LiveTranscribeAction(summarize=LiveSummarize(webhook=_opt(webhook), prompt=_opt(prompt)))


def live_translate_summarize(
    *, webhook: str | UnsetType | None = UNSET, prompt: str | UnsetType | None = UNSET
) -> LiveTranslateAction:
    """``{"summarize": {...}}`` for ``LiveTranslate`` (``{}`` uses the defaults)."""
    return LiveTranslateAction(summarize=LiveSummarize(webhook=_opt(webhook), prompt=_opt(prompt)))


def live_translate_inject(message: str, direction: LiveDirection) -> LiveTranslateAction:
    """``{"inject": {"message", "direction"}}`` for ``LiveTranslate``."""
    return LiveTranslateAction(inject=LiveInject(message=message, direction=direction))


# =========================================================================== commands


class Dial(Command, frozen=True):
    """``dial``: create an outbound call running SWML from ``url`` or ``swml``.

    ``Dial(from_="+15550000001", to="+15550000002", url="https://example.com/swml")``

    ``custom_variables`` is copied (read-only) when the command is built; ``swml`` and
    ``to_script`` objects are checked for ``sections`` then and sent as they are at send
    time.
    """

    command: ClassVar[str] = "dial"
    id_location: ClassVar[Literal["top", "params", "none"]] = "none"

    from_: _Text = msgspec.field(name="from")
    to: Annotated[str, Meta(min_length=1), Destination()] | UnsetType = UNSET
    url: _WebUrl | UnsetType = UNSET
    swml: _SwmlDocument | UnsetType = UNSET
    to_script: _SwmlDocument | UnsetType = UNSET
    caller_id: str | UnsetType = UNSET
    fallback_url: _WebUrl | UnsetType = UNSET
    status_url: _WebUrl | UnsetType = UNSET
    status_events: Sequence[StatusEvent] | UnsetType = UNSET
    url_method: HTTPMethod | UnsetType = UNSET
    codecs: (
        Annotated[Sequence[Codec], Meta(min_length=1)]
        | Annotated[str, CodecString(Codec)]
        | UnsetType
    ) = UNSET
    timeout: Annotated[int, Meta(ge=1, le=600)] | UnsetType = UNSET
    max_price_per_minute: Annotated[float, Meta(ge=0)] | UnsetType = UNSET
    send_digits: (
        Annotated[
            str,
            Meta(
                pattern=whole("[0-9A-D*#w,]*"),
                max_length=98,
                description="at most 98 of 0-9, A-D, *, #, w (wait) and ',' (pause)",
            ),
        ]
        | UnsetType
    ) = UNSET
    region: _Text | Sequence[_Text] | UnsetType = UNSET
    username: str | UnsetType = UNSET
    password: str | UnsetType = UNSET
    custom_variables: (
        Annotated[Mapping[_VariableName, _VariableValue], Meta(max_length=20)] | UnsetType
    ) = UNSET
    headers: Annotated[Sequence[Header], Meta(max_length=20)] | UnsetType = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.to is UNSET and self.to_script is UNSET:
            fail("to", "dial needs a destination: to (or to_script)")
        if self.url is UNSET:
            if self.swml is UNSET:
                fail("url", "dial needs the SWML to run: url or swml")
        elif self.swml is not UNSET:
            fail("swml", "give url or swml, not both")


class Update(Command, frozen=True):
    """``update``: redirect a live call (``url``/``swml``) or end it (``status``).

    ``Update(id=call_id, status="completed")``; a ``swml`` object is sent as it is at
    send time.
    """

    command: ClassVar[str] = "update"
    id_location: ClassVar[Literal["top", "params", "none"]] = "params"

    id: _CallId
    url: _WebUrl | UnsetType = UNSET
    swml: _SwmlDocument | UnsetType = UNSET
    fallback_url: _WebUrl | UnsetType = UNSET
    status: UpdateStatus | UnsetType = UNSET
    status_url: _WebUrl | UnsetType = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.status is UNSET and self.url is UNSET and self.swml is UNSET:
            fail("url", "update needs url, swml or status")
        if self.url is not UNSET and self.swml is not UNSET:
            fail("swml", "give url or swml, not both")


class End(Command, frozen=True):
    """``calling.end``: hang up, with an optional ``reason``."""

    command: ClassVar[str] = "calling.end"

    reason: EndReason | UnsetType = UNSET


class Transfer(Command, frozen=True):
    """``calling.transfer`` to a SIP URI, phone number, SWML URL or inline SWML object
    (an object is sent as it is at send time)."""

    command: ClassVar[str] = "calling.transfer"

    dest: _SwmlDocument


class Disconnect(Command, frozen=True):
    """``calling.disconnect``: unbridge connected legs; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.disconnect"


class Play(Command, frozen=True):
    """``calling.play``: play media items in order.

    ``Play(control_id="p1", play=[tts("Hello"), audio("https://x/a.mp3")], volume=-3)``
    """

    command: ClassVar[str] = "calling.play"
    control: ClassVar[bool] = True

    control_id: _Text
    play: Annotated[
        Sequence[_MediaItem],
        Meta(
            min_length=1,
            description="a non-empty list of media items (tts(), audio(), silence(), ringtone())",
        ),
    ]
    volume: _Volume | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    loop: _Int32Count | UnsetType = UNSET
    language: str | UnsetType = UNSET
    voice: _Voice | UnsetType = UNSET
    gender: Gender | UnsetType = UNSET
    status_url: _WebUrl | UnsetType = UNSET


class PlayPause(_ControlIdCommand, frozen=True):
    """``calling.play.pause``."""

    command: ClassVar[str] = "calling.play.pause"


class PlayResume(_ControlIdCommand, frozen=True):
    """``calling.play.resume``."""

    command: ClassVar[str] = "calling.play.resume"


class PlayStop(_ControlIdCommand, frozen=True):
    """``calling.play.stop``."""

    command: ClassVar[str] = "calling.play.stop"


class PlayVolume(_ControlIdCommand, frozen=True):
    """``calling.play.volume``: set a running play's volume, -40..40 dB."""

    command: ClassVar[str] = "calling.play.volume"

    volume: _Volume


class Record(Command, frozen=True):
    """``calling.record``: start recording the call.

    ``Record(control_id="r1", record=RecordOptions(audio=RecordAudio(format="wav")))``
    """

    command: ClassVar[str] = "calling.record"
    control: ClassVar[bool] = True

    control_id: _Text
    record: RecordOptions
    status_url: _WebUrl | UnsetType = UNSET


class RecordPause(_ControlIdCommand, frozen=True):
    """``calling.record.pause``; ``behavior`` ``skip`` (default) or ``silence``."""

    command: ClassVar[str] = "calling.record.pause"

    behavior: RecordPauseBehavior | UnsetType = UNSET


class RecordResume(_ControlIdCommand, frozen=True):
    """``calling.record.resume``."""

    command: ClassVar[str] = "calling.record.resume"


class RecordStop(_ControlIdCommand, frozen=True):
    """``calling.record.stop``."""

    command: ClassVar[str] = "calling.record.stop"


class Collect(Command, frozen=True):
    """``calling.collect``: gather digits and/or speech (at least one of the two).

    ``Collect(control_id="c1", digits=Digits(max=4, terminators="#"), initial_timeout=5)``
    """

    command: ClassVar[str] = "calling.collect"
    control: ClassVar[bool] = True

    control_id: _Text
    digits: Digits | UnsetType = UNSET
    speech: Speech | UnsetType = UNSET
    initial_timeout: _PositiveSeconds | UnsetType = UNSET
    continuous: bool | UnsetType = UNSET
    partial_results: bool | UnsetType = UNSET
    send_start_of_input: bool | UnsetType = UNSET
    start_input_timers: bool | UnsetType = UNSET
    status_url: _WebUrl | UnsetType = UNSET
    continue_: bool | UnsetType = msgspec.field(default=UNSET, name="continue")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.digits is UNSET and self.speech is UNSET:
            fail("digits", "collect needs digits or speech (or both)")


class CollectStop(_ControlIdCommand, frozen=True):
    """``calling.collect.stop``."""

    command: ClassVar[str] = "calling.collect.stop"


class CollectStartInputTimers(_ControlIdCommand, frozen=True):
    """``calling.collect.start_input_timers``: arm a collect's initial timeout now."""

    command: ClassVar[str] = "calling.collect.start_input_timers"


class Detect(Command, frozen=True):
    """``calling.detect``: ``Detect(control_id="d1", detect=machine_detector(), timeout=30)``."""

    command: ClassVar[str] = "calling.detect"
    control: ClassVar[bool] = True

    control_id: _Text
    detect: Detector
    timeout: _Seconds | UnsetType = UNSET
    status_url: _WebUrl | UnsetType = UNSET


class DetectStop(_ControlIdCommand, frozen=True):
    """``calling.detect.stop``."""

    command: ClassVar[str] = "calling.detect.stop"


class Tap(Command, frozen=True):
    """``calling.tap``: copy the call's audio to a device.

    ``Tap(control_id="t1", tap=tap_audio("both"), device=ws_device("wss://x/tap"))``
    """

    command: ClassVar[str] = "calling.tap"
    control: ClassVar[bool] = True

    control_id: _Text
    tap: TapAudio
    device: TapDevice
    status_url: _WebUrl | UnsetType = UNSET


class TapStop(_ControlIdCommand, frozen=True):
    """``calling.tap.stop``."""

    command: ClassVar[str] = "calling.tap.stop"


class Transcribe(Command, frozen=True):
    """``calling.transcribe``: whole-call background transcription (one per call)."""

    command: ClassVar[str] = "calling.transcribe"
    control: ClassVar[bool] = True

    control_id: _Text
    status_url: _WebUrl | UnsetType = UNSET


class TranscribeStop(_ControlIdCommand, frozen=True):
    """``calling.transcribe.stop``."""

    command: ClassVar[str] = "calling.transcribe.stop"


class Stream(Command, frozen=True):
    """``calling.stream``: stream the call's audio to a ``wss://`` endpoint.

    ``custom_parameters`` is only checked to be an object; it is sent as it is at send
    time.
    """

    command: ClassVar[str] = "calling.stream"
    control: ClassVar[bool] = True

    control_id: _Text
    url: Annotated[str, Url("wss://")]
    name: str | UnsetType = UNSET
    codec: str | UnsetType = UNSET
    track: StreamTrack | UnsetType = UNSET
    authorization_bearer_token: str | UnsetType = UNSET
    custom_parameters: dict[str, Any] | UnsetType = UNSET
    status_url: _WebUrl | UnsetType = UNSET
    status_url_method: HTTPMethod | UnsetType = UNSET


class StreamStop(_ControlIdCommand, frozen=True):
    """``calling.stream.stop``."""

    command: ClassVar[str] = "calling.stream.stop"


class Denoise(Command, frozen=True):
    """``calling.denoise``: start noise reduction; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.denoise"


class DenoiseStop(Command, frozen=True):
    """``calling.denoise.stop``; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.denoise.stop"


class AIHold(Command, frozen=True):
    """``calling.ai_hold``: put the AI agent on hold; ``timeout`` is a string of seconds."""

    command: ClassVar[str] = "calling.ai_hold"

    timeout: (
        Annotated[
            str,
            Meta(
                pattern=whole("[0-9]+"),
                description='a string of whole seconds such as "300" (the API refuses numbers)',
            ),
        ]
        | UnsetType
    ) = UNSET
    prompt: str | UnsetType = UNSET


class AIUnhold(Command, frozen=True):
    """``calling.ai_unhold``: take the AI agent off hold; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.ai_unhold"


class AIMessage(Command, frozen=True):
    """``calling.ai_message``: inject a message into the AI session, or reset it.

    ``global_data`` is only checked to be an object; it is sent as it is at send time.
    """

    command: ClassVar[str] = "calling.ai_message"

    role: AIRole | UnsetType = UNSET
    message_text: str | UnsetType = UNSET
    reset: AIReset | UnsetType = UNSET
    global_data: dict[str, Any] | UnsetType = UNSET


class AIStop(Command, frozen=True):
    """``calling.ai.stop``: stop the call's AI session (``control_id`` is ignored)."""

    command: ClassVar[str] = "calling.ai.stop"

    control_id: str | UnsetType = UNSET


class LiveTranscribe(Command, frozen=True):
    """``calling.live_transcribe``: ``action`` is ``live_transcribe_start(...)``,
    ``live_transcribe_summarize(...)`` or ``"stop"``."""

    command: ClassVar[str] = "calling.live_transcribe"

    action: Annotated[
        Literal["stop"] | LiveTranscribeAction,
        Meta(description="'stop' or a LiveTranscribeAction (see live_transcribe_start())"),
    ]


class LiveTranslate(Command, frozen=True):
    """``calling.live_translate``: ``action`` is ``live_translate_start(...)``,
    ``live_translate_summarize(...)``, ``live_translate_inject(...)`` or ``"stop"``."""

    command: ClassVar[str] = "calling.live_translate"

    action: Annotated[
        Literal["stop"] | LiveTranslateAction,
        Meta(description="'stop' or a LiveTranslateAction (see live_translate_start())"),
    ]
    status_url: _WebUrl | UnsetType = UNSET


class SendFaxStop(_ControlIdCommand, frozen=True):
    """``calling.send_fax.stop``: stop a fax send started by SWML or RELAY."""

    command: ClassVar[str] = "calling.send_fax.stop"


class ReceiveFaxStop(_ControlIdCommand, frozen=True):
    """``calling.receive_fax.stop``: stop a fax reception started by SWML or RELAY."""

    command: ClassVar[str] = "calling.receive_fax.stop"


class Refer(Command, frozen=True):
    """``calling.refer``: SIP REFER the call, ``Refer(device=sip_device("sip:a@b"))``."""

    command: ClassVar[str] = "calling.refer"

    device: SIPDevice
    status_url: _WebUrl | UnsetType = UNSET


class UserEvent(Command, frozen=True):
    """``calling.user_event``: forward any JSON object to the client on the call.

    ``event`` is only checked to be an object; it is sent as it is at send time.
    """

    command: ClassVar[str] = "calling.user_event"

    event: dict[str, Any]
