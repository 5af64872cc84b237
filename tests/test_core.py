"""The correlation core through the public surface: a real session whose receiver gets
webhooks POSTed over loopback, commands answered by a small aiohttp server.

Routing, the early buffer (call-state events racing a dial's answer, nothing else),
duplicates, late events, forged events for ids never issued, the end of calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from signalwire_calls import (
    CallEndedError,
    CallSession,
    HandleStatus,
    OperationFailed,
    PlayResult,
    silence,
)
from signalwire_calls.commands import Digits

T = 5.0
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


def call_uuid(n: int) -> str:
    """The id of the n-th call the test space creates (calls have UUIDs)."""
    return f"00000000-0000-4000-8000-{n:012d}"


@dataclass
class Space:
    """Answers every command with a call leg; dials get ``call-N`` ids and may be held."""

    url: str = ""
    dial_gate: asyncio.Event = field(default_factory=asyncio.Event)
    dials_waiting: int = 0
    commands: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    not_found: set[str] = field(default_factory=set)
    #: per command: the statuses of its next answers (then the usual 200)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    #: commands answered only once ``hold_gate`` is set
    held: set[str] = field(default_factory=set)
    hold_gate: asyncio.Event = field(default_factory=asyncio.Event)
    #: per command: the leg status of its answer (else "queued")
    leg_status: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        doc = msgspec.json.decode(await request.read())
        self.commands.append(doc)
        command = doc["command"]
        if command in self.held:
            await self.hold_gate.wait()
        if self.statuses.get(command):
            code = self.statuses[command].pop(0)
            return web.json_response({"error": f"status {code}"}, status=code)
        if command == "dial":
            call_id = call_uuid(next(self.ids))
            self.dials_waiting += 1
            try:
                await self.dial_gate.wait()
            finally:
                self.dials_waiting -= 1
        else:
            call_id = doc.get("id") or doc["params"].get("id")
            if call_id in self.not_found:
                return web.json_response({"error": "Not Found"}, status=404)
        leg = {
            "id": call_id,
            "type": "relay_pstn_call",
            "status": self.leg_status.get(command, "queued"),
        }
        return web.json_response(leg)


@contextlib.asynccontextmanager
async def space() -> AsyncIterator[Space]:
    s = Space()
    s.dial_gate.set()
    app = web.Application()
    app.router.add_post("/api/calling/calls", s.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield s
    finally:
        s.dial_gate.set()
        s.hold_gate.set()
        await runner.cleanup()


@dataclass
class Env:
    space: Space
    session: CallSession
    http: aiohttp.ClientSession

    async def post(self, event_type: str, timestamp: float | None = None, **params: Any) -> int:
        envelope: dict[str, Any] = {"event_type": event_type, "params": params}
        if timestamp is not None:
            envelope["timestamp"] = timestamp
        body = msgspec.json.encode(envelope)
        receiver = self.session.receiver
        assert receiver is not None
        async with self.http.post(receiver.url, data=body) as resp:
            return resp.status

    async def play_event(
        self, call_id: str, control_id: str, state: str, timestamp: float | None = None
    ) -> int:
        return await self.post(
            "calling.call.play",
            timestamp,
            call_id=call_id,
            control_id=control_id,
            state=state,
        )

    async def call_state(self, call_id: str, state: str, reason: str | None = None) -> int:
        return await self.post(
            "calling.call.state", call_id=call_id, call_state=state, end_reason=reason
        )


@contextlib.asynccontextmanager
async def env(**options: Any) -> AsyncIterator[Env]:
    options.setdefault("call_end_grace", 0.05)
    async with (
        space() as s,
        CallSession(space=s.url, project="p", token="t", **options) as session,
        aiohttp.ClientSession() as http,
    ):
        yield Env(s, session, http)


async def answered(e: Env) -> Any:
    call = await e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML)
    await e.call_state(call.id, "answered")
    await call.answered(timeout=T)
    return call


async def held_dial(e: Env, **options: Any) -> asyncio.Task[Any]:
    """A dial the fake space holds before answering it (its gate closed): the task of
    ``session.dial``, returned once the space has the request. ``e.space.dial_gate.set()``
    lets it answer."""
    e.space.dial_gate.clear()
    dial = asyncio.create_task(
        e.session.dial(to="+15551230001", from_="+15559870000", swml=SWML, **options)
    )
    while not e.space.dials_waiting:
        await asyncio.sleep(0.005)
    return dial


# --------------------------------------------------------------------------- routing


async def test_routes_to_the_handle_and_forgets_it_when_settled() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        assert play.status is HandleStatus.PENDING
        assert [h.control_id for h in call.pending] == [play.control_id]
        await e.play_event(call.id, play.control_id, "playing")
        assert play.status.value == "running"
        await e.play_event(call.id, play.control_id, "finished")
        assert await play.finished() == PlayResult(state="finished")
        stats = e.session.stats().registry
        assert (stats.routed, stats.pending_operations) == (3, 0)  # answered + 2 play
        assert call.pending == []


async def test_duplicates_and_late_events_are_dropped() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        await e.play_event(call.id, play.control_id, "playing")
        await e.play_event(call.id, play.control_id, "playing")
        assert e.session.stats().registry.duplicates == 1
        await e.play_event(call.id, play.control_id, "finished")
        await e.play_event(call.id, play.control_id, "playing", timestamp=3.0)
        stats = e.session.stats().registry
        assert (stats.late, stats.buffered_now, stats.unmatched) == (1, 0, 0)
        assert play.state == "finished"


async def test_an_event_for_an_id_never_issued_is_not_buffered() -> None:
    """A forged result planted before the operation starts must not be replayed to it."""
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        forged = {"type": "digit", "params": {"digits": "9", "terminator": "#"}}
        await e.post(
            "calling.call.collect", call_id=call.id, control_id="guessed-id", result=forged
        )
        stats = e.session.stats().registry
        assert (stats.unmatched, stats.buffered, stats.buffered_now) == (1, 0, 0)
        collect = await call.collect(digits=Digits(max=1), control_id="guessed-id")
        assert collect.status is HandleStatus.PENDING
        assert not collect.done


async def test_control_ids_are_unpredictable_and_unique() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        ids = [(await call.play(silence(1))).control_id for _ in range(300)]
    assert len(set(ids)) == 300
    assert all(len(i) == 16 for i in ids)
    # no shared prefix or counter: ids differ from their neighbour early on
    assert sum(a[:4] == b[:4] for a, b in itertools.pairwise(ids)) < 5


async def test_a_refused_duplicate_control_id_sends_and_counts_nothing() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        await call.play(silence(1), control_id="same")
        sent = e.session.stats().commands_sent
        with pytest.raises(ValueError, match="control_id"):
            await call.play(silence(1), control_id="same")
        assert e.session.stats().commands_sent == sent
        assert len(e.space.commands) == sent


# --------------------------------------------------------------------------- the early buffer


async def test_call_state_racing_the_dial_answer_is_replayed() -> None:
    async with asyncio.timeout(T), env() as e:
        dial = await held_dial(e)
        await e.call_state(call_uuid(1), "ringing")
        await e.call_state(call_uuid(1), "answered")
        stats = e.session.stats().registry
        assert (stats.buffered, stats.buffered_now) == (2, 2)
        assert stats.buffered_bytes > 0
        e.space.dial_gate.set()
        call = await dial
        assert call.state == "answered"
        stats = e.session.stats().registry
        assert (stats.replayed, stats.buffered_now, stats.buffered_bytes) == (2, 0, 0)


async def test_call_state_for_an_unknown_call_with_no_dial_in_flight_is_dropped() -> None:
    async with asyncio.timeout(T), env() as e:
        await e.call_state("call-77", "answered")
        stats = e.session.stats().registry
        assert (stats.unmatched, stats.buffered) == (1, 0)


async def test_the_buffer_is_bounded_per_call_in_count_and_in_time() -> None:
    async with asyncio.timeout(T), env(early_event_max=12, early_event_ttl=0.2) as e:
        dial = await held_dial(e)
        for i in range(10):  # one call: at most 8 kept
            await e.post("calling.call.state", call_id="call-x", call_state="ringing", n=i)
        for i in range(10):  # 4 more calls' worth: the total is capped at 12
            await e.call_state(f"call-y{i}", "ringing")
        stats = e.session.stats().registry
        assert stats.buffered_now == 12
        assert stats.expired == 8
        await asyncio.sleep(0.3)
        stats = e.session.stats().registry
        assert (stats.buffered_now, stats.buffered_bytes) == (0, 0)
        assert stats.expired == 20
        e.space.dial_gate.set()
        await dial


# --------------------------------------------------------------------------- transcripts


async def test_transcripts_route_by_call_and_a_second_transcribe_does_not_displace() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        first = await call.transcribe()
        second = await call.transcribe()  # the platform would refuse it (409)
        await e.post("calling.transcript.completed", id="t-1", call_id=call.id, text="hello there")
        assert (await first.finished()).text == "hello there"
        assert second.status is HandleStatus.PENDING


async def test_unknown_and_keyless_events_are_counted() -> None:
    async with asyncio.timeout(T), env() as e:
        await e.post("calling.call.hold", state="held")
        await e.post("calling.call.play", state="playing")
        stats = e.session.stats().registry
        assert (stats.unknown, stats.buffered, stats.unmatched) == (2, 0, 0)


# --------------------------------------------------------------------------- call end


async def test_an_ended_call_is_forgotten_and_late_state_dropped() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        await e.call_state(call.id, "ended", "hangup")
        assert await call.ended() == "hangup"
        assert e.session.calls == []
        await e.call_state(call.id, "answered")
        assert e.session.stats().registry.late == 1
        assert call.state == "ended"


async def test_pending_handles_settle_with_call_ended_after_the_grace() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.1) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        await e.play_event(call.id, play.control_id, "playing")
        await e.call_state(call.id, "ended", "hangup")
        assert not play.done  # the grace: its own final event may still come
        with pytest.raises(CallEndedError) as info:
            await play.finished()
        assert info.value.end_reason == "hangup"
        assert info.value.call_id == call.id
        assert info.value.event is not None
        assert info.value.event.params.state == "playing"
        assert e.session.stats().registry.pending_operations == 0


async def test_a_play_finishing_after_the_call_ended_is_call_ended() -> None:
    async with asyncio.timeout(T), env(call_end_grace=1.0) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        record = await call.record()
        await e.call_state(call.id, "ended", "hangup")
        await e.play_event(call.id, play.control_id, "finished")
        await e.post(
            "calling.call.record",
            call_id=call.id,
            control_id=record.control_id,
            state="finished",
            url="https://example.com/r.mp3",
        )
        with pytest.raises(CallEndedError) as info:
            await play.finished()
        assert info.value.event.params.state == "finished"
        # a recording cut by the hang-up is still a recording
        assert (await record.finished()).url == "https://example.com/r.mp3"


async def test_an_error_just_before_the_call_ends_is_call_ended() -> None:
    """A collect cut by a hang-up reports a result of type error, then the call's end
    arrives: the handle says the call ended, not that the platform failed."""
    async with asyncio.timeout(T), env(call_end_grace=1.0) as e:
        call = await answered(e)
        collect = await call.collect(digits=Digits(max=1))
        await e.post(
            "calling.call.collect",
            call_id=call.id,
            control_id=collect.control_id,
            result={"type": "error"},
        )
        assert not collect.done  # held: the call may be ending
        await e.call_state(call.id, "ended", "hangup")
        with pytest.raises(CallEndedError) as info:
            await collect.finished()
        assert info.value.event.params.result.type == "error"


async def test_an_error_on_a_live_call_is_an_operation_failure_after_the_grace() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.1) as e:
        call = await answered(e)
        play = await call.play(silence(1))
        await e.play_event(call.id, play.control_id, "error")
        with pytest.raises(OperationFailed):
            await play.finished()
        assert not call.is_ended


async def test_a_lost_ended_webhook_ends_the_call_locally() -> None:
    async with asyncio.timeout(T), env(call_end_grace=0.1) as e:
        call = await answered(e)
        play = await call.play(silence(60))
        await call.end()
        assert await call.ended() == "end_webhook_lost"
        with pytest.raises(CallEndedError):
            await play.finished()
        stats = e.session.stats().registry
        assert (stats.calls_ended_locally, stats.live_calls, stats.pending_operations) == (
            1,
            0,
            0,
        )


async def test_an_attached_call_ends_on_a_probe_404_after_a_collect_error() -> None:
    """No call-state webhooks come for an attached call: a collect error makes the
    session probe the call, and the probe's 404 ends it."""
    async with asyncio.timeout(T), env(call_end_grace=1.0) as e:
        call = e.session.call("inbound-1")
        collect = await call.collect(digits=Digits(max=1))
        e.space.not_found.add("inbound-1")
        await e.post(
            "calling.call.collect",
            call_id="inbound-1",
            control_id=collect.control_id,
            result={"type": "error"},
        )
        assert await call.ended() == "not_found"
        with pytest.raises(CallEndedError):
            await collect.finished()
        assert e.space.commands[-1]["command"] == "calling.user_event"
        assert e.session.calls == []


