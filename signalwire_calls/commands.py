"""One msgspec Struct per call command, and per nested option, of ``POST /api/calling/calls``.

An instance IS the command's ``params`` object; ``_codec.encode_command(cmd, call_id)``
wraps it in the ``{"command", "id", "params"}`` envelope. Unset options are
``msgspec.UNSET`` and left out of the body. Every constraint the spec states is checked
in ``__post_init__`` (on construction and on decode), raising
``errors.ValidationError(field, message)`` with the dotted path of the bad field, so a
typo fails before anything is sent::

    cmd = Play(control_id="p1", play=[tts("Hello"), silence(1)], volume=-3)
    body = encode_command(cmd, call_id)

Nested options are built inside the command that holds them and validated by it (so
the error names the full path, e.g. ``play[0].params.text``); factories (``tts()``,
``machine_detector()``, ``rtp_device()``, ...) spare spelling ``{type, params}``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeAlias, get_args

import msgspec
from msgspec import UNSET, UnsetType

from ._validate import (
    DTMF,
    SEND_DIGITS,
    SEND_DIGITS_MAX,
    check_alphabet,
    check_bool,
    check_codecs,
    check_custom_variables,
    check_dict,
    check_enum,
    check_header,
    check_int,
    check_nested,
    check_number,
    check_public_ipv4,
    check_str,
    check_str_list,
    check_swml,
    check_text,
    check_url,
    check_voice,
    fail,
    is_e164,
)
from .errors import ValidationError

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

_DIRECTIONS: frozenset[str] = frozenset(get_args(Direction))
_GENDERS: frozenset[str] = frozenset(get_args(Gender))
_RINGTONES: frozenset[str] = frozenset(get_args(RingtoneName))
_RECORD_FORMATS: frozenset[str] = frozenset(get_args(RecordFormat))
_END_REASONS: frozenset[str] = frozenset(get_args(EndReason))
_STATUS_EVENTS: frozenset[str] = frozenset(get_args(StatusEvent))
_HTTP_METHODS: frozenset[str] = frozenset(get_args(HTTPMethod))
_SPEECH_ENGINES: frozenset[str] = frozenset(get_args(SpeechEngine))
_FAX_TONES: frozenset[str] = frozenset(get_args(FaxTone))
_TAP_CODECS: frozenset[str] = frozenset(get_args(TapCodec))
_STREAM_TRACKS: frozenset[str] = frozenset(get_args(StreamTrack))
_PAUSE_BEHAVIORS: frozenset[str] = frozenset(get_args(RecordPauseBehavior))
_AI_ROLES: frozenset[str] = frozenset(get_args(AIRole))
_LIVE_DIRECTIONS: frozenset[str] = frozenset(get_args(LiveDirection))
_LIVE_ENGINES: frozenset[str] = frozenset(get_args(LiveSpeechEngine))
_UPDATE_STATUSES: frozenset[str] = frozenset(get_args(UpdateStatus))
_TRANSLATE_FILTERS: frozenset[str] = frozenset(
    {"polite", "rude", "professional", "shakespeare", "gen-z"}
)
_PTIMES: frozenset[int] = frozenset(range(10, 121, 10))
_ADDRESS_PREFIXES = ("sip:", "sips:", "verto:", "client:")
_DTMF_WHAT = "0-9, A-D, * and #"
_MAX_HEADERS = 20


def _opt(value: Any) -> Any:
    """Factories take ``None`` for "leave it out"."""
    return UNSET if value is None else value


def _control_id(value: Any) -> None:
    check_text("control_id", value)


def _status_url(value: Any) -> None:
    if value is not UNSET:
        check_url("status_url", value)


def _bool(field: str, value: Any) -> None:
    if value is not UNSET:
        check_bool(field, value)


def _str(field: str, value: Any) -> None:
    if value is not UNSET:
        check_str(field, value)


def _nested(path: str, value: Any, cls: type[_Options] | tuple[type[_Options], ...]) -> None:
    """Check that ``value`` is a ``cls`` and validate it, prefixing errors with ``path``."""
    if type(value) is not cls and not isinstance(value, cls):
        names = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        fail(path, f"must be {names}, got {type(value).__name__}")
    check_nested(path, value._validate)


# --------------------------------------------------------------------------- bases


class _Options(
    msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True, gc=False
):
    """Base of nested option objects; the command holding one validates it."""

    def _validate(self) -> None:
        """Raise ``ValidationError`` (path relative to this object) when invalid."""


class Command(
    msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True, gc=False
):
    """Base of every command; an instance is the command's ``params`` object.

    ``command`` is the wire name, ``id_location`` where the call id goes (``"top"``
    envelope ``id``, ``"params"`` for ``update``, ``"none"`` for ``dial``), ``control``
    whether it starts an operation addressed by ``control_id``.
    """

    command: ClassVar[str]
    id_location: ClassVar[Literal["top", "params", "none"]] = "top"
    control: ClassVar[bool] = False


class _ControlIdCommand(Command):
    """A sub-command addressed to a running operation by its ``control_id``."""

    control_id: str

    def __post_init__(self) -> None:
        _control_id(self.control_id)


# --------------------------------------------------------------------------- media items


class TTSParams(_Options):
    """``tts`` media params: ``text`` and optional per-item language/gender/voice."""

    text: str
    language: str | UnsetType = UNSET
    gender: Gender | UnsetType = UNSET
    voice: str | UnsetType = UNSET

    def _validate(self) -> None:
        check_text("text", self.text)
        _str("language", self.language)
        if self.gender is not UNSET:
            check_enum("gender", self.gender, _GENDERS)
        if self.voice is not UNSET:
            check_voice("voice", self.voice)


class TTS(_Options, tag_field="type", tag="tts"):
    """Media item ``{"type": "tts", "params": {...}}``; build it with ``tts()``."""

    params: TTSParams

    def _validate(self) -> None:
        params = self.params
        if type(params) is not TTSParams:
            fail("params", f"must be TTSParams, got {type(params).__name__}")
        try:
            params._validate()
        except ValidationError as exc:
            raise ValidationError(f"params.{exc.field}", exc.reason) from None


class AudioParams(_Options):
    url: str

    def _validate(self) -> None:
        check_url("url", self.url)


class Audio(_Options, tag_field="type", tag="audio"):
    """Media item ``{"type": "audio", "params": {"url": ...}}``; see ``audio()``."""

    params: AudioParams

    def _validate(self) -> None:
        _nested("params", self.params, AudioParams)


class SilenceParams(_Options):
    duration: float

    def _validate(self) -> None:
        check_number("duration", self.duration, 0, exclusive_minimum=True)


class Silence(_Options, tag_field="type", tag="silence"):
    """Media item ``{"type": "silence", "params": {"duration": s}}``; see ``silence()``."""

    params: SilenceParams

    def _validate(self) -> None:
        _nested("params", self.params, SilenceParams)


class RingtoneParams(_Options):
    name: RingtoneName
    duration: float | UnsetType = UNSET

    def _validate(self) -> None:
        check_enum("name", self.name, _RINGTONES)
        if self.duration is not UNSET:
            check_number("duration", self.duration, 0, exclusive_minimum=True)


class Ringtone(_Options, tag_field="type", tag="ringtone"):
    """Media item ``{"type": "ringtone", "params": {"name": ...}}``; see ``ringtone()``."""

    params: RingtoneParams

    def _validate(self) -> None:
        _nested("params", self.params, RingtoneParams)


MediaItem: TypeAlias = TTS | Audio | Silence | Ringtone
_MEDIA_TYPES = (TTS, Audio, Silence, Ringtone)
# isinstance() against a tuple of Struct classes takes the slow path for every class
# that does not match; the exact-type test first makes the usual case ~5x cheaper.
_MEDIA_TYPE_SET: frozenset[type] = frozenset(_MEDIA_TYPES)


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


class RecordAudio(_Options):
    """Audio recording options (wire ``params.record.audio``); all optional."""

    beep: bool | UnsetType = UNSET
    format: RecordFormat | UnsetType = UNSET
    stereo: bool | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    initial_timeout: float | UnsetType = UNSET
    end_silence_timeout: float | UnsetType = UNSET
    max_length: int | UnsetType = UNSET
    terminators: str | UnsetType = UNSET
    input_sensitivity: float | UnsetType = UNSET

    def _validate(self) -> None:
        _bool("beep", self.beep)
        if self.format is not UNSET:
            check_enum("format", self.format, _RECORD_FORMATS)
        _bool("stereo", self.stereo)
        if self.direction is not UNSET:
            check_enum("direction", self.direction, _DIRECTIONS)
        if self.initial_timeout is not UNSET:
            check_number("initial_timeout", self.initial_timeout, 0)
        if self.end_silence_timeout is not UNSET:
            check_number("end_silence_timeout", self.end_silence_timeout, 0)
        if self.max_length is not UNSET:
            check_int("max_length", self.max_length, 0)
        if self.terminators is not UNSET:
            check_alphabet("terminators", self.terminators, DTMF, _DTMF_WHAT)
        if self.input_sensitivity is not UNSET:
            check_number("input_sensitivity", self.input_sensitivity, 0, 100)


class RecordOptions(_Options):
    """The ``record`` wrapper of ``calling.record``: ``{"audio": RecordAudio}``."""

    audio: RecordAudio

    def _validate(self) -> None:
        _nested("audio", self.audio, RecordAudio)


# --------------------------------------------------------------------------- collect


class Digits(_Options):
    """DTMF collection: up to ``max`` digits, ended early by a ``terminators`` digit."""

    max: int
    terminators: str | UnsetType = UNSET
    digit_timeout: float | UnsetType = UNSET

    def _validate(self) -> None:
        check_int("max", self.max, 1)
        if self.terminators is not UNSET:
            check_alphabet("terminators", self.terminators, DTMF, _DTMF_WHAT)
        if self.digit_timeout is not UNSET:
            check_number("digit_timeout", self.digit_timeout, 0, exclusive_minimum=True)


class Speech(_Options):
    """Speech collection options; all optional."""

    end_silence_timeout: float | UnsetType = UNSET
    speech_timeout: float | UnsetType = UNSET
    language: str | UnsetType = UNSET
    hints: list[str] | UnsetType = UNSET
    model: str | UnsetType = UNSET
    engine: SpeechEngine | UnsetType = UNSET

    def _validate(self) -> None:
        if self.end_silence_timeout is not UNSET:
            check_number("end_silence_timeout", self.end_silence_timeout, 0, exclusive_minimum=True)
        if self.speech_timeout is not UNSET:
            check_number("speech_timeout", self.speech_timeout, 0, exclusive_minimum=True)
        _str("language", self.language)
        if self.hints is not UNSET:
            check_str_list("hints", self.hints)
        _str("model", self.model)
        if self.engine is not UNSET:
            check_enum("engine", self.engine, _SPEECH_ENGINES)


# --------------------------------------------------------------------------- detect


class MachineDetectorParams(_Options):
    """Answering-machine detection settings (seconds, words)."""

    initial_timeout: float | UnsetType = UNSET
    end_silence_timeout: float | UnsetType = UNSET
    machine_ready_timeout: float | UnsetType = UNSET
    machine_voice_threshold: float | UnsetType = UNSET
    machine_words_threshold: int | UnsetType = UNSET
    detect_interruptions: bool | UnsetType = UNSET
    detect_message_end: bool | UnsetType = UNSET

    def _validate(self) -> None:
        for name in (
            "initial_timeout",
            "end_silence_timeout",
            "machine_ready_timeout",
            "machine_voice_threshold",
        ):
            value = getattr(self, name)
            if value is not UNSET:
                check_number(name, value, 0)
        if self.machine_words_threshold is not UNSET:
            check_int("machine_words_threshold", self.machine_words_threshold, 0)
        _bool("detect_interruptions", self.detect_interruptions)
        _bool("detect_message_end", self.detect_message_end)


class MachineDetector(_Options, tag_field="type", tag="machine"):
    """Detector ``{"type": "machine", "params": {...}}``; see ``machine_detector()``."""

    params: MachineDetectorParams | UnsetType = UNSET

    def _validate(self) -> None:
        if self.params is not UNSET:
            _nested("params", self.params, MachineDetectorParams)


class FaxDetectorParams(_Options):
    tone: FaxTone | UnsetType = UNSET

    def _validate(self) -> None:
        if self.tone is not UNSET:
            check_enum("tone", self.tone, _FAX_TONES)


class FaxDetector(_Options, tag_field="type", tag="fax"):
    """Detector ``{"type": "fax", "params": {"tone"?}}``; see ``fax_detector()``."""

    params: FaxDetectorParams | UnsetType = UNSET

    def _validate(self) -> None:
        if self.params is not UNSET:
            _nested("params", self.params, FaxDetectorParams)


class DigitDetectorParams(_Options):
    digits: str | UnsetType = UNSET

    def _validate(self) -> None:
        if self.digits is not UNSET:
            check_alphabet("digits", self.digits, DTMF, _DTMF_WHAT)


class DigitDetector(_Options, tag_field="type", tag="digit"):
    """Detector ``{"type": "digit", "params": {"digits"?}}``; see ``digit_detector()``."""

    params: DigitDetectorParams | UnsetType = UNSET

    def _validate(self) -> None:
        if self.params is not UNSET:
            _nested("params", self.params, DigitDetectorParams)


Detector: TypeAlias = MachineDetector | FaxDetector | DigitDetector
_DETECTOR_TYPES = (MachineDetector, FaxDetector, DigitDetector)


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


class TapAudioParams(_Options):
    direction: Direction

    def _validate(self) -> None:
        check_enum("direction", self.direction, _DIRECTIONS)


class TapAudio(_Options, tag_field="type", tag="audio"):
    """What to tap: ``{"type": "audio", "params": {"direction"}}``; see ``tap_audio()``."""

    params: TapAudioParams

    def _validate(self) -> None:
        _nested("params", self.params, TapAudioParams)


class RTPDeviceParams(_Options):
    addr: str
    port: int
    codec: TapCodec | UnsetType = UNSET
    ptime: int | UnsetType = UNSET

    def _validate(self) -> None:
        check_public_ipv4("addr", self.addr)
        check_int("port", self.port, 1, 65535)
        if self.codec is not UNSET:
            check_enum("codec", self.codec, _TAP_CODECS)
        if self.ptime is not UNSET:
            check_int("ptime", self.ptime)
            if self.ptime not in _PTIMES:
                fail("ptime", f"must be a multiple of 10 from 10 to 120 ms, got {self.ptime}")


class RTPDevice(_Options, tag_field="type", tag="rtp"):
    """Tap target ``{"type": "rtp", "params": {...}}``; see ``rtp_device()``."""

    params: RTPDeviceParams

    def _validate(self) -> None:
        _nested("params", self.params, RTPDeviceParams)


class WSDeviceParams(_Options):
    uri: str
    codec: TapCodec | UnsetType = UNSET

    def _validate(self) -> None:
        check_url("uri", self.uri, ("ws://", "wss://"))
        if self.codec is not UNSET:
            check_enum("codec", self.codec, _TAP_CODECS)


class WSDevice(_Options, tag_field="type", tag="ws"):
    """Tap target ``{"type": "ws", "params": {"uri", "codec"?}}``; see ``ws_device()``."""

    params: WSDeviceParams

    def _validate(self) -> None:
        _nested("params", self.params, WSDeviceParams)


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


class SIPDeviceParams(_Options):
    to: str
    from_: str | UnsetType = msgspec.field(default=UNSET, name="from")
    username: str | UnsetType = UNSET
    password: str | UnsetType = UNSET

    def _validate(self) -> None:
        _check_sip_uri("to", self.to)
        if self.from_ is not UNSET:
            _check_sip_uri("from", self.from_)
        _str("username", self.username)
        _str("password", self.password)


def _check_sip_uri(field: str, value: Any) -> None:
    check_text(field, value)
    if not value.startswith("sip:") or len(value) == 4:
        fail(field, f"must be a SIP URI starting with 'sip:', got {value!r}")


class SIPDevice(_Options, tag_field="type", tag="sip"):
    """REFER target ``{"type": "sip", "params": {"to", ...}}``; see ``sip_device()``."""

    params: SIPDeviceParams

    def _validate(self) -> None:
        _nested("params", self.params, SIPDeviceParams)


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


class Header(_Options):
    """One SIP header sent with ``dial``."""

    name: str
    value: str

    def _validate(self) -> None:
        check_header(self.name, self.value)


# --------------------------------------------------------------------------- AI


class AIReset(_Options):
    """``calling.ai_message`` ``reset``: reset the conversation and/or its prompts."""

    full_reset: bool | UnsetType = UNSET
    user_prompt: str | UnsetType = UNSET
    system_prompt: str | UnsetType = UNSET

    def _validate(self) -> None:
        _bool("full_reset", self.full_reset)
        _str("user_prompt", self.user_prompt)
        _str("system_prompt", self.system_prompt)


# --------------------------------------------------------------------------- live sessions


class _LiveStartOptions(_Options):
    """Options shared by live transcribe and live translate ``start``."""

    direction: list[LiveDirection]
    webhook: str | UnsetType = UNSET
    live_events: bool | UnsetType = UNSET
    ai_summary: bool | UnsetType = UNSET
    ai_summary_prompt: str | UnsetType = UNSET
    speech_engine: LiveSpeechEngine | UnsetType = UNSET
    speech_timeout: int | UnsetType = UNSET
    vad_silence_ms: int | UnsetType = UNSET
    vad_thresh: int | UnsetType = UNSET
    debug_level: int | UnsetType = UNSET

    def _validate(self) -> None:
        check_str_list("direction", self.direction, _LIVE_DIRECTIONS)
        if not self.direction:
            fail("direction", "must name at least one of 'remote-caller', 'local-caller'")
        if self.webhook is not UNSET:
            check_url("webhook", self.webhook)
        _bool("live_events", self.live_events)
        _bool("ai_summary", self.ai_summary)
        _str("ai_summary_prompt", self.ai_summary_prompt)
        if self.speech_engine is not UNSET:
            check_enum("speech_engine", self.speech_engine, _LIVE_ENGINES)
        if self.speech_timeout is not UNSET:
            check_int("speech_timeout", self.speech_timeout, 1500)
        if self.vad_silence_ms is not UNSET:
            check_int("vad_silence_ms", self.vad_silence_ms, 0)
        if self.vad_thresh is not UNSET:
            check_int("vad_thresh", self.vad_thresh, 0, 1800)
        if self.debug_level is not UNSET:
            check_int("debug_level", self.debug_level, 0, 2)


class LiveTranscribeStart(_LiveStartOptions, kw_only=True):
    """``live_transcribe`` ``start``: ``lang`` and ``direction`` required."""

    lang: str

    def _validate(self) -> None:
        check_text("lang", self.lang)
        super()._validate()


def _check_filter(field: str, value: Any) -> None:
    check_text(field, value)
    if value not in _TRANSLATE_FILTERS and not (value.startswith("prompt:") and len(value) > 7):
        fail(
            field,
            "must be polite, rude, professional, shakespeare, gen-z or 'prompt:<text>'; "
            f"got {value!r}",
        )


class LiveTranslateStart(_LiveStartOptions, kw_only=True):
    """``live_translate`` ``start``: ``from_lang``, ``to_lang``, ``direction`` required."""

    from_lang: str
    to_lang: str
    from_voice: str | UnsetType = UNSET
    to_voice: str | UnsetType = UNSET
    filter_from: str | UnsetType = UNSET
    filter_to: str | UnsetType = UNSET

    def _validate(self) -> None:
        check_text("from_lang", self.from_lang)
        check_text("to_lang", self.to_lang)
        super()._validate()
        _str("from_voice", self.from_voice)
        _str("to_voice", self.to_voice)
        if self.filter_from is not UNSET:
            _check_filter("filter_from", self.filter_from)
        if self.filter_to is not UNSET:
            _check_filter("filter_to", self.filter_to)


class LiveSummarize(_Options):
    """``summarize`` action: an on-demand summary (``{}`` uses the defaults)."""

    webhook: str | UnsetType = UNSET
    prompt: str | UnsetType = UNSET

    def _validate(self) -> None:
        if self.webhook is not UNSET:
            check_url("webhook", self.webhook)
        _str("prompt", self.prompt)


class LiveInject(_Options):
    """``live_translate`` ``inject`` action: speak ``message`` to one side."""

    message: str
    direction: LiveDirection

    def _validate(self) -> None:
        check_text("message", self.message)
        check_enum("direction", self.direction, _LIVE_DIRECTIONS)


def _check_one_action(
    owner: _Options, names: tuple[str, ...], types: tuple[type[_Options], ...]
) -> None:
    present = [(n, t) for n, t in zip(names, types, strict=True) if getattr(owner, n) is not UNSET]
    if len(present) != 1:
        fail("", f"must have exactly one of {', '.join(names)} (or be the string 'stop')")
    name, cls = present[0]
    _nested(name, getattr(owner, name), cls)


class LiveTranscribeAction(_Options):
    """A ``live_transcribe`` action object with exactly one key; see
    ``live_transcribe_start()`` / ``live_transcribe_summarize()``; ``"stop"`` stops."""

    start: LiveTranscribeStart | UnsetType = UNSET
    summarize: LiveSummarize | UnsetType = UNSET

    def _validate(self) -> None:
        _check_one_action(self, ("start", "summarize"), (LiveTranscribeStart, LiveSummarize))


class LiveTranslateAction(_Options):
    """A ``live_translate`` action object with exactly one key; see
    ``live_translate_start()``, ``live_translate_summarize()``, ``live_translate_inject()``."""

    start: LiveTranslateStart | UnsetType = UNSET
    summarize: LiveSummarize | UnsetType = UNSET
    inject: LiveInject | UnsetType = UNSET

    def _validate(self) -> None:
        _check_one_action(
            self,
            ("start", "summarize", "inject"),
            (LiveTranslateStart, LiveSummarize, LiveInject),
        )


def live_transcribe_start(
    lang: str, direction: list[LiveDirection], **options: Any
) -> LiveTranscribeAction:
    """``{"start": {...}}`` for ``LiveTranscribe``; ``options`` are the other
    ``LiveTranscribeStart`` fields (``webhook``, ``ai_summary``, ``speech_engine``, ...)."""
    return LiveTranscribeAction(
        start=LiveTranscribeStart(lang=lang, direction=direction, **options)
    )


def live_translate_start(
    from_lang: str, to_lang: str, direction: list[LiveDirection], **options: Any
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


class Dial(Command):
    """``dial``: create an outbound call running SWML from ``url`` or ``swml``.

    ``Dial(from_="+15550000001", to="+15550000002", url="https://example.com/swml")``
    """

    command: ClassVar[str] = "dial"
    id_location: ClassVar[Literal["top", "params", "none"]] = "none"

    from_: str = msgspec.field(name="from")
    to: str | UnsetType = UNSET
    url: str | UnsetType = UNSET
    swml: SWML | str | UnsetType = UNSET
    to_script: str | SWML | UnsetType = UNSET
    caller_id: str | UnsetType = UNSET
    fallback_url: str | UnsetType = UNSET
    status_url: str | UnsetType = UNSET
    status_events: list[StatusEvent] | UnsetType = UNSET
    url_method: HTTPMethod | UnsetType = UNSET
    codecs: list[Codec] | str | UnsetType = UNSET
    timeout: int | UnsetType = UNSET
    max_price_per_minute: float | UnsetType = UNSET
    send_digits: str | UnsetType = UNSET
    region: str | list[str] | UnsetType = UNSET
    username: str | UnsetType = UNSET
    password: str | UnsetType = UNSET
    custom_variables: dict[str, str] | UnsetType = UNSET
    headers: list[Header] | UnsetType = UNSET

    def __post_init__(self) -> None:
        check_text("from", self.from_)
        if self.to is not UNSET:
            _check_destination(self.to)
        elif self.to_script is UNSET:
            fail("to", "dial needs a destination: to (or to_script)")
        if self.url is not UNSET:
            if self.swml is not UNSET:
                fail("swml", "give url or swml, not both")
            check_url("url", self.url)
        elif self.swml is UNSET:
            fail("url", "dial needs the SWML to run: url or swml")
        else:
            check_swml("swml", self.swml)
        if self.to_script is not UNSET:
            check_swml("to_script", self.to_script)
        _str("caller_id", self.caller_id)
        if self.fallback_url is not UNSET:
            check_url("fallback_url", self.fallback_url)
        _status_url(self.status_url)
        if self.status_events is not UNSET:
            check_str_list("status_events", self.status_events, _STATUS_EVENTS)
        if self.url_method is not UNSET:
            check_enum("url_method", self.url_method, _HTTP_METHODS)
        if self.codecs is not UNSET:
            check_codecs("codecs", self.codecs)
        if self.timeout is not UNSET:
            check_int("timeout", self.timeout, 1, 600)
        if self.max_price_per_minute is not UNSET:
            check_number("max_price_per_minute", self.max_price_per_minute, 0)
        if self.send_digits is not UNSET:
            check_alphabet("send_digits", self.send_digits, SEND_DIGITS, "0-9, A-D, *, #, w, ','")
            if len(self.send_digits) > SEND_DIGITS_MAX:
                fail("send_digits", f"must be at most {SEND_DIGITS_MAX} characters")
        if self.region is not UNSET:
            if isinstance(self.region, list):
                check_str_list("region", self.region)
            else:
                check_text("region", self.region)
        _str("username", self.username)
        _str("password", self.password)
        if self.custom_variables is not UNSET:
            check_custom_variables("custom_variables", self.custom_variables)
        if self.headers is not UNSET:
            _check_headers(self.headers)


def _check_destination(to: Any) -> None:
    """``to``: an address (``sip:``, ``sips:``, ``verto:``, ``client:``, fabric ``/...``)
    or else a phone number, which must be E.164."""
    check_text("to", to)
    if to.startswith(_ADDRESS_PREFIXES):
        if not to.partition(":")[2]:
            fail("to", f"address has nothing after the scheme: {to!r}")
    elif to[0] != "/" and not is_e164(to):
        fail("to", f"a phone number must be E.164 (e.g. +15551230000), got {to!r}")


def _check_headers(headers: Any) -> None:
    if not isinstance(headers, list):
        fail("headers", f"must be a list of Header, got {type(headers).__name__}")
    if len(headers) > _MAX_HEADERS:
        fail("headers", f"at most {_MAX_HEADERS} headers allowed, got {len(headers)}")
    for i, header in enumerate(headers):
        _nested(f"headers[{i}]", header, Header)


class Update(Command):
    """``update``: redirect a live call (``url``/``swml``) or end it (``status``).

    ``Update(id=call_id, status="completed")``
    """

    command: ClassVar[str] = "update"
    id_location: ClassVar[Literal["top", "params", "none"]] = "params"

    id: str
    url: str | UnsetType = UNSET
    swml: SWML | str | UnsetType = UNSET
    fallback_url: str | UnsetType = UNSET
    status: UpdateStatus | UnsetType = UNSET
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        check_text("id", self.id)
        redirect = self.url is not UNSET or self.swml is not UNSET
        if self.status is not UNSET:
            check_enum("status", self.status, _UPDATE_STATUSES)
            if redirect:
                fail("status", "cannot be combined with url/swml; send two updates")
        elif not redirect:
            fail("url", "update needs url, swml or status")
        if self.url is not UNSET:
            if self.swml is not UNSET:
                fail("swml", "give url or swml, not both")
            check_url("url", self.url)
        if self.swml is not UNSET:
            check_swml("swml", self.swml)
        if self.fallback_url is not UNSET:
            check_url("fallback_url", self.fallback_url)
        _status_url(self.status_url)


class End(Command):
    """``calling.end``: hang up, with an optional ``reason``."""

    command: ClassVar[str] = "calling.end"

    reason: EndReason | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.reason is not UNSET:
            check_enum("reason", self.reason, _END_REASONS)


class Transfer(Command):
    """``calling.transfer`` to a SIP URI, phone number, SWML URL or inline SWML object."""

    command: ClassVar[str] = "calling.transfer"

    dest: str | SWML

    def __post_init__(self) -> None:
        check_swml("dest", self.dest)


class Disconnect(Command):
    """``calling.disconnect``: unbridge connected legs; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.disconnect"


