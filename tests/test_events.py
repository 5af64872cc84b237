"""Every webhook shape of the API decodes to its typed event with the right values."""

from __future__ import annotations

import pytest

from signalwire_calls._codec import decode_event, encode_event
from signalwire_calls.events import (
    CALL_DOCUMENT_EVENT_TYPE,
    END_REASONS,
    CallStateEvent,
    CollectEvent,
    CollectParams,
    CollectResultInfo,
    DetectEvent,
    Event,
    FaxEvent,
    PlayEvent,
    PlayParams,
    RecordEvent,
    RecordInfo,
    RecordParams,
    ReferEvent,
    StreamEvent,
    TapEvent,
    TranscriptCompletedEvent,
    TranscriptFailedEvent,
    UnknownEvent,
)

CALL = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
NODE = "fa3570ae-f8bd-42c2-83f4-9950d906c91b@us-west"
SEG = "b5d63b2e-f75b-4dc8-b6d4-269b635f96c0"
PROJECT = "4b7ae78a-d02e-4889-a63b-08b156d5916e"
SPACE = "62615f44-2a34-4235-b38b-76b5a1de6ef8"


def envelope(event_type: str, params: str) -> bytes:
    return (
        f'{{"event_type":"{event_type}","event_channel":"swml:{SPACE}",'
        f'"timestamp":1640000000.123,"project_id":"{PROJECT}","space_id":"{SPACE}",'
        f'"params":{params}}}'
    ).encode()


# --------------------------------------------------------------------------- call state


def test_call_state_phone_ended() -> None:
    body = envelope(
        "calling.call.state",
        f'{{"call_id":"{CALL}","node_id":"{NODE}","segment_id":"{SEG}","tag":"t1",'
        '"call_state":"ended","direction":"outbound",'
        '"device":{"type":"phone","params":{"from_number":"+12135877632",'
        '"to_number":"+12089806814"}},"end_reason":"noAnswer",'
        f'"peer":{{"call_id":"peer-1","node_id":"{NODE}"}}}}',
    )
    event = decode_event(body)
    assert isinstance(event, CallStateEvent)
    p = event.params
    assert (p.call_state, p.direction, p.end_reason, p.tag) == (
        "ended",
        "outbound",
        "noAnswer",
        "t1",
    )
    assert p.device is not None
    assert p.device.type == "phone"
    assert p.device.params is not None
    assert p.device.params.from_number == "+12135877632"
    assert p.device.params.to_number == "+12089806814"
    assert p.peer is not None
    assert p.peer.call_id == "peer-1"
    assert event.call_id == CALL
    assert event.control_id is None
    assert event.is_terminal
    assert event.timestamp == pytest.approx(1640000000.123)
    assert (event.project_id, event.space_id) == (PROJECT, SPACE)
    assert event.event_channel == f"swml:{SPACE}"
    assert event.event_type == "calling.call.state"


@pytest.mark.parametrize("state", ["created", "ringing", "answered", "ending"])
def test_call_state_not_terminal(state: str) -> None:
    event = decode_event(
        envelope(
            "calling.call.state",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","call_state":"{state}",'
            '"direction":"inbound","end_reason":null}',
        )
    )
    assert isinstance(event, CallStateEvent)
    assert event.params.call_state == state
    assert event.params.end_reason is None
    assert not event.is_terminal


@pytest.mark.parametrize("reason", sorted(END_REASONS))
def test_call_state_end_reasons_of_both_vocabularies(reason: str) -> None:
    event = decode_event(
        envelope("calling.call.state", f'{{"call_id":"{CALL}","call_state":"ended",'
                 f'"end_reason":"{reason}"}}')
    )  # fmt: skip
    assert isinstance(event, CallStateEvent)
    assert event.params.end_reason == reason


