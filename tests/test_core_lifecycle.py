"""The correlation core's timers and rules through the public surface: the grace after a
call ends (longer for transcripts), the lost 'ended' webhook, the maximum call length,
the dial watchdog, probes of calls with no call-state webhooks, and the messages."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest

from signalwire_calls import (
    CallEndedError,
    CallSession,
    HandleStateError,
    HandleStatus,
    OperationFailed,
    SessionStateError,
    ValidationError,
    silence,
)
from signalwire_calls._codec import decode_event
from signalwire_calls._core import _Recent, _suggests_call_gone
from signalwire_calls.commands import Digits

from .test_core import SWML, answered, env

T = 5.0


def event(event_type: str, **params: Any) -> Any:
    return decode_event(msgspec.json.encode({"event_type": event_type, "params": params}))


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("event_type", "params", "gone"),
    [
        ("calling.call.collect", {"control_id": "c", "result": {"type": "error"}}, True),
        ("calling.call.collect", {"control_id": "c", "state": "error"}, True),
        ("calling.call.collect", {"control_id": "c", "result": {"type": "digit"}}, False),
        ("calling.call.collect", {"control_id": "c", "result": {"type": "no_input"}}, False),
        ("calling.call.collect", {"control_id": "c"}, False),
        ("calling.call.play", {"control_id": "p", "state": "error"}, True),
        ("calling.call.play", {"control_id": "p", "state": "finished"}, False),
        ("calling.call.record", {"control_id": "r", "state": "error"}, True),
        ("calling.call.record", {"control_id": "r", "state": "no_input"}, False),
        ("calling.call.detect", {"control_id": "d"}, False),
    ],
)
def test_which_events_suggest_the_call_is_gone(
    event_type: str, params: dict[str, Any], gone: bool
) -> None:
    assert _suggests_call_gone(event(event_type, **params)) is gone


def test_the_recent_set_keeps_the_newest_half_at_least() -> None:
    recent = _Recent(4)
    for key in ("a", "b"):
        recent.add(key)
    assert "a" in recent
    assert "b" in recent
    recent.add("c")
    assert all(k in recent for k in "abc")
    recent.add("d")  # young full again: "a" and "b" go
    assert "a" not in recent
    assert "b" not in recent
    assert "c" in recent
    assert "d" in recent
    assert "z" not in recent


# --------------------------------------------------------------------------- the grace


async def test_transcripts_get_ten_times_the_grace_then_call_ended() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.1) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        kept = await call.transcribe()
        lost = await (await answered(e)).transcribe()
        await e.call_state(call.id, "ended", "hangup")
        await e.call_state(lost.call.id, "ended", "hangup")
        await asyncio.sleep(0.2)
        assert play.status is HandleStatus.FAILED  # one grace
        assert not kept.done
        assert not lost.done
        await e.post("calling.transcript.completed", id="t", call_id=call.id, text="bye")
        assert (await kept.finished()).text == "bye"  # after the call: still a result
        with pytest.raises(CallEndedError) as info:
            await lost.finished()
        assert info.value.end_reason == "hangup"
        stats = e.session.stats().registry
        assert (stats.pending_operations, stats.live_calls) == (0, 0)


async def test_an_ended_call_with_nothing_pending_is_forgotten_at_once() -> None:
    async with asyncio.timeout(T), env(call_end_grace=5.0) as e:
        call = await answered(e)
        await e.call_state(call.id, "ended", "busy")
        assert e.session.calls == []
        assert await call.ended() == "busy"


async def test_a_detector_that_decided_keeps_its_decision_when_the_call_ends() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await answered(e)
        detect = await call.detect_answering_machine()
        undecided = await call.detect_answering_machine()
        await e.post(
            "calling.call.detect",
            call_id=call.id,
            control_id=detect.control_id,
            detect={"type": "machine", "params": {"event": "MACHINE"}},
        )
        await e.call_state(call.id, "ended", "hangup")
        result = await detect.finished()
        assert (result.kind, result.value) == ("machine", "MACHINE")
        with pytest.raises(CallEndedError):
            await undecided.finished()


# --------------------------------------------------------------------------- ending


async def test_an_ended_webhook_after_end_wins_over_the_local_end() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.2) as e:
        call = await answered(e)
        await call.end("hangup")
        await e.call_state(call.id, "ended", "hangup")
        assert await call.ended() == "hangup"
        await asyncio.sleep(0.3)
        assert e.session.stats().registry.calls_ended_locally == 0


async def test_update_completed_also_expects_the_ended_webhook() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await answered(e)
        await call.update(status="completed")
        assert await call.ended() == "end_webhook_lost"
        redirect = await answered(e)
        await redirect.update(url="https://example.com/next")
        await asyncio.sleep(0.1)
        assert not redirect.is_ended  # a redirect does not end the call


async def test_ending_an_attached_call_ends_it_at_once() -> None:
    async with asyncio.timeout(T), env() as e:
        call = e.session.call("attached-1")
        assert call.direction == "attached"
        assert call.state == "answered"
        assert e.session.call("attached-1") is call
        await call.end("busy")
        assert call.is_ended
        assert await call.ended() == "busy"
        assert e.session.stats().registry.calls_ended_locally == 1


async def test_commands_to_an_ended_call_say_which_and_why() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        await e.call_state(call.id, "ended", "noAnswer")
        with pytest.raises(CallEndedError) as info:
            await call.play(silence(1))
        assert str(info.value) == f"cannot start play: call {call.id!r} has ended (noAnswer)"
        with pytest.raises(CallEndedError) as sent:
            await call.denoise()
        assert str(sent.value) == (
            f"cannot send calling.denoise: call {call.id!r} has ended (noAnswer)"
        )
        assert sent.value.event is not None  # the call's last event
        assert await call.end() is None


# --------------------------------------------------------------------------- liveness


async def test_a_call_heard_of_keeps_living_and_a_silent_one_ends() -> None:
    async with asyncio.timeout(T), env(max_call_length=0.3) as e:
        talking = await answered(e)
        silent = await answered(e)
        play = await talking.play(silence(60))
        for i in range(6):  # events keep the first call alive past the limit
            await asyncio.sleep(0.1)
            await e.post(
                "calling.call.play",
                float(i),  # a new event each time (a duplicate is not news of the call)
                call_id=talking.id,
                control_id=play.control_id,
                state="paused" if i % 2 else "playing",
            )
        assert await silent.ended() == "max_call_length"
        assert not talking.is_ended
        assert await talking.ended() == "max_call_length"


async def test_an_unfollowed_call_with_a_pending_operation_ends_at_the_maximum_length() -> None:
    async with asyncio.timeout(T), env(max_call_length=0.2, call_end_grace=0.05) as e:
        call = await e.session.dial(
            to="+15551230001",
            from_="+15559870000",
            swml=SWML,
            correlate=False,
            status_url="http://127.0.0.1:9/mine",
        )
        assert not call.followed
        assert e.session.calls == []
        with pytest.raises(HandleStateError, match="correlate=False"):
            await call.answered(timeout=0.1)
        play = await call.play(silence(60))
        with pytest.raises(CallEndedError) as info:
            await play.finished()
        assert info.value.end_reason == "max_call_length"


async def test_the_dial_watchdog_warns_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    async with asyncio.timeout(T), env(webhook_warning_after=0.05) as e:
        with caplog.at_level(logging.WARNING, logger="signalwire_calls"):
            first = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
            second = await e.session.dial(to="+15551230002", from_="+15559870000", swml=SWML)
            heard = await e.session.dial(to="+15551230003", from_="+15559870000", swml=SWML)
            await e.call_state(heard.id, "ringing")
            await asyncio.sleep(0.2)
        lines = [r.getMessage() for r in caplog.records if "no webhook arrived" in r.getMessage()]
        assert len(lines) == 1
        assert repr(first.id) in lines[0]
        assert repr(e.session.status_url) in lines[0]
        assert "within 0.05 s" in lines[0]
        assert "Signature rejections meanwhile: 0" in lines[0]
        assert second.id not in lines[0]


async def test_a_probe_that_finds_the_call_alive_leaves_an_operation_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.1) as e:
        call = e.session.call("inbound-ok")
        collect = await call.collect(digits=Digits(max=1))
        await e.post(
            "calling.call.collect",
            call_id="inbound-ok",
            control_id=collect.control_id,
            result={"type": "error"},
        )
        with pytest.raises(OperationFailed):
            await collect.finished()
        assert not call.is_ended
        probes = [c for c in e.space.commands if c["command"] == "calling.user_event"]
        assert len(probes) == 1
        assert probes[0]["params"]["event"] == {"type": "signalwire_calls.liveness_probe"}


# --------------------------------------------------------------------------- misuse


async def test_the_session_says_when_it_is_not_open_or_closed() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        with pytest.raises(ValidationError, match="status_url"):
            await e.session.dial(
                to="+15551230001", from_="+15559870000", swml=SWML, status_url="http://x/y"
            )
        with pytest.raises(ValidationError, match="status_events"):
            await e.session.dial(
                to="+15551230001", from_="+15559870000", swml=SWML, status_events=["ended"]
            )
    with pytest.raises(SessionStateError, match="the session is closed"):
        await call.play(silence(1))
    with pytest.raises(SessionStateError, match="the session is closed"):
        e.session.call("x")


def test_a_session_not_opened_says_how_to_open_it() -> None:
    session = CallSession(space="http://127.0.0.1:9", project="p", token="t")
    with pytest.raises(SessionStateError, match="async with session"):
        session.call("x")