class Play(Command):
    """``calling.play``: play media items in order.

    ``Play(control_id="p1", play=[tts("Hello"), audio("https://x/a.mp3")], volume=-3)``
    """

    command: ClassVar[str] = "calling.play"
    control: ClassVar[bool] = True

    control_id: str
    play: list[MediaItem]
    volume: float | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    loop: int | UnsetType = UNSET
    language: str | UnsetType = UNSET
    voice: str | UnsetType = UNSET
    gender: Gender | UnsetType = UNSET
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        play = self.play
        if not isinstance(play, (list, tuple)) or not play:
            fail("play", "needs at least one media item (tts(), audio(), silence(), ringtone())")
        for i, item in enumerate(play):
            if type(item) not in _MEDIA_TYPE_SET and not isinstance(item, _MEDIA_TYPES):
                fail(f"play[{i}]", f"must be a media item, got {type(item).__name__}")
            try:
                item._validate()
            except ValidationError as exc:
                raise ValidationError(f"play[{i}].{exc.field}", exc.reason) from None
        if self.volume is not UNSET:
            check_number("volume", self.volume, -40, 40)
        if self.direction is not UNSET:
            check_enum("direction", self.direction, _DIRECTIONS)
        if self.loop is not UNSET:
            check_int("loop", self.loop, 0)
        _str("language", self.language)
        if self.voice is not UNSET:
            check_voice("voice", self.voice)
        if self.gender is not UNSET:
            check_enum("gender", self.gender, _GENDERS)
        if self.status_url is not UNSET:
            check_url("status_url", self.status_url)


