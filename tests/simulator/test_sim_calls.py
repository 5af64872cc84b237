"""The call state machine, scripted callees and call-state webhooks."""

from __future__ import annotations

import pytest

from signalwire_calls._codec import decode_event
from signalwire_calls.events import CallStateEvent
from signalwire_calls.testing import Callee, Simulator

from .helpers import Client, Receiver

ALL_EVENTS = ["created", "ringing", "answered", "ended"]


def call_states(receiver: Receiver, call_id: str) -> list[tuple[str, str | None]]:
    return [
        (e["params"]["call_state"], e["params"]["end_reason"])
        for e in receiver.events("calling.call.state")
        if e["params"]["call_id"] == call_id
    ]


async def ended(sim: Simulator, call_id: str) -> None:
    await sim.wait_for_call_state(call_id, "ended")
    await sim.wait_for_webhooks_idle()


async def test_answered_call_events_and_shape(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call(status_url=receiver.url())
    await client.ok("calling.end", {"reason": "hangup"}, call_id)
    await ended(sim, call_id)
    assert call_states(receiver, call_id) == [
        ("created", None),
        ("ringing", None),
        ("answered", None),
        ("ended", "hangup"),
    ]
    body = receiver.hits[0].json
    assert set(body) == {
        "event_type",
        "event_channel",
        "timestamp",
        "project_id",
        "space_id",
        "params",
    }
    assert body["project_id"] == "test-project"
    params = body["params"]
    assert params["direction"] == "outbound"
    assert params["device"] == {
        "type": "phone",
        "params": {"from_number": "+15559870000", "to_number": "+15550100001"},
    }
    assert {"call_id", "node_id", "call_state", "end_reason"} <= set(params)
    event = decode_event(receiver.hits[-1].body)
    assert isinstance(event, CallStateEvent)
    assert event.call_id == call_id
    assert sim.calls[call_id].history == [
        "queued",
        "initiated",
        "created",
        "ringing",
        "answered",
        "ending",
        "ended",
    ]


async def test_only_subscribed_states_are_sent(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call(status_url=receiver.url(), events=["answered"])
    await client.ok("calling.end", {}, call_id)
    await ended(sim, call_id)
    assert call_states(receiver, call_id) == [("answered", None)]


async def test_default_status_events_is_ended(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    leg = await client.ok(
        "dial",
        {
            "from": "+1555",
            "to": "+15550100009",
            "url": "https://e.com/s",
            "status_url": receiver.url(),
        },
    )
    await sim.wait_for_call_state(leg["id"], "answered")
    await client.ok("calling.end", {}, leg["id"])
    await ended(sim, leg["id"])
    assert call_states(receiver, leg["id"]) == [("ended", "hangup")]


async def test_old_status_event_names_accepted(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    old = ["queued", "initiated", "ringing", "answered", "ending", "ended"]
    call_id = await client.answered_call(status_url=receiver.url(), events=old)
    await client.ok("calling.end", {}, call_id)
    await ended(sim, call_id)
    states = [s for s, _ in call_states(receiver, call_id)]
    assert states == ["initiated", "ringing", "answered", "ending", "ended"]
    assert "status_events" in (await sim.wait_for_command("dial")).lenient


async def test_leg_status_follows_call(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    leg = await client.ok("calling.user_event", {"event": {"a": 1}}, call_id)
    assert leg["status"] == "answered"
    end = await client.ok("calling.end", {}, call_id)
    assert end["status"] == "ending"
    await sim.wait_for_call_state(call_id, "ended")
    assert sim.engine.leg(sim.calls[call_id])["duration_ms"] >= 0


async def test_busy(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.script("+15550200001", Callee.busy(after=1))
    call_id = await client.dial("+15550200001", status_url=receiver.url())
    await ended(sim, call_id)
    assert call_states(receiver, call_id) == [
        ("created", None),
        ("ringing", None),
        ("ended", "busy"),
    ]
    assert sim.calls[call_id].status == "ended"
    assert "answered" not in sim.calls[call_id].history


async def test_no_answer_uses_dial_timeout(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script("+15550200002", Callee.no_answer())
    call_id = await client.dial("+15550200002", status_url=receiver.url(), timeout=2)
    await ended(sim, call_id)
    assert call_states(receiver, call_id)[-1] == ("ended", "noAnswer")


async def test_late_answer_beyond_ring_timeout_is_no_answer(client: Client, sim: Simulator) -> None:
    sim.script("+15550200003", Callee.answers(after=10))
    call_id = await client.dial("+15550200003", timeout=1)
    call = await sim.wait_for_call_state(call_id, "ended")
    assert call.end_reason == "noAnswer"


async def test_fails(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.script("+15550200004", Callee.fails())
    call_id = await client.dial("+15550200004", status_url=receiver.url())
    call = await sim.wait_for_call_state(call_id, "ended")
    await sim.wait_for_webhooks_idle()
    assert call.status == "failed"
    assert call_states(receiver, call_id) == [("ended", "error")]


async def test_hangup_after(client: Client, sim: Simulator) -> None:
    sim.script("+15550200005", Callee.answers(after=0.5, hangup_after=3))
    call_id = await client.answered_call("+15550200005")
    call = await sim.wait_for_call_state(call_id, "ended")
    assert call.end_reason == "hangup"


async def test_sim_hangup(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    sim.hangup(call_id)
    call = await sim.wait_for_call_state(call_id, "ended")
    assert call.end_reason == "hangup"
    with pytest.raises(KeyError):
        sim.hangup("nope")


async def test_max_call_length() -> None:
    async with Simulator(time_scale=0.001, max_call_length=5) as sim:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            client = Client(sim, session)
            call_id = await client.answered_call()
            call = await sim.wait_for_call_state(call_id, "ended")
    assert call.end_reason == "max_duration"


async def test_unscripted_default_and_wildcard(client: Client, sim: Simulator) -> None:
    sim.script("*", Callee.busy())
    call_id = await client.dial("+15550209999")
    call = await sim.wait_for_call_state(call_id, "ended")
    assert call.end_reason == "busy"


async def test_commands_on_ended_call_404(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    await client.ok("calling.end", {}, call_id)
    await sim.wait_for_call_state(call_id, "ended")
    tts = {"type": "tts", "params": {"text": "hi"}}
    status, body = await client.send("calling.play", {"control_id": "p", "play": [tts]}, call_id)
    assert (status, body) == (404, {"error": "Not Found"})
    status, body = await client.send("calling.end", {}, call_id)
    assert status == 404


async def test_control_before_answer_is_invalid_state(client: Client, sim: Simulator) -> None:
    sim.script("+15550200006", Callee.answers(after=100))
    call_id = await client.dial("+15550200006")
    await sim.wait_for_call_state(call_id, "ringing")
    status, body = await client.send("calling.denoise", {}, call_id)
    assert status == 422
    assert body["errors"][0]["code"] == "invalid_state"


# ---------------------------------------------------------------------------- update


async def test_update_cancel_while_ringing(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script("+15550300001", Callee.answers(after=100))
    call_id = await client.dial("+15550300001", status_url=receiver.url())
    await sim.wait_for_call_state(call_id, "ringing")
    leg = await client.ok("update", {"id": call_id, "status": "canceled"})
    assert leg["status"] == "canceled"
    await ended(sim, call_id)
    assert call_states(receiver, call_id)[-1] == ("ended", "cancel")


async def test_update_cancel_in_progress_rejected(client: Client) -> None:
    call_id = await client.answered_call()
    status, body = await client.send("update", {"id": call_id, "status": "canceled"})
    assert status == 422
    assert body["errors"][0]["code"] == "cannot_cancel_in_progress"
    assert body["errors"][0]["attribute"] == "status"


async def test_update_completed(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    await client.ok("update", {"id": call_id, "status": "completed"})
    call = await sim.wait_for_call_state(call_id, "ended")
    assert call.status == "completed"
    status, body = await client.send("update", {"id": call_id, "status": "completed"})
    assert status == 422
    assert body["errors"][0]["code"] == "cannot_update_completed"


async def test_update_completed_before_answer_rejected(client: Client, sim: Simulator) -> None:
    sim.script("+15550300002", Callee.answers(after=100))
    call_id = await client.dial("+15550300002")
    await sim.wait_for_call_state(call_id, "ringing")
    status, body = await client.send("update", {"id": call_id, "status": "completed"})
    assert status == 422
    assert body["errors"][0]["code"] == "invalid_state"


async def test_update_redirect(client: Client, sim: Simulator) -> None:
    sim.script("+15550300003", Callee.answers(after=100))
    call_id = await client.dial("+15550300003")
    await sim.wait_for_call_state(call_id, "ringing")
    status, body = await client.send("update", {"id": call_id, "url": "https://e.com/next"})
    assert status == 422
    assert body["errors"][0]["code"] == "cannot_redirect_not_in_progress"
    sim.engine._answer(sim.calls[call_id])
    leg = await client.ok("update", {"id": call_id, "url": "https://e.com/next"})
    assert leg["url"] == "https://e.com/next"
    assert sim.calls[call_id].redirects == ["https://e.com/next"]


async def test_update_status_url_replaces_target(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call(status_url=receiver.url("/a"))
    await client.ok(
        "update", {"id": call_id, "status": "completed", "status_url": receiver.url("/b")}
    )
    await ended(sim, call_id)
    last = receiver.hits[-1]
    assert last.url == receiver.url("/b")
    assert last.json["params"]["call_state"] == "ended"


async def test_end_before_answer(client: Client, sim: Simulator) -> None:
    sim.script("+15550300004", Callee.answers(after=100))
    call_id = await client.dial("+15550300004")
    await sim.wait_for_call_state(call_id, "ringing")
    leg = await client.ok("calling.end", {"reason": "cancel"}, call_id)
    assert leg["status"] == "ended"
    assert sim.calls[call_id].end_reason == "cancel"


async def test_transfer_and_disconnect(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    await client.ok("calling.transfer", {"dest": "+15550001111"}, call_id)
    await client.ok("calling.disconnect", {}, call_id)
    assert sim.calls[call_id].transfers == ["+15550001111"]
    assert sim.calls[call_id].status == "answered"


async def test_history_limit_forgets_the_oldest_ended_calls() -> None:
    import aiohttp

    async with (
        Simulator(time_scale=0.01, cps=None, history_limit=2) as sim,
        aiohttp.ClientSession() as session,
    ):
        client = Client(sim, session)
        sim.script("*", Callee.busy(after=0.1))
        ids = [await client.dial(f"+1555070000{i}") for i in range(4)]

        def all_ended() -> bool:
            return all(c not in sim.calls or sim.calls[c].ended for c in ids)

        await sim.wait_for(all_ended)
        assert sim.live_calls == 0
        assert len(sim.calls) == 2
        assert len(sim.dial_times) == 2
        forgotten = [c for c in ids if c not in sim.calls]
        assert len(forgotten) == 2
        status, _ = await client.send("calling.end", {}, forgotten[0])
        assert status == 404
        assert sim.live_calls == 0
    with pytest.raises(ValueError, match="history_limit"):
        Simulator(history_limit=0)
