"""Calls-per-second pacing as the platform does it: queued dials, FIFO starts, the backlog cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest

from signalwire_calls.testing import Callee, Simulator

from .helpers import Client, Receiver


def busiest_window(starts: Sequence[float], width: float) -> int:
    """The most starts inside any window of ``width`` seconds."""
    ordered = sorted(starts)
    best = 0
    for i, first in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t < first + width))
    return best


def test_busiest_window() -> None:
    assert busiest_window([0.0, 0.5, 0.9, 1.0, 1.2], 1.0) == 4
    assert busiest_window([0.0, 1.0, 2.0], 1.0) == 1
    assert busiest_window([], 1.0) == 0


@pytest.fixture
async def paced() -> AsyncIterator[tuple[Simulator, Client]]:
    # 0.5 calls per simulated second at time_scale 0.1: one start every 0.2 s real.
    async with (
        Simulator(time_scale=0.1, cps=0.5, max_queued_calls=3) as sim,
        aiohttp.ClientSession() as http,
    ):
        sim.script("*", Callee.answers(after=100))
        yield sim, Client(sim, http)


async def test_pacing_holds_and_is_first_in_first_out() -> None:
    cps = 5.0
    async with (
        Simulator(time_scale=0.01, cps=cps) as sim,
        aiohttp.ClientSession() as http,
    ):
        client = Client(sim, http)
        legs = await asyncio.gather(
            *(client.ok("dial", _dial(f"+1555200{i:04d}")) for i in range(20))
        )
        assert {leg["status"] for leg in legs} == {"queued"}
        assert len(sim.dial_times) == 20
        assert list(sim.dial_times) == sorted(sim.dial_times)
        await sim.wait_for(lambda: len(sim.start_times) == 20)
        second = 1.0 * sim.time_scale
        assert busiest_window(sim.start_times, second) <= cps + 1
        # Without pacing all 20 would start in the same simulated instant.
        assert sim.start_times[-1] - sim.start_times[0] >= (20 - 1) / cps * second * 0.9
        # First in, first out: calls start in the order they were dialled.
        started = [c.started_mono for c in sim.calls.values()]
        assert None not in started
        assert started == sorted(started)  # type: ignore[type-var]
        assert sim.live_calls == 20
        assert sim.peak_live_calls == 20
        for call_id in list(sim.calls):
            await client.ok("calling.end", {}, call_id)
        await sim.wait_for(lambda: sim.live_calls == 0)
    assert sim.peak_live_calls == 20


async def test_unlimited_starts_everything_at_once() -> None:
    async with (
        Simulator(time_scale=0.01, cps=None) as sim,
        aiohttp.ClientSession() as http,
    ):
        client = Client(sim, http)
        await asyncio.gather(*(client.ok("dial", _dial(f"+1555300{i:04d}")) for i in range(20)))
        assert sim.queued_calls == 0  # nobody waits for a turn (with cps=1: 19 would)
        await sim.wait_for(lambda: len(sim.start_times) == 20)
        assert sim.peak_live_calls == 20


async def test_backlog_cap_answers_422(paced: tuple[Simulator, Client]) -> None:
    sim, client = paced
    ids = [(await client.ok("dial", _dial(f"+1555400000{i}")))["id"] for i in range(4)]
    assert sim.queued_calls == 3  # the first one started at once
    status, body = await client.send("dial", _dial("+15554000009"))
    assert status == 422
    (error,) = body["errors"]
    assert error["code"] == "max_queued_calls_exceeded"
    assert set(error) == {"type", "code", "message", "attribute", "url"}
    assert len(sim.dial_times) == 4  # the refused dial is not counted
    assert len(sim.calls) == 4
    # Canceling a waiting call makes room again.
    await client.ok("update", {"id": ids[3], "status": "canceled"})
    assert sim.queued_calls == 2
    await client.ok("dial", _dial("+15554000010"))
    assert sim.queued_calls == 3


async def test_lifting_the_limit_starts_the_waiting_calls(
    paced: tuple[Simulator, Client],
) -> None:
    sim, client = paced
    for i in range(4):
        await client.ok("dial", _dial(f"+1555600000{i}"))
    assert sim.queued_calls == 3
    sim.cps = None
    assert sim.queued_calls == 0
    await sim.wait_for(lambda: len(sim.start_times) == 4)
    sim.cps = 0.5
    await client.ok("dial", _dial("+15556000009"))
    await client.ok("dial", _dial("+15556000010"))
    assert sim.queued_calls >= 1  # paced again
    with pytest.raises(ValueError, match="cps"):
        sim.cps = -1


async def test_default_backlog_is_ten_thousand() -> None:
    assert Simulator().max_queued_calls == 10_000
    assert Simulator().cps == 1.0
    with pytest.raises(ValueError, match="cps"):
        Simulator(cps=0)


async def test_cancel_and_end_while_queued(paced: tuple[Simulator, Client]) -> None:
    sim, client = paced
    receiver = Receiver()
    await receiver.start()
    try:
        a, b, c, d = [
            (await client.ok("dial", _dial(f"+1555500000{i}", status_url=receiver.url())))["id"]
            for i in range(4)
        ]
        assert sim.queued_calls == 3
        leg = await client.ok("update", {"id": b, "status": "canceled"})
        assert leg["status"] == "canceled"
        leg = await client.ok("calling.end", {"reason": "hangup"}, c)
        assert leg["status"] == "ended"
        assert sim.queued_calls == 1
        assert sim.calls[b].history == ["queued", "canceled"]
        assert sim.calls[c].history == ["queued", "ended"]
        # d takes the next slot: b and c never start.
        await sim.wait_for_call_state(d, "initiated", timeout=5)
        assert [sim.calls[x].started_mono is not None for x in (a, b, c, d)] == [
            True,
            False,
            False,
            True,
        ]
        assert len(sim.start_times) == 2
        assert sim.live_calls == 2
        # Commands on the canceled call now get 404, like any ended call.
        status, _ = await client.send("calling.end", {}, b)
        assert status == 404
        await sim.wait_for_webhooks_idle()
        ended = [
            (h.json["params"]["call_id"], h.json["params"]["end_reason"])
            for h in receiver.hits
            if h.json["params"]["call_state"] == "ended"
        ]
        assert sorted(ended) == sorted([(b, "cancel"), (c, "hangup")])
    finally:
        await receiver.stop()


def _dial(to: str, *, status_url: str | None = None) -> dict[str, object]:
    params: dict[str, object] = {"from": "+15559870000", "to": to, "url": "https://e.com/s"}
    if status_url is not None:
        params["status_url"] = status_url
    return params
