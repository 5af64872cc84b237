"""Command Structs: exact wire bodies for all 37 commands, every stated constraint refused
before sending with the field named, and strict decoding (what the simulator does)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import msgspec
import pytest

from signalwire_calls import _validate
from signalwire_calls import commands as cmds
from signalwire_calls._codec import encode_command
from signalwire_calls.commands import (
    COMMANDS,
    TTS,
    AIHold,
    AIMessage,
    AIReset,
    AIStop,
    AIUnhold,
    Audio,
    AudioParams,
    Collect,
    CollectStartInputTimers,
    CollectStop,
    Command,
    Denoise,
    DenoiseStop,
    Detect,
    DetectStop,
    Dial,
    Digits,
    Disconnect,
    End,
    Header,
    LiveInject,
    LiveSummarize,
    LiveTranscribe,
    LiveTranscribeAction,
    LiveTranscribeStart,
    LiveTranslate,
    LiveTranslateAction,
    LiveTranslateStart,
    Play,
    PlayPause,
    PlayResume,
    PlayStop,
    PlayVolume,
    ReceiveFaxStop,
    Record,
    RecordAudio,
    RecordOptions,
    RecordPause,
    RecordResume,
    RecordStop,
    Refer,
    SendFaxStop,
    Speech,
    Stream,
    StreamStop,
    Tap,
    TapStop,
    Transcribe,
    TranscribeStop,
    Transfer,
    Update,
    UserEvent,
    audio,
    digit_detector,
    fax_detector,
    live_transcribe_start,
    live_transcribe_summarize,
    live_translate_inject,
    live_translate_start,
    live_translate_summarize,
    machine_detector,
    ringtone,
    rtp_device,
    silence,
    sip_device,
    tap_audio,
    tts,
    ws_device,
)
from signalwire_calls.errors import ValidationError

CALL = "0e9c80d7-a149-4917-892d-420043709f45"

# The 37 keys of spec/calling-api.json, copied here so the tests stay self-contained.
SPEC_COMMANDS = [
    "dial",
    "update",
    "calling.end",
    "calling.transfer",
    "calling.disconnect",
    "calling.play",
    "calling.play.pause",
    "calling.play.resume",
    "calling.play.stop",
    "calling.play.volume",
    "calling.record",
    "calling.record.pause",
    "calling.record.resume",
    "calling.record.stop",
    "calling.collect",
    "calling.collect.stop",
    "calling.collect.start_input_timers",
    "calling.detect",
    "calling.detect.stop",
    "calling.tap",
    "calling.tap.stop",
    "calling.transcribe",
    "calling.transcribe.stop",
    "calling.stream",
    "calling.stream.stop",
    "calling.denoise",
    "calling.denoise.stop",
    "calling.ai_hold",
    "calling.ai_unhold",
    "calling.ai_message",
    "calling.ai.stop",
    "calling.live_transcribe",
    "calling.live_translate",
    "calling.send_fax.stop",
    "calling.receive_fax.stop",
    "calling.refer",
    "calling.user_event",
]
CONTROL = {
    "calling.play",
    "calling.record",
    "calling.collect",
    "calling.detect",
    "calling.tap",
    "calling.transcribe",
    "calling.stream",
}

SWML_DOC: dict[str, Any] = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


def top(command: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"command": command, "id": CALL, "params": params}


# --------------------------------------------------------------------------- golden bodies
# (command object, expected body written by hand from the API reference)

GOLDEN: list[tuple[Command, dict[str, Any]]] = [
    (
        Dial(
            from_="+15559870000",
            to="+15551230001",
            url="https://example.com/swml",
            caller_id="+15559870000",
            fallback_url="https://example.com/fallback",
            status_url="https://hooks.example.com/status",
            status_events=["created", "ringing", "answered", "ended"],
            url_method="GET",
            codecs=["PCMU", "OPUS@48000H@20I"],
            timeout=30,
            max_price_per_minute=0.05,
            send_digits="ww1234#,*",
            region=["us-east", "us-west"],
            username="sipuser",
            password="sippass",
            custom_variables={"customer_id": "42", "_tier": "gold"},
            headers=[Header(name="X-Campaign", value="spring")],
        ),
        {
            "command": "dial",
            "params": {
                "from": "+15559870000",
                "to": "+15551230001",
                "url": "https://example.com/swml",
                "caller_id": "+15559870000",
                "fallback_url": "https://example.com/fallback",
                "status_url": "https://hooks.example.com/status",
                "status_events": ["created", "ringing", "answered", "ended"],
                "url_method": "GET",
                "codecs": ["PCMU", "OPUS@48000H@20I"],
                "timeout": 30,
                "max_price_per_minute": 0.05,
                "send_digits": "ww1234#,*",
                "region": ["us-east", "us-west"],
                "username": "sipuser",
                "password": "sippass",
                "custom_variables": {"customer_id": "42", "_tier": "gold"},
                "headers": [{"name": "X-Campaign", "value": "spring"}],
            },
        },
    ),
    (
        Dial(
            from_="sip:me@example.com",
            to_script={"sections": {"main": [{"play": {"url": "say:hi"}}]}},
            swml=SWML_DOC,
            codecs="PCMU,PCMA",
            region="us-east",
        ),
        {
            "command": "dial",
            "params": {
                "from": "sip:me@example.com",
                "to_script": {"sections": {"main": [{"play": {"url": "say:hi"}}]}},
                "swml": {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}},
                "codecs": "PCMU,PCMA",
                "region": "us-east",
            },
        },
    ),
    (
        Update(
            id=CALL,
            url="https://example.com/next",
            fallback_url="https://example.com/fb",
            status_url="https://hooks.example.com/s",
        ),
        {
            "command": "update",
            "params": {
                "id": CALL,
                "url": "https://example.com/next",
                "fallback_url": "https://example.com/fb",
                "status_url": "https://hooks.example.com/s",
            },
        },
    ),
    (
        Update(id=CALL, status="canceled"),
        {"command": "update", "params": {"id": CALL, "status": "canceled"}},
    ),
    (
        Update(id=CALL, swml=SWML_DOC),
        {
            "command": "update",
            "params": {
                "id": CALL,
                "swml": {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}},
            },
        },
    ),
    (End(reason="noAnswer"), top("calling.end", {"reason": "noAnswer"})),
    (End(), top("calling.end", {})),
    (
        Transfer(dest="sip:bob@example.com"),
        top("calling.transfer", {"dest": "sip:bob@example.com"}),
    ),
    (
        Transfer(dest={"sections": {"main": [{"hangup": {}}]}}),
        top("calling.transfer", {"dest": {"sections": {"main": [{"hangup": {}}]}}}),
    ),
    (Disconnect(), top("calling.disconnect", {})),
    (
        Play(
            control_id="p1",
            play=[
                tts("Hello", language="fr-FR", gender="male", voice="gcloud.fr-FR-Neural2-B"),
                audio("https://cdn.example.com/a.mp3"),
                silence(1.5),
                ringtone("us", duration=3),
                ringtone("bong"),
            ],
            volume=-6.5,
            direction="both",
            loop=0,
            language="en-GB",
            voice="Polly.Amy",
            gender="female",
            status_url="https://hooks.example.com/play",
        ),
        top(
            "calling.play",
            {
                "control_id": "p1",
                "play": [
                    {
                        "type": "tts",
                        "params": {
                            "text": "Hello",
                            "language": "fr-FR",
                            "gender": "male",
                            "voice": "gcloud.fr-FR-Neural2-B",
                        },
                    },
                    {"type": "audio", "params": {"url": "https://cdn.example.com/a.mp3"}},
                    {"type": "silence", "params": {"duration": 1.5}},
                    {"type": "ringtone", "params": {"name": "us", "duration": 3}},
                    {"type": "ringtone", "params": {"name": "bong"}},
                ],
                "volume": -6.5,
                "direction": "both",
                "loop": 0,
                "language": "en-GB",
                "voice": "Polly.Amy",
                "gender": "female",
                "status_url": "https://hooks.example.com/play",
            },
        ),
    ),
    (
        Play(control_id="p2", play=[tts("Hi")]),
        top(
            "calling.play",
            {"control_id": "p2", "play": [{"type": "tts", "params": {"text": "Hi"}}]},
        ),
    ),
    (PlayPause(control_id="p1"), top("calling.play.pause", {"control_id": "p1"})),
    (PlayResume(control_id="p1"), top("calling.play.resume", {"control_id": "p1"})),
    (PlayStop(control_id="p1"), top("calling.play.stop", {"control_id": "p1"})),
    (
        PlayVolume(control_id="p1", volume=-40),
        top("calling.play.volume", {"control_id": "p1", "volume": -40}),
    ),
    (
        Record(
            control_id="r1",
            record=RecordOptions(
                audio=RecordAudio(
                    beep=True,
                    format="wav",
                    stereo=True,
                    direction="both",
                    initial_timeout=0,
                    end_silence_timeout=2.5,
                    max_length=600,
                    terminators="#*a",
                    input_sensitivity=44.0,
                )
            ),
            status_url="https://hooks.example.com/rec",
        ),
        top(
            "calling.record",
            {
                "control_id": "r1",
                "record": {
                    "audio": {
                        "beep": True,
                        "format": "wav",
                        "stereo": True,
                        "direction": "both",
                        "initial_timeout": 0,
                        "end_silence_timeout": 2.5,
                        "max_length": 600,
                        "terminators": "#*a",
                        "input_sensitivity": 44.0,
                    }
                },
                "status_url": "https://hooks.example.com/rec",
            },
        ),
    ),
    (
        Record(control_id="r2", record=RecordOptions(audio=RecordAudio())),
        top("calling.record", {"control_id": "r2", "record": {"audio": {}}}),
    ),
    (
        RecordPause(control_id="r1", behavior="silence"),
        top("calling.record.pause", {"control_id": "r1", "behavior": "silence"}),
    ),
    (RecordPause(control_id="r1"), top("calling.record.pause", {"control_id": "r1"})),
    (RecordResume(control_id="r1"), top("calling.record.resume", {"control_id": "r1"})),
    (RecordStop(control_id="r1"), top("calling.record.stop", {"control_id": "r1"})),
    (
        Collect(
            control_id="c1",
            digits=Digits(max=4, terminators="#", digit_timeout=3),
            speech=Speech(
                end_silence_timeout=1.0,
                speech_timeout=10,
                language="Deepgram:en-US",
                hints=["sales", "support"],
                model="nova-3",
                engine="Deepgram",
            ),
            initial_timeout=5,
            continuous=True,
            partial_results=True,
            send_start_of_input=True,
            start_input_timers=False,
            status_url="https://hooks.example.com/collect",
            continue_=False,
        ),
        top(
            "calling.collect",
            {
                "control_id": "c1",
                "digits": {"max": 4, "terminators": "#", "digit_timeout": 3},
                "speech": {
                    "end_silence_timeout": 1.0,
                    "speech_timeout": 10,
                    "language": "Deepgram:en-US",
                    "hints": ["sales", "support"],
                    "model": "nova-3",
                    "engine": "Deepgram",
                },
                "initial_timeout": 5,
                "continuous": True,
                "partial_results": True,
                "send_start_of_input": True,
                "start_input_timers": False,
                "status_url": "https://hooks.example.com/collect",
                "continue": False,
            },
        ),
    ),
    (
        Collect(control_id="c2", speech=Speech()),
        top("calling.collect", {"control_id": "c2", "speech": {}}),
    ),
    (
        Collect(control_id="c3", digits=Digits(max=1, terminators="")),
        top("calling.collect", {"control_id": "c3", "digits": {"max": 1, "terminators": ""}}),
    ),
    (CollectStop(control_id="c1"), top("calling.collect.stop", {"control_id": "c1"})),
    (
        CollectStartInputTimers(control_id="c1"),
        top("calling.collect.start_input_timers", {"control_id": "c1"}),
    ),
    (
        Detect(
            control_id="d1",
            detect=machine_detector(
                initial_timeout=4.5,
                end_silence_timeout=1.0,
                machine_ready_timeout=1.5,
                machine_voice_threshold=1.25,
                machine_words_threshold=6,
                detect_interruptions=True,
                detect_message_end=False,
            ),
            timeout=30,
            status_url="https://hooks.example.com/detect",
        ),
        top(
            "calling.detect",
            {
                "control_id": "d1",
                "detect": {
                    "type": "machine",
                    "params": {
                        "initial_timeout": 4.5,
                        "end_silence_timeout": 1.0,
                        "machine_ready_timeout": 1.5,
                        "machine_voice_threshold": 1.25,
                        "machine_words_threshold": 6,
                        "detect_interruptions": True,
                        "detect_message_end": False,
                    },
                },
                "timeout": 30,
                "status_url": "https://hooks.example.com/detect",
            },
        ),
    ),
    (
        Detect(control_id="d2", detect=machine_detector()),
        top("calling.detect", {"control_id": "d2", "detect": {"type": "machine", "params": {}}}),
    ),
    (
        Detect(control_id="d3", detect=fax_detector("CED")),
        top(
            "calling.detect",
            {"control_id": "d3", "detect": {"type": "fax", "params": {"tone": "CED"}}},
        ),
    ),
    (
        Detect(control_id="d4", detect=digit_detector("12#"), timeout=0),
        top(
            "calling.detect",
            {
                "control_id": "d4",
                "detect": {"type": "digit", "params": {"digits": "12#"}},
                "timeout": 0,
            },
        ),
    ),
    (DetectStop(control_id="d1"), top("calling.detect.stop", {"control_id": "d1"})),
    (
        Tap(
            control_id="t1",
            tap=tap_audio("speak"),
            device=rtp_device("52.1.2.3", 5004, codec="PCMU", ptime=20),
            status_url="https://hooks.example.com/tap",
        ),
        top(
            "calling.tap",
            {
                "control_id": "t1",
                "tap": {"type": "audio", "params": {"direction": "speak"}},
                "device": {
                    "type": "rtp",
                    "params": {"addr": "52.1.2.3", "port": 5004, "codec": "PCMU", "ptime": 20},
                },
                "status_url": "https://hooks.example.com/tap",
            },
        ),
    ),
    (
        Tap(control_id="t2", tap=tap_audio("both"), device=ws_device("wss://tap.example.com/x")),
        top(
            "calling.tap",
            {
                "control_id": "t2",
                "tap": {"type": "audio", "params": {"direction": "both"}},
                "device": {"type": "ws", "params": {"uri": "wss://tap.example.com/x"}},
            },
        ),
    ),
    (
        Tap(control_id="t3", tap=tap_audio("listen"), device=ws_device("ws://t.io/", codec="opus")),
        top(
            "calling.tap",
            {
                "control_id": "t3",
                "tap": {"type": "audio", "params": {"direction": "listen"}},
                "device": {"type": "ws", "params": {"uri": "ws://t.io/", "codec": "opus"}},
            },
        ),
    ),
    (TapStop(control_id="t1"), top("calling.tap.stop", {"control_id": "t1"})),
    (
        Transcribe(control_id="x1", status_url="https://hooks.example.com/tr"),
        top(
            "calling.transcribe",
            {"control_id": "x1", "status_url": "https://hooks.example.com/tr"},
        ),
    ),
    (TranscribeStop(control_id="x1"), top("calling.transcribe.stop", {"control_id": "x1"})),
    (
        Stream(
            control_id="s1",
            url="wss://stream.example.com/audio",
            name="agent-assist",
            codec="PCMU",
            track="both_tracks",
            authorization_bearer_token="tok",
            custom_parameters={"campaign": "spring", "n": 1},
            status_url="https://hooks.example.com/stream",
            status_url_method="GET",
        ),
        top(
            "calling.stream",
            {
                "control_id": "s1",
                "url": "wss://stream.example.com/audio",
                "name": "agent-assist",
                "codec": "PCMU",
                "track": "both_tracks",
                "authorization_bearer_token": "tok",
                "custom_parameters": {"campaign": "spring", "n": 1},
                "status_url": "https://hooks.example.com/stream",
                "status_url_method": "GET",
            },
        ),
    ),
    (StreamStop(control_id="s1"), top("calling.stream.stop", {"control_id": "s1"})),
    (Denoise(), top("calling.denoise", {})),
    (DenoiseStop(), top("calling.denoise.stop", {})),
    (
        AIHold(timeout="300", prompt="One moment please."),
        top("calling.ai_hold", {"timeout": "300", "prompt": "One moment please."}),
    ),
    (AIHold(), top("calling.ai_hold", {})),
    (AIUnhold(), top("calling.ai_unhold", {})),
    (
        AIMessage(
            role="system",
            message_text="The caller is a VIP.",
            reset=AIReset(full_reset=True, user_prompt="u", system_prompt="s"),
            global_data={"vip": True},
        ),
        top(
            "calling.ai_message",
            {
                "role": "system",
                "message_text": "The caller is a VIP.",
                "reset": {"full_reset": True, "user_prompt": "u", "system_prompt": "s"},
                "global_data": {"vip": True},
            },
        ),
    ),
    (AIStop(), top("calling.ai.stop", {})),
    (AIStop(control_id="ai-1"), top("calling.ai.stop", {"control_id": "ai-1"})),
    (
        LiveTranscribe(
            action=live_transcribe_start(
                "en-US",
                ["remote-caller", "local-caller"],
                webhook="https://hooks.example.com/live",
                live_events=True,
                ai_summary=True,
                ai_summary_prompt="Summarize",
                speech_engine="google",
                speech_timeout=1500,
                vad_silence_ms=500,
                vad_thresh=1800,
                debug_level=2,
            )
        ),
        top(
            "calling.live_transcribe",
            {
                "action": {
                    "start": {
                        "lang": "en-US",
                        "direction": ["remote-caller", "local-caller"],
                        "webhook": "https://hooks.example.com/live",
                        "live_events": True,
                        "ai_summary": True,
                        "ai_summary_prompt": "Summarize",
                        "speech_engine": "google",
                        "speech_timeout": 1500,
                        "vad_silence_ms": 500,
                        "vad_thresh": 1800,
                        "debug_level": 2,
                    }
                }
            },
        ),
    ),
    (
        LiveTranscribe(action=live_transcribe_summarize(prompt="Key points")),
        top("calling.live_transcribe", {"action": {"summarize": {"prompt": "Key points"}}}),
    ),
    (
        LiveTranscribe(action=live_transcribe_summarize()),
        top("calling.live_transcribe", {"action": {"summarize": {}}}),
    ),
    (LiveTranscribe(action="stop"), top("calling.live_transcribe", {"action": "stop"})),
    (
        LiveTranslate(
            action=live_translate_start(
                "en-US",
                "es-ES",
                ["remote-caller"],
                from_voice="elevenlabs.josh",
                to_voice="elevenlabs.rachel",
                filter_from="polite",
                filter_to="prompt:Use formal Spanish",
                webhook="https://hooks.example.com/tl",
                speech_engine="deepgram",
                vad_thresh=0,
                debug_level=0,
            ),
            status_url="https://hooks.example.com/tl-status",
        ),
        top(
            "calling.live_translate",
            {
                "action": {
                    "start": {
                        "from_lang": "en-US",
                        "to_lang": "es-ES",
                        "direction": ["remote-caller"],
                        "from_voice": "elevenlabs.josh",
                        "to_voice": "elevenlabs.rachel",
                        "filter_from": "polite",
                        "filter_to": "prompt:Use formal Spanish",
                        "webhook": "https://hooks.example.com/tl",
                        "speech_engine": "deepgram",
                        "vad_thresh": 0,
                        "debug_level": 0,
                    }
                },
                "status_url": "https://hooks.example.com/tl-status",
            },
        ),
    ),
    (
        LiveTranslate(action=live_translate_summarize(webhook="https://h.example.com/s")),
        top(
            "calling.live_translate",
            {"action": {"summarize": {"webhook": "https://h.example.com/s"}}},
        ),
    ),
    (
        LiveTranslate(action=live_translate_inject("Please hold", "local-caller")),
        top(
            "calling.live_translate",
            {"action": {"inject": {"message": "Please hold", "direction": "local-caller"}}},
        ),
    ),
    (LiveTranslate(action="stop"), top("calling.live_translate", {"action": "stop"})),
    (SendFaxStop(control_id="fax-1"), top("calling.send_fax.stop", {"control_id": "fax-1"})),
    (
        ReceiveFaxStop(control_id="fax-2"),
        top("calling.receive_fax.stop", {"control_id": "fax-2"}),
    ),
    (
        Refer(
            device=sip_device(
                "sip:bob@example.com", from_="sip:alice@example.com", username="u", password="p"
            ),
            status_url="https://hooks.example.com/refer",
        ),
        top(
            "calling.refer",
            {
                "device": {
                    "type": "sip",
                    "params": {
                        "to": "sip:bob@example.com",
                        "from": "sip:alice@example.com",
                        "username": "u",
                        "password": "p",
                    },
                },
                "status_url": "https://hooks.example.com/refer",
            },
        ),
    ),
    (
        Refer(device=sip_device("sip:bob@example.com")),
        top(
            "calling.refer",
            {"device": {"type": "sip", "params": {"to": "sip:bob@example.com"}}},
        ),
    ),
    (
        UserEvent(event={"type": "greeting", "data": {"n": 1}}),
        top("calling.user_event", {"event": {"type": "greeting", "data": {"n": 1}}}),
    ),
]


def _golden_id(case: tuple[Command, dict[str, Any]]) -> str:
    return str(case[1]["command"])


@pytest.mark.parametrize(("cmd", "expected"), GOLDEN, ids=[_golden_id(c) for c in GOLDEN])
def test_golden_wire_body(cmd: Command, expected: dict[str, Any]) -> None:
    body = msgspec.json.decode(encode_command(cmd, CALL))
    assert body == expected
    assert _same_types(body, expected)  # == alone would let 3 pass for 3.0


def _same_types(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_golden_covers_every_command() -> None:
    assert {expected["command"] for _, expected in GOLDEN} == set(SPEC_COMMANDS)


def test_dial_ignores_call_id_and_update_carries_it_in_params() -> None:
    dial = Dial(from_="+15559870000", to="+15551230001", url="https://example.com/swml")
    assert "id" not in msgspec.json.decode(encode_command(dial, CALL))
    assert "id" not in msgspec.json.decode(encode_command(dial))
    update = msgspec.json.decode(encode_command(Update(id=CALL, status="completed")))
    assert update == {"command": "update", "params": {"id": CALL, "status": "completed"}}


def test_top_level_commands_need_a_call_id() -> None:
    with pytest.raises(ValidationError) as info:
        encode_command(PlayStop(control_id="p1"))
    assert info.value.field == "id"


# --------------------------------------------------------------------------- registry


def test_commands_registry_matches_spec() -> None:
    assert len(COMMANDS) == 37
    assert list(COMMANDS) == SPEC_COMMANDS
    for name, cls in COMMANDS.items():
        assert cls.command == name
        assert cls.control is (name in CONTROL)
        expected_location = {"dial": "none", "update": "params"}.get(name, "top")
        assert cls.id_location == expected_location
        assert issubclass(cls, Command)


def test_control_commands_require_control_id() -> None:
    needs_control_id = [
        cls
        for name, cls in COMMANDS.items()
        if cls.control or cls.__name__.endswith(("Stop", "Pause", "Resume", "Volume", "Timers"))
    ]
    needs_control_id.remove(DenoiseStop)
    needs_control_id.remove(AIStop)
    assert len(needs_control_id) == 7 + 15
    for cls in needs_control_id:
        with pytest.raises(TypeError, match="control_id"):
            cls()
    assert AIStop().control_id is msgspec.UNSET


def test_all_is_sorted_and_complete() -> None:
    assert cmds.__all__ == sorted(cmds.__all__, key=_isort_key)
    for name in cmds.__all__:
        assert hasattr(cmds, name), name
    public_classes = {
        name
        for name, value in vars(cmds).items()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == cmds.__name__
        and not name.startswith("_")
    }
    assert public_classes <= set(cmds.__all__)


def _isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(("cmd", "expected"), GOLDEN, ids=[_golden_id(c) for c in GOLDEN])
def test_strict_decode_round_trip(cmd: Command, expected: dict[str, Any]) -> None:
    cls = COMMANDS[expected["command"]]
    params = msgspec.json.encode(expected["params"])
    decoded = msgspec.json.decode(params, type=cls)
    assert decoded == cmd
    assert msgspec.json.decode(encode_command(decoded, CALL)) == expected
    assert msgspec.convert(expected["params"], cls) == cmd


@pytest.mark.parametrize(("cmd", "expected"), GOLDEN, ids=[_golden_id(c) for c in GOLDEN])
def test_strict_decode_refuses_unknown_field(cmd: Command, expected: dict[str, Any]) -> None:
    cls = COMMANDS[expected["command"]]
    params = dict(expected["params"], bogus_field=1)
    with pytest.raises(msgspec.ValidationError, match="bogus_field"):
        msgspec.json.decode(msgspec.json.encode(params), type=cls)


@pytest.mark.parametrize(
    ("cls", "params", "path"),
    [
        (
            Play,
            {"control_id": "p", "play": [{"type": "tts", "params": {"text": "x", "y": 1}}]},
            "y",
        ),
        (Play, {"control_id": "p", "play": [{"type": "video", "params": {}}]}, "type"),
        (Record, {"control_id": "r", "record": {"audio": {"fmt": "mp3"}}}, "fmt"),
        (Record, {"control_id": "r", "audio": {}}, "audio"),
        (
            Tap,
            {
                "control_id": "t",
                "tap": {"type": "audio", "params": {"direction": "both"}},
                "device": {"type": "sctp", "params": {}},
            },
            "type",
        ),
        (LiveTranscribe, {"action": "start"}, "action"),
        (
            LiveTranscribe,
            {"action": {"inject": {"message": "m", "direction": "local-caller"}}},
            "inject",
        ),
        (AIUnhold, {"prompt": "back"}, "prompt"),
        (AIHold, {"timeout": 300}, "timeout"),
    ],
)
def test_strict_decode_refuses_wrong_shapes(
    cls: type[Command], params: dict[str, Any], path: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=path):
        msgspec.convert(params, cls)


def test_decode_runs_validation_and_keeps_the_field() -> None:
    params = {"control_id": "p", "play": [{"type": "tts", "params": {"text": ""}}], "volume": 1}
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(params, Play)
    cause = info.value.__cause__
    assert isinstance(cause, ValidationError)
    assert cause.field == "play[0].params.text"
    with pytest.raises(msgspec.ValidationError) as info2:
        msgspec.json.decode(b'{"control_id":"c"}', type=Collect)
    assert isinstance(info2.value.__cause__, ValidationError)
    assert info2.value.__cause__.field == "digits"


# --------------------------------------------------------------------------- validation

DROP: Any = object()


def untyped(value: Any) -> Any:
    """Pass a wrongly typed value past the type checker, as untyped callers can."""
    return value


BASE: dict[type[Command], dict[str, Any]] = {
    Dial: {"from_": "+15559870000", "to": "+15551230001", "url": "https://example.com/swml"},
    Update: {"id": CALL, "status": "completed"},
    End: {},
    Transfer: {"dest": "+15551230001"},
    Play: {"control_id": "p", "play": [tts("hi")]},
    PlayVolume: {"control_id": "p", "volume": 0},
    Record: {"control_id": "r", "record": RecordOptions(audio=RecordAudio())},
    RecordPause: {"control_id": "r"},
    Collect: {"control_id": "c", "digits": Digits(max=1)},
    Detect: {"control_id": "d", "detect": machine_detector()},
    Tap: {"control_id": "t", "tap": tap_audio("both"), "device": rtp_device("52.1.2.3", 5004)},
    Stream: {"control_id": "s", "url": "wss://example.com/s"},
    AIHold: {},
    AIMessage: {},
    AIStop: {},
    LiveTranscribe: {"action": "stop"},
    LiveTranslate: {"action": "stop"},
    Refer: {"device": sip_device("sip:bob@example.com")},
    UserEvent: {"event": {}},
}


def build(cls: type[Command], **overrides: Any) -> Command:
    kwargs = copy.copy(BASE.get(cls, {"control_id": "x"}))
    for key, value in overrides.items():
        if value is DROP:
            kwargs.pop(key, None)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def rec(**audio_options: Any) -> RecordOptions:
    return RecordOptions(audio=RecordAudio(**audio_options))


def lt_start(**options: Any) -> LiveTranscribeAction:
    options = {"lang": "en-US", "direction": ["remote-caller"], **options}
    return LiveTranscribeAction(start=LiveTranscribeStart(**options))


def tl_start(**options: Any) -> LiveTranslateAction:
    options = {"from_lang": "en", "to_lang": "es", "direction": ["local-caller"], **options}
    return LiveTranslateAction(start=LiveTranslateStart(**options))


TWENTY_ONE = {f"v{i}": "x" for i in range(21)}
LONG_UTF8 = "é" * 513  # 1026 bytes, 513 characters

INVALID: list[Any] = [
    # -- dial: required, exactly-one, destination
    pytest.param(Dial, {"from_": ""}, "from", id="dial-from-empty"),
    pytest.param(Dial, {"to": DROP}, "to", id="dial-no-to"),
    pytest.param(Dial, {"to": ""}, "to", id="dial-to-empty"),
    pytest.param(Dial, {"to": "5551230001"}, "to", id="dial-to-not-e164"),
    pytest.param(Dial, {"to": "+0123456"}, "to", id="dial-to-e164-leading-zero"),
    pytest.param(Dial, {"to": "+1234567890123456"}, "to", id="dial-to-e164-16-digits"),
    pytest.param(Dial, {"to": "+1"}, "to", id="dial-to-e164-too-short"),
    pytest.param(Dial, {"to": "+1555123000\u0661"}, "to", id="dial-to-non-ascii-digit"),
    pytest.param(Dial, {"to": "+15551230001\n"}, "to", id="dial-to-trailing-newline"),
    pytest.param(Dial, {"to": "sip:"}, "to", id="dial-to-empty-sip"),
    pytest.param(Dial, {"to": "/"}, "to", id="dial-to-bare-fabric-slash"),
    # found by the simulator's independent oracle (tests/test_oracle.py): URLs need a
    # host and a numeric port in range; SWML documents need a main section of methods
    pytest.param(Dial, {"url": "https://:443/x"}, "url", id="url-no-host"),
    pytest.param(Dial, {"url": "https://example.com:port/x"}, "url", id="url-port-name"),
    pytest.param(Dial, {"url": "https://example.com:99999/x"}, "url", id="url-port-range"),
    pytest.param(Dial, {"url": "https://[::1/x"}, "url", id="url-open-bracket"),
    pytest.param(
        Dial,
        {"url": DROP, "swml": {"sections": {"other": []}}},
        "swml.sections.main",
        id="swml-no-main",
    ),
    pytest.param(
        Dial,
        {"url": DROP, "swml": {"sections": {"main": {"answer": {}}}}},
        "swml.sections.main",
        id="swml-section-not-a-list",
    ),
    pytest.param(
        Dial,
        {"url": DROP, "swml": {"version": 1, "sections": {"main": []}}},
        "swml.version",
        id="swml-version-not-a-string",
    ),
    pytest.param(Dial, {"url": DROP}, "url", id="dial-no-url-or-swml"),
    pytest.param(Dial, {"swml": SWML_DOC}, "swml", id="dial-url-and-swml"),
    pytest.param(Dial, {"url": "ftp://example.com/x"}, "url", id="dial-url-scheme"),
    pytest.param(Dial, {"url": "https://"}, "url", id="dial-url-no-host"),
    pytest.param(
        Dial, {"url": DROP, "swml": {"version": "1.0.0"}}, "swml", id="dial-swml-no-sections"
    ),
    pytest.param(Dial, {"url": DROP, "swml": ""}, "swml", id="dial-swml-empty-string"),
    pytest.param(Dial, {"to_script": {"main": []}}, "to_script", id="dial-to-script-shape"),
    pytest.param(Dial, {"fallback_url": "example.com"}, "fallback_url", id="dial-fallback-url"),
    pytest.param(Dial, {"status_url": "www.example.com/s"}, "status_url", id="dial-status-url"),
    pytest.param(Dial, {"status_events": ["queued"]}, "status_events[0]", id="dial-status-event"),
    pytest.param(Dial, {"url_method": "PUT"}, "url_method", id="dial-url-method"),
    pytest.param(Dial, {"url_method": "post"}, "url_method", id="dial-url-method-case"),
    pytest.param(Dial, {"codecs": ["PCMU", "MP3"]}, "codecs[1]", id="dial-codec-list"),
    pytest.param(Dial, {"codecs": "PCMU,,PCMA"}, "codecs[1]", id="dial-codec-string"),
    pytest.param(Dial, {"codecs": "pcmu"}, "codecs[0]", id="dial-codec-case"),
    pytest.param(Dial, {"codecs": []}, "codecs", id="dial-codecs-empty"),
    pytest.param(Dial, {"timeout": 0}, "timeout", id="dial-timeout-0"),
    pytest.param(Dial, {"timeout": 601}, "timeout", id="dial-timeout-601"),
    pytest.param(Dial, {"timeout": 30.5}, "timeout", id="dial-timeout-float"),
    pytest.param(Dial, {"timeout": True}, "timeout", id="dial-timeout-bool"),
    pytest.param(Dial, {"max_price_per_minute": -0.01}, "max_price_per_minute", id="dial-price"),
    pytest.param(
        Dial, {"max_price_per_minute": float("inf")}, "max_price_per_minute", id="dial-price-inf"
    ),
    pytest.param(Dial, {"send_digits": "12x"}, "send_digits", id="dial-send-digits-char"),
    pytest.param(Dial, {"send_digits": "1a"}, "send_digits", id="dial-send-digits-lower-a"),
    pytest.param(Dial, {"send_digits": "1" * 99}, "send_digits", id="dial-send-digits-99"),
    pytest.param(Dial, {"region": ""}, "region", id="dial-region-empty"),
    pytest.param(Dial, {"region": ["us", ""]}, "region[1]", id="dial-region-list"),
    pytest.param(Dial, {"username": 5}, "username", id="dial-username-type"),
    # -- dial: custom variables
    pytest.param(Dial, {"custom_variables": TWENTY_ONE}, "custom_variables", id="cv-21"),
    pytest.param(
        Dial, {"custom_variables": {"1abc": "x"}}, "custom_variables.1abc", id="cv-digit-first"
    ),
    pytest.param(Dial, {"custom_variables": {"a-b": "x"}}, "custom_variables.a-b", id="cv-dash"),
    pytest.param(Dial, {"custom_variables": {"": "x"}}, "custom_variables.", id="cv-empty-key"),
    pytest.param(Dial, {"custom_variables": {"SW_x": "x"}}, "custom_variables.SW_x", id="cv-sw"),
    pytest.param(
        Dial,
        {"custom_variables": {"SignalWire_x": "x"}},
        "custom_variables.SignalWire_x",
        id="cv-signalwire",
    ),
    pytest.param(Dial, {"custom_variables": {"rtc_x": "x"}}, "custom_variables.rtc_x", id="cv-rtc"),
    pytest.param(
        Dial,
        {"custom_variables": {"Internal_x": "x"}},
        "custom_variables.Internal_x",
        id="cv-internal",
    ),
    pytest.param(
        Dial, {"custom_variables": {"ok": ""}}, "custom_variables.ok", id="cv-empty-value"
    ),
    pytest.param(Dial, {"custom_variables": {"ok": 5}}, "custom_variables.ok", id="cv-value-type"),
    pytest.param(
        Dial, {"custom_variables": {"ok": LONG_UTF8}}, "custom_variables.ok", id="cv-1026-bytes"
    ),
    pytest.param(Dial, {"custom_variables": ["a"]}, "custom_variables", id="cv-not-dict"),
    # -- dial: headers
    pytest.param(
        Dial, {"headers": [Header(name="X-A", value="1")] * 21}, "headers", id="headers-21"
    ),
    pytest.param(
        Dial,
        {"headers": [Header(name="Identity", value="x")]},
        "headers[0].name",
        id="headers-identity",
    ),
    pytest.param(
        Dial,
        {"headers": [Header(name="X-A", value="1"), Header(name="X-ProjectId", value="x")]},
        "headers[1].name",
        id="headers-projectid",
    ),
    pytest.param(
        Dial, {"headers": [Header(name="", value="x")]}, "headers[0].name", id="headers-empty-name"
    ),
    pytest.param(
        Dial, {"headers": [Header(name="X A", value="x")]}, "headers[0].name", id="headers-bad-name"
    ),
    pytest.param(
        Dial,
        {"headers": [Header(name="X-A", value="a\r\nb")]},
        "headers[0].value",
        id="headers-crlf",
    ),
    pytest.param(
        Dial, {"headers": [Header(name="X-A", value="a\0")]}, "headers[0].value", id="headers-nul"
    ),
    pytest.param(
        Dial,
        {"headers": [Header(name="X-A", value="x" * 1025)]},
        "headers[0].value",
        id="headers-1025",
    ),
    pytest.param(
        Dial, {"headers": [{"name": "X-A", "value": "1"}]}, "headers[0]", id="headers-dict"
    ),
    # -- update
    pytest.param(Update, {"id": ""}, "id", id="update-id-empty"),
    pytest.param(Update, {"id": "call-1"}, "id", id="update-id-not-a-uuid"),
    pytest.param(Update, {"status": DROP}, "url", id="update-nothing"),
    pytest.param(Update, {"status": "ended"}, "status", id="update-status-enum"),
    pytest.param(
        Update,
        {"status": DROP, "url": "https://e.com/x", "swml": SWML_DOC},
        "swml",
        id="update-url-and-swml",
    ),
    pytest.param(Update, {"status": DROP, "url": "nope"}, "url", id="update-url"),
    pytest.param(Update, {"fallback_url": "nope"}, "fallback_url", id="update-fallback-url"),
    pytest.param(Update, {"status_url": "ftp://x/y"}, "status_url", id="update-status-url"),
    # -- end / transfer
    pytest.param(End, {"reason": "hangUp"}, "reason", id="end-reason"),
    pytest.param(Transfer, {"dest": ""}, "dest", id="transfer-empty"),
    pytest.param(Transfer, {"dest": {"main": []}}, "dest", id="transfer-swml-shape"),
    pytest.param(Transfer, {"dest": 5}, "dest", id="transfer-type"),
    # -- play
    pytest.param(Play, {"control_id": ""}, "control_id", id="play-control-id"),
    pytest.param(Play, {"play": []}, "play", id="play-empty"),
    pytest.param(Play, {"play": ["hello"]}, "play[0]", id="play-item-type"),
    pytest.param(Play, {"play": [tts("")]}, "play[0].params.text", id="tts-text-empty"),
    pytest.param(
        Play,
        {"play": [tts("x", gender=untyped("other"))]},
        "play[0].params.gender",
        id="tts-gender",
    ),
    pytest.param(
        Play, {"play": [tts("x", voice="bad voice!")]}, "play[0].params.voice", id="tts-voice"
    ),
    pytest.param(
        Play,
        {"play": [TTS(params=untyped(AudioParams(url="https://x.io/a")))]},
        "play[0].params",
        id="tts-params-type",
    ),
    pytest.param(
        Play, {"play": [tts("x"), audio("file.mp3")]}, "play[1].params.url", id="audio-url"
    ),
    pytest.param(
        Play,
        {"play": [Audio(params=AudioParams(url=""))]},
        "play[0].params.url",
        id="audio-url-empty",
    ),
    pytest.param(Play, {"play": [silence(0)]}, "play[0].params.duration", id="silence-0"),
    pytest.param(Play, {"play": [silence(-1)]}, "play[0].params.duration", id="silence-neg"),
    pytest.param(
        Play, {"play": [ringtone(untyped("xx"))]}, "play[0].params.name", id="ringtone-name"
    ),
    pytest.param(
        Play, {"play": [ringtone(untyped("US"))]}, "play[0].params.name", id="ringtone-case"
    ),
    pytest.param(
        Play,
        {"play": [ringtone("us", duration=0)]},
        "play[0].params.duration",
        id="ringtone-duration",
    ),
    pytest.param(Play, {"volume": 41}, "volume", id="play-volume-41"),
    pytest.param(Play, {"volume": -40.5}, "volume", id="play-volume-neg"),
    pytest.param(Play, {"volume": float("nan")}, "volume", id="play-volume-nan"),
    pytest.param(Play, {"volume": "5"}, "volume", id="play-volume-str"),
    pytest.param(Play, {"direction": "up"}, "direction", id="play-direction"),
    pytest.param(Play, {"loop": -1}, "loop", id="play-loop-neg"),
    pytest.param(Play, {"loop": 1.5}, "loop", id="play-loop-float"),
    pytest.param(Play, {"loop": 2**31}, "loop", id="play-loop-over-int32"),
    pytest.param(Play, {"gender": "x"}, "gender", id="play-gender"),
    pytest.param(Play, {"voice": "a b"}, "voice", id="play-voice"),
    pytest.param(Play, {"language": 5}, "language", id="play-language-type"),
    pytest.param(Play, {"status_url": "ws://x.io/s"}, "status_url", id="play-status-url"),
    pytest.param(Play, {"status_url": "https://a b/c"}, "status_url", id="url-space"),
    pytest.param(Play, {"status_url": "https://a/b\nc"}, "status_url", id="url-newline"),
    pytest.param(PlayVolume, {"volume": 40.1}, "volume", id="play-volume-cmd"),
    pytest.param(PlayVolume, {"control_id": ""}, "control_id", id="play-volume-control-id"),
    # -- record
    pytest.param(Record, {"control_id": ""}, "control_id", id="record-control-id"),
    pytest.param(Record, {"record": RecordAudio()}, "record", id="record-no-wrapper"),
    pytest.param(Record, {"record": rec(format="ogg")}, "record.audio.format", id="record-format"),
    pytest.param(
        Record, {"record": rec(direction="in")}, "record.audio.direction", id="record-direction"
    ),
    pytest.param(Record, {"record": rec(beep="yes")}, "record.audio.beep", id="record-beep"),
    pytest.param(Record, {"record": rec(stereo=1)}, "record.audio.stereo", id="record-stereo"),
    pytest.param(
        Record,
        {"record": rec(initial_timeout=-1)},
        "record.audio.initial_timeout",
        id="record-initial-timeout",
    ),
    pytest.param(
        Record,
        {"record": rec(end_silence_timeout=-0.1)},
        "record.audio.end_silence_timeout",
        id="record-end-silence",
    ),
    pytest.param(
        Record, {"record": rec(max_length=-1)}, "record.audio.max_length", id="record-max-length"
    ),
    pytest.param(
        Record,
        {"record": rec(max_length=2.5)},
        "record.audio.max_length",
        id="record-max-length-float",
    ),
    pytest.param(
        Record,
        {"record": rec(terminators="#x")},
        "record.audio.terminators",
        id="record-terminators",
    ),
    pytest.param(
        Record,
        {"record": rec(input_sensitivity=101)},
        "record.audio.input_sensitivity",
        id="record-sensitivity-high",
    ),
    pytest.param(
        Record,
        {"record": rec(input_sensitivity=-1)},
        "record.audio.input_sensitivity",
        id="record-sensitivity-low",
    ),
    pytest.param(Record, {"status_url": "hooks"}, "status_url", id="record-status-url"),
    pytest.param(RecordPause, {"behavior": "pause"}, "behavior", id="record-pause-behavior"),
    # -- collect
    pytest.param(Collect, {"digits": DROP}, "digits", id="collect-neither"),
    pytest.param(Collect, {"digits": Digits(max=0)}, "digits.max", id="digits-max-0"),
    pytest.param(
        Collect, {"digits": Digits(max=untyped(2.0))}, "digits.max", id="digits-max-float"
    ),
    pytest.param(
        Collect,
        {"digits": Digits(max=1, terminators="x")},
        "digits.terminators",
        id="digits-terminators",
    ),
    pytest.param(
        Collect,
        {"digits": Digits(max=1, digit_timeout=0)},
        "digits.digit_timeout",
        id="digits-timeout",
    ),
    pytest.param(Collect, {"digits": {"max": 1}}, "digits", id="digits-dict"),
    pytest.param(
        Collect, {"speech": Speech(engine=untyped("google"))}, "speech.engine", id="speech-engine"
    ),
    pytest.param(
        Collect,
        {"speech": Speech(end_silence_timeout=0)},
        "speech.end_silence_timeout",
        id="speech-end-silence",
    ),
    pytest.param(
        Collect, {"speech": Speech(speech_timeout=-1)}, "speech.speech_timeout", id="speech-timeout"
    ),
    pytest.param(Collect, {"initial_timeout": 0}, "initial_timeout", id="collect-initial-timeout"),
    pytest.param(Collect, {"continuous": "yes"}, "continuous", id="collect-continuous"),
    pytest.param(Collect, {"continue_": 1}, "continue", id="collect-continue"),
    pytest.param(Collect, {"status_url": "x"}, "status_url", id="collect-status-url"),
    # -- detect
    pytest.param(
        Detect, {"detect": fax_detector(untyped("XYZ"))}, "detect.params.tone", id="detect-fax-tone"
    ),
    pytest.param(
        Detect, {"detect": digit_detector("12e")}, "detect.params.digits", id="detect-digits"
    ),
    pytest.param(
        Detect,
        {"detect": machine_detector(initial_timeout=-1)},
        "detect.params.initial_timeout",
        id="detect-machine-timeout",
    ),
    pytest.param(
        Detect,
        {"detect": machine_detector(machine_words_threshold=untyped(1.5))},
        "detect.params.machine_words_threshold",
        id="detect-words",
    ),
    pytest.param(
        Detect,
        {"detect": machine_detector(detect_message_end=untyped("no"))},
        "detect.params.detect_message_end",
        id="detect-bool",
    ),
    pytest.param(Detect, {"detect": "machine"}, "detect", id="detect-type"),
    pytest.param(Detect, {"timeout": -1}, "timeout", id="detect-timeout"),
    pytest.param(Detect, {"status_url": "x"}, "status_url", id="detect-status-url"),
    # -- tap
    pytest.param(
        Tap, {"tap": tap_audio(untyped("sideways"))}, "tap.params.direction", id="tap-direction"
    ),
    pytest.param(
        Tap, {"device": rtp_device("10.0.0.1", 5004)}, "device.params.addr", id="rtp-private"
    ),
    pytest.param(
        Tap, {"device": rtp_device("127.0.0.1", 5004)}, "device.params.addr", id="rtp-loopback"
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("192.168.1.20", 5004)},
        "device.params.addr",
        id="rtp-private-192",
    ),
    pytest.param(
        Tap, {"device": rtp_device("100.64.0.1", 5004)}, "device.params.addr", id="rtp-shared"
    ),
    pytest.param(
        Tap, {"device": rtp_device("169.254.1.1", 5004)}, "device.params.addr", id="rtp-link-local"
    ),
    pytest.param(
        Tap, {"device": rtp_device("240.0.0.1", 5004)}, "device.params.addr", id="rtp-reserved"
    ),
    pytest.param(
        Tap, {"device": rtp_device("224.0.0.1", 5004)}, "device.params.addr", id="rtp-multicast"
    ),
    pytest.param(
        Tap, {"device": rtp_device("0.0.0.0", 5004)}, "device.params.addr", id="rtp-unspecified"
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("203.0.113.9", 5004)},
        "device.params.addr",
        id="rtp-documentation",
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("192.0.0.255", 5004)},
        "device.params.addr",
        id="rtp-ietf-protocol-assignments",
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("tap.example.com", 5004)},
        "device.params.addr",
        id="rtp-hostname",
    ),
    pytest.param(
        Tap, {"device": rtp_device("2001:4860::1", 5004)}, "device.params.addr", id="rtp-ipv6"
    ),
    pytest.param(Tap, {"device": rtp_device("52.1.2.3", 0)}, "device.params.port", id="rtp-port-0"),
    pytest.param(
        Tap, {"device": rtp_device("52.1.2.3", 65536)}, "device.params.port", id="rtp-port-high"
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("52.1.2.3", 5004, ptime=25)},
        "device.params.ptime",
        id="rtp-ptime-25",
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("52.1.2.3", 5004, ptime=0)},
        "device.params.ptime",
        id="rtp-ptime-0",
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("52.1.2.3", 5004, ptime=130)},
        "device.params.ptime",
        id="rtp-ptime-130",
    ),
    pytest.param(
        Tap,
        {"device": rtp_device("52.1.2.3", 5004, codec=untyped("G711"))},
        "device.params.codec",
        id="rtp-codec",
    ),
    pytest.param(Tap, {"device": ws_device("https://x.io/t")}, "device.params.uri", id="ws-uri"),
    pytest.param(
        Tap,
        {"device": ws_device("wss://x.io/t", codec=untyped("Opus"))},
        "device.params.codec",
        id="ws-codec",
    ),
    pytest.param(Tap, {"device": {"type": "ws"}}, "device", id="tap-device-dict"),
    pytest.param(Tap, {"status_url": "x"}, "status_url", id="tap-status-url"),
    # -- stream
    pytest.param(Stream, {"url": "ws://example.com/s"}, "url", id="stream-ws"),
    pytest.param(Stream, {"url": "https://example.com/s"}, "url", id="stream-https"),
    pytest.param(Stream, {"track": "left"}, "track", id="stream-track"),
    pytest.param(Stream, {"status_url_method": "PUT"}, "status_url_method", id="stream-method"),
    pytest.param(
        Stream, {"custom_parameters": [1]}, "custom_parameters", id="stream-custom-params"
    ),
    pytest.param(Stream, {"status_url": "x"}, "status_url", id="stream-status-url"),
    pytest.param(Stream, {"control_id": ""}, "control_id", id="stream-control-id"),
    # -- AI
    pytest.param(AIHold, {"timeout": "30s"}, "timeout", id="ai-hold-units"),
    pytest.param(AIHold, {"timeout": ""}, "timeout", id="ai-hold-empty"),
    pytest.param(AIHold, {"timeout": "-5"}, "timeout", id="ai-hold-negative"),
    pytest.param(AIHold, {"timeout": 300}, "timeout", id="ai-hold-int"),
    pytest.param(AIMessage, {"role": "bot"}, "role", id="ai-message-role"),
    pytest.param(
        AIMessage, {"reset": AIReset(full_reset=untyped("yes"))}, "reset.full_reset", id="ai-reset"
    ),
    pytest.param(AIMessage, {"global_data": []}, "global_data", id="ai-global-data"),
    pytest.param(AIStop, {"control_id": 5}, "control_id", id="ai-stop-control-id"),
    # -- live transcribe / translate
    pytest.param(LiveTranscribe, {"action": "start"}, "action", id="lt-bare-start"),
    pytest.param(LiveTranscribe, {"action": LiveTranscribeAction()}, "action", id="lt-no-key"),
    pytest.param(
        LiveTranscribe,
        {"action": LiveTranscribeAction(start=lt_start().start, summarize=LiveSummarize())},
        "action",
        id="lt-two-keys",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": live_translate_inject("m", "local-caller")},
        "action",
        id="lt-translate-action",
    ),
    pytest.param(LiveTranscribe, {"action": lt_start(lang="")}, "action.start.lang", id="lt-lang"),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(direction=[])},
        "action.start.direction",
        id="lt-direction-empty",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(direction=["caller"])},
        "action.start.direction[0]",
        id="lt-direction-enum",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(speech_timeout=1499)},
        "action.start.speech_timeout",
        id="lt-speech-timeout",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(vad_thresh=1801)},
        "action.start.vad_thresh",
        id="lt-vad-high",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(vad_thresh=-1)},
        "action.start.vad_thresh",
        id="lt-vad-low",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(debug_level=3)},
        "action.start.debug_level",
        id="lt-debug-level",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(speech_engine="Deepgram")},
        "action.start.speech_engine",
        id="lt-engine-case",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(webhook="nope")},
        "action.start.webhook",
        id="lt-webhook",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": lt_start(live_events="yes")},
        "action.start.live_events",
        id="lt-live-events",
    ),
    pytest.param(
        LiveTranscribe,
        {"action": live_transcribe_summarize(webhook="x")},
        "action.summarize.webhook",
        id="lt-summarize-webhook",
    ),
    pytest.param(
        LiveTranslate,
        {"action": tl_start(from_lang="")},
        "action.start.from_lang",
        id="tl-from-lang",
    ),
    pytest.param(
        LiveTranslate, {"action": tl_start(to_lang="")}, "action.start.to_lang", id="tl-to-lang"
    ),
    pytest.param(
        LiveTranslate,
        {"action": tl_start(filter_from="angry")},
        "action.start.filter_from",
        id="tl-filter-preset",
    ),
    pytest.param(
        LiveTranslate,
        {"action": tl_start(filter_to="prompt:")},
        "action.start.filter_to",
        id="tl-filter-prompt-empty",
    ),
    pytest.param(
        LiveTranslate, {"action": tl_start(vad_thresh=5000)}, "action.start.vad_thresh", id="tl-vad"
    ),
    pytest.param(
        LiveTranslate,
        {"action": live_translate_inject("", "local-caller")},
        "action.inject.message",
        id="tl-inject-message",
    ),
    pytest.param(
        LiveTranslate,
        {"action": LiveTranslateAction(inject=LiveInject(message="m", direction=untyped("both")))},
        "action.inject.direction",
        id="tl-inject-direction",
    ),
    pytest.param(
        LiveTranslate,
        {
            "action": LiveTranslateAction(
                summarize=LiveSummarize(), inject=LiveInject(message="m", direction="local-caller")
            )
        },
        "action",
        id="tl-two-keys",
    ),
    pytest.param(LiveTranslate, {"status_url": "x"}, "status_url", id="tl-status-url"),
    # -- refer / user event
    pytest.param(
        Refer, {"device": sip_device("tel:+15551230001")}, "device.params.to", id="refer-to-tel"
    ),
    pytest.param(
        Refer,
        {"device": sip_device("sips:bob@example.com")},
        "device.params.to",
        id="refer-to-sips",
    ),
    pytest.param(Refer, {"device": sip_device("sip:")}, "device.params.to", id="refer-to-empty"),
    pytest.param(
        Refer,
        {"device": sip_device("sip:b@x", from_="alice@x")},
        "device.params.from",
        id="refer-from",
    ),
    pytest.param(Refer, {"status_url": "x"}, "status_url", id="refer-status-url"),
    pytest.param(UserEvent, {"event": []}, "event", id="user-event-type"),
]


@pytest.mark.parametrize(("cls", "overrides", "field"), INVALID)
def test_invalid_input_is_refused_naming_the_field(
    cls: type[Command], overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        build(cls, **overrides)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "cls",
    [
        cls
        for cls in COMMANDS.values()
        if "control_id" in cls.__struct_fields__ and cls is not AIStop
    ],
)
def test_control_id_must_not_be_empty(cls: type[Command]) -> None:
    with pytest.raises(ValidationError) as info:
        build(cls, control_id="")
    assert info.value.field == "control_id"


VALID_EDGES: list[Any] = [
    pytest.param(Dial, {"timeout": 1}, id="dial-timeout-1"),
    pytest.param(Dial, {"timeout": 600}, id="dial-timeout-600"),
    pytest.param(Dial, {"max_price_per_minute": 0}, id="dial-price-0"),
    pytest.param(Dial, {"send_digits": "0123456789ABCD*#w," + "1" * 80}, id="dial-send-digits-98"),
    pytest.param(Dial, {"to": "sips:bob@example.com"}, id="dial-to-sips"),
    pytest.param(Dial, {"to": "verto:alice@example.com"}, id="dial-to-verto"),
    pytest.param(Dial, {"to": "client:alice"}, id="dial-to-client"),
    pytest.param(Dial, {"to": "/public/my-room"}, id="dial-to-fabric"),
    pytest.param(Dial, {"to": "+123456789012345"}, id="dial-to-e164-15-digits"),
    pytest.param(
        Dial, {"to": DROP, "to_script": "https://example.com/leg.swml"}, id="dial-to-script-only"
    ),
    pytest.param(Dial, {"url": DROP, "swml": '{"sections":{"main":[]}}'}, id="dial-swml-string"),
    pytest.param(Dial, {"custom_variables": {f"v{i}": "x" for i in range(20)}}, id="cv-20"),
    pytest.param(Dial, {"custom_variables": {"ok": "é" * 512}}, id="cv-1024-bytes"),
    pytest.param(Dial, {"custom_variables": {"swx": "x", "my_sw_var": "y"}}, id="cv-not-prefix"),
    pytest.param(Dial, {"headers": [Header(name="X-A", value="v" * 1024)] * 20}, id="headers-20"),
    pytest.param(Dial, {"headers": [Header(name="X-A", value="")]}, id="headers-empty-value"),
    pytest.param(Dial, {"codecs": "PCMU, PCMA"}, id="codecs-string-space"),
    pytest.param(Update, {"status": DROP, "url": "http://example.com/x"}, id="update-url-only"),
    # both spec variants of update carry status as optional beside url or swml
    pytest.param(Update, {"url": "https://example.com/x"}, id="update-status-and-url"),
    pytest.param(Update, {"swml": SWML_DOC}, id="update-status-and-swml"),
    # hints are string[] with no constraint on the strings
    pytest.param(Collect, {"speech": Speech(hints=["ok", ""])}, id="speech-hints-empty-item"),
    pytest.param(Play, {"loop": 2**31 - 1}, id="play-loop-int32-max"),
    pytest.param(Play, {"volume": -40}, id="play-volume-min"),
    pytest.param(Play, {"volume": 40.0}, id="play-volume-max"),
    pytest.param(Play, {"loop": 0}, id="play-loop-0"),
    pytest.param(Play, {"play": (tts("a"), tts("b"))}, id="play-tuple"),
    pytest.param(PlayVolume, {"volume": 40}, id="play-volume-cmd-max"),
    pytest.param(
        Record,
        {"record": rec(input_sensitivity=0, max_length=0, terminators="")},
        id="record-zeros",
    ),
    pytest.param(
        Record,
        {"record": rec(input_sensitivity=100, terminators="0123456789ABCDabcd*#")},
        id="record-max",
    ),
    pytest.param(Collect, {"digits": Digits(max=1, terminators="")}, id="digits-terminators-empty"),
    pytest.param(Detect, {"detect": digit_detector("")}, id="detect-digits-empty"),
    pytest.param(Detect, {"detect": fax_detector("cng")}, id="detect-fax-lower"),
    pytest.param(Tap, {"device": rtp_device("8.8.8.8", 1, ptime=10)}, id="rtp-port-1-ptime-10"),
    pytest.param(
        Tap, {"device": rtp_device("8.8.8.8", 65535, ptime=120, codec="opus")}, id="rtp-port-max"
    ),
    pytest.param(AIHold, {"timeout": "0"}, id="ai-hold-zero"),
    pytest.param(
        LiveTranscribe, {"action": lt_start(speech_timeout=1500, vad_thresh=0)}, id="lt-mins"
    ),
    pytest.param(
        LiveTranslate,
        {"action": tl_start(filter_from="gen-z", filter_to="prompt:x")},
        id="tl-filters",
    ),
]


@pytest.mark.parametrize(("cls", "overrides"), VALID_EDGES)
def test_boundary_values_are_accepted(cls: type[Command], overrides: dict[str, Any]) -> None:
    cmd = build(cls, **overrides)
    body = msgspec.json.decode(encode_command(cmd, CALL))
    assert body["command"] == cls.command


def test_factories_take_none_for_omitted() -> None:
    assert tts("x", voice=None) == TTS(params=cmds.TTSParams(text="x"))
    assert ringtone("us", duration=None).params.duration is msgspec.UNSET
    assert fax_detector(None).params == cmds.FaxDetectorParams()
    assert sip_device("sip:a@b", from_=None).params.from_ is msgspec.UNSET


# --------------------------------------------------------------------------- immutability


def test_commands_and_options_cannot_be_changed_after_they_are_built() -> None:
    end = End(reason="hangup")
    with pytest.raises(AttributeError):
        end.reason = "bogus"  # type: ignore[misc, assignment]
    vol = PlayVolume(control_id="p", volume=3)
    with pytest.raises(AttributeError):
        vol.volume = 500  # type: ignore[misc]
    play = Play(control_id="p", play=[tts("Hello")])
    item = play.play[0]
    assert isinstance(item, TTS)
    with pytest.raises(AttributeError):
        item.params.text = ""  # type: ignore[misc]
    if sys.version_info < (3, 13):  # from 3.13 on, object.__setattr__ sets a frozen Struct
        with pytest.raises(TypeError):
            object.__setattr__(play, "control_id", "")
    assert msgspec.json.decode(encode_command(end, CALL))["params"] == {"reason": "hangup"}
    assert msgspec.json.decode(encode_command(vol, CALL))["params"]["volume"] == 3


def test_stored_sequences_are_tuples_without_append() -> None:
    play = Play(control_id="p", play=[tts("Hello")])
    assert type(play.play) is tuple
    assert not hasattr(play.play, "append")
    with pytest.raises(AttributeError):
        play.play.append(tts("x"))  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        play.play[0] = tts("x")  # type: ignore[index]
    dial = build(Dial, status_events=["answered"], codecs=["PCMU"], region=["us"])
    assert isinstance(dial, Dial)
    assert (dial.status_events, dial.codecs, dial.region) == (("answered",), ("PCMU",), ("us",))
    assert type(Speech(hints=["a"]).hints) is tuple
    assert type(LiveTranscribeStart(lang="en", direction=["local-caller"]).direction) is tuple


def test_later_changes_to_the_callers_containers_are_not_sent() -> None:
    items = [tts("Hello")]
    variables = {"customer": "42"}
    headers = [Header(name="X-A", value="1")]
    hints = ["sales"]
    play = Play(control_id="p", play=items)
    dial = build(Dial, custom_variables=variables, headers=headers)
    collect = Collect(control_id="c", speech=Speech(hints=hints))
    items.append(cast_any("not a media item"))
    variables["sw_bogus"] = ""
    variables["customer"] = "changed"
    headers.append(Header(name="Identity", value="x"))
    hints.append("")
    assert msgspec.json.decode(encode_command(play, CALL))["params"]["play"] == [
        {"type": "tts", "params": {"text": "Hello"}}
    ]
    params = msgspec.json.decode(encode_command(dial))["params"]
    assert params["custom_variables"] == {"customer": "42"}
    assert params["headers"] == [{"name": "X-A", "value": "1"}]
    assert msgspec.json.decode(encode_command(collect, CALL))["params"]["speech"] == {
        "hints": ["sales"]
    }


def test_checked_dicts_are_read_only() -> None:
    dial = build(Dial, custom_variables={"customer": "42"})
    assert isinstance(dial, Dial)
    stored = dial.custom_variables
    assert isinstance(stored, dict)
    mutations: list[Callable[[], object]] = [
        lambda: stored.__setitem__("sw_x", "y"),
        lambda: stored.__delitem__("customer"),
        lambda: stored.update(sw_x="y"),
        lambda: stored.setdefault("sw_x", "y"),
        lambda: stored.pop("customer"),
        lambda: stored.popitem(),
        lambda: stored.clear(),
        lambda: stored.__ior__({"sw_x": "y"}),
    ]
    for mutate in mutations:
        with pytest.raises(TypeError, match="cannot change"):
            mutate()
    assert stored == {"customer": "42"}
    assert msgspec.json.decode(encode_command(dial))["params"]["custom_variables"] == stored


def test_plain_json_payloads_are_sent_as_they_are_at_send_time() -> None:
    event: dict[str, Any] = {"type": "greeting"}
    cmd = UserEvent(event=event)
    event["n"] = 1  # documented: a payload dict is only type-checked, not copied
    assert msgspec.json.decode(encode_command(cmd, CALL))["params"]["event"] == {
        "type": "greeting",
        "n": 1,
    }


def test_replace_copy_and_pickle_keep_commands_checked() -> None:
    import pickle

    dial = build(Dial, custom_variables={"a": "1"}, headers=[Header(name="X-A", value="1")])
    for other in (copy.copy(dial), copy.deepcopy(dial), pickle.loads(pickle.dumps(dial))):
        assert other == dial
        assert encode_command(other) == encode_command(dial)
    play = Play(control_id="p", play=[tts("hi")])
    with pytest.raises(ValidationError) as info:
        msgspec.structs.replace(play, volume=500)
    assert info.value.field == "volume"
    assert msgspec.structs.replace(play, volume=5).volume == 5
    assert hash(play) == hash(Play(control_id="p", play=(tts("hi"),)))


def cast_any(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- annotations
# The rules live in the annotations: msgspec enforces them on decode, the compiled
# validator on construction, and the two must agree.

PYTHON_ONLY = {
    # a dict where an option Struct is expected: refused in code, a valid object on the wire
    "digits-dict",
    "headers-dict",
}

# Refused by a rule msgspec cannot state (a checker in the annotation, a rule spanning
# fields, finite floats): msgspec's own decode accepts these, the validator refuses them.
RULES_IN_CODE = {
    "dial-no-to",
    "dial-to-not-e164",
    "dial-to-e164-leading-zero",
    "dial-to-e164-16-digits",
    "dial-to-e164-too-short",
    "dial-to-non-ascii-digit",
    "dial-to-trailing-newline",
    "dial-to-empty-sip",
    "dial-no-url-or-swml",
    "dial-url-and-swml",
    "dial-url-scheme",
    "dial-url-no-host",
    "dial-swml-no-sections",
    "dial-to-script-shape",
    "dial-fallback-url",
    "dial-status-url",
    "dial-codec-string",
    "dial-codec-case",
    "dial-price-inf",
    "cv-sw",
    "cv-signalwire",
    "cv-rtc",
    "cv-internal",
    "cv-1026-bytes",
    "headers-identity",
    "headers-projectid",
    "headers-bad-name",
    "headers-crlf",
    "headers-nul",
    "headers-1025",
    "update-nothing",
    "dial-to-bare-fabric-slash",
    "url-no-host",
    "url-port-name",
    "url-port-range",
    "url-open-bracket",
    "swml-no-main",
    "swml-section-not-a-list",
    "swml-version-not-a-string",
    "update-url-and-swml",
    "update-url",
    "update-fallback-url",
    "update-status-url",
    "transfer-swml-shape",
    "tts-text-empty",
    "audio-url",
    "audio-url-empty",
    "play-status-url",
    "url-space",
    "url-newline",
    "record-status-url",
    "collect-neither",
    "collect-status-url",
    "detect-status-url",
    "rtp-private",
    "rtp-loopback",
    "rtp-private-192",
    "rtp-shared",
    "rtp-link-local",
    "rtp-reserved",
    "rtp-multicast",
    "rtp-unspecified",
    "rtp-documentation",
    "rtp-ietf-protocol-assignments",
    "rtp-hostname",
    "rtp-ipv6",
    "ws-uri",
    "tap-status-url",
    "stream-ws",
    "stream-https",
    "stream-status-url",
    "lt-no-key",
    "lt-two-keys",
    "lt-webhook",
    "lt-summarize-webhook",
    "tl-two-keys",
    "tl-status-url",
    "refer-status-url",
}


# the rules that span several fields, in the commands' __post_init__
CROSS_FIELD = {
    "dial-no-to",
    "dial-no-url-or-swml",
    "dial-url-and-swml",
    "update-nothing",
    "update-url-and-swml",
    "collect-neither",
}


def wire_params(cls: type[Command], overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``params`` the same keyword arguments would put on the wire, unchecked."""
    kwargs = copy.copy(BASE.get(cls, {"control_id": "x"}))
    for key, value in overrides.items():
        if value is DROP:
            kwargs.pop(key, None)
        else:
            kwargs[key] = value
    names = {f.name: f.encode_name for f in msgspec.structs.fields(cls)}
    return {names[key]: msgspec.to_builtins(value) for key, value in kwargs.items()}