async def test_event_history_is_bounded() -> None:
    async with asyncio.timeout(T), env() as e:
        call = await answered(e)
        play = await call.play(silence(1))
        for i in range(200):
            await e.play_event(
                call.id, play.control_id, "paused" if i % 2 else "playing", timestamp=float(i)
            )
        assert e.session.stats().registry.routed == 201
        events = play.events()
        replay = [await anext(events) for _ in range(64)]
        assert [ev.timestamp for ev in replay] == [float(i) for i in range(136, 200)]
        await events.aclose()


async def test_a_failing_trace_callback_loses_no_event() -> None:
    seen: list[str] = []

    def trace(record: Any) -> None:
        seen.append(record.name)
        raise RuntimeError("broken trace")

    async with asyncio.timeout(T), env(trace=trace) as e:
        call = await answered(e)
        play = await call.play(silence(1))
        await e.play_event(call.id, play.control_id, "finished")
        assert (await play.finished()).state == "finished"
        assert e.session.stats().registry.trace_errors == len(seen)
        assert "calling.call.play" in seen


# --------------------------------------------------------------------------- flooding


async def test_a_flood_of_bogus_events_neither_fills_the_buffer_nor_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """10,000 forged operation events, then a real dial whose 'answered' races its
    answer: the forged ones are not kept, the real one is replayed, and the log holds at
    most one line per kind of message."""
    async with asyncio.timeout(30), env(early_event_max=100) as e:
        # no request timeout of its own (the test's bounds it): under mutmut's trampolines
        # the flood outlasts the default 10 s
        dial = await held_dial(e, request_timeout=None)
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls"):
            bogus = [
                e.post("calling.call.play", call_id="c", control_id=f"x{i}\nforged", state="x")
                for i in range(10_000)
            ]
            for chunk in range(0, len(bogus), 500):
                await asyncio.gather(*bogus[chunk : chunk + 500])
            # call-state events for made-up calls while the dial is in flight: buffered,
            # but only up to the bound, and logged once
            for i in range(150):
                await e.call_state(f"made-up-{i}\nINFO forged line", "ringing")
            await e.call_state(call_uuid(1), "answered")  # the real one: the buffer is full...
        stats = e.session.stats().registry
        assert stats.unmatched == 10_000
        assert stats.buffered_now == 100
        e.space.dial_gate.set()
        call = await dial
        # ...so the real event was dropped, counted and reported once, not silently
        assert stats.expired == 51
        assert call.state == "queued"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert "early-event buffer full" in warnings[0].getMessage()
        assert all("\nINFO" not in r.getMessage() for r in caplog.records)


async def test_a_real_early_event_survives_a_flood_of_forged_operation_events() -> None:
    async with asyncio.timeout(30), env() as e:
        # no request timeout of its own (the test's bounds it): under mutmut's trampolines
        # the flood outlasts the default 10 s
        dial = await held_dial(e, request_timeout=None)
        for chunk in range(0, 10_000, 500):
            await asyncio.gather(
                *(
                    e.post("calling.call.collect", call_id="c", control_id=f"g{i}", result={})
                    for i in range(chunk, chunk + 500)
                )
            )
        await e.call_state(call_uuid(1), "answered")
        e.space.dial_gate.set()
        call = await dial
        assert call.state == "answered"
        stats = e.session.stats().registry
        assert (stats.unmatched, stats.buffered, stats.replayed) == (10_000, 1, 1)
