"""Every handle type end to end: session -> simulator -> receiver -> registry -> handle."""

from __future__ import annotations

import asyncio

import pytest

from signalwire_calls import (
    CallEndedError,
    CallSession,
    ConflictError,
    Digits,
    HandleStateError,
    HandleStatus,
    OperationFailed,
    RecordAudio,
    Speech,
    ValidationError,
    audio,
    fax_detector,
    silence,
    tts,
    ws_device,
)
from signalwire_calls.call import Call
from signalwire_calls.commands import Play
from signalwire_calls.events import CollectEvent, PlayEvent
from signalwire_calls.testing import Callee, Simulator

from .conftest import CALLER, HUMAN, SWML

T = 5.0  # bound on every wait in this module


async def answered_call(
    sim: Simulator, session: CallSession, callee: Callee | None = None, to: str = HUMAN
) -> Call:
    sim.script(to, callee or Callee.answers(after=0.5))
    call = await session.dial(to=to, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    return call


async def test_play_result_events_and_subcommands(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    play = await call.play(silence(200))
    assert not play.done
    await play.pause()
    await play.volume(-6)
    await play.resume()
    await play.stop()
    result = await play.finished(timeout=T)
    assert result.state == "finished"
    assert play.status is HandleStatus.FINISHED
    states = [e.params.state async for e in play.events() if isinstance(e, PlayEvent)]
    assert states[0] == "playing"
    assert "paused" in states
    assert states[-1] == "finished"
    sent = [c.command for c in sim.commands if c.call_id == call.id]
    assert sent[-4:] == [
        "calling.play.pause",
        "calling.play.volume",
        "calling.play.resume",
        "calling.play.stop",
    ]
    with pytest.raises(HandleStateError):
        await play.pause()
    await play.stop()  # a no-op once finished: nothing more sent
    assert [c.command for c in sim.commands].count("calling.play.stop") == 1


async def test_play_tts_plays_out_by_itself(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    play = await call.play(tts("Hello there"), silence(0.5))
    assert (await play.finished(timeout=T)).state == "finished"
    assert play.control_id in {c.params.get("control_id") for c in sim.commands}


async def test_async_with_stops_unfinished_play(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    async with await call.play(silence(300)) as play:
        pass
    await play.finished(timeout=T)
    assert [c.command for c in sim.commands].count("calling.play.stop") == 1


async def test_async_with_does_not_stop_finished_play(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    async with await call.play(silence(0.1)) as play:
        await play.finished(timeout=T)
    assert "calling.play.stop" not in [c.command for c in sim.commands]


async def test_play_remote_error_raises_operation_failed(
    sim: Simulator, session: CallSession
) -> None:
    sim.unplayable.add("https://example.com/broken.mp3")
    call = await answered_call(sim, session)
    play = await call.play(audio("https://example.com/broken.mp3"))
    with pytest.raises(OperationFailed) as info:
        await play.finished(timeout=T)
    assert info.value.control_id == play.control_id
    assert play.status is HandleStatus.FAILED


async def test_record_stop_gives_url_duration_size(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, talk=600))
    rec = await call.record(RecordAudio(format="wav", beep=True))
    await sim.wait_for_webhook("calling.call.record", state="recording", timeout=T)
    await rec.pause(behavior="silence")
    await rec.resume()
    await rec.stop()
    result = await rec.finished(timeout=T)
    assert result.state == "finished"
    assert result.url is not None
    assert result.url.startswith("http")
    assert result.duration is not None
    assert result.size is not None
    assert result.size > 0
    body = next(c for c in sim.commands if c.command == "calling.record").params
    assert body["record"]["audio"] == {"format": "wav", "beep": True}


async def test_record_silent_callee_is_no_input(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, silent=True))
    rec = await call.record(RecordAudio(initial_timeout=2.0))
    result = await rec.finished(timeout=T)
    assert result.state == "no_input"


async def test_collect_digits(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, digits="12#"))
    menu = await call.collect(digits=Digits(max=3, terminators="#"), initial_timeout=5)
    result = await menu.finished(timeout=T)
    assert result.kind == "digit"
    assert result.digits == "12"
    assert result.terminator == "#"


async def test_collect_speech_with_partials(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(
        sim, session, Callee.answers(after=0.5, speech="yes please", confidence=0.8)
    )
    menu = await call.collect(speech=Speech(), partial_results=True, send_start_of_input=True)
    result = await menu.finished(timeout=T)
    assert result.kind == "speech"
    assert result.text == "yes please"
    assert result.confidence == pytest.approx(0.8)
    seen = [e async for e in menu.events() if isinstance(e, CollectEvent)]
    kinds = [e.params.result.type for e in seen if e.params.result is not None]
    assert "start_of_input" in kinds
    assert any(e.params.final is False for e in seen)


async def test_collect_no_input(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, silent=True))
    menu = await call.collect(digits=Digits(max=1), initial_timeout=1.0, start_input_timers=True)
    assert (await menu.finished(timeout=T)).kind == "no_input"


async def test_collect_waits_for_start_input_timers(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, silent=True))
    menu = await call.collect(digits=Digits(max=1), initial_timeout=0.5, start_input_timers=False)
    with pytest.raises(TimeoutError):
        await menu.finished(timeout=0.2)  # 0.2 s real = 20 s simulated: no timer armed
    assert not menu.done
    await menu.start_input_timers()
    assert (await menu.finished(timeout=T)).kind == "no_input"


async def test_continuous_collect_settles_on_stop(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, digits=["1", "2"]))
    menu = await call.collect(digits=Digits(max=1), continuous=True)
    results = []
    async for event in menu.events():
        assert isinstance(event, CollectEvent)
        result = event.params.result
        if result is not None and result.type == "digit":
            results.append(result.params.digits if result.params else None)
            if len(results) == 2:
                await menu.stop()
    assert results == ["1", "2"]
    final = await menu.finished(timeout=T)
    assert final.kind == "digit"