class PlayPause(_ControlIdCommand):
    """``calling.play.pause``."""

    command: ClassVar[str] = "calling.play.pause"


class PlayResume(_ControlIdCommand):
    """``calling.play.resume``."""

    command: ClassVar[str] = "calling.play.resume"


class PlayStop(_ControlIdCommand):
    """``calling.play.stop``."""

    command: ClassVar[str] = "calling.play.stop"


class PlayVolume(_ControlIdCommand):
    """``calling.play.volume``: set a running play's volume, -40..40 dB."""

    command: ClassVar[str] = "calling.play.volume"

    volume: float

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        check_number("volume", self.volume, -40, 40)


class Record(Command):
    """``calling.record``: start recording the call.

    ``Record(control_id="r1", record=RecordOptions(audio=RecordAudio(format="wav")))``
    """

    command: ClassVar[str] = "calling.record"
    control: ClassVar[bool] = True

    control_id: str
    record: RecordOptions
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        _nested("record", self.record, RecordOptions)
        _status_url(self.status_url)


class RecordPause(_ControlIdCommand):
    """``calling.record.pause``; ``behavior`` ``skip`` (default) or ``silence``."""

    command: ClassVar[str] = "calling.record.pause"

    behavior: RecordPauseBehavior | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        if self.behavior is not UNSET:
            check_enum("behavior", self.behavior, _PAUSE_BEHAVIORS)


