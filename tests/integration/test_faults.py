"""Adversity: the simulator's fault plan against the whole client.

The correlation protocol is in docs/architecture.md.
"""

from __future__ import annotations

import asyncio

import pytest

from signalwire_calls import (
    CallEndedError,
    CallSession,
    ConnectError,
    Digits,
    HandleStatus,
    RetryPolicy,
    SessionClosedError,
    SessionStateError,
    silence,
)
from signalwire_calls.call import Call
from signalwire_calls.testing import Callee, FaultPlan, Simulator

from .conftest import CALLER, HUMAN, SWML, make_session

T = 5.0


async def answered_call(sim: Simulator, session: CallSession, to: str = HUMAN) -> Call:
    sim.script(to, Callee.answers(after=0.5))
    call = await session.dial(to=to, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    return call


async def test_webhooks_before_the_http_response(sim: Simulator, session: CallSession) -> None:
    sim.faults.events_before_response = True
    call = await answered_call(sim, session)
    play = await call.play(silence(0.2))
    # the simulator answered the play only after its "playing" webhook was delivered
    assert play.state is not None
    assert (await play.finished(timeout=T)).state == "finished"
    stats = session.stats().registry
    assert stats.expired == 0
    assert stats.buffered == stats.replayed


async def test_duplicate_webhooks_are_dropped(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    sim.faults.duplicate_webhook(event_type="calling.call.play", state="playing")
    sim.faults.duplicate_webhook(event_type="calling.call.play", state="finished")
    play = await call.play(silence(0.3))
    await play.finished(timeout=T)
    await sim.wait_for_webhooks_idle(timeout=T)
    states = [e.params.state async for e in play.events()]  # type: ignore[attr-defined]
    assert states == ["playing", "finished"]
    stats = session.stats().registry
    assert stats.duplicates + stats.late >= 2


async def test_terminal_before_start_settles(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    sim.faults.reorder_webhook(event_type="calling.call.play", state="playing")
    play = await call.play(silence(0.01))
    assert (await play.finished(timeout=T)).state == "finished"
    await sim.wait_for_webhooks_idle(timeout=T)
    assert play.status is HandleStatus.FINISHED
    assert play.state == "finished"  # the late "playing" did not move it back


async def test_lost_terminal_event_then_call_end(sim: Simulator) -> None:
    async with make_session(sim, call_end_grace=0.1) as session:
        call = await answered_call(sim, session)
        sim.faults.drop_webhook(event_type="calling.call.play", state="finished", count=10)
        play = await call.play(silence(600))
        await sim.wait_for_webhook("calling.call.play", state="playing", timeout=T)
        sim.hangup(call.id)
        with pytest.raises(CallEndedError) as info:
            await play.finished(timeout=T)
        assert info.value.control_id == play.control_id
        assert info.value.end_reason == call.end_reason
        assert session.stats().registry.pending_operations == 0


async def test_receiver_restart() -> None:
    sim2 = Simulator(time_scale=0.01, webhook_backoff=0.05, webhook_attempts=20)
    async with sim2, make_session(sim2) as session:
        call = await answered_call(sim2, session)
        receiver = session.receiver
        assert receiver is not None
        port = receiver.port
        collect = await call.collect(digits=Digits(max=1), initial_timeout=600)
        await receiver.aclose()
        play = await call.play(silence(0.1))  # its webhooks meet a closed port
        await sim2.wait_for_operation(call.id, play.control_id, state="finished", timeout=T)
        await receiver.start()
        assert receiver.port == port
        assert (await play.finished(timeout=T)).state == "finished"
        assert not collect.done


async def test_rate_limited_and_unavailable_commands_are_retried(sim: Simulator) -> None:
    async with make_session(sim, retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.02)) as session:
        call = await answered_call(sim, session)
        sim.faults.fail_command(429, command="calling.play", retry_after=0.01)
        sim.faults.fail_command(503, command="calling.play")  # rules apply in turn
        play = await call.play(silence(0.1))
        assert (await play.finished(timeout=T)).state == "finished"
        statuses = [c.status for c in sim.commands if c.command == "calling.play"]
        assert statuses == [429, 503, 200]


async def test_ambiguous_dial_failure_is_not_resent(sim: Simulator, session: CallSession) -> None:
    sim.faults.reset_command(command="dial", after_processing=True)
    with pytest.raises(ConnectError):
        await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    assert len([c for c in sim.commands if c.command == "dial"]) == 1
    assert len(sim.calls) == 1


async def test_closing_the_session_settles_pending_handles(sim: Simulator) -> None:
    session = make_session(sim)
    async with session:
        call = await answered_call(sim, session)
        play = await call.play(silence(600))
        own = await session.dial(
            to="+15551230077",
            from_=CALLER,
            swml=SWML,
            correlate=False,
            status_url="http://127.0.0.1:9/own",
        )
        await sim.wait_for_call_state(own.id, "answered", timeout=T)
        own_play = await own.play(silence(600))
    assert play.status is HandleStatus.FAILED
    with pytest.raises(SessionClosedError):
        await play.finished(timeout=T)
    with pytest.raises(SessionClosedError):
        await own_play.finished(timeout=T)
    assert session.stats().registry.pending_operations == 0
    with pytest.raises(SessionClosedError):
        await call.ended(timeout=T)
    # using a closed session is a programming error, apart from the outcome errors
    with pytest.raises(SessionStateError, match="closed"):
        await call.play(silence(1))
    with pytest.raises(SessionStateError, match="only once"):
        await session.open()
    await session.aclose()  # idempotent


async def test_random_faults_every_flow_settles() -> None:
    plan = FaultPlan(seed=7, duplicate_rate=0.2, reorder_rate=0.2, rate_limit_rate=0.1)
    plan.retry_after = 0.01
    async with Simulator(time_scale=0.01, faults=plan, webhook_backoff=0.02) as sim:
        sim.script("*", Callee.answers(after=0.5, digits="5"))
        async with make_session(sim, retry=RetryPolicy(max_attempts=6, backoff_base=0.01)) as s:
            for i in range(10):
                call = await s.dial(to=f"+1555000{i:04d}", from_=CALLER, swml=SWML)
                await call.answered(timeout=T)
                play = await call.play(silence(0.2))
                await play.finished(timeout=T)
                menu = await call.collect(digits=Digits(max=1), initial_timeout=5)
                assert (await menu.finished(timeout=T)).digits == "5"
                await call.end()
                await call.ended(timeout=T)
            stats = s.stats()
            assert stats.registry.pending_operations == 0
            assert stats.registry.expired == 0


async def test_two_hundred_concurrent_flows(sim: Simulator, session: CallSession) -> None:
    sim.script("*", Callee.answers(after=0.5, digits="9"))

    async def flow(i: int) -> str | None:
        call = await session.dial(to=f"+1555100{i:04d}", from_=CALLER, swml=SWML)
        await call.answered(timeout=T)
        await (await call.play(silence(0.5))).finished(timeout=T)
        digits = (await (await call.collect(digits=Digits(max=1))).finished(timeout=T)).digits
        await call.end()
        await call.ended(timeout=T)
        return digits

    results = await asyncio.gather(*(flow(i) for i in range(200)))
    assert results == ["9"] * 200
    stats = session.stats().registry
    assert (stats.pending_operations, stats.live_calls, stats.expired) == (0, 0, 0)
