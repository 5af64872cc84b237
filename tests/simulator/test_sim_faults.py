"""The fault plan: webhook drop/duplicate/reorder/delay, terminal-first, 429/5xx, resets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signalwire_calls.testing import FaultPlan, Simulator

from .helpers import Client, Receiver

SILENCE = {"type": "silence", "params": {"duration": 1000}}


async def play_and_stop(client: Client, sim: Simulator, receiver: Receiver, cid: str = "p") -> str:
    call_id = await client.answered_call()
    await client.ok(
        "calling.play",
        {"control_id": cid, "play": [SILENCE], "status_url": receiver.url()},
        call_id,
    )
    await client.ok("calling.play.pause", {"control_id": cid}, call_id)
    await client.ok("calling.play.stop", {"control_id": cid}, call_id)
    await sim.wait_for_operation(call_id, cid)
    await sim.wait_for(lambda: all(w.outcome != "pending" for w in sim.webhooks))
    await sim.wait_for_webhooks_idle()
    return call_id


async def test_drop_nth_matching_webhook(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    rule = sim.faults.drop_webhook(event_type="calling.call.play", state="finished")
    await play_and_stop(client, sim, receiver)
    assert receiver.states("p") == ["playing", "paused"]
    (dropped,) = sim.webhooks_for(control_id="p", state="finished")
    assert dropped.outcome == "dropped"
    assert rule.seen == 1


async def test_drop_second_match_only(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.drop_webhook(event_type="calling.call.play", nth=2)
    await play_and_stop(client, sim, receiver)
    assert receiver.states("p") == ["playing", "finished"]


async def test_duplicate(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.duplicate_webhook(event_type="calling.call.play", state="playing")
    await play_and_stop(client, sim, receiver)
    assert receiver.states("p") == ["playing", "playing", "paused", "finished"]
    assert [w.duplicate for w in sim.webhooks_for(control_id="p")] == [False, True, False, False]


async def test_reorder(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.reorder_webhook(event_type="calling.call.play", state="paused")
    await play_and_stop(client, sim, receiver)
    assert receiver.states("p") == ["playing", "finished", "paused"]


async def test_reorder_of_last_event_is_released(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.faults.reorder_webhook(event_type="calling.call.play", state="finished")
    await play_and_stop(client, sim, receiver)
    assert receiver.states("p") == ["playing", "paused", "finished"]


async def test_delay_keeps_order(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.delay_webhook(5.0, event_type="calling.call.play", state="playing")
    start = time.monotonic()
    await play_and_stop(client, sim, receiver)
    assert time.monotonic() - start >= 5.0 * sim.time_scale
    assert receiver.states("p") == ["playing", "paused", "finished"]
    assert sim.webhooks_for(control_id="p")[0].delay == pytest.approx(5.0 * sim.time_scale)


async def test_global_delay_and_jitter(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.webhook_delay = 1.0
    sim.faults.webhook_jitter = 1.0
    await play_and_stop(client, sim, receiver)
    delays = [w.delay for w in sim.webhooks_for(control_id="p")]
    assert all(0.01 <= d <= 0.02 for d in delays)
    assert receiver.states("p") == ["playing", "paused", "finished"]


async def test_terminal_before_start(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.terminal_first_rate = 1.0
    call_id = await client.answered_call()
    body = {"control_id": "p", "play": [SILENCE], "status_url": receiver.url()}
    await client.ok("calling.play", body, call_id)
    await client.ok("calling.play.stop", {"control_id": "p"}, call_id)
    await sim.wait_for_operation(call_id, "p")
    await sim.wait_for_webhooks_idle()
    assert receiver.states("p") == ["finished", "playing"]


async def test_events_before_response(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.events_before_response = True
    call_id = await client.answered_call()
    body = {"control_id": "p", "play": [SILENCE], "status_url": receiver.url()}
    await client.ok("calling.play", body, call_id)
    # The HTTP response came back only after the first event was delivered.
    assert receiver.states("p") == ["playing"]


async def test_rate_limit_429_with_retry_after(client: Client, sim: Simulator) -> None:
    sim.faults.fail_command(429, command="dial", retry_after=2.0)
    body = {
        "command": "dial",
        "params": {"from": "+15559870000", "to": "+15550100002", "url": "https://e.com/s"},
    }
    status, payload, resp = await client.raw(body)
    assert status == 429
    assert payload == {"error": "Too Many Requests"}
    assert float(resp.headers["Retry-After"]) == pytest.approx(2.0 * sim.time_scale)
    assert not sim.calls  # refused commands have no effect
    status, _, _ = await client.raw(body)
    assert status == 200


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors(client: Client, sim: Simulator, status: int) -> None:
    sim.faults.server_error_rate = 1.0
    sim.faults.server_error_status = status
    got, payload = await client.send(
        "dial", {"from": "+15559870000", "to": "+15550100002", "url": "https://e.com/s"}
    )
    assert got == status
    assert payload["error"] in ("Internal Server Error", "Service Unavailable")


async def test_rate_share_is_deterministic_under_seed() -> None:
    async def run(seed: int) -> list[int]:
        plan = FaultPlan(seed=seed, rate_limit_rate=0.3, server_error_rate=0.2)
        async with Simulator(time_scale=0.01, faults=plan) as sim, aiohttp.ClientSession() as s:
            client = Client(sim, s)
            out = []
            for _ in range(30):
                st, _ = await client.send("calling.end", {}, "no-such-call")
                out.append(st)
            return out

    first, again, other = await run(7), await run(7), await run(8)
    assert first == again
    assert first != other
    assert {429, 404} <= set(first)


async def test_ids_are_deterministic_under_seed() -> None:
    async def run() -> str:
        async with Simulator(time_scale=0.01, seed=3) as sim, aiohttp.ClientSession() as s:
            return await Client(sim, s).dial()

    assert await run() == await run()


async def test_connection_reset(client: Client, sim: Simulator) -> None:
    sim.faults.reset_command(command="dial")
    with pytest.raises(aiohttp.ClientError):
        await client.send(
            "dial", {"from": "+15559870000", "to": "+15550100002", "url": "https://e.com/s"}
        )
    assert not sim.calls
    await client.dial()
    assert len(sim.calls) == 1


async def test_connection_reset_after_processing(client: Client, sim: Simulator) -> None:
    sim.faults.reset_command(command="dial", after_processing=True)
    with pytest.raises(aiohttp.ClientError):
        await client.send(
            "dial", {"from": "+15559870000", "to": "+15550100002", "url": "https://e.com/s"}
        )
    assert len(sim.calls) == 1  # the dangerous case: the call exists, the client cannot know


async def test_reset_rate(client: Client, sim: Simulator) -> None:
    sim.faults.reset_rate = 1.0
    with pytest.raises(aiohttp.ClientError):
        await client.send("calling.end", {}, "x")
    sim.faults.clear()
    status, _ = await client.send("calling.end", {}, "x")
    assert status == 404


async def test_drop_rate_drops_everything(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.faults.drop_rate = 1.0
    call_id = await client.answered_call(status_url=receiver.url())
    assert receiver.hits == []
    assert {w.outcome for w in sim.webhooks_for(call_id=call_id)} == {"dropped"}


async def test_duplicate_rate(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.faults.duplicate_rate = 1.0
    call_id = await client.answered_call(status_url=receiver.url(), events=["answered"])
    await sim.wait_for_webhooks_idle()
    assert [h.json["params"]["call_state"] for h in receiver.hits] == ["answered", "answered"]
    assert call_id


def test_fault_plan_validation() -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        FaultPlan(drop_rate=2)
    with pytest.raises(ValueError, match="server_error_status"):
        FaultPlan(server_error_status=404)
    with pytest.raises(ValueError, match="nth"):
        FaultPlan().drop_webhook(nth=0)


async def test_faults_can_be_replaced(client: Client, sim: Simulator) -> None:
    sim.faults = FaultPlan(server_error_rate=1.0)
    status, _ = await client.send("calling.end", {}, "x")
    assert status == 500
    sim.faults = FaultPlan()
    status, _ = await client.send("calling.end", {}, "x")
    assert status == 404


# ---------------------------------------------------------------------------- JSON form


def test_fault_plan_from_dict_round_trip(tmp_path: Path) -> None:
    data = {
        "seed": 7,
        "duplicate_rate": 0.1,
        "reorder_rate": 0.2,
        "rate_limit_rate": 0.05,
        "retry_after": 2,
        "webhook_delay": 0.5,
        "events_before_response": True,
        "server_error_status": 503,
        "webhook_rules": [
            {"action": "drop", "event_type": "calling.call.play", "state": "finished"},
            {"action": "delay", "delay": 5, "nth": 2, "count": 3},
        ],
        "command_rules": [
            {"action": "status", "status": 429, "command": "dial", "count": 2, "retry_after": 1},
            {"action": "reset", "command": "dial", "after_processing": True},
        ],
    }
    plan = FaultPlan.from_dict(data)
    assert (plan.seed, plan.duplicate_rate, plan.retry_after) == (7, 0.1, 2.0)
    assert plan.events_before_response is True
    first, second = plan.webhook_rules
    assert (first.action, first.event_type, first.state, first.nth) == (
        "drop",
        "calling.call.play",
        "finished",
        1,
    )
    assert (second.action, second.delay, second.nth, second.count) == ("delay", 5.0, 2, 3)
    status, reset = plan.command_rules
    assert (status.action, status.status, status.count, status.retry_after) == (
        "status",
        429,
        2,
        1.0,
    )
    assert (reset.action, reset.after_processing) == ("reset", True)
    again = FaultPlan.from_dict(plan.to_dict())
    assert again.to_dict() == plan.to_dict()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    assert FaultPlan.load(path).to_dict() == plan.to_dict()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "JSON object"),
        ({"drop_rat": 0.1}, "drop_rat: not a fault plan setting"),
        ({"drop_rate": 2}, "drop_rate"),
        ({"drop_rate": "often"}, "drop_rate: must be a number"),
        ({"seed": 1.5}, "seed: must be an integer"),
        ({"events_before_response": 1}, "events_before_response: must be true or false"),
        ({"webhook_rules": {}}, "webhook_rules: must be a list"),
        ({"webhook_rules": [{"action": "explode"}]}, r"webhook_rules\[0\].action"),
        ({"webhook_rules": [{"action": "drop", "nth": 0}]}, r"webhook_rules\[0\].nth"),
        ({"webhook_rules": [{"action": "drop", "stat": "x"}]}, r"webhook_rules\[0\].stat"),
        ({"command_rules": [{"action": "status", "status": 200}]}, r"command_rules\[0\].status"),
        ({"command_rules": [{"action": "reset", "command": 5}]}, r"command_rules\[0\].command"),
        ({"webhook_delay": -1}, "webhook_delay: must be >= 0"),
    ],
)
def test_fault_plan_from_dict_names_the_field(data: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FaultPlan.from_dict(data)


def test_fault_plan_load_rejects_non_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        FaultPlan.load(path)


async def test_a_loaded_plan_acts(client: Client, sim: Simulator) -> None:
    sim.faults = FaultPlan.from_dict(
        {"command_rules": [{"action": "status", "status": 503, "command": "calling.end"}]}
    )
    status, _ = await client.send("calling.end", {}, "x")
    assert status == 503
    status, _ = await client.send("calling.end", {}, "x")
    assert status == 404