async def test_prompt_plays_then_collects(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, digits="7"))
    menu = await call.prompt(tts("Enter one digit"), digits=Digits(max=1), initial_timeout=5)
    result = await menu.finished(timeout=T)
    assert result.digits == "7"
    names = [c.command for c in sim.commands if c.call_id == call.id]
    assert names.index("calling.collect") < names.index("calling.play")


async def test_detect_answering_machine(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.voicemail(greeting=3.0, beep=True))
    amd = await call.detect_answering_machine(timeout=30)
    outcome = await amd.outcome(timeout=T)
    assert outcome.kind == "machine"
    result = await amd.finished(timeout=T)
    assert result.kind == "machine"
    assert result.beep is True


async def test_detect_human(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    amd = await call.detect_answering_machine(timeout=30)
    assert (await amd.outcome(timeout=T)).kind == "human"
    await amd.stop()
    assert (await amd.finished(timeout=T)).kind == "human"


async def test_detect_fax(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.fax(after=0.5, tone="CED"))
    det = await call.detect(fax_detector(), timeout=10)
    outcome = await det.outcome(timeout=T)
    assert (outcome.kind, outcome.value) == ("fax", "CED")


async def test_tap_and_stream_stop(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    tap = await call.tap(ws_device("wss://tap.example.com/audio"), direction="both")
    stream = await call.stream("wss://stream.example.com/ws", name="agent-assist")
    await sim.wait_for_webhook("calling.call.stream", state="streaming", timeout=T)
    await tap.stop()
    await stream.stop()
    assert (await tap.finished(timeout=T)).state == "finished"
    sres = await stream.finished(timeout=T)
    assert sres.url == "wss://stream.example.com/ws"
    assert sres.name == "agent-assist"


async def test_transcribe_stop_and_conflict(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, transcript="hello world"))
    tx = await call.transcribe()
    with pytest.raises(ConflictError) as info:
        await call.transcribe()
    assert info.value.status == 409
    await tx.stop()
    result = await tx.finished(timeout=T)
    assert result.text == "hello world"


async def test_transcribe_arrives_after_call_end(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, transcript="bye"))
    tx = await call.transcribe()
    await call.end()
    assert await call.ended(timeout=T) is not None
    assert (await tx.finished(timeout=T)).text == "bye"


