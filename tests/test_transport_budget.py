"""The transport's time budgets under its one shared timer: each attempt still times out
on its own deadline, a caller's own cancellation stays a cancellation, and queueing
and mixed timeouts keep their errors. Real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from signalwire_calls._retry import RetryPolicy
from signalwire_calls._settings import HTTPSettings
from signalwire_calls._transport import Transport
from signalwire_calls.commands import Play, silence
from signalwire_calls.errors import PoolTimeout, ReadTimeout

CALL_ID = "0e9c80d7-a149-4917-892d-420043709f45"
NO_RETRY = RetryPolicy(max_attempts=1)


def play(control_id: str) -> Play:
    """A play whose control id tells the server how long to take: ``slow-<ms>-...``."""
    return Play(control_id=control_id, play=[silence(1)])


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        control_id: str = body["params"]["control_id"]
        if control_id.startswith("slow-"):
            await asyncio.sleep(int(control_id.split("-")[1]) / 1000)
        return web.json_response({"id": CALL_ID, "type": "relay_pstn_call"})

    app = web.Application()
    app.router.add_post("/api/calling/calls", handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def transport(server: str) -> AsyncIterator[Transport]:
    t = Transport(
        base_url=server,
        project="p",
        token="t",
        settings=HTTPSettings(timeout=0.3),
        retry=NO_RETRY,
    )
    try:
        yield t
    finally:
        await t.aclose()


async def test_one_attempt_times_out_while_the_others_answer(transport: Transport) -> None:
    started = time.monotonic()
    async with asyncio.timeout(5):
        results = await asyncio.gather(
            transport.send(play("slow-3000-a"), CALL_ID),
            *(transport.send(play(f"fast-{i}"), CALL_ID) for i in range(20)),
            return_exceptions=True,
        )
    assert type(results[0]) is ReadTimeout
    assert results[0].request_sent is True
    assert all(getattr(r, "id", None) == CALL_ID for r in results[1:])
    assert time.monotonic() - started < 2.0
    stats = transport.stats()
    assert (stats.read_timeouts, stats.in_flight) == (1, 0)


async def test_every_attempt_under_the_timer_times_out_at_its_own_deadline(
    transport: Transport,
) -> None:
    # started 0.1 s apart under the same 0.3 s budget: they end in the order they began
    ended: list[tuple[str, float]] = []
    started = time.monotonic()

    async def one(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        with pytest.raises(ReadTimeout):
            await transport.send(play(f"slow-3000-{name}"), CALL_ID)
        ended.append((name, time.monotonic() - started))

    async with asyncio.timeout(5):
        await asyncio.gather(one("a", 0.0), one("b", 0.1), one("c", 0.2))
    assert [name for name, _ in ended] == ["a", "b", "c"]
    for (_, at), begun in zip(ended, (0.0, 0.1, 0.2), strict=True):
        assert 0.25 <= at - begun < 1.0


async def test_the_callers_cancellation_is_not_turned_into_a_timeout(
    transport: Transport,
) -> None:
    task = asyncio.create_task(transport.send(play("slow-3000-a"), CALL_ID))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the budget's expiry later finds nothing to cancel; the transport carries on
    await asyncio.sleep(0.3)
    async with asyncio.timeout(5):
        leg = await transport.send(play("fast-1"), CALL_ID)
    assert leg.id == CALL_ID
    stats = transport.stats()
    assert (stats.read_timeouts, stats.in_flight, stats.queued) == (0, 0, 0)


async def test_cancelled_as_the_budget_runs_out_stays_cancelled(transport: Transport) -> None:
    """The caller cancels in the same loop turn as the budget expires: the caller's
    cancellation wins, as with asyncio.timeout."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(transport.send(play("slow-3000-a"), CALL_ID))
    await asyncio.sleep(0.05)
    (budget,) = transport._budgets
    loop.call_at(budget.deadline, task.cancel)  # the timer's own turn
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()
    stats = transport.stats()
    assert (stats.read_timeouts, stats.in_flight) == (0, 0)


async def test_an_expired_budget_while_queued_is_a_pool_timeout(server: str) -> None:
    t = Transport(
        base_url=server,
        project="p",
        token="t",
        settings=HTTPSettings(limit=1, timeout=0.3),
        retry=NO_RETRY,
    )
    async with t, asyncio.timeout(5):
        holder = asyncio.create_task(t.send(play("slow-1000-a"), CALL_ID, timeout=None))
        await asyncio.sleep(0.05)
        with pytest.raises(PoolTimeout) as info:
            await t.send(play("fast-1"), CALL_ID)
        assert info.value.request_sent is False
        assert (await holder).id == CALL_ID
        stats = t.stats()
        assert (stats.pool_timeouts, stats.read_timeouts, stats.queued) == (1, 0, 0)


@pytest.mark.parametrize("short_first", [False, True])
async def test_shorter_and_longer_timeouts_in_any_order(
    transport: Transport, short_first: bool
) -> None:
    """A per-call timeout shorter than one already running cannot join the ordered
    timer (aiohttp's timer keeps it); either way each keeps its own deadline."""
    ended: dict[str, float] = {}
    started = time.monotonic()

    async def long() -> None:
        leg = await transport.send(play("slow-600-long"), CALL_ID, timeout=3.0)
        assert leg.id == CALL_ID
        ended["long"] = time.monotonic() - started

    async def short() -> None:
        with pytest.raises(ReadTimeout):
            await transport.send(play("slow-3000-short"), CALL_ID, timeout=0.2)
        ended["short"] = time.monotonic() - started

    first, second = (short, long) if short_first else (long, short)
    async with asyncio.timeout(5):
        task = asyncio.create_task(first())
        await asyncio.sleep(0.05)
        await second()
        await task
    assert 0.15 <= ended["short"] < 0.6
    assert 0.55 <= ended["long"] < 2.0
    assert transport.stats().read_timeouts == 1


async def test_a_shorter_timeout_after_a_longer_attempt_ended_keeps_its_own_deadline(
    transport: Transport,
) -> None:
    """The finished attempt's deadline is later than the new one's: the timer must not
    wait for it."""
    async with asyncio.timeout(5):
        leg = await transport.send(play("fast-1"), CALL_ID, timeout=3.0)
        assert leg.id == CALL_ID
        started = time.monotonic()
        with pytest.raises(ReadTimeout):
            await transport.send(play("slow-3000-short"), CALL_ID, timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 1.0
