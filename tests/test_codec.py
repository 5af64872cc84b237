"""The decoders of ``_codec``: garbage raises only the documented error, drift is tolerated."""

from __future__ import annotations

import random

import msgspec
import pytest

from signalwire_calls._codec import (
    MAX_ID_LENGTH,
    MalformedLegError,
    decode_event,
    decode_json,
    decode_leg,
    encode_event,
    encode_json,
)
from signalwire_calls.errors import MalformedWebhookError, WebhookError
from signalwire_calls.events import (
    CollectEvent,
    Event,
    PlayEvent,
    RecordEvent,
    UnknownEvent,
)
from signalwire_calls.legs import CallLeg, GenericLeg

VALID_EVENTS = [
    b'{"event_type":"calling.call.play","timestamp":1640000000.1,"project_id":"p",'
    b'"space_id":"s","event_channel":"swml:s","params":{"call_id":"c","node_id":"n",'
    b'"control_id":"play-1","state":"finished"}}',
    b'{"event_type":"calling.call.record","params":{"call_id":"c","control_id":"r",'
    b'"state":"finished","url":"https://x/r.wav","duration":1.5,"size":100,'
    b'"record":{"audio":{"format":"wav","direction":"speak","stereo":false}}}}',
    b'{"event_type":"calling.call.collect","params":{"call_id":"c","control_id":"k",'
    b'"final":true,"result":{"type":"speech","params":{"text":"yes","confidence":0.9}}}}',
    b'{"event_type":"calling.call.state","params":{"call_id":"c","node_id":"n",'
    b'"call_state":"ended","direction":"outbound","end_reason":"hangup",'
    b'"device":{"type":"phone","params":{"from_number":"+1","to_number":"+2"}}}}',
    b'{"event_type":"calling.transcript.completed","timestamp":1.0,"params":'
    b'{"id":"t","call_id":"c","segment_id":"s","text":"hello"}}',
    b'{"event_type":"calling.call.detect","params":{"control_id":"d",'
    b'"detect":{"type":"machine","params":{"event":"READY","beep":true}}}}',
]


# --------------------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff",
        b"[]",
        b"null",
        b"{}",
        b'"calling.call.play"',
        b"12",
        b'{"event_type": 5}',
        b'{"event_type": null, "params": {}}',
        b'{"event_type": ["calling.call.play"]}',
        b'{"params": {"call_id": "c"}}',
        b'{"call": "not an object"}',
        b'{"event_type":"calling.call.play","params":{"call_id":"c"',
        b'{"event_type":"calling.call.play","params":{}}garbage',
        b'{"event_type":"calling.call.play","params":{"state":"\xff"}}',
    ],
)
def test_garbage_raises_malformed_webhook_error(body: bytes) -> None:
    with pytest.raises(MalformedWebhookError) as info:
        decode_event(body)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, WebhookError)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"event_type":"x","params":' + b"[" * 100_000,
        b'{"event_type":"calling.call.play","params":{"x":' + b"[" * 100_000,
        b'{"event_type":"x","params":{"a":' * 20_000,
    ],
)
def test_absurd_nesting_raises_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        decode_event(body)
    with pytest.raises(MalformedLegError):
        decode_leg(body)


def test_truncations_of_valid_payloads_raise_malformed() -> None:
    for body in VALID_EVENTS:
        for cut in range(len(body)):
            with pytest.raises(MalformedWebhookError):
                decode_event(body[:cut])


@pytest.mark.parametrize(
    ("body", "event_type", "params"),
    [
        # a known type with an unreadable field
        (
            b'{"event_type":"calling.call.play","params":{"call_id":5,"state":"playing"}}',
            "calling.call.play",
            {"call_id": 5, "state": "playing"},
        ),
        (
            b'{"event_type":"calling.call.collect","params":{"result":"digits"}}',
            "calling.call.collect",
            {"result": "digits"},
        ),
        # a known type without params, or params not an object
        (b'{"event_type":"calling.call.play"}', "calling.call.play", {}),
        (b'{"event_type":"calling.call.record","params":[1,2]}', "calling.call.record", {}),
        # unknown types
        (
            b'{"event_type":"calling.call.hold","params":{"state":"held"}}',
            "calling.call.hold",
            {"state": "held"},
        ),
        (b'{"event_type":""}', "", {}),
        (b'{"event_type":"calling.error","params":null}', "calling.error", {}),
    ],
)
def test_unreadable_or_unknown_becomes_unknown_event(
    body: bytes, event_type: str, params: dict[str, object]
) -> None:
    event = decode_event(body)
    assert isinstance(event, UnknownEvent)
    assert event.event_type == event_type
    assert event.params == params