class RecordResume(_ControlIdCommand):
    """``calling.record.resume``."""

    command: ClassVar[str] = "calling.record.resume"


class RecordStop(_ControlIdCommand):
    """``calling.record.stop``."""

    command: ClassVar[str] = "calling.record.stop"


class Collect(Command):
    """``calling.collect``: gather digits and/or speech (at least one of the two).

    ``Collect(control_id="c1", digits=Digits(max=4, terminators="#"), initial_timeout=5)``
    """

    command: ClassVar[str] = "calling.collect"
    control: ClassVar[bool] = True

    control_id: str
    digits: Digits | UnsetType = UNSET
    speech: Speech | UnsetType = UNSET
    initial_timeout: float | UnsetType = UNSET
    continuous: bool | UnsetType = UNSET
    partial_results: bool | UnsetType = UNSET
    send_start_of_input: bool | UnsetType = UNSET
    start_input_timers: bool | UnsetType = UNSET
    status_url: str | UnsetType = UNSET
    continue_: bool | UnsetType = msgspec.field(default=UNSET, name="continue")

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        if self.digits is UNSET and self.speech is UNSET:
            fail("digits", "collect needs digits or speech (or both)")
        if self.digits is not UNSET:
            _nested("digits", self.digits, Digits)
        if self.speech is not UNSET:
            _nested("speech", self.speech, Speech)
        if self.initial_timeout is not UNSET:
            check_number("initial_timeout", self.initial_timeout, 0, exclusive_minimum=True)
        _bool("continuous", self.continuous)
        _bool("partial_results", self.partial_results)
        _bool("send_start_of_input", self.send_start_of_input)
        _bool("start_input_timers", self.start_input_timers)
        _status_url(self.status_url)
        _bool("continue", self.continue_)


