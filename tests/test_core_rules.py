"""The correlation core's rules pinned down one by one: what each error names, what is
retried and traced, which key is remembered (late, not unmatched), which timer is armed
for how long, the exact log lines, the early buffer's bounds at their edges, and that a
call's end leaves nothing tracked. Through a real session and receiver where the path
needs them; the core's own timers and indexes are read directly where the rule is local
(the scheduled delay of a timer, an index that must be empty).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest

from signalwire_calls import (
    CallEndedError,
    OperationFailed,
    PlayResult,
    ReceiverSettings,
    RetryPolicy,
    SessionClosedError,
    SessionStateError,
    silence,
)
from signalwire_calls._codec import decode_event
from signalwire_calls._core import Core, MeteredCore, _Recent
from signalwire_calls._transport import Transport
from signalwire_calls.call import Call
from signalwire_calls.commands import Dial, Digits
from signalwire_calls.errors import CallNotFoundError, NotFoundError, RequestError
from signalwire_calls.metrics import PREFIX

from .test_core import SWML, Env, answered, call_uuid, env, held_dial

T = 5.0
FAST_RETRY = RetryPolicy(backoff_base=0.01, backoff_cap=0.01, jitter=False)
NO_RETRY = RetryPolicy(max_attempts=1)


def core_of(e: Env) -> Core:
    return e.session._core


def assert_nothing_tracked(core: Core) -> None:
    """Every index and timer of the core is empty: nothing leaks once calls end."""
    assert core.ops == {}
    assert core._by_call == {}
    assert core._transcribes == {}
    assert core.calls == {}
    assert core._call_timers == {}
    assert core._held == {}
    assert core._watchdogs == {}
    assert core._heard == {}
    assert core._probing == set()
    assert core._early == {}


def commands_named(e: Env, name: str) -> list[dict[str, Any]]:
    return [c for c in e.space.commands if c["command"] == name]


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "signalwire_calls.core"]


def levels(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == "signalwire_calls.core"]


def state_event(call_id: str, state: str, n: int = 0) -> Any:
    return decode_event(
        msgspec.json.encode(
            {
                "event_type": "calling.call.state",
                "params": {"call_id": call_id, "call_state": state, "n": n},
            }
        )
    )


# --------------------------------------------------------------------------- what errors name


async def test_a_status_url_of_ones_own_is_refused_naming_the_field() -> None:
    async with asyncio.timeout(T), env() as e:
        with pytest.raises(ValueError, match="status_url") as info:
            await e.session.dial(
                to="+15551230001", from_="+15559870000", swml=SWML, status_url="http://x/y"
            )
        assert getattr(info.value, "field", None) == "status_url"
        assert getattr(info.value, "reason", None) == (
            "the session sets status_url itself to correlate webhooks; "
            "pass correlate=False to send your own"
        )
        assert e.space.commands == []


async def test_a_duplicate_control_id_is_refused_naming_it() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        await call.play(silence(1), control_id="same")
        with pytest.raises(ValueError, match="already active") as info:
            await call.play(silence(1), control_id="same")
        assert getattr(info.value, "field", None) == "control_id"
        assert getattr(info.value, "reason", None) == "'same' is already active"


async def test_a_command_to_an_ended_call_names_the_call_and_its_end() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        await e.call_state(call.id, "ended", "noAnswer")
        for attempt in (call.play(silence(1)), call.denoise()):
            with pytest.raises(CallEndedError) as info:
                await attempt
            assert (info.value.end_reason, info.value.call_id) == ("noAnswer", call.id)


async def test_an_operation_cut_by_the_call_end_says_which_and_why() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await answered(e)
        quiet = await call.play(silence(60))
        playing = await call.play(silence(60))
        await e.play_event(call.id, playing.control_id, "playing")
        await e.call_state(call.id, "ended", "hangup")
        with pytest.raises(CallEndedError) as info:
            await quiet.finished()
        assert str(info.value) == (
            f"play {quiet.control_id!r} ended because call {call.id!r} ended (hangup); "
            "last event: none"
        )
        assert (info.value.control_id, info.value.call_id) == (quiet.control_id, call.id)
        with pytest.raises(CallEndedError) as info:
            await playing.finished()
        assert str(info.value).endswith("; last event: calling.call.play playing")
        assert info.value.control_id == playing.control_id
        assert_nothing_tracked(core_of(e))


# --------------------------------------------------------------------------- starting


async def test_an_operation_start_is_traced_with_its_call_and_control_id() -> None:
    records: list[Any] = []
    async with asyncio.timeout(T), env(trace=records.append) as e:
        call = await answered(e)
        await call.play(silence(1), control_id="p-1")
        starts = [r for r in records if r.kind == "command" and r.name == "calling.play"]
        assert [(r.call_id, r.control_id) for r in starts] == [(call.id, "p-1")]
        assert e.session.stats().registry.trace_errors == 0


async def test_an_operation_start_is_resent_after_a_gateway_error() -> None:
    """A start carries its control_id, so a 502 may be retried (dials may not)."""
    async with asyncio.timeout(T), env(retry=FAST_RETRY) as e:
        call = await answered(e)
        e.space.statuses["calling.play"] = [502]
        play = await call.play(silence(1))
        sent = commands_named(e, "calling.play")
        assert len(sent) == 2
        assert sent[0]["params"]["control_id"] == sent[1]["params"]["control_id"]
        assert play.control_id in core_of(e).ops


async def test_a_refused_start_names_its_command_and_forgets_the_handle() -> None:
    async with asyncio.timeout(T), env(retry=FAST_RETRY) as e:
        call = await answered(e)
        e.space.statuses["calling.play"] = [500]
        with pytest.raises(RequestError) as info:
            await call.play(silence(1), control_id="refused")
        assert info.value.command == "calling.play"
        assert call.pending == []
        # never started: its key is not remembered, so its events are not "late"
        await e.play_event(call.id, "refused", "finished")
        stats = e.session.stats().registry
        assert (stats.unmatched, stats.late, stats.pending_operations) == (1, 0, 0)


async def test_a_start_has_its_own_request_timeout() -> None:
    async with asyncio.timeout(T), env(retry=NO_RETRY) as e:
        call = await answered(e)
        e.space.held.add("calling.play")
        with pytest.raises(TimeoutError):
            await call.play(silence(1), control_id="slow", request_timeout=0.1)
        assert call.pending == []
        assert e.session.stats().registry.pending_operations == 0


async def test_a_start_that_fails_after_its_webhook_settled_it_raises_the_failure() -> None:
    """A webhook may beat the answer; if the answer then fails, the start raises that
    failure (the handle was already settled and forgotten: forgetting it again is a
    no-op, with or without other operations pending on the call)."""
    async with asyncio.timeout(T), env(retry=NO_RETRY) as e:
        call = await answered(e)
        other = await call.play(silence(60))
        e.space.held.add("calling.play")
        start = asyncio.create_task(call.play(silence(1), control_id="raced", request_timeout=0.3))
        while len(commands_named(e, "calling.play")) < 2:
            await asyncio.sleep(0.005)
        await e.play_event(call.id, "raced", "finished")
        with pytest.raises(TimeoutError):
            await start
        assert [h.control_id for h in call.pending] == [other.control_id]
        assert e.session.stats().registry.pending_operations == 1


async def test_a_start_answered_404_ends_the_call_and_forgets_the_handle() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        e.space.not_found.add(call.id)
        with pytest.raises(NotFoundError):
            await call.play(silence(1), control_id="gone")
        assert await call.ended() == "not_found"
        await e.play_event(call.id, "gone", "finished")
        stats = e.session.stats().registry
        assert (stats.calls_ended_locally, stats.unmatched, stats.late) == (1, 1, 0)
        assert_nothing_tracked(core_of(e))


async def test_the_answer_to_a_start_is_the_calls_new_leg() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        e.space.leg_status["calling.play"] = "answered"
        await call.play(silence(1))
        assert call.leg is not None
        assert call.leg.status == "answered"


async def test_settle_stands_in_for_the_webhook_and_remembers_the_key() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        core_of(e).settle(play, PlayResult(state="finished"))
        assert await play.finished() == PlayResult(state="finished")
        await e.play_event(call.id, play.control_id, "finished")
        stats = e.session.stats().registry
        assert (stats.late, stats.unmatched, stats.pending_operations) == (1, 0, 0)


# --------------------------------------------------------------------------- routing


async def test_call_state_events_are_counted_routed_and_duplicate() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        await e.call_state(call.id, "ringing")
        await e.call_state(call.id, "answered")
        assert e.session.stats().registry.routed == 2
        await e.call_state(call.id, "answered")
        await e.call_state(call.id, "answered")
        assert e.session.stats().registry.duplicates == 2


async def test_duplicate_operation_events_are_each_counted() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        for _ in range(3):
            await e.play_event(call.id, play.control_id, "playing")
        assert e.session.stats().registry.duplicates == 2


async def test_a_call_stays_followed_when_its_last_operation_settles() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        await e.play_event(call.id, play.control_id, "finished")
        await play.finished()
        assert e.session.calls == [call]
        await e.call_state(call.id, "ended", "hangup")
        assert await call.ended() == "hangup"
        assert_nothing_tracked(core_of(e))


async def test_an_operation_ending_after_its_call_settles_at_once() -> None:
    """No grace to wait for: its own terminal event came."""
    async with asyncio.timeout(T), env(call_end_grace=60.0) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        await e.call_state(call.id, "ended", "hangup")
        await e.play_event(call.id, play.control_id, "finished")
        with pytest.raises(CallEndedError):
            await play.finished()
        assert_nothing_tracked(core_of(e))


async def test_transcripts_after_the_transcribe_settled_are_late_and_a_new_one_gets_them() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        first = await call.transcribe()
        await e.post("calling.transcript.completed", id="t-1", call_id=call.id, text="one")
        assert (await first.finished()).text == "one"
        await e.post("calling.transcript.completed", id="t-2", call_id=call.id, text="again")
        stats = e.session.stats().registry
        assert (stats.late, stats.unmatched, stats.duplicates) == (1, 0, 0)
        second = await call.transcribe()
        await e.post("calling.transcript.completed", id="t-3", call_id=call.id, text="two")
        assert (await second.finished()).text == "two"


# --------------------------------------------------------------------------- errors held


async def test_an_error_on_a_followed_outbound_call_sends_no_probe() -> None:
    """Call-state webhooks will tell whether the call ended: nothing to probe."""
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await answered(e)
        collect = await call.collect(digits=Digits(max=1))
        await e.post(
            "calling.call.collect",
            call_id=call.id,
            control_id=collect.control_id,
            result={"type": "error"},
        )
        with pytest.raises(OperationFailed):
            await collect.finished()
        await asyncio.sleep(0.05)
        assert commands_named(e, "calling.user_event") == []


async def test_an_error_on_a_call_dialed_without_correlation_is_probed() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await e.session.dial(
            to="+15551230001",
            from_="+15559870000",
            swml=SWML,
            correlate=False,
            status_url="http://127.0.0.1:9/mine",
        )
        collect = await call.collect(digits=Digits(max=1))
        await e.post(
            "calling.call.collect",
            call_id=call.id,
            control_id=collect.control_id,
            result={"type": "error"},
        )
        with pytest.raises(OperationFailed):
            await collect.finished()
        while not commands_named(e, "calling.user_event"):
            await asyncio.sleep(0.005)
        assert not call.is_ended


async def test_a_held_error_settled_later_is_remembered_and_released() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await answered(e)
        play = await call.play(silence(1))
        await e.play_event(call.id, play.control_id, "error")
        with pytest.raises(OperationFailed):
            await play.finished()
        assert core_of(e)._held == {}
        await e.play_event(call.id, play.control_id, "finished")
        assert e.session.stats().registry.late == 1


async def test_another_operation_settles_while_an_error_is_held() -> None:
    async with asyncio.timeout(T), env(call_end_grace=60.0) as e:
        call = await answered(e)
        failing = await call.play(silence(60))
        fine = await call.play(silence(1))
        await e.play_event(call.id, failing.control_id, "error")
        await e.play_event(call.id, fine.control_id, "finished")
        assert await fine.finished() == PlayResult(state="finished")
        assert [h.control_id for h in call.pending] == [failing.control_id]
        assert list(core_of(e)._held) == [failing]
        await e.play_event(call.id, fine.control_id, "finished", timestamp=2.0)
        assert e.session.stats().registry.late == 1  # remembered though an error was held
        # the held error's own later end releases its timer
        core_of(e).settle(failing, PlayResult(state="finished"))
        assert core_of(e)._held == {}


async def test_a_detector_that_decided_then_erred_keeps_its_decision_at_the_call_end() -> None:
    async with asyncio.timeout(T), env(call_end_grace=60.0) as e:
        call = await answered(e)
        detect = await call.detect_answering_machine()
        for event in ("MACHINE", "error"):
            await e.post(
                "calling.call.detect",
                call_id=call.id,
                control_id=detect.control_id,
                detect={"type": "machine", "params": {"event": event}},
            )
        assert not detect.done  # the error is held: the call may be ending
        await e.call_state(call.id, "ended", "hangup")
        result = await detect.finished()
        assert (result.kind, result.value) == ("machine", "MACHINE")
        assert_nothing_tracked(core_of(e))


# --------------------------------------------------------------------------- ending calls


async def test_each_local_end_is_counted() -> None:
    async with asyncio.timeout(T), env() as e:
        for name in ("a-1", "a-2"):
            await e.session.call(name).end()
        assert e.session.stats().registry.calls_ended_locally == 2


async def test_ending_a_call_dialed_without_correlation_ends_it_at_once() -> None:
    async with asyncio.timeout(T), env(call_end_grace=60.0) as e:
        call = await e.session.dial(
            to="+15551230001",
            from_="+15559870000",
            swml=SWML,
            correlate=False,
            status_url="http://127.0.0.1:9/mine",
        )
        await call.end("busy")
        assert call.is_ended
        assert await call.ended() == "busy"


@pytest.mark.parametrize("status", ["completed", "canceled"])
async def test_an_update_that_ends_an_attached_call_ends_it_as_a_hangup(status: Any) -> None:
    async with asyncio.timeout(T), env() as e:
        call = e.session.call(call_uuid(900))
        await call.update(status=status)
        assert call.is_ended
        assert await call.ended() == "hangup"


async def test_an_update_canceled_waits_for_the_ended_webhook() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        call = await answered(e)
        await call.update(status="canceled")
        assert not call.is_ended
        assert await call.ended() == "end_webhook_lost"


async def test_the_wait_for_the_ended_webhook_is_the_grace_and_restarts_on_a_new_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.2) as e:
        core = core_of(e)
        loop = asyncio.get_running_loop()
        call = await answered(e)
        await call.end()
        first = core._call_timers[call.id]
        assert 0.1 < first.when() - loop.time() <= 0.2
        await call.end()
        assert first.cancelled()
        with caplog.at_level(logging.INFO, logger="signalwire_calls.core"):
            assert await call.ended() == "end_webhook_lost"
        assert messages(caplog) == [
            f"call {call.id!r}: no 'ended' webhook after it was ended; ending it locally"
        ]
        assert levels(caplog) == ["INFO"]
        assert_nothing_tracked(core)


async def test_a_grace_of_zero_still_waits_a_moment_for_the_ended_webhook() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.0) as e:
        call = await answered(e)
        await call.end()
        timer = core_of(e)._call_timers[call.id]
        assert timer.when() - asyncio.get_running_loop().time() <= 0.001
        assert await call.ended() == "end_webhook_lost"


async def test_transcripts_wait_nine_graces_more_after_the_first() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.5) as e:
        core = core_of(e)
        call = await answered(e)
        play = await call.play(silence(60))
        transcribe = await call.transcribe()
        await e.call_state(call.id, "ended", "hangup")
        first = core._call_timers[call.id].when()
        with pytest.raises(CallEndedError):
            await play.finished()
        second = core._call_timers[call.id].when()
        assert 4.5 <= second - first < 5.0  # 0.5 * (10 - 1), plus the first timer's lateness
        assert not transcribe.done


async def test_a_local_end_with_operations_pending_stops_the_dial_watchdog(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        asyncio.timeout(T),
        env(call_end_grace=60.0, webhook_warning_after=0.1) as e,
    ):
        call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        await call.play(silence(60))
        e.space.not_found.add(call.id)
        with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
            with pytest.raises(CallNotFoundError):
                await call.denoise()
            await asyncio.sleep(0.2)
        assert call.is_ended
        assert messages(caplog) == []
        assert core_of(e)._watchdogs == {}


# --------------------------------------------------------------------------- probes


async def test_one_probe_at_a_time_per_call_and_a_new_one_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        core = core_of(e)
        call = e.session.call("inbound-1")

        async def fail_a_collect() -> None:
            collect = await call.collect(digits=Digits(max=1))
            await e.post(
                "calling.call.collect",
                call_id=call.id,
                control_id=collect.control_id,
                result={"type": "error"},
            )

        e.space.held.add("calling.user_event")
        await fail_a_collect()
        await fail_a_collect()  # while the first probe waits for its answer
        while not commands_named(e, "calling.user_event"):
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        assert len(commands_named(e, "calling.user_event")) == 1
        assert core._probing == {call.id}
        e.space.statuses["calling.user_event"] = [500]
        e.space.hold_gate.set()
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls.core"):
            while core._probing:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0)
        assert core._tasks == set()
        failed = [m for m in messages(caplog) if m.startswith("liveness probe")]
        assert len(failed) == 1
        assert failed[0].startswith(f"liveness probe of call {call.id!r} failed: ServerError(")
        # the call is alive: a later error probes again
        await fail_a_collect()
        while len(commands_named(e, "calling.user_event")) < 2:
            await asyncio.sleep(0.005)
        assert not call.is_ended


async def test_a_probe_has_a_request_timeout_of_five_seconds() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05) as e:
        transport = e.session._transport
        post = transport.post
        timeouts: dict[str, Any] = {}

        async def spy(body: bytes, command: str, **kwargs: Any) -> Any:
            timeouts[command] = kwargs["timeout"]
            return await post(body, command, **kwargs)

        transport.post = spy  # type: ignore[method-assign]
        call = e.session.call("inbound-1")
        collect = await call.collect(digits=Digits(max=1))
        await e.post(
            "calling.call.collect",
            call_id=call.id,
            control_id=collect.control_id,
            result={"type": "error"},
        )
        while "calling.user_event" not in timeouts:
            await asyncio.sleep(0.005)
        assert timeouts["calling.user_event"] == 5.0


# ---------------------------------------------------------------------- the maximum call length


async def test_the_sweep_ends_a_call_silent_for_longer_than_the_maximum_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    async with asyncio.timeout(T), env(max_call_length=100.0) as e:
        core = core_of(e)
        core._clock = lambda: now[0]
        call = e.session.call("inbound-1")
        now[0] = 100.0
        core._sweep()
        assert not call.is_ended  # exactly the maximum: not yet
        now[0] = 100.5
        with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
            core._sweep()
        assert await call.ended() == "max_call_length"
        assert messages(caplog) == [
            f"call {call.id!r}: nothing heard for 100 s (the maximum call length); "
            "ending it locally"
        ]
        assert levels(caplog) == ["WARNING"]
        assert_nothing_tracked(core)


async def test_the_sweep_ends_a_dialled_call_never_heard_of() -> None:
    now = [0.0]
    async with asyncio.timeout(T), env(max_call_length=100.0) as e:
        core = core_of(e)
        core._clock = lambda: now[0]
        now[0] = 5.0
        call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        assert core._heard == {call.id: 5.0}  # watched from its dial, before any webhook
        now[0] = 105.0
        core._sweep()
        assert not call.is_ended
        now[0] = 105.5
        core._sweep()
        assert await call.ended() == "max_call_length"
        assert_nothing_tracked(core)


async def test_the_sweep_forgets_a_quiet_call_that_is_neither_followed_nor_busy() -> None:
    now = [0.0]
    async with asyncio.timeout(T), env(max_call_length=100.0) as e:
        core = core_of(e)
        core._clock = lambda: now[0]
        call = await e.session.dial(
            to="+15551230001",
            from_="+15559870000",
            swml=SWML,
            correlate=False,
            status_url="http://127.0.0.1:9/mine",
        )
        play = await call.play(silence(1))
        core.settle(play, PlayResult(state="finished"))
        assert list(core._heard) == [call.id]
        now[0] = 200.0
        core._sweep()
        assert core._heard == {}
        assert not call.is_ended  # nothing to end it with: it is only no longer watched


# --------------------------------------------------------------------------- the dial watchdog


async def test_the_watchdog_stays_quiet_for_a_call_heard_from(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(T), env(webhook_warning_after=0.1) as e:
        with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
            call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
            await e.call_state(call.id, "ringing")
            await asyncio.sleep(0.2)
        assert messages(caplog) == []
        assert core_of(e)._watchdogs == {}


async def test_the_watchdog_counts_the_signature_rejections_since_the_dial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(T), env(webhook_warning_after=0.2, signing_key="k") as e:
        assert await e.call_state("c", "ringing") == 403  # before the dial: not counted
        with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
            call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
            for _ in range(2):
                assert await e.call_state(call.id, "ringing") == 403
            while core_of(e)._watchdogs:
                await asyncio.sleep(0.01)
        assert messages(caplog) == [
            f"no webhook arrived for call {call.id!r} within 0.2 s of its dial; the platform "
            f"was told to send them to {e.session.status_url!r}. Signature rejections "
            "meanwhile: 2 (a wrong signing key or public URL?). Check that this URL reaches "
            "this process"
        ]
        assert levels(caplog) == ["WARNING"]


async def test_a_core_without_a_rejection_count_reports_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(T), env() as e:
        transport = Transport(base_url=e.space.url, project="p", token="t")
        core = Core(transport, webhook_warning_after=0.05)
        core.open("http://127.0.0.1:9/events")
        try:
            with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
                dial = Dial(to="+15551230001", from_="+15559870000", swml=SWML)
                call = await core.dial(dial, correlate=True, request_timeout=T)
                while core._watchdogs:
                    await asyncio.sleep(0.01)
        finally:
            core.close()
            await transport.aclose()
        assert len(messages(caplog)) == 1
        assert f"call {call.id!r}" in messages(caplog)[0]
        assert "Signature rejections meanwhile: 0 " in messages(caplog)[0]


# --------------------------------------------------------------------------- the early buffer


def bare_core(**options: Any) -> tuple[Core, list[float]]:
    """A core on a fake clock, for the early buffer (no command is sent)."""
    now = [0.0]
    transport = Transport(base_url="http://127.0.0.1:9", project="p", token="t")
    return Core(transport, clock=lambda: now[0], **options), now


def test_the_buffer_takes_events_up_to_its_byte_bound_exactly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    size = len(msgspec.json.encode(state_event("c-1", "ringing")))
    core, _ = bare_core(early_event_max_bytes=2 * size)
    for call_id in ("c-1", "c-2"):
        core._buffer(call_id, state_event(call_id, "ringing"))
    assert (core.stats().buffered_now, core.stats().buffered_bytes) == (2, 2 * size)
    with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
        core._buffer("c-3", state_event("c-3", "ringing"))
    stats = core.stats()
    assert (stats.buffered_now, stats.buffered_bytes, stats.expired) == (2, 2 * size, 1)
    assert messages(caplog) == [
        f"early-event buffer full (2 events, {2 * size} bytes; 0 for this call): dropped a "
        "call-state event for 'c-3'"
    ]
    assert levels(caplog) == ["WARNING"]


def test_the_buffer_takes_events_up_to_its_per_call_bound_exactly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core, _ = bare_core(early_events_per_call=2)
    for n in range(2):
        core._buffer("c-1", state_event("c-1", "ringing", n))
    assert core.stats().buffered_now == 2
    with caplog.at_level(logging.WARNING, logger="signalwire_calls.core"):
        core._buffer("c-1", state_event("c-1", "ringing", 2))
    stats = core.stats()
    assert (stats.buffered_now, stats.expired) == (2, 1)
    assert messages(caplog)[0].endswith("; 2 for this call): dropped a call-state event for 'c-1'")
    core._buffer("c-2", state_event("c-2", "ringing"))
    assert core.stats().buffered_now == 3


def test_buffered_events_expire_at_their_time_to_live_exactly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core, now = bare_core(early_event_ttl=10.0)
    core._buffer("c-1", state_event("c-1", "ringing"))
    core._buffer("c-1", state_event("c-1", "answered"))
    now[0] = 9.999
    assert core.stats().buffered_now == 2
    now[0] = 10.0
    with caplog.at_level(logging.INFO, logger="signalwire_calls.core"):
        stats = core.stats()
    assert (stats.buffered_now, stats.buffered_bytes, stats.expired) == (0, 0, 2)
    assert messages(caplog) == ["expired 2 unmatched call-state event(s) for 'c-1' after 10.0s"]
    assert levels(caplog) == ["INFO"]


def test_a_replayed_bucket_does_not_expire_later() -> None:
    core, now = bare_core(early_event_ttl=10.0)
    core._buffer("c-1", state_event("c-1", "ringing"))
    taken = core._take_early("c-1")
    assert taken is not None
    assert len(taken) == 1
    now[0] = 20.0
    stats = core.stats()
    assert (stats.expired, stats.replayed, stats.buffered_now) == (0, 1, 0)


# --------------------------------------------------------------------------- tracing


async def test_a_failing_trace_callback_is_logged_with_its_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def trace(record: Any) -> None:
        raise RuntimeError("broken trace")

    async with asyncio.timeout(T), env(trace=trace) as e:
        with caplog.at_level(logging.ERROR, logger="signalwire_calls.core"):
            await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        records = [r for r in caplog.records if r.name == "signalwire_calls.core"]
        assert [r.getMessage() for r in records] == ["the trace callback raised"]
        assert records[0].levelno == logging.ERROR
        assert records[0].exc_info is not None
        assert isinstance(records[0].exc_info[1], RuntimeError)


# --------------------------------------------------------------------------- lifecycle


async def test_the_sweep_runs_every_eighth_of_the_maximum_call_length_within_bounds() -> None:
    loop = asyncio.get_running_loop()
    transport = Transport(base_url="http://127.0.0.1:9", project="p", token="t")
    for length, every in ((8.0, 1.0), (8000.0, 300.0), (0.0008, 0.01)):
        core = Core(transport, max_call_length=length)
        core.open("http://127.0.0.1:9/events")
        assert core._sweeper is not None
        assert every - 0.05 < core._sweeper.when() - loop.time() <= every
        core.close()
        assert core._sweeper.cancelled()
    never = Core(transport, max_call_length=0.0)
    never.open("http://127.0.0.1:9/events")
    assert never._sweeper is None
    never.close()


def test_the_state_errors_say_what_to_do() -> None:
    core, _ = bare_core()
    with pytest.raises(SessionStateError) as info:
        core.check_open()
    assert str(info.value) == (
        "the session is not open yet: use `async with session:` or `await session.open()`"
    )
    core._state = "open"
    core.check_open()
    with pytest.raises(SessionStateError) as info:
        core.check_unopened()
    assert str(info.value) == "the session is already open"
    core.close()
    assert core.state == "closed"
    with pytest.raises(SessionStateError) as info:
        core.check_open()
    assert str(info.value) == "the session is closed"
    with pytest.raises(SessionStateError) as info:
        core.check_unopened()
    assert str(info.value) == "a CallSession can be opened only once; create a new one"


async def test_closing_settles_what_is_pending_and_stops_every_timer() -> None:
    async with asyncio.timeout(T), env(call_end_grace=60.0, webhook_warning_after=60.0) as e:
        core = core_of(e)
        call = await answered(e)
        play = await call.play(silence(60))
        failing = await call.play(silence(60))
        await e.play_event(call.id, failing.control_id, "error")  # held
        quiet = await e.session.dial(to="+15551230002", from_="+15559870000", swml=SWML)
        ending = await answered(e)
        await ending.end()  # waits for its "ended" webhook
        timers = [
            *core._call_timers.values(),
            *(timer for _, timer in core._held.values()),
            *core._watchdogs.values(),
        ]
        assert len(timers) == 3
        await e.session.aclose()
        assert all(timer.cancelled() for timer in timers)
        with pytest.raises(SessionClosedError) as info:
            await play.finished()
        assert str(info.value) == (f"the session closed while play {play.control_id!r} was pending")
        assert info.value.control_id == play.control_id
        with pytest.raises(SessionClosedError):
            await failing.finished()
        assert core.ops == {}
        assert core._by_call == {}
        assert core.calls == {}
        assert (core._call_timers, core._held, core._watchdogs) == ({}, {}, {})
        assert not quiet.is_ended
        core.close()  # again: nothing to do
        assert core.state == "closed"


# --------------------------------------------------------------------------- the sink


async def test_each_webhook_routed_is_logged_at_debug_and_traced_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records: list[Any] = []
    async with asyncio.timeout(T), env(trace=records.append) as e:
        call = await answered(e)
        play = await call.play(silence(1))
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls.core"):
            await e.play_event(call.id, play.control_id, "playing")
        assert messages(caplog) == [
            f"webhook calling.call.play playing (call {call.id!r}, operation {play.control_id!r})"
        ]
        assert levels(caplog) == ["DEBUG"]
        traced = [r for r in records if r.kind == "event" and r.name == "calling.call.play"]
        assert [(r.call_id, r.control_id) for r in traced] == [(call.id, play.control_id)]


async def test_a_routing_failure_is_logged_and_the_event_still_traced(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net for a bug in routing: the sender gets no 500, the log says what
    failed, the trace still sees the event."""
    records: list[Any] = []
    async with asyncio.timeout(T), env(trace=records.append) as e:
        core = core_of(e)

        def broken(event: Any) -> None:
            raise RuntimeError("routing bug")

        monkeypatch.setattr(core, "_route", broken)
        with caplog.at_level(logging.ERROR, logger="signalwire_calls.core"):
            assert await e.post("calling.call.hold", call_id="c", state="held") == 200
        found = [r for r in caplog.records if r.name == "signalwire_calls.core"]
        assert [r.getMessage() for r in found] == ["failed to route UnknownEvent"]
        assert found[0].levelno == logging.ERROR
        assert found[0].exc_info is not None
        assert isinstance(found[0].exc_info[1], RuntimeError)
        assert [r.name for r in records if r.kind == "event"] == ["calling.call.hold"]