def refused_at(exc: msgspec.ValidationError) -> str:
    """The field a decode error names: our validator's path, or msgspec's own."""
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        return cause.field
    text = str(exc)
    path = text.rpartition("`$")[2].rstrip("`")
    return path.lstrip(".").replace("[...]", "")


@pytest.fixture
def msgspec_rules_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode with msgspec's own checks only: the compiled validators just freeze."""

    class FreezeOnly(dict[type, Any]):
        def __missing__(self, cls: type) -> Any:
            return _validate.freeze

    monkeypatch.setattr(cmds, "VALIDATORS", FreezeOnly())
    Play(control_id="p", play=[tts("")], volume=500)  # nothing checked now


@pytest.mark.parametrize(("cls", "overrides", "field"), INVALID)
def test_decode_refuses_what_construction_refuses(
    cls: type[Command], overrides: dict[str, Any], field: str, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.id
    if case in PYTHON_ONLY:
        with pytest.raises(ValidationError):
            build(cls, **overrides)
        msgspec.convert(wire_params(cls, overrides), cls)  # a valid wire body
        return
    wire = wire_params(cls, overrides)
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(wire, cls)
    at = refused_at(info.value)
    assert field == at or field.startswith((f"{at}.", f"{at}[")), (field, str(info.value))


@pytest.mark.usefixtures("msgspec_rules_only")
@pytest.mark.parametrize(("cls", "overrides", "field"), INVALID)
def test_msgspec_alone_refuses_exactly_the_annotation_rules(
    cls: type[Command], overrides: dict[str, Any], field: str, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.id
    wire = wire_params(cls, overrides)
    if case in PYTHON_ONLY:
        return
    if case in RULES_IN_CODE:
        if case in CROSS_FIELD:  # __post_init__ still holds these rules
            with pytest.raises(msgspec.ValidationError) as cross:
                msgspec.convert(wire, cls)
            assert isinstance(cross.value.__cause__, ValidationError), str(cross.value)
            assert cross.value.__cause__.field == field
        else:
            assert msgspec.convert(wire, cls) is not None
        return
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(wire, cls)
    assert info.value.__cause__ is None, "refused by code, not by the annotation"
    at = refused_at(info.value)
    assert field == at or field.startswith((f"{at}.", f"{at}[")), (field, str(info.value))


@pytest.mark.parametrize(("cls", "overrides"), VALID_EDGES)
def test_decode_accepts_what_construction_accepts(
    cls: type[Command], overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = build(cls, **overrides)
    wire = msgspec.json.decode(encode_command(cmd, CALL))["params"]
    assert msgspec.convert(wire, cls) == cmd
    assert msgspec.json.decode(msgspec.json.encode(wire), type=cls) == cmd
    monkeypatch.setattr(cmds, "VALIDATORS", {})  # any validator lookup now fails loudly
    with pytest.raises(KeyError):
        msgspec.convert(wire, cls)


def test_json_schema_shows_the_rules() -> None:
    defs = msgspec.json.schema(Play)["$defs"]
    play = defs["Play"]["properties"]
    assert play["volume"]["minimum"] == -40
    assert play["volume"]["maximum"] == 40
    assert play["control_id"]["minLength"] == 1
    assert play["play"]["minItems"] == 1
    assert play["gender"]["enum"] == ["female", "male"]
    assert "pattern" in play["voice"]
    assert play["loop"]["minimum"] == 0
    assert defs["SilenceParams"]["properties"]["duration"]["exclusiveMinimum"] == 0
    dial = msgspec.json.schema(Dial)["$defs"]["Dial"]["properties"]
    assert dial["timeout"]["minimum"] == 1
    assert dial["timeout"]["maximum"] == 600
    assert dial["custom_variables"]["maxProperties"] == 20
    assert "pattern" in dial["custom_variables"]["propertyNames"]
    assert dial["headers"]["maxItems"] == 20
    assert dial["send_digits"]["maxLength"] == 98
    tap = msgspec.json.schema(Tap)["$defs"]["RTPDeviceParams"]["properties"]
    assert tap["ptime"]["multipleOf"] == 10
    assert tap["port"]["maximum"] == 65535


def test_msgspec_ignores_checker_metadata() -> None:
    web_url = Annotated[str, _validate.Url("http://", "https://")]
    assert (
        msgspec.convert("ftp://not-checked-by-msgspec", web_url) == "ftp://not-checked-by-msgspec"
    )
    assert msgspec.json.schema(web_url) == {"type": "string"}
    ipv4 = Annotated[str, _validate.PublicIPv4()]
    assert msgspec.json.decode(b'"10.0.0.1"', type=ipv4) == "10.0.0.1"


def test_patterns_refuse_a_trailing_newline_like_the_checks_they_replace() -> None:
    cases: list[tuple[type[Command], dict[str, Any], str]] = [
        (AIHold, {"timeout": "300\n"}, "timeout"),
        (Collect, {"digits": Digits(max=1, terminators="#\n")}, "digits.terminators"),
        (Play, {"voice": "Polly.Amy\n"}, "voice"),
        (Dial, {"custom_variables": {"name\n": "x"}}, "custom_variables.name\n"),
    ]
    for cls, overrides, field in cases:
        with pytest.raises(ValidationError) as info:
            build(cls, **overrides)
        assert info.value.field == field
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(wire_params(cls, overrides), cls)


def test_validator_is_compiled_once_per_class() -> None:
    first = _validate.validator(Play)
    for _ in range(3):
        Play(control_id="p", play=[tts("hi")])
    assert _validate.validator(Play) is first
    assert _validate.VALIDATORS[Play] is first
    source = _validate.source_of(Play)
    assert source.startswith("def validate_Play(self):")
    assert "play[{_index(v0, x0)}].params.text" in source


def test_every_command_and_option_compiles() -> None:
    structs = [
        value
        for value in vars(cmds).values()
        if isinstance(value, type) and issubclass(value, msgspec.Struct)
    ]
    assert len(structs) > 70
    for cls in structs:
        assert callable(_validate.validator(cls))


def test_unsupported_annotations_are_refused_when_compiled() -> None:
    class Ints(msgspec.Struct, frozen=True):
        numbers: set[int]

    class BadMeta(msgspec.Struct, frozen=True):
        n: Annotated[int, msgspec.Meta(pattern="^1$")]

    class Unfrozen(msgspec.Struct, frozen=True):
        items: list[int]

    for cls, match in [(Ints, "unsupported"), (BadMeta, "pattern"), (Unfrozen, "__post_init__")]:
        with pytest.raises(TypeError, match=match):
            _validate.validator(cls)


def test_str_subclasses_are_accepted_like_strings() -> None:
    import enum

    class Voice(enum.StrEnum):
        FEMALE = "female"

    female = cast_any(Voice.FEMALE)
    play = Play(control_id="p", play=[tts("hi", gender=female)], gender=female)
    assert msgspec.json.decode(encode_command(play, CALL))["params"]["gender"] == "female"


def test_errors_say_what_is_allowed() -> None:
    cases: list[tuple[type[Command], dict[str, Any], str]] = [
        (Play, {"volume": 41}, "must be between -40 and 40, got 41"),
        (Play, {"direction": "up"}, "must be one of 'both', 'listen', 'speak'; got 'up'"),
        (Play, {"loop": True}, "must be an integer, got True"),
        (Play, {"play": []}, "must be a non-empty list of media items"),
        (AIHold, {"timeout": "30s"}, 'must be a string of whole seconds such as "300"'),
        (Dial, {"send_digits": "1" * 99}, "must be at most 98 of 0-9, A-D, *, #, w"),
        (Dial, {"headers": [Header(name="X", value="1")] * 21}, "at most 20 items allowed"),
        (Tap, {"device": rtp_device("52.1.2.3", 5004, ptime=25)}, "a multiple of 10 from 10"),
        (Collect, {"digits": Digits(max=1, terminators="x")}, "must be DTMF characters"),
        (Dial, {"custom_variables": {"sw_x": "1"}}, "names starting with signalwire_, sw_"),
        (Refer, {"device": sip_device("tel:+1")}, "must be a SIP URI starting with 'sip:'"),
    ]
    for cls, overrides, text in cases:
        with pytest.raises(ValidationError) as info:
            build(cls, **overrides)
        assert text in info.value.reason, info.value.reason


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(ValidationError) as info:
        build(AIHold, timeout="9" * 500 + "x")
    assert len(info.value.reason) < 200


# --------------------------------------------------------------------------- registry


def test_defining_a_command_registers_it() -> None:
    class Probe(Command, frozen=True):
        command: ClassVar[str] = "calling.test_probe"

        note: str

    try:
        assert COMMANDS["calling.test_probe"] is Probe
        assert Probe.id_location == "top"
        assert Probe.control is False
        assert msgspec.json.decode(encode_command(Probe(note="n"), CALL)) == top(
            "calling.test_probe", {"note": "n"}
        )
        with pytest.raises(ValidationError) as info:
            Probe(note=cast_any(5))
        assert info.value.field == "note"

        class Child(Probe, frozen=True):  # no command of its own: not registered
            pass

        assert COMMANDS["calling.test_probe"] is Probe
        assert Child not in COMMANDS.values()
        with pytest.raises(TypeError, match="already"):

            class Twin(Command, frozen=True):
                command: ClassVar[str] = "calling.test_probe"

    finally:
        COMMANDS.pop("calling.test_probe", None)
    assert len(COMMANDS) == 37