class CollectStop(_ControlIdCommand):
    """``calling.collect.stop``."""

    command: ClassVar[str] = "calling.collect.stop"


class CollectStartInputTimers(_ControlIdCommand):
    """``calling.collect.start_input_timers``: arm a collect's initial timeout now."""

    command: ClassVar[str] = "calling.collect.start_input_timers"


class Detect(Command):
    """``calling.detect``: ``Detect(control_id="d1", detect=machine_detector(), timeout=30)``."""

    command: ClassVar[str] = "calling.detect"
    control: ClassVar[bool] = True

    control_id: str
    detect: Detector
    timeout: float | UnsetType = UNSET
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        _nested("detect", self.detect, _DETECTOR_TYPES)
        if self.timeout is not UNSET:
            check_number("timeout", self.timeout, 0)
        _status_url(self.status_url)


class DetectStop(_ControlIdCommand):
    """``calling.detect.stop``."""

    command: ClassVar[str] = "calling.detect.stop"


class Tap(Command):
    """``calling.tap``: copy the call's audio to a device.

    ``Tap(control_id="t1", tap=tap_audio("both"), device=ws_device("wss://x/tap"))``
    """

    command: ClassVar[str] = "calling.tap"
    control: ClassVar[bool] = True

    control_id: str
    tap: TapAudio
    device: TapDevice
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        _nested("tap", self.tap, TapAudio)
        _nested("device", self.device, (RTPDevice, WSDevice))
        _status_url(self.status_url)