# --------------------------------------------------------------------------- dialing


async def test_a_dial_whose_call_state_came_first_arms_no_watchdog() -> None:
    async with asyncio.timeout(T), env(webhook_warning_after=60.0) as e:
        dial = await held_dial(e)
        await e.call_state(call_uuid(1), "ringing")
        e.space.dial_gate.set()
        call = await dial
        assert call.state == "ringing"
        assert core_of(e)._watchdogs == {}
        silent = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        assert list(core_of(e)._watchdogs) == [silent.id]


async def test_a_failed_dial_is_no_longer_in_flight() -> None:
    async with asyncio.timeout(T), env(retry=NO_RETRY) as e:
        e.space.statuses["dial"] = [500]
        with pytest.raises(RequestError):
            await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        assert core_of(e)._dials_in_flight == 0
        await e.call_state(call_uuid(5), "ringing")
        stats = e.session.stats().registry
        assert (stats.unmatched, stats.buffered) == (1, 0)


async def test_each_routing_branch_counts_every_event() -> None:
    """Keyless, unmatched and late events, twice each, in each branch of the routing:
    operation events, call-state events, transcripts, events of unknown types."""
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        await e.play_event(call.id, play.control_id, "finished")
        transcribe = await call.transcribe()
        await e.post("calling.transcript.completed", id="t", call_id=call.id, text="x")
        await transcribe.finished()
        ended = await answered(e)
        await e.call_state(ended.id, "ended", "hangup")

        async def twice(expect: tuple[int, int, int], event_type: str, **params: Any) -> None:
            before = e.session.stats().registry
            for _ in range(2):
                await e.post(event_type, **params)
            after = e.session.stats().registry
            got = (
                after.unknown - before.unknown,
                after.unmatched - before.unmatched,
                after.late - before.late,
            )
            assert got == expect, (event_type, params)

        await twice((2, 0, 0), "calling.call.play", state="playing")
        await twice((0, 2, 0), "calling.call.play", control_id="never", state="playing")
        await twice((0, 0, 2), "calling.call.play", control_id=play.control_id, state="error")
        await twice((2, 0, 0), "calling.call.state", call_state="ringing")
        await twice((0, 2, 0), "calling.call.state", call_id="other", call_state="ringing")
        await twice((0, 0, 2), "calling.call.state", call_id=ended.id, call_state="answered")
        await twice((2, 0, 0), "calling.transcript.completed", id="t", text="x")
        await twice((0, 2, 0), "calling.transcript.completed", id="t", call_id="other")
        await twice((0, 0, 2), "calling.transcript.completed", id="t", call_id=call.id)
        await twice((2, 0, 0), "calling.call.hold", call_id=call.id, state="held")


