"""Saying why nothing arrives: the dial watchdog, WaitTimeout messages, the session-wide
wait timeout, the maximum call length."""

from __future__ import annotations

import asyncio
import logging

import pytest

from signalwire_calls import CallEndedError, CallSession, WaitTimeout, silence
from signalwire_calls.testing import Callee, Simulator

from .conftest import CALLER, HUMAN, SWML, make_session

T = 5.0


async def test_no_webhook_after_a_dial_warns_with_the_status_url_and_rejections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong signing key: every webhook is refused, and the session says so."""
    async with Simulator(time_scale=0.01, cps=None, signing_key="the-real-key") as sim:
        sim.script(HUMAN, Callee.answers(after=0.5))
        session = CallSession(
            space=sim.base_url,
            project=sim.project,
            token=sim.token,
            signing_key="a-wrong-key",
            webhook_warning_after=0.3,
        )
        async with session:
            with caplog.at_level(logging.WARNING, logger="signalwire_calls"):
                call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
                await asyncio.sleep(0.6)
            with pytest.raises(WaitTimeout) as info:
                await call.answered(timeout=0.2)
            await call.end()
    assert isinstance(info.value, TimeoutError)
    assert call.id in str(info.value)
    assert "no call-state event yet" in str(info.value)
    assert info.value.timeout == 0.2
    assert info.value.last_event is None
    warnings = [r.getMessage() for r in caplog.records if "no webhook arrived" in r.getMessage()]
    assert len(warnings) == 1
    assert session.status_url in warnings[0]
    assert "Signature rejections meanwhile: " in warnings[0]
    rejected = int(warnings[0].split("Signature rejections meanwhile: ")[1].split(" ")[0])
    assert rejected >= 1


async def test_a_dial_whose_webhooks_arrive_does_not_warn(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    async with make_session(sim, webhook_warning_after=0.2) as session:
        with caplog.at_level(logging.WARNING, logger="signalwire_calls"):
            call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
            await call.answered(timeout=T)
            await asyncio.sleep(0.3)
            await call.end()
    assert "no webhook arrived" not in caplog.text


async def test_finished_timeout_names_what_was_awaited_and_the_last_event(
    sim: Simulator,
) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    async with make_session(sim) as session:
        call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
        await call.answered(timeout=T)
        play = await call.play(silence(600))
        await sim.wait_for_webhook("calling.call.play", state="playing", timeout=T)
        await asyncio.sleep(0.05)
        with pytest.raises(WaitTimeout) as info:
            await play.finished(timeout=0.1)
        message = str(info.value)
        assert f"play {play.control_id!r}" in message
        assert "0.1 s" in message
        assert "calling.call.play playing" in message
        assert info.value.last_event is play.last_event
        assert not play.done  # intact: it can be awaited again
        await play.stop()
        assert (await play.finished(timeout=T)).state == "finished"
        await call.end()


async def test_the_session_wide_wait_timeout_bounds_every_wait(sim: Simulator) -> None:
    sim.script(HUMAN, Callee.no_answer(after=60))
    async with make_session(sim, wait_timeout=0.2) as session:
        call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML, timeout=600)
        with pytest.raises(WaitTimeout) as info:
            await call.answered()
        assert info.value.timeout == 0.2
        with pytest.raises(WaitTimeout):
            await call.ended()
        await call.end()


async def test_a_call_not_heard_from_for_the_maximum_length_ends_locally(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    async with make_session(sim, max_call_length=0.4) as session:
        call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
        await call.answered(timeout=T)
        play = await call.play(silence(6000))
        with caplog.at_level(logging.WARNING, logger="signalwire_calls"):
            assert await call.ended(timeout=T) == "max_call_length"
        with pytest.raises(CallEndedError):
            await play.finished(timeout=T)
        assert session.stats().registry.calls_ended_locally == 1
    assert "maximum call length" in caplog.text