class TapStop(_ControlIdCommand):
    """``calling.tap.stop``."""

    command: ClassVar[str] = "calling.tap.stop"


class Transcribe(Command):
    """``calling.transcribe``: whole-call background transcription (one per call)."""

    command: ClassVar[str] = "calling.transcribe"
    control: ClassVar[bool] = True

    control_id: str
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        _status_url(self.status_url)


class TranscribeStop(_ControlIdCommand):
    """``calling.transcribe.stop``."""

    command: ClassVar[str] = "calling.transcribe.stop"


class Stream(Command):
    """``calling.stream``: stream the call's audio to a ``wss://`` endpoint."""

    command: ClassVar[str] = "calling.stream"
    control: ClassVar[bool] = True

    control_id: str
    url: str
    name: str | UnsetType = UNSET
    codec: str | UnsetType = UNSET
    track: StreamTrack | UnsetType = UNSET
    authorization_bearer_token: str | UnsetType = UNSET
    custom_parameters: dict[str, Any] | UnsetType = UNSET
    status_url: str | UnsetType = UNSET
    status_url_method: HTTPMethod | UnsetType = UNSET

    def __post_init__(self) -> None:
        _control_id(self.control_id)
        check_url("url", self.url, ("wss://",))
        _str("name", self.name)
        _str("codec", self.codec)
        if self.track is not UNSET:
            check_enum("track", self.track, _STREAM_TRACKS)
        _str("authorization_bearer_token", self.authorization_bearer_token)
        if self.custom_parameters is not UNSET:
            check_dict("custom_parameters", self.custom_parameters)
        _status_url(self.status_url)
        if self.status_url_method is not UNSET:
            check_enum("status_url_method", self.status_url_method, _HTTP_METHODS)