def test_call_state_sip_device_and_new_end_reason() -> None:
    event = decode_event(
        envelope(
            "calling.call.state",
            f'{{"call_id":"{CALL}","call_state":"ended","end_reason":"brand_new_reason",'
            '"device":{"type":"sip","params":{"from":"sip:a@x","to":"sip:b@y",'
            '"headers":[{"name":"X","value":"1"}]}}}',
        )
    )
    assert isinstance(event, CallStateEvent)
    assert event.params.end_reason == "brand_new_reason"
    assert event.params.device is not None
    assert event.params.device.params is not None
    assert event.params.device.params.from_ == "sip:a@x"
    assert event.params.device.params.to == "sip:b@y"


# --------------------------------------------------------------------------- play


@pytest.mark.parametrize(
    ("state", "terminal"),
    [("playing", False), ("paused", False), ("finished", True), ("error", True)],
)
def test_play(state: str, terminal: bool) -> None:
    event = decode_event(
        envelope(
            "calling.call.play",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","control_id":"play-1","state":"{state}"}}',
        )
    )
    assert isinstance(event, PlayEvent)
    assert event.params.state == state
    assert event.is_terminal is terminal
    assert event.params.is_terminal is terminal
    assert (event.call_id, event.control_id) == (CALL, "play-1")


def test_play_signed_vector_body_of_spec_6_4_b() -> None:
    body = (
        b'{"event_type":"calling.call.play","params":{"call_id":'
        b'"3fa85f64-5717-4562-b3fc-2c963f66afa6","control_id":"play-1","state":"finished"}}'
    )
    event = decode_event(body)
    assert isinstance(event, PlayEvent)
    assert event.is_terminal
    assert event.timestamp is None
    assert event.event_channel is None
    assert encode_event(event) == body


# --------------------------------------------------------------------------- record


def test_record_top_level_results() -> None:
    event = decode_event(
        envelope(
            "calling.call.record",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","control_id":"rec-1","state":"finished",'
            '"url":"https://sp.signalwire.com/api/v1/recordings/r1/download","duration":4.5,'
            '"size":72000,"recording_id":"r1","start_time":1640000001.5,"end_time":1640000006.0,'
            '"record":{"audio":{"format":"wav","direction":"speak","stereo":false}}}',
        )
    )
    assert isinstance(event, RecordEvent)
    p = event.params
    assert p.url == "https://sp.signalwire.com/api/v1/recordings/r1/download"
    assert p.duration == 4.5
    assert p.size == 72000
    assert p.recording_id == "r1"
    assert p.start_time == 1640000001.5
    assert p.end_time == 1640000006.0
    assert p.format == "wav"  # from the record.audio echo
    assert p.record is not None
    assert p.record.audio is not None
    assert p.record.audio.stereo is False
    assert p.record.audio.direction == "speak"
    assert event.is_terminal
    assert event.control_id == "rec-1"


def test_record_nested_results_win_over_top_level() -> None:
    event = decode_event(
        envelope(
            "calling.call.record",
            f'{{"call_id":"{CALL}","control_id":"rec-2","state":"finished",'
            '"url":"https://top/url","record":{"url":"https://nested/url","duration":2,'
            '"size":32000,"format":"mp3"}}',
        )
    )
    assert isinstance(event, RecordEvent)
    p = event.params
    assert p.url == "https://nested/url"
    assert p.top_url == "https://top/url"
    assert p.duration == 2.0
    assert p.size == 32000
    assert p.format == "mp3"


def test_record_paused_and_no_input() -> None:
    paused = decode_event(
        envelope(
            "calling.call.record",
            '{"control_id":"rec-3","state":"paused","pause_behavior":"skip"}',
        )
    )
    assert isinstance(paused, RecordEvent)
    assert paused.params.pause_behavior == "skip"
    assert not paused.is_terminal
    assert paused.call_id is None
    no_input = decode_event(
        envelope("calling.call.record", '{"control_id":"rec-3","state":"no_input","size":0}')
    )
    assert isinstance(no_input, RecordEvent)
    assert no_input.is_terminal
    assert no_input.params.size == 0
    assert no_input.params.url is None


def test_record_properties_without_anything() -> None:
    p = RecordParams(state="recording", record=RecordInfo())
    assert (p.url, p.duration, p.size, p.format, p.recording_id) == (None, None, None, None, None)
    assert (p.start_time, p.end_time, p.pause_behavior) == (None, None, None)
    assert not p.is_terminal