async def test_a_call_keeps_eight_early_events_and_drops_the_rest() -> None:
    async with asyncio.timeout(T), env() as e:
        dial = await held_dial(e)
        for i in range(10):
            await e.post("calling.call.state", call_id="call-x", call_state="ringing", n=i)
        stats = e.session.stats().registry
        assert (stats.buffered_now, stats.expired) == (8, 2)
        e.space.dial_gate.set()
        await dial


def test_a_recent_set_of_two_keeps_the_newest_only() -> None:
    recent = _Recent(2)
    for key in "abc":
        recent.add(key)
    assert "c" in recent
    assert "a" not in recent
    assert "b" not in recent


def test_control_ids_are_sixteen_characters_across_batches() -> None:
    core, _ = bare_core()
    ids = [core.new_control_id() for _ in range(600)]
    assert all(len(i) == 16 for i in ids)
    assert len(set(ids)) == 600


async def test_the_wait_timeout_bounds_waits_on_handles() -> None:
    async with asyncio.timeout(T), env(wait_timeout=0.1) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        with pytest.raises(TimeoutError):
            await play.finished()
        assert not play.done


def test_a_core_not_open_has_no_status_url() -> None:
    core, _ = bare_core()
    with pytest.raises(SessionStateError, match="not open yet"):
        _ = core.status_url