class StreamStop(_ControlIdCommand):
    """``calling.stream.stop``."""

    command: ClassVar[str] = "calling.stream.stop"


class Denoise(Command):
    """``calling.denoise``: start noise reduction; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.denoise"


class DenoiseStop(Command):
    """``calling.denoise.stop``; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.denoise.stop"


class AIHold(Command):
    """``calling.ai_hold``: put the AI agent on hold; ``timeout`` is a string of seconds."""

    command: ClassVar[str] = "calling.ai_hold"

    timeout: str | UnsetType = UNSET
    prompt: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        timeout = self.timeout
        if timeout is not UNSET and not (
            isinstance(timeout, str) and timeout.isascii() and timeout.isdigit()
        ):
            fail(
                "timeout",
                f'must be a string of whole seconds such as "300" (the API refuses '
                f"numbers); got {timeout!r}",
            )
        _str("prompt", self.prompt)


class AIUnhold(Command):
    """``calling.ai_unhold``: take the AI agent off hold; ``params`` is ``{}``."""

    command: ClassVar[str] = "calling.ai_unhold"


class AIMessage(Command):
    """``calling.ai_message``: inject a message into the AI session, or reset it."""

    command: ClassVar[str] = "calling.ai_message"

    role: AIRole | UnsetType = UNSET
    message_text: str | UnsetType = UNSET
    reset: AIReset | UnsetType = UNSET
    global_data: dict[str, Any] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.role is not UNSET:
            check_enum("role", self.role, _AI_ROLES)
        _str("message_text", self.message_text)
        if self.reset is not UNSET:
            _nested("reset", self.reset, AIReset)
        if self.global_data is not UNSET:
            check_dict("global_data", self.global_data)


