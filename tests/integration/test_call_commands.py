"""The Call methods that start no operation, end to end against the simulator."""

from __future__ import annotations

import pytest

from signalwire_calls import (
    CallEndedError,
    CallNotFoundError,
    CallSession,
    NotFoundError,
    UnprocessableEntityError,
    sip_device,
)
from signalwire_calls.commands import (
    AIReset,
    live_transcribe_start,
    live_translate_inject,
    live_translate_start,
)
from signalwire_calls.events import ReferEvent
from signalwire_calls.testing import Callee, Simulator

from .conftest import CALLER, HUMAN, SWML

T = 5.0


async def test_every_call_command_reaches_the_space(sim: Simulator, session: CallSession) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    await call.denoise()
    await call.denoise_stop()
    await call.ai_hold(timeout="30", prompt="One moment")
    await call.ai_unhold()
    await call.ai_message("Be brief", role="system")
    await call.ai_message(reset=AIReset(full_reset=True))
    await call.ai_stop()
    await call.live_transcribe(live_transcribe_start("en-US", ["remote-caller"]))
    await call.live_transcribe("stop")
    await call.live_translate(live_translate_start("en-US", "de-DE", ["local-caller"]))
    await call.live_translate(live_translate_inject("hello", "local-caller"))
    await call.live_translate("stop")
    await call.user_event({"kind": "hello"})
    await call.redirect(url="https://example.com/next.swml")
    await call.disconnect()
    await call.transfer("+15551230009")
    names = [
        c.command
        for c in sim.commands
        if c.call_id == call.id and c.status == 200 and c.command != "dial"
    ]
    assert names == [
        "calling.denoise",
        "calling.denoise.stop",
        "calling.ai_hold",
        "calling.ai_unhold",
        "calling.ai_message",
        "calling.ai_message",
        "calling.ai.stop",
        "calling.live_transcribe",
        "calling.live_transcribe",
        "calling.live_translate",
        "calling.live_translate",
        "calling.live_translate",
        "calling.user_event",
        "update",
        "calling.disconnect",
        "calling.transfer",
    ]
    update = next(c for c in sim.commands if c.command == "update")
    assert update.params["id"] == call.id
    assert update.params["status_url"] == session.status_url


async def test_update_completed_ends_the_call(sim: Simulator, session: CallSession) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    call = await session.dial(to=HUMAN, from_=CALLER, url="https://example.com/a.swml")
    await call.answered(timeout=T)
    await call.update(status="completed")
    assert await call.ended(timeout=T) is not None


async def test_cancel_before_answer(sim: Simulator, session: CallSession) -> None:
    sim.script(HUMAN, Callee.answers(after=100))
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await sim.wait_for_call_state(call.id, "ringing", timeout=T)
    await call.update(status="canceled")
    await call.ended(timeout=T)
    assert call.is_ended


async def test_redirect_before_answer_is_refused(sim: Simulator, session: CallSession) -> None:
    sim.script(HUMAN, Callee.answers(after=100))
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await sim.wait_for_call_state(call.id, "ringing", timeout=T)
    with pytest.raises(UnprocessableEntityError) as info:
        await call.redirect(url="https://example.com/b.swml")
    assert info.value.errors[0].code == "cannot_redirect_not_in_progress"
    assert info.value.command == "update"


async def test_commands_to_an_ended_call_fail_locally(sim: Simulator, session: CallSession) -> None:
    """A call the library knows has ended refuses commands with CallEndedError and sends
    nothing; end() on it returns quietly."""
    sim.script(HUMAN, Callee.answers(after=0.5))
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    await call.end("hangup")
    await call.ended(timeout=T)
    sent = len(sim.commands)
    with pytest.raises(CallEndedError) as info:
        await call.denoise()
    assert info.value.call_id == call.id
    assert info.value.end_reason == "hangup"
    assert await call.end() is None
    assert len(sim.commands) == sent


async def test_a_404_marks_an_attached_call_ended(sim: Simulator, session: CallSession) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    dialled = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await dialled.answered(timeout=T)
    await dialled.end()
    await dialled.ended(timeout=T)
    attached = session.call(dialled.id)  # the session forgot it: a fresh attachment
    with pytest.raises(CallNotFoundError) as info:
        await attached.denoise()
    assert isinstance(info.value, NotFoundError)
    assert isinstance(info.value, CallEndedError)
    assert (info.value.status, info.value.end_reason, info.value.call_id) == (
        404,
        "not_found",
        dialled.id,
    )
    assert info.value.__context__ is None
    assert await attached.ended(timeout=T) == "not_found"


async def test_refer_events_reach_the_call(sim: Simulator, session: CallSession) -> None:
    to = "sip:alice@example.com"
    sim.script(to, Callee.answers(after=0.5))
    call = await session.dial(to=to, from_="sip:bot@example.com", swml=SWML)
    await call.answered(timeout=T)
    await call.refer(sip_device("sip:bob@example.com"))
    async for event in call.events():
        if isinstance(event, ReferEvent):
            assert event.params.sip_refer_to == "sip:bob@example.com"
            break
    assert await call.ended(timeout=T) is not None  # the referred call leaves us