async def test_plain_commands_are_counted_traced_retried_and_update_the_leg() -> None:
    records: list[Any] = []
    async with asyncio.timeout(T), env(trace=records.append, retry=FAST_RETRY) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        e.space.statuses["calling.play.stop"] = [502]  # it names its control_id: resent
        e.space.leg_status["calling.play.stop"] = "answered"
        await play.stop()
        assert len(commands_named(e, "calling.play.stop")) == 2
        assert call.leg is not None
        assert call.leg.status == "answered"
        await call.denoise()
        assert e.session.stats().commands_sent == 4  # dial, play, stop, denoise
        sent = [(r.name, r.call_id) for r in records if r.kind == "command"]
        assert sent == [
            ("dial", None),
            ("calling.play", call.id),
            ("calling.play.stop", call.id),
            ("calling.denoise", call.id),
        ]


async def test_a_404_to_end_ends_the_call_quietly_and_to_others_names_the_call() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        other = await answered(e)
        e.space.not_found.update({call.id, other.id})
        assert await call.end() is None
        assert await call.ended() == "not_found"
        with pytest.raises(CallNotFoundError) as info:
            await other.denoise()
        assert info.value.call_id == other.id
        assert await other.ended() == "not_found"


async def test_a_dial_has_its_request_timeout_and_its_leg() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
        assert call.leg is not None
        assert call.leg.id == call.id
        e.space.dial_gate.clear()
        with pytest.raises(TimeoutError):
            await e.session.dial(
                to="+15551230001", from_="+15559870000", swml=SWML, request_timeout=0.1
            )
        assert core_of(e)._dials_in_flight == 0


