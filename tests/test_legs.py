"""The 200 body of every command decodes to a typed call leg (the API's call-leg object)."""

from __future__ import annotations

import pytest

from signalwire_calls._codec import decode_leg, encode_json
from signalwire_calls.legs import (
    CALL_LEG_TYPES,
    CallLeg,
    ChargeDetail,
    FabricSubscriberDeviceLeg,
    GenericLeg,
)

SPEC_EXAMPLE = (
    b'{"id":"0e9c80d7-a149-4917-892d-420043709f45","from":"+12069708643","to":"+15550198765",'
    b'"direction":"outbound-api","source":"realtime_api","url":null,"charge":0,'
    b'"created_at":"2024-05-06T12:20:00Z","charge_details":[],"status":"queued",'
    b'"duration":null,"duration_ms":null,"billing_ms":null,"type":"relay_pstn_call",'
    b'"parent_id":null}'
)


def test_spec_example_is_a_call_leg() -> None:
    leg = decode_leg(SPEC_EXAMPLE)
    assert isinstance(leg, CallLeg)
    assert leg.id == "0e9c80d7-a149-4917-892d-420043709f45"
    assert leg.from_ == "+12069708643"
    assert leg.to == "+15550198765"
    assert leg.direction == "outbound-api"
    assert leg.source == "realtime_api"
    assert leg.url is None
    assert leg.charge == 0.0
    assert leg.created_at == "2024-05-06T12:20:00Z"
    assert leg.charge_details == []
    assert leg.status == "queued"
    assert (leg.duration, leg.duration_ms, leg.billing_ms) == (None, None, None)
    assert leg.type == "relay_pstn_call"
    assert leg.parent_id is None
    assert leg.qos_metrics is None
    assert not leg.is_terminal


@pytest.mark.parametrize("leg_type", sorted(CALL_LEG_TYPES))
def test_every_call_leg_type(leg_type: str) -> None:
    leg = decode_leg(
        f'{{"id":"a","type":"{leg_type}","status":"ended","duration":12,"duration_ms":12040,'
        f'"billing_ms":12000,"parent_id":"p","charge":0.0042,'
        f'"charge_details":[{{"description":"Outbound Voice","charge":0.004}}],'
        f'"qos_metrics":{{"mos":4.3}}}}'.encode()
    )
    assert isinstance(leg, CallLeg)
    assert leg.type == leg_type
    assert (leg.duration, leg.duration_ms, leg.billing_ms) == (12, 12040, 12000)
    assert leg.parent_id == "p"
    assert leg.charge_details == [ChargeDetail(description="Outbound Voice", charge=0.004)]
    assert leg.qos_metrics == {"mos": 4.3}
    assert leg.is_terminal


def test_fabric_subscriber_device_leg() -> None:
    leg = decode_leg(
        b'{"id":"f1","from":"sip:a@x","to":"/private/bob","direction":"inbound",'
        b'"source":"realtime_api","url":null,"charge":0,"created_at":"2024-05-06T12:20:00Z",'
        b'"charge_details":[],"status":null,"type":"fabric_subscriber_device_leg"}'
    )
    assert isinstance(leg, FabricSubscriberDeviceLeg)
    assert leg.id == "f1"
    assert leg.status is None
    assert leg.type == "fabric_subscriber_device_leg"
    assert leg.to == "/private/bob"
    assert not hasattr(leg, "duration")


@pytest.mark.parametrize(
    "leg_type", ["video_room_pstn_leg", "video_room_sip_leg", "dialogflow_call", "next_year_leg"]
)
def test_newer_and_unknown_leg_types_are_generic(leg_type: str) -> None:
    body = (
        f'{{"id":"v1","from":null,"to":null,"direction":null,"source":"dialogflow","url":null,'
        f'"charge":0.1,"created_at":"2024-05-06T12:20:00Z","charge_details":[],'
        f'"status":"answered","type":"{leg_type}","room_session_id":"rs-1"}}'
    ).encode()
    leg = decode_leg(body)
    assert isinstance(leg, GenericLeg)
    assert leg.id == "v1"
    assert leg.type == leg_type
    assert leg.status == "answered"
    assert leg.charge == 0.1
    assert leg.from_ is None
    assert leg.raw["room_session_id"] == "rs-1"


def test_missing_type_is_generic() -> None:
    leg = decode_leg(b'{"id":"only-id"}')
    assert isinstance(leg, GenericLeg)
    assert leg.id == "only-id"
    assert leg.type is None
    assert leg.charge_details == []
    assert leg.raw == {"id": "only-id"}


def test_extra_fields_are_ignored() -> None:
    body = SPEC_EXAMPLE[:-1] + b',"brand_new":{"nested":[1,2]},"another":"x"}'
    leg = decode_leg(body)
    assert isinstance(leg, CallLeg)
    assert leg.id == "0e9c80d7-a149-4917-892d-420043709f45"


def test_missing_and_null_optional_fields() -> None:
    leg = decode_leg(b'{"id":"m","type":"relay_sip_call","charge":null,"charge_details":[{}]}')
    assert isinstance(leg, CallLeg)
    assert (leg.from_, leg.to, leg.direction, leg.source, leg.url) == (None,) * 5
    assert leg.charge is None
    assert leg.created_at is None
    assert leg.status is None
    assert leg.charge_details == [ChargeDetail()]


def test_unreadable_field_falls_back_to_generic_keeping_what_it_can() -> None:
    fabric = decode_leg(b'{"id":"f","type":"fabric_subscriber_device_leg","charge":"free"}')
    assert isinstance(fabric, GenericLeg)
    assert fabric.type == "fabric_subscriber_device_leg"
    assert fabric.raw["charge"] == "free"
    partial = decode_leg(b'{"id":"x","type":"video_room_sip_leg","from":1,"to":"b"}')
    assert isinstance(partial, GenericLeg)
    assert partial.to is None  # nothing but id and type is trusted once a field is unreadable
    assert partial.raw["to"] == "b"


def test_lax_numbers() -> None:
    leg = decode_leg(b'{"id":"n","type":"relay_pstn_call","charge":"0.25","duration":"7"}')
    assert isinstance(leg, CallLeg)
    assert leg.charge == 0.25
    assert leg.duration == 7


def test_call_leg_encodes_back_to_the_wire_names() -> None:
    leg = CallLeg(id="e", from_="+1", to="+2", type="relay_pstn_call", status="queued")
    wire = encode_json(leg)
    assert b'"from":"+1"' in wire
    assert decode_leg(wire) == leg
    assert FabricSubscriberDeviceLeg(id="f").type == "fabric_subscriber_device_leg"