# --------------------------------------------------------------------------- collect


def test_collect_digits() -> None:
    event = decode_event(
        envelope(
            "calling.call.collect",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","control_id":"col-1",'
            '"result":{"type":"digit","params":{"digits":"1234","terminator":"#"}}}',
        )
    )
    assert isinstance(event, CollectEvent)
    result = event.params.result
    assert result is not None
    assert result.type == "digit"
    assert result.params is not None
    assert (result.params.digits, result.params.terminator) == ("1234", "#")
    assert event.is_terminal


def test_collect_speech_final_and_partial() -> None:
    body = (
        '{{"control_id":"col-2","final":{final},'
        '"result":{{"type":"speech","params":{{"text":"hello world","confidence":0.87}}}}}}'
    )
    final = decode_event(envelope("calling.call.collect", body.format(final="true")))
    interim = decode_event(envelope("calling.call.collect", body.format(final="false")))
    assert isinstance(final, CollectEvent)
    assert isinstance(interim, CollectEvent)
    assert final.params.result is not None
    assert final.params.result.params is not None
    assert final.params.result.params.text == "hello world"
    assert final.params.result.params.confidence == pytest.approx(0.87)
    assert final.params.final is True
    assert final.is_terminal
    assert interim.params.final is False
    assert not interim.is_terminal


@pytest.mark.parametrize(
    ("result_type", "terminal"),
    [
        ("no_input", True),
        ("no_match", True),
        ("error", True),
        ("finished", True),
        ("start_of_input", False),
    ],
)
def test_collect_result_types_without_params(result_type: str, terminal: bool) -> None:
    event = decode_event(
        envelope(
            "calling.call.collect", f'{{"control_id":"c","result":{{"type":"{result_type}"}}}}'
        )
    )
    assert isinstance(event, CollectEvent)
    assert event.params.result is not None
    assert event.params.result.type == result_type
    assert event.params.result.params is None
    assert event.is_terminal is terminal


@pytest.mark.parametrize(
    ("state", "result", "terminal"),
    [
        ("collecting", '{"type":"digit","params":{"digits":"1","terminator":""}}', False),
        ("collecting", '{"type":"speech","params":{"text":"a","confidence":1}}', False),
        ("finished", '{"type":"no_input"}', True),
        ("error", '{"type":"error"}', True),
    ],
)
def test_collect_continuous_terminal_on_state_only(state: str, result: str, terminal: bool) -> None:
    event = decode_event(
        envelope(
            "calling.call.collect", f'{{"control_id":"c","state":"{state}","result":{result}}}'
        )
    )
    assert isinstance(event, CollectEvent)
    assert event.params.state == state
    assert event.is_terminal is terminal


def test_collect_without_result_is_not_terminal() -> None:
    assert not CollectParams(control_id="c").is_terminal
    assert not CollectParams(result=CollectResultInfo()).is_terminal


# --------------------------------------------------------------------------- detect


@pytest.mark.parametrize(
    ("kind", "params", "event_value", "terminal"),
    [
        ("machine", '{"event":"MACHINE"}', "MACHINE", False),
        ("machine", '{"event":"HUMAN"}', "HUMAN", False),
        ("machine", '{"event":"READY","beep":true}', "READY", False),
        ("machine", '{"event":"NOT_READY"}', "NOT_READY", False),
        ("machine", '{"event":"finished"}', "finished", True),
        ("fax", '{"event":"CED"}', "CED", False),
        ("fax", '{"event":"error"}', "error", True),
        ("digit", '{"event":"#"}', "#", False),
        ("digit", '{"event":"finished"}', "finished", True),
    ],
)
def test_detect(kind: str, params: str, event_value: str, terminal: bool) -> None:
    event = decode_event(
        envelope(
            "calling.call.detect",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","segment_id":"{SEG}","control_id":"det-1",'
            f'"detect":{{"type":"{kind}","params":{params}}}}}',
        )
    )
    assert isinstance(event, DetectEvent)
    assert event.params.detect is not None
    assert event.params.detect.type == kind
    assert event.params.event == event_value
    assert event.is_terminal is terminal
    assert event.params.segment_id == SEG
    assert event.control_id == "det-1"