def test_unknown_event_envelope_fields_of_wrong_type_are_dropped() -> None:
    event = decode_event(
        b'{"event_type":"x.y","timestamp":true,"project_id":7,"space_id":"s",'
        b'"event_channel":{"a":1},"params":{"call_id":1,"control_id":"k"}}'
    )
    assert isinstance(event, UnknownEvent)
    assert (event.timestamp, event.project_id, event.space_id, event.event_channel) == (
        None,
        None,
        "s",
        None,
    )
    assert event.call_id is None
    assert event.control_id == "k"


# --------------------------------------------------------------------------- numbers, ids


@pytest.mark.parametrize("digits", [309, 310, 400, 4300])
@pytest.mark.parametrize("event_type", ["calling.call.play", "calling.call.hologram"])
def test_integer_timestamp_beyond_float_range_reads_as_none(digits: int, event_type: str) -> None:
    """float() of such an integer raises OverflowError; msgspec refuses it in a float
    field, so a known type falls back to UnknownEvent, which keeps everything else."""
    body = (
        b'{"event_type":"'
        + event_type.encode()
        + b'","timestamp":'
        + b"9" * digits
        + b',"project_id":"p","params":{"control_id":"k"}}'
    )
    event = decode_event(body)
    assert isinstance(event, UnknownEvent)
    assert (event.event_type, event.timestamp, event.project_id) == (event_type, None, "p")
    assert event.control_id == "k"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"-" + b"9" * 400, None),
        (b"9" * 308, float("9" * 308)),  # still a float
        (b"1e308", 1e308),
        (b"-0.5", -0.5),
        (b"12", 12.0),
        (b'"12"', None),  # the generic reader takes numbers only
    ],
)
def test_unknown_event_timestamp_edges(raw: bytes, expected: float | None) -> None:
    event = decode_event(b'{"event_type":"x.y","timestamp":' + raw + b"}")
    assert isinstance(event, UnknownEvent)
    assert event.timestamp == expected


@pytest.mark.parametrize("raw", [b'"nan"', b'"inf"', b'"-Infinity"', b'"NaN"'])
def test_non_finite_timestamp_of_a_known_event_reads_as_none(raw: bytes) -> None:
    """strict=False reads numbers in strings, including these."""
    event = decode_event(
        b'{"event_type":"calling.call.play","timestamp":' + raw + b',"params":{"control_id":"k"}}'
    )
    assert isinstance(event, PlayEvent)
    assert event.timestamp is None
    assert event.control_id == "k"


@pytest.mark.parametrize("digits", [4301, 10_000])
def test_integer_beyond_msgspec_range_is_malformed(digits: int) -> None:
    body = b'{"event_type":"x.y","timestamp":' + b"9" * digits + b"}"
    with pytest.raises(MalformedWebhookError, match="body: not valid JSON"):
        decode_event(body)


def _with_ids(event_type: str, control_id: str | None, call_id: str | None) -> bytes:
    params: dict[str, str] = {}
    if control_id is not None:
        params["control_id"] = control_id
    if call_id is not None:
        params["call_id"] = call_id
    return msgspec.json.encode({"event_type": event_type, "params": params})


@pytest.mark.parametrize(
    "event_type",
    ["calling.call.play", "calling.call.state", "calling.transcript.completed", "x.unknown"],
)
def test_ids_up_to_the_limit_pass_longer_ones_are_malformed(event_type: str) -> None:
    assert MAX_ID_LENGTH == 128
    ok = "a" * MAX_ID_LENGTH
    event = decode_event(_with_ids(event_type, ok, ok))
    assert event.call_id == ok
    with pytest.raises(
        MalformedWebhookError, match=r"^call_id: longer than 128 characters \(129\)"
    ):
        decode_event(_with_ids(event_type, None, ok + "a"))
    if event.control_id is not None:  # the types that carry one
        assert event.control_id == ok
        with pytest.raises(MalformedWebhookError, match=r"^control_id: longer than 128"):
            decode_event(_with_ids(event_type, ok + "a", "c"))


def test_call_document_with_a_long_call_id_is_malformed() -> None:
    body = msgspec.json.encode({"call": {"call_id": "c" * 129}, "vars": {}})
    with pytest.raises(MalformedWebhookError, match=r"^call_id: longer than 128"):
        decode_event(body)


# --------------------------------------------------------------------------- drift


