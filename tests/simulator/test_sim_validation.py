"""Strict validation against the API schema: 422 bodies name the field."""

from __future__ import annotations

from typing import Any

import pytest

from signalwire_calls.testing import Simulator
from signalwire_calls.testing._protocol import CONTROL_KINDS

from ..test_commands import CALL, SPEC_COMMANDS
from ..test_oracle import oracle_accepted_cases
from .helpers import Client

TTS = {"type": "tts", "params": {"text": "hi"}}


def item(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict)
    errors = body["errors"]
    assert errors
    first = errors[0]
    assert set(first) == {"type", "code", "message", "attribute", "url"}
    assert first["url"].startswith("https://")
    assert isinstance(first, dict)
    return first


@pytest.mark.parametrize(
    ("command", "params", "attribute"),
    [
        ("calling.play", {"control_id": "p", "play": [TTS], "volume": 100}, "volume"),
        ("calling.play", {"control_id": "p", "play": [TTS], "direction": "up"}, "direction"),
        ("calling.play", {"control_id": "p", "play": [TTS], "bogus": 1}, "bogus"),
        ("calling.play", {"play": [TTS], "control_id": 5}, "control_id"),
        ("calling.play", {"control_id": "p", "play": [{"type": "tts", "params": {}}]}, "play"),
        ("calling.stream", {"control_id": "s", "url": "ws://e.com/x"}, "url"),
        ("calling.play.volume", {"control_id": "p", "volume": 41}, "volume"),
        ("calling.record.pause", {"control_id": "r", "behavior": "loud"}, "behavior"),
        ("calling.end", {"reason": "bored"}, "reason"),
        ("calling.transfer", {}, "dest"),
        ("calling.user_event", {}, "event"),
    ],
)
async def test_invalid_params_422(
    client: Client, command: str, params: dict[str, Any], attribute: str
) -> None:
    call_id = await client.answered_call()
    status, body = await client.send(command, params, call_id)
    assert status == 422, body
    assert str(item(body)["attribute"]).startswith(attribute)


async def test_missing_required_dial_field(client: Client) -> None:
    status, body = await client.send("dial", {"to": "+15550001", "url": "https://e.com/s"})
    assert status == 422
    first = item(body)
    assert first["attribute"] == "from"
    assert first["code"] == "missing_required_parameter"


async def test_dial_bad_status_event(client: Client) -> None:
    params = {
        "from": "+1555",
        "to": "+15550001",
        "url": "https://e.com/s",
        "status_events": ["exploded"],
    }
    status, body = await client.send("dial", params)
    assert status == 422
    assert str(item(body)["attribute"]).startswith("status_events")


async def test_validated_params_are_recorded(client: Client) -> None:
    call_id = await client.answered_call()
    params = {"control_id": "p", "play": [TTS], "volume": -3}
    await client.ok("calling.play", params, call_id)
    cmd = await client.sim.wait_for_command("calling.play")
    assert (cmd.command, cmd.call_id, cmd.status) == ("calling.play", call_id, 200)
    assert cmd.params == params
    assert cmd.lenient == ()
    assert cmd.error is None


async def test_refused_params_are_recorded_with_the_error(client: Client) -> None:
    call_id = await client.answered_call()
    status, body = await client.send(
        "calling.play", {"control_id": "p", "play": [TTS], "volume": 41}, call_id
    )
    assert status == 422
    cmd = await client.sim.wait_for_command("calling.play")
    assert cmd.status == 422
    assert cmd.error == body
    assert item(body)["attribute"] == "volume"


async def test_every_value_the_schema_accepts_gets_an_answer_not_a_500(
    client: Client, sim: Simulator
) -> None:
    """The engine now sees whatever the schema accepts (not what the client's Structs
    accept): every accepted boundary case of the oracle tests, sent to a live call, gets 200
    or a documented error, never a 500."""
    call_id = await client.answered_call()
    statuses: dict[int, int] = {}
    for command in SPEC_COMMANDS:
        for n, case in enumerate(oracle_accepted_cases(command)):
            params = case.params
            if command == "update" and params.get("id") == CALL:
                params = {**params, "id": call_id}
            if command in CONTROL_KINDS and case.field != "control_id":
                params = {**params, "control_id": f"case-{n}"}  # a new operation each time
            status, body = await client.send(
                command, params, None if command == "dial" else call_id
            )
            if status == 404 and command != "update":  # the call ended: retry on a new one
                call_id = await client.answered_call()
                status, body = await client.send(command, params, call_id)
            statuses[status] = statuses.get(status, 0) + 1
            assert status in (200, 404, 409, 422), (command, case.field, case.value, status, body)
    assert statuses[200] > 1000
