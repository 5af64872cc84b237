"""Inbound calls: the simulator places calls to the session's SWML webhook; handlers
collect inline; hang-ups, failures, the cap and forged requests."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec
import pytest

from signalwire_calls import (
    Call,
    CallEndedError,
    CallSession,
    Digits,
    InboundRequest,
    tts,
)
from signalwire_calls._signing import sign
from signalwire_calls.testing import Callee, Simulator

from .conftest import make_session

T = 10.0
BOT = "+15550000100"


def caller(i: int) -> str:
    return f"+1555300{i:04d}"


def running(session: CallSession) -> int:
    stats = session.stats().inbound
    assert stats is not None
    return stats.running


async def place(sim: Simulator, session: CallSession, i: int, callee: Callee) -> Any:
    return await sim.place_inbound(from_=caller(i), to=BOT, url=session.inbound_url, callee=callee)


async def test_200_concurrent_inbound_calls_collect_inline(sim: Simulator) -> None:
    results: dict[str, str | None] = {}
    session = make_session(sim)

    @session.on_inbound(max_concurrent=200)
    async def bot(call: Call, request: InboundRequest) -> None:
        assert call.direction == "inbound"
        assert request.to == BOT
        menu = await call.prompt(tts("Press a digit"), digits=Digits(max=1), initial_timeout=20)
        result = await menu.finished(timeout=T)
        results[str(request.from_)] = result.digits

    async with session:
        await asyncio.gather(
            *(
                place(sim, session, i, Callee.answers(digits=str(i % 10), input_delay=0.5))
                for i in range(200)
            )
        )
        for _ in range(400):
            if len(results) == 200 and session.stats().registry.live_calls == 0:
                break
            await asyncio.sleep(0.05)
        stats = session.stats()
    assert results == {caller(i): str(i % 10) for i in range(200)}
    assert stats.inbound is not None
    assert (stats.inbound.received, stats.inbound.handled, stats.inbound.failed) == (200, 200, 0)
    assert (stats.registry.live_calls, stats.registry.pending_operations) == (0, 0)
    for sim_call in sim.calls.values():
        assert sim_call.ended, sim_call.status  # every handler hung up when it returned
        assert sim_call.swml_error is None


async def test_a_caller_hanging_up_mid_collect_ends_the_call(sim: Simulator) -> None:
    outcome: list[Any] = []
    session = make_session(sim, call_end_grace=0.5)

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        collect = await call.collect(digits=Digits(max=1), initial_timeout=60)
        try:
            await collect.finished(timeout=T)
        except CallEndedError as exc:
            outcome.append(exc)
        outcome.append(await call.ended(timeout=T))

    async with session:
        await place(sim, session, 1, Callee.answers(input_delay=60, hangup_after=1.0))
        for _ in range(200):
            if len(outcome) == 2 and session.stats().registry.live_calls == 0:
                break
            await asyncio.sleep(0.05)
        stats = session.stats().registry
    assert isinstance(outcome[0], CallEndedError)
    assert outcome[1] == "not_found"  # the probe's 404 showed the call was gone
    assert (stats.live_calls, stats.pending_operations, stats.buffered_now) == (0, 0, 0)


async def test_a_handler_that_raises_is_logged_and_its_call_hung_up(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []
    session = make_session(sim)

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        if request.from_ == caller(1):
            raise RuntimeError("the bot broke")
        play = await call.play(tts("hello"))
        await play.finished(timeout=T)
        done.append(call.id)

    async with session:
        with caplog.at_level(logging.ERROR, logger="signalwire_calls"):
            broken = await place(sim, session, 1, Callee.answers())
            fine = await place(sim, session, 2, Callee.answers())
            await sim.wait_for_call_state(broken.id, "ended", timeout=T)
            await sim.wait_for_call_state(fine.id, "ended", timeout=T)
        stats = session.stats().inbound
    assert done == [fine.id]
    assert stats is not None
    assert stats.failed == 1
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert broken.id in failures[0].getMessage()
    assert failures[0].exc_info is not None


async def test_calls_over_the_cap_get_the_overflow_swml(sim: Simulator) -> None:
    release = asyncio.Event()
    session = make_session(sim)

    @session.on_inbound(max_concurrent=2)
    async def bot(call: Call, request: InboundRequest) -> None:
        await release.wait()

    async with session:
        calls = [await place(sim, session, i, Callee.answers()) for i in range(3)]
        stats = session.stats().inbound
        assert stats is not None
        assert (stats.handled, stats.overflow, stats.running) == (2, 1, 2)
        overflow = calls[2]
        # the default overflow SWML answers, says the lines are busy, and hangs up
        assert [method for method, _ in overflow.swml] == ["answer", "play", "hangup"]
        await sim.wait_for_call_state(overflow.id, "ended", timeout=T)
        release.set()
        for call in calls[:2]:
            await sim.wait_for_call_state(call.id, "ended", timeout=T)


async def test_closing_the_session_cancels_handlers_until_they_end_and_hangs_up(
    sim: Simulator,
) -> None:
    cancelled: list[str] = []
    session = make_session(sim)

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(str(request.from_))
            if request.from_ == caller(0):
                await asyncio.sleep(3600)  # swallows the first cancellation: cancelled again
            raise

    async with session:
        calls = [await place(sim, session, i, Callee.answers()) for i in range(2)]
        for _ in range(200):
            if running(session) == 2:
                break
            await asyncio.sleep(0.01)
        assert running(session) == 2
        closing = asyncio.create_task(session.aclose())
        await asyncio.wait_for(asyncio.shield(closing), T)
    stats = session.stats().inbound
    assert stats is not None
    assert (stats.running, stats.failed) == (0, 0)
    assert sorted(cancelled) == [caller(0), caller(1)]
    for sim_call in calls:  # each handler hung its call up before the session closed
        await sim.wait_for_call_state(sim_call.id, "ended", timeout=T)


async def test_the_reply_may_be_the_users_own_swml(sim: Simulator) -> None:
    greeting = {
        "version": "1.0.0",
        "sections": {"main": [{"answer": {}}, {"play": {"url": "say:Hi"}}, {"sleep": -1}]},
    }
    session = make_session(sim)

    @session.on_inbound(swml=greeting)
    async def bot(call: Call, request: InboundRequest) -> None:
        request.keep_call()

    async with session:
        placed = await place(sim, session, 1, Callee.answers())
        await asyncio.sleep(0.2)
        assert [method for method, _ in placed.swml] == ["answer", "play", "sleep"]
        assert not sim.calls[placed.id].ended  # kept: not hung up when the handler returned
        sim.hangup(placed.id)


@pytest.mark.parametrize("key", [None, "a-wrong-key"])
async def test_an_unsigned_or_wrongly_signed_swml_request_is_refused(
    sim: Simulator, key: str | None
) -> None:
    ran: list[str] = []
    session = make_session(sim)

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        ran.append(call.id)

    body = msgspec.json.encode({"call": {"call_id": "forged-1", "from": "+1555"}, "vars": {}})
    async with session, aiohttp.ClientSession() as http:
        url = session.inbound_url
        headers = sign(key, url, body) if key else {}
        async with http.post(url, data=body, headers=headers) as resp:
            assert resp.status == 403
        stats = session.stats()
    assert ran == []
    assert stats.receiver is not None
    assert stats.receiver.rejected_signature == 1
    assert stats.inbound is not None
    assert stats.inbound.received == 0


async def test_no_inbound_handler_means_404(sim: Simulator) -> None:
    body = msgspec.json.encode({"call": {"call_id": "c-1"}, "vars": {}})
    async with make_session(sim) as session, aiohttp.ClientSession() as http:
        url = session.inbound_url
        async with http.post(url, data=body, headers=sign(sim.signing_key or "", url, body)) as r:
            assert r.status == 404