async def test_dials_in_flight_are_counted_each() -> None:
    async with asyncio.timeout(T), env() as e:
        e.space.dial_gate.clear()
        dials = [
            asyncio.create_task(e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML))
            for _ in range(2)
        ]
        while e.space.dials_waiting < 2:
            await asyncio.sleep(0.005)
        assert core_of(e)._dials_in_flight == 2
        e.space.dial_gate.set()
        await asyncio.gather(*dials)
        assert core_of(e)._dials_in_flight == 0


async def test_a_closed_session_refuses_plain_commands_and_dials() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
    with pytest.raises(SessionStateError, match="the session is closed"):
        await call.denoise()
    with pytest.raises(SessionStateError, match="the session is closed"):
        await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)


async def test_every_throttled_line_follows_the_cores_clock(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each kind of line is let through once a minute of the core's own clock."""
    core, now = bare_core(early_event_max=1, early_event_ttl=0.5, max_call_length=10.0)
    core.open("http://127.0.0.1:9/events")
    try:
        call = Call(core, "watched-1")

        def raising(*_: Any) -> None:
            raise RuntimeError("trace")

        with caplog.at_level(logging.INFO, logger="signalwire_calls.core"):
            for at in (0.0, 61.0, 62.0, 122.0):
                now[0] = at
                core._buffer("c", state_event("c", "ringing"))  # expires the last, fills
                core._buffer("c", state_event("c", "ringing", 1))  # full: dropped
                core._guarded(raising)
                core._no_webhook(call, 0)
                core._end_webhook_lost(Call(core, f"ending-{at}"))
                core._buffer(f"expiring-{at}", state_event("x", "ringing"))
                core._heard[core.attach(f"silent-{at}", direction="inbound").id] = at - 11.0
                core._sweep()
                with monkeypatch.context() as patch:
                    patch.setattr(core, "_route", raising)
                    core.deliver(state_event("x", "ringing"))
        counts: dict[str, int] = {}
        for message in messages(caplog):
            key = message.split(" ")[0] + " " + message.split(" ")[1]
            counts[key] = counts.get(key, 0) + 1
        assert counts == {
            "early-event buffer": 3,
            "the trace": 3,
            "no webhook": 3,
            "call 'ending-0.0':": 1,
            "call 'ending-61.0':": 1,
            "call 'ending-122.0':": 1,
            "expired 1": 2,  # at 61 and 122
            "call 'silent-0.0':": 1,
            "call 'silent-61.0':": 1,
            "call 'silent-122.0':": 1,
            "failed to": 3,
        }
    finally:
        core.close()


async def test_a_dial_with_only_other_calls_buffered_keeps_them_and_replays_add_up() -> None:
    async with asyncio.timeout(T), env() as e:
        for n in (1, 2):
            dial = await held_dial(e)
            await e.call_state(call_uuid(n), "ringing")
            await e.call_state(f"someone-else-{n}", "ringing")
            e.space.dial_gate.set()
            assert (await dial).state == "ringing"
            stats = e.session.stats().registry
            assert (stats.replayed, stats.buffered_now) == (n, n)


async def test_a_call_state_event_during_the_grace_does_not_restart_it() -> None:
    async with asyncio.timeout(T), env(call_end_grace=60.0) as e:
        core = core_of(e)
        call = await answered(e)
        await call.play(silence(60))
        await e.call_state(call.id, "ended", "hangup")
        grace = core._call_timers[call.id]
        await e.post("calling.call.state", call_id=call.id, call_state="ended", n=2)
        assert core._call_timers[call.id] is grace
        assert not grace.cancelled()


# --------------------------------------------------------------------------- metered waits

METERED = ReceiverSettings(metrics_path="/metrics")


def waits(e: Env) -> float:
    """How many waits webhooks completed, as the session's histogram counts them."""
    metrics = e.session.metrics
    assert metrics is not None
    value = metrics.registry.get_sample_value(f"{PREFIX}_webhook_to_waiter_seconds_count")
    assert value is not None
    return value


async def test_each_wait_a_webhook_completes_is_timed_once() -> None:
    async with asyncio.timeout(T), env(call_end_grace=5.0, receiver=METERED) as e:
        assert isinstance(core_of(e), MeteredCore)
        assert waits(e) == 0
        call = await answered(e)
        assert waits(e) == 1  # answered()
        # a late ringing and a repeated answered complete no wait
        await e.call_state(call.id, "ringing")
        await e.call_state(call.id, "answered")
        assert call.state == "answered"
        assert waits(e) == 1
        play = await call.play(silence(60))
        await e.play_event(call.id, play.control_id, "playing")
        assert waits(e) == 1
        # an error while the call may be ending is held: no wait completes yet
        await e.play_event(call.id, play.control_id, "error")
        assert not play.done
        assert waits(e) == 1
        # the end settles the held play in the same webhook: ended() and finished()
        await e.call_state(call.id, "ended", "hangup")
        with pytest.raises(CallEndedError):
            await play.finished()
        assert waits(e) == 3
        assert_nothing_tracked(core_of(e))


async def test_a_wait_a_timer_completes_is_not_a_webhooks() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.05, receiver=METERED) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        await e.play_event(call.id, play.control_id, "error")
        # the held error is released by its timer, outside any webhook
        with pytest.raises(OperationFailed):
            await play.finished()
        assert waits(e) == 1  # answered() only
        finished = await call.play(silence(1))
        await e.play_event(call.id, finished.control_id, "finished")
        await finished.finished()
        assert waits(e) == 2