class AIStop(Command):
    """``calling.ai.stop``: stop the call's AI session (``control_id`` is ignored)."""

    command: ClassVar[str] = "calling.ai.stop"

    control_id: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _str("control_id", self.control_id)


class LiveTranscribe(Command):
    """``calling.live_transcribe``: ``action`` is ``live_transcribe_start(...)``,
    ``live_transcribe_summarize(...)`` or ``"stop"``."""

    command: ClassVar[str] = "calling.live_transcribe"

    action: Literal["stop"] | LiveTranscribeAction

    def __post_init__(self) -> None:
        if self.action != "stop":
            _nested("action", self.action, LiveTranscribeAction)


class LiveTranslate(Command):
    """``calling.live_translate``: ``action`` is ``live_translate_start(...)``,
    ``live_translate_summarize(...)``, ``live_translate_inject(...)`` or ``"stop"``."""

    command: ClassVar[str] = "calling.live_translate"

    action: Literal["stop"] | LiveTranslateAction
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.action != "stop":
            _nested("action", self.action, LiveTranslateAction)
        _status_url(self.status_url)


class SendFaxStop(_ControlIdCommand):
    """``calling.send_fax.stop``: stop a fax send started by SWML or RELAY."""

    command: ClassVar[str] = "calling.send_fax.stop"


class ReceiveFaxStop(_ControlIdCommand):
    """``calling.receive_fax.stop``: stop a fax reception started by SWML or RELAY."""

    command: ClassVar[str] = "calling.receive_fax.stop"


class Refer(Command):
    """``calling.refer``: SIP REFER the call, ``Refer(device=sip_device("sip:a@b"))``."""

    command: ClassVar[str] = "calling.refer"

    device: SIPDevice
    status_url: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        _nested("device", self.device, SIPDevice)
        _status_url(self.status_url)


class UserEvent(Command):
    """``calling.user_event``: forward any JSON object to the client on the call."""

    command: ClassVar[str] = "calling.user_event"

    event: dict[str, Any]

    def __post_init__(self) -> None:
        check_dict("event", self.event)


COMMANDS: dict[str, type[Command]] = {
    cls.command: cls
    for cls in (
        Dial,
        Update,
        End,
        Transfer,
        Disconnect,
        Play,
        PlayPause,
        PlayResume,
        PlayStop,
        PlayVolume,
        Record,
        RecordPause,
        RecordResume,
        RecordStop,
        Collect,
        CollectStop,
        CollectStartInputTimers,
        Detect,
        DetectStop,
        Tap,
        TapStop,
        Transcribe,
        TranscribeStop,
        Stream,
        StreamStop,
        Denoise,
        DenoiseStop,
        AIHold,
        AIUnhold,
        AIMessage,
        AIStop,
        LiveTranscribe,
        LiveTranslate,
        SendFaxStop,
        ReceiveFaxStop,
        Refer,
        UserEvent,
    )
}
"""Wire name -> command class, for all 37 commands."""