async def test_transcript_failure_raises(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, transcribe_fails=True))
    tx = await call.transcribe()
    await tx.stop()
    with pytest.raises(OperationFailed):
        await tx.finished(timeout=T)


async def test_call_end_settles_pending_handles(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    play = await call.play(silence(600))
    collect = await call.collect(digits=Digits(max=4), initial_timeout=600)
    sim.hangup(call.id)
    reason = await call.ended(timeout=T)
    assert reason is not None
    # the simulator sends the platform's terminal events on hang-up
    assert (await play.finished(timeout=T)).state == "finished"
    with pytest.raises((CallEndedError, OperationFailed)):
        await collect.finished(timeout=T)
    assert session.stats().registry.pending_operations == 0
    assert session.stats().registry.live_calls == 0


async def test_busy_call_never_answers(sim: Simulator, session: CallSession) -> None:
    sim.script("+15551239999", Callee.busy(after=0.5))
    call = await session.dial(to="+15551239999", from_=CALLER, swml=SWML)
    with pytest.raises(CallEndedError) as info:
        await call.answered(timeout=T)
    assert info.value.end_reason == "busy"
    assert call.is_ended


async def test_call_events_iterator(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session, Callee.answers(after=0.5, hangup_after=1.0))
    states = [e.params.call_state async for e in call.events()]  # type: ignore[attr-defined]
    assert states[:3] == ["created", "ringing", "answered"]
    assert states[-1] == "ended"


async def test_cancelled_waiter_leaves_handle_intact(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    play = await call.play(silence(300))
    waiter = asyncio.ensure_future(play.finished())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not play.done
    await play.stop()
    assert (await play.finished(timeout=T)).state == "finished"


async def test_user_status_url_is_refused_unless_uncorrelated(
    sim: Simulator, session: CallSession
) -> None:
    call = await answered_call(sim, session)
    cmd = Play(control_id="mine-1", play=[silence(1)], status_url="http://127.0.0.1:9/elsewhere")
    with pytest.raises(ValidationError) as info:
        await call.send(cmd)
    assert info.value.field == "status_url"
    assert not any(c.command == "calling.play" for c in sim.commands)
    with pytest.raises(ValidationError):
        await session.dial(to=HUMAN, from_=CALLER, swml=SWML, status_url="https://x.example/")
    own = await session.dial(
        to=HUMAN, from_=CALLER, swml=SWML, correlate=False, status_url="http://127.0.0.1:9/own"
    )
    with pytest.raises(HandleStateError, match="correlate=False"):
        await own.answered(timeout=T)
    leg = await call.send(cmd, correlate=False)
    assert leg.id == call.id
    # a command object without status_url is correlated and returns a handle
    handle = await call.send(Play(control_id="mine-2", play=[silence(0.2)]))
    assert (await handle.finished(timeout=T)).state == "finished"


async def test_invalid_command_is_refused_before_sending(
    sim: Simulator, session: CallSession
) -> None:
    call = await answered_call(sim, session)
    before = len(sim.commands)
    with pytest.raises(ValidationError) as info:
        await call.play(silence(1), volume=99)
    assert info.value.field == "volume"
    assert len(sim.commands) == before
    assert session.stats().registry.pending_operations == 0


async def test_answered_after_the_call_already_ended(sim: Simulator, session: CallSession) -> None:
    call = await answered_call(sim, session)
    await call.end()
    await call.ended(timeout=T)
    await call.answered(timeout=T)  # it was answered: no CallEndedError afterwards
    attached = session.call("some-inbound-call")
    await attached.answered(timeout=T)
