"""Simulator HTTP surface: auth, envelope errors, the call-leg body."""

from __future__ import annotations

import aiohttp
import pytest

from signalwire_calls.testing import Simulator

from .helpers import Client, basic_auth

LEG_FIELDS = {
    "id",
    "from",
    "to",
    "direction",
    "source",
    "url",
    "charge",
    "created_at",
    "charge_details",
    "status",
    "duration",
    "duration_ms",
    "billing_ms",
    "type",
    "parent_id",
}


async def test_base_url_and_properties(sim: Simulator) -> None:
    assert sim.base_url.startswith("http://127.0.0.1:")
    assert sim.port > 0
    assert sim.url == sim.base_url + "/api/calling/calls"
    assert (sim.project, sim.token, sim.signing_key) == (
        "test-project",
        "test-token",
        "test-signing-key",
    )


async def test_base_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = Simulator().base_url


async def test_dial_returns_full_leg(client: Client) -> None:
    leg = await client.ok(
        "dial", {"from": "+15559870000", "to": "+15550100001", "url": "https://example.com/s"}
    )
    assert set(leg) == LEG_FIELDS
    assert leg["status"] == "queued"
    assert leg["direction"] == "outbound-api"
    assert leg["source"] == "realtime_api"
    assert leg["type"] == "relay_pstn_call"
    assert leg["url"] == "https://example.com/s"
    assert leg["duration"] is None
    assert leg["parent_id"] is None
    assert leg["created_at"].endswith("Z")


async def test_sip_leg_type(client: Client) -> None:
    leg = await client.ok(
        "dial", {"from": "sip:a@example.com", "to": "sip:b@example.com", "url": "https://e.com/s"}
    )
    assert leg["type"] == "relay_sip_call"


@pytest.mark.parametrize(
    "auth",
    [basic_auth("test-project", "wrong"), basic_auth("other", "test-token"), "Bearer x"],
)
async def test_bad_credentials_401(client: Client, auth: str) -> None:
    status, body, _ = await client.raw({"command": "dial", "params": {}}, auth=auth)
    assert (status, body) == (401, {"error": "Unauthorized"})


async def test_missing_credentials_401(client: Client) -> None:
    async with client.session.post(client.sim.url, data=b"{}") as resp:
        assert resp.status == 401
        assert await resp.json() == {"error": "Unauthorized"}


async def test_token_without_voice_scope_403() -> None:
    async with Simulator(time_scale=0.01, voice_scope=False) as sim, aiohttp.ClientSession() as s:
        status, body = await Client(sim, s).send("dial", {})
    assert (status, body) == (403, {"error": "Forbidden"})


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"params": {}}',
        b'{"command": "calling.end"}',
        b'{"command": "calling.end", "params": []}',
        b'{"command": "calling.end", "params": {}}',
    ],
)
async def test_malformed_envelope_400(client: Client, body: bytes) -> None:
    status, payload, _ = await client.raw(body)
    assert (status, payload) == (400, {"error": "Bad Request"})


async def test_unknown_command_422(client: Client) -> None:
    status, body = await client.send("calling.fly", {}, "x")
    assert status == 422
    (item,) = body["errors"]
    assert item["code"] == "invalid_command_attempted"
    assert item["attribute"] == "command"
    assert set(item) == {"type", "code", "message", "attribute", "url"}


async def test_unknown_call_404(client: Client) -> None:
    status, body = await client.send("calling.end", {}, "00000000-0000-4000-8000-000000000000")
    assert (status, body) == (404, {"error": "Not Found"})


async def test_update_unknown_call_404(client: Client) -> None:
    status, body = await client.send(
        "update", {"id": "00000000-0000-4000-8000-000000000000", "status": "completed"}
    )
    assert (status, body) == (404, {"error": "Not Found"})


async def test_commands_are_recorded(client: Client, sim: Simulator) -> None:
    call_id = await client.dial()
    await client.send("calling.end", {}, "nope")
    dial = await sim.wait_for_command("dial")
    assert dial.call_id == call_id
    assert dial.status == 200
    assert dial.params["to"] == "+15550100001"
    end = await sim.wait_for_command("calling.end")
    assert end.status == 404
    assert end.error == {"error": "Not Found"}


async def test_restart_is_refused(sim: Simulator) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        await sim.start()