def test_detect_beep_flag() -> None:
    event = decode_event(
        envelope(
            "calling.call.detect",
            '{"control_id":"d","detect":{"type":"machine","params":{"event":"READY","beep":true}}}',
        )
    )
    assert isinstance(event, DetectEvent)
    assert event.params.detect is not None
    assert event.params.detect.params is not None
    assert event.params.detect.params.beep is True


# --------------------------------------------------------------------------- tap / stream


def test_tap_rtp_and_ws() -> None:
    rtp = decode_event(
        envelope(
            "calling.call.tap",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","control_id":"tap-1","state":"tapping",'
            '"tap":{"type":"audio","params":{"direction":"both"}},'
            '"device":{"type":"rtp","params":{"addr":"192.0.2.10","port":4000,"codec":"PCMU",'
            '"ptime":20}}}',
        )
    )
    assert isinstance(rtp, TapEvent)
    p = rtp.params
    assert p.state == "tapping"
    assert not rtp.is_terminal
    assert p.tap is not None
    assert p.tap.type == "audio"
    assert p.tap.params is not None
    assert p.tap.params.direction == "both"
    assert p.device is not None
    assert p.device.type == "rtp"
    assert p.device.params is not None
    dev = p.device.params
    assert (dev.addr, dev.port, dev.codec, dev.ptime) == ("192.0.2.10", 4000, "PCMU", 20)
    ws = decode_event(
        envelope(
            "calling.call.tap",
            '{"control_id":"tap-2","state":"finished",'
            '"device":{"type":"ws","params":{"uri":"wss://example.com/tap","codec":"OPUS"}}}',
        )
    )
    assert isinstance(ws, TapEvent)
    assert ws.is_terminal
    assert ws.params.device is not None
    assert ws.params.device.params is not None
    assert ws.params.device.params.uri == "wss://example.com/tap"


@pytest.mark.parametrize(("state", "terminal"), [("streaming", False), ("finished", True)])
def test_stream(state: str, terminal: bool) -> None:
    event = decode_event(
        envelope(
            "calling.call.stream",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","segment_id":"{SEG}","tag":"mytag",'
            f'"control_id":"st-1","state":"{state}","url":"wss://example.com/s","name":"s1"}}',
        )
    )
    assert isinstance(event, StreamEvent)
    p = event.params
    assert (p.url, p.name, p.tag, p.segment_id) == ("wss://example.com/s", "s1", "mytag", SEG)
    assert event.is_terminal is terminal


# --------------------------------------------------------------------------- transcript


def test_transcript_completed_and_failed() -> None:
    def body(kind: str, text: str) -> bytes:
        return (
            f'{{"event_type":"calling.transcript.{kind}","timestamp":1640000000.5,'
            f'"project_id":"{PROJECT}","space_id":"{SPACE}",'
            f'"params":{{"id":"tr-1","call_id":"{CALL}","segment_id":"{SEG}"{text}}}}}'
        ).encode()

    done = decode_event(body("completed", ',"text":"hi there"'))
    failed = decode_event(body("failed", ""))
    assert isinstance(done, TranscriptCompletedEvent)
    assert isinstance(failed, TranscriptFailedEvent)
    assert done.params.id == "tr-1"
    assert done.params.text == "hi there"
    assert failed.params.text is None
    for event in (done, failed):
        assert event.is_terminal
        assert event.call_id == CALL
        assert event.control_id is None
        assert event.event_channel is None


# --------------------------------------------------------------------------- refer / fax


def test_refer() -> None:
    event = decode_event(
        envelope(
            "calling.call.refer",
            f'{{"call_id":"{CALL}","node_id":"{NODE}","sip_refer_to":"sip:bob@example.com",'
            '"state":"success","sip_refer_response_code":"202","sip_notify_response_code":"200"}',
        )
    )
    assert isinstance(event, ReferEvent)
    p = event.params
    assert p.sip_refer_to == "sip:bob@example.com"
    assert (p.state, p.sip_refer_response_code, p.sip_notify_response_code) == (
        "success",
        "202",
        "200",
    )
    assert event.is_terminal
    assert event.control_id is None