def test_lax_numbers_and_booleans_are_read() -> None:
    event = decode_event(
        b'{"event_type":"calling.call.record","timestamp":"1640000000.5","params":'
        b'{"control_id":"r","state":"finished","duration":"2.5","size":"4096"}}'
    )
    assert isinstance(event, RecordEvent)
    assert event.timestamp == 1640000000.5
    assert event.params.duration == 2.5
    assert event.params.size == 4096
    collect = decode_event(
        b'{"event_type":"calling.call.collect","params":{"control_id":"k","final":"false",'
        b'"result":{"type":"speech","params":{"text":"a","confidence":"1"}}}}'
    )
    assert isinstance(collect, CollectEvent)
    assert collect.params.final is False
    assert not collect.is_terminal


def test_new_fields_and_new_state_values_are_tolerated() -> None:
    event = decode_event(
        b'{"event_type":"calling.call.play","brand_new":{"x":[1]},"params":'
        b'{"control_id":"p","state":"buffering","volume":3.5,"extra":{"deep":[null]}}}'
    )
    assert isinstance(event, PlayEvent)
    assert event.params.state == "buffering"
    assert not event.is_terminal


# --------------------------------------------------------------------------- fuzz


def _mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1) if data else 0
        if op == 0 and data:  # flip a byte
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:  # insert a JSON-ish byte
            data.insert(pos, rng.choice(b'{}[]":,0123456789.-etrufalsn \\'))
        elif op == 2 and data:  # delete a span
            del data[pos : pos + rng.randint(1, 8)]
        else:  # duplicate a span
            span = data[pos : pos + rng.randint(1, 16)]
            data[pos:pos] = span
    return bytes(data)


def test_fuzzed_payloads_decode_or_raise_malformed_only() -> None:
    rng = random.Random(0)
    outcomes = {"typed": 0, "unknown": 0, "malformed": 0}
    for _ in range(2000):
        body = _mutate(rng, rng.choice(VALID_EVENTS))
        try:
            event = decode_event(body)
        except MalformedWebhookError:
            outcomes["malformed"] += 1
            continue
        assert isinstance(event, Event)
        assert isinstance(event.event_type, str)
        assert event.call_id is None or isinstance(event.call_id, str)
        assert event.control_id is None or isinstance(event.control_id, str)
        assert isinstance(event.is_terminal, bool)
        outcomes["unknown" if isinstance(event, UnknownEvent) else "typed"] += 1
    # the mutations reach every outcome, so the fuzz exercises all three paths
    assert all(outcomes.values()), outcomes


def test_fuzzed_legs_decode_or_raise_malformed_leg_only() -> None:
    rng = random.Random(0)
    leg = (
        b'{"id":"0e9c80d7-a149-4917-892d-420043709f45","from":"+12069708643",'
        b'"to":"+15550198765","direction":"outbound-api","source":"realtime_api","url":null,'
        b'"charge":0,"created_at":"2024-05-06T12:20:00Z","charge_details":[],"status":"queued",'
        b'"duration":null,"duration_ms":null,"billing_ms":null,"type":"relay_pstn_call",'
        b'"parent_id":null}'
    )
    decoded = 0
    for _ in range(2000):
        try:
            result = decode_leg(_mutate(rng, leg))
        except MalformedLegError:
            continue
        assert isinstance(result.id, str)
        decoded += 1
    assert decoded > 0


# --------------------------------------------------------------------------- encode


def test_encode_event_omits_unset_envelope_fields() -> None:
    event = decode_event(b'{"event_type":"calling.call.play","params":{"control_id":"p"}}')
    assert encode_event(event) == b'{"event_type":"calling.call.play","params":{"control_id":"p"}}'


def test_every_valid_payload_round_trips_through_encode_event() -> None:
    for body in VALID_EVENTS:
        event = decode_event(body)
        assert not isinstance(event, UnknownEvent)
        assert decode_event(encode_event(event)) == event
        # nothing read is lost: re-encoding the decoded form gives the same JSON values
        assert msgspec.json.decode(encode_event(event)) == msgspec.json.decode(body)


def test_json_helpers_round_trip() -> None:
    value = {"a": [1, 2.5, None, True], "b": "x"}
    assert decode_json(encode_json(value)) == value


# --------------------------------------------------------------------------- legs


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff", b"[]", b"null", b"{}", b'{"id": 5}', b'{"id": null}', b'{"id":"x"', b"{'id':1}"],
)
def test_leg_garbage_raises_malformed_leg_error(body: bytes) -> None:
    with pytest.raises(MalformedLegError) as info:
        decode_leg(body)
    assert isinstance(info.value, ValueError)


def test_leg_fast_path_and_fallback() -> None:
    assert isinstance(decode_leg(b'{"id":"a","type":"relay_sip_call"}'), CallLeg)
    generic = decode_leg(b'{"id":"a","type":"relay_sip_call","duration":"long"}')
    assert isinstance(generic, GenericLeg)
    assert generic.type == "relay_sip_call"
    assert generic.raw["duration"] == "long"