def test_refer_in_progress_with_numeric_code() -> None:
    event = decode_event(
        envelope("calling.call.refer", '{"sip_refer_to":"sip:b@x","sip_refer_response_code":202}')
    )
    assert isinstance(event, ReferEvent)
    assert event.params.sip_refer_response_code == 202
    assert not event.is_terminal


def test_fax_page_finished_error() -> None:
    page = decode_event(
        envelope(
            "calling.call.fax",
            '{"control_id":"fax-1","fax":{"type":"page","params":{"direction":"send","number":2}}}',
        )
    )
    assert isinstance(page, FaxEvent)
    assert not page.is_terminal
    assert page.params.fax is not None
    assert page.params.fax.params is not None
    assert page.params.fax.params.number == 2
    finished = decode_event(
        envelope(
            "calling.call.fax",
            f'{{"call_id":"{CALL}","control_id":"fax-1","fax":{{"type":"finished","params":'
            '{"direction":"receive","identity":"+1555","remote_identity":"+1666",'
            '"document":"https://x/doc.pdf","pages":3,"success":true,"result":0,'
            '"result_text":"","format":"pdf"}}}',
        )
    )
    assert isinstance(finished, FaxEvent)
    assert finished.is_terminal
    assert finished.params.fax is not None
    assert finished.params.fax.params is not None
    f = finished.params.fax.params
    assert (f.pages, f.success, f.result, f.format) == (3, True, 0, "pdf")
    assert f.document == "https://x/doc.pdf"
    error = decode_event(envelope("calling.call.fax", '{"control_id":"f","fax":{"type":"error"}}'))
    assert isinstance(error, FaxEvent)
    assert error.is_terminal


# --------------------------------------------------------------------------- unknown / 6.4(a)


def test_unknown_event_type_keeps_everything() -> None:
    event = decode_event(
        envelope("calling.call.denoise", f'{{"call_id":"{CALL}","control_id":"x","denoised":true}}')
    )
    assert isinstance(event, UnknownEvent)
    assert event.event_type == "calling.call.denoise"
    assert event.params == {"call_id": CALL, "control_id": "x", "denoised": True}
    assert (event.call_id, event.control_id) == (CALL, "x")
    assert event.timestamp == pytest.approx(1640000000.123)
    assert (event.project_id, event.space_id) == (PROJECT, SPACE)
    assert not event.is_terminal
    assert isinstance(event, Event)


def test_real_call_document_of_spec_6_4_a() -> None:
    body = (
        b'{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":'
        b'"fa3570ae-f8bd-42c2-83f4-9950d906c91b@us-west","segment_id":'
        b'"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_state":"created","direction":"inbound",'
        b'"type":"phone","from":"+12135877632","to":"+12089806814","from_number":"+12135877632",'
        b'"to_number":"+12089806814","project_id":"4b7ae78a-d02e-4889-a63b-08b156d5916e",'
        b'"space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}'
    )
    event = decode_event(body)
    assert isinstance(event, UnknownEvent)
    assert event.event_type == CALL_DOCUMENT_EVENT_TYPE
    assert event.params["vars"] == {}
    assert event.params["call"]["call_state"] == "created"
    assert event.call_id == "b5d63b2e-f75b-4dc8-b6d4-269b635f96c0"
    assert event.control_id is None
    assert (event.project_id, event.space_id) == (PROJECT, SPACE)


# --------------------------------------------------------------------------- encode


def test_encode_then_decode_round_trips() -> None:
    events: list[Event] = [
        PlayEvent(params=PlayParams(call_id=CALL, control_id="p", state="paused"), timestamp=1.5),
        RecordEvent(
            params=RecordParams(control_id="r", state="finished", top_url="u", top_size=10)
        ),
        UnknownEvent(event_type="calling.call.hold", params={"state": "held"}),
    ]
    for event in events:
        wire = encode_event(event)
        assert decode_event(wire) == event
    assert b'"url":"u"' in encode_event(events[1])
    assert b"null" not in encode_event(events[0])
