"""The pytest plugin's ``signalwire_simulator`` fixture and the ``SimulatorThread`` it yields.

These run in this suite's own pytest-asyncio loop; ``tests/test_pytest_modes.py`` runs the
fixture under the other test runners, in projects of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signalwire_calls import CallSession, Digits, silence
from signalwire_calls.errors import BadRequestError, PermissionDeniedError
from signalwire_calls.testing import (
    Callee,
    FaultPlan,
    Simulator,
    SimulatorOptions,
    SimulatorThread,
    WebhookRule,
)
from signalwire_calls.testing._pytest_plugin import DEFAULT_TIME_SCALE, resolve_options
from signalwire_calls.testing._threaded import _snapshot

HUMAN = "+15551230001"
CALLER = "+15559870000"
SWML_URL = "https://example.com/swml"


def session_for(sim: SimulatorThread) -> CallSession:
    return CallSession(
        space=sim.base_url,
        project=sim.project,
        token=sim.token,
        signing_key=sim.signing_key,
        call_end_grace=0.05,
    )


async def collect_digits(sim: SimulatorThread, to: str = HUMAN) -> tuple[str, str | None]:
    """Dial ``to``, wait for the answer, collect one digit; (call id, digits)."""
    async with session_for(sim) as session:
        call = await session.dial(to=to, from_=CALLER, url=SWML_URL)
        await call.answered(timeout=5)
        menu = await call.collect(digits=Digits(max=1, terminators="#"))
        result = await menu.finished(timeout=5)
        await call.end()
        return call.id, result.digits


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(time_scale=0.01, cps=None) as sim:
        yield sim


# ---------------------------------------------------------------------------- the fixture


async def test_fixture_is_a_started_fast_simulator(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    assert isinstance(sim, SimulatorThread)
    assert sim.running
    assert sim.time_scale == DEFAULT_TIME_SCALE == 0.01
    assert sim.cps == 1.0  # the platform's default pace
    sim.script(HUMAN, Callee.answers(after=1.0, digits="2#"))
    call_id, digits = await collect_digits(sim)
    assert digits == "2"
    ended = await sim.wait_for_call_state(call_id, "ended", timeout=5)
    assert ended.end_reason is not None
    assert [c.command for c in sim.commands][:2] == ["dial", "calling.collect"]


@pytest.mark.signalwire_simulator(
    time_scale=0.02,
    cps=None,
    callees={HUMAN: Callee.answers(after=0.5, digits="7#")},
    faults=FaultPlan(webhook_rules=[WebhookRule("duplicate", event_type="calling.call.collect")]),
)
async def test_marker_options_take_effect(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    assert sim.time_scale == 0.02
    assert sim.cps is None
    assert set(sim.callees) == {HUMAN}
    _, digits = await collect_digits(sim)  # the marker's callee, never scripted here
    assert digits == "7"
    collect_hooks = sim.webhooks_for(event_type="calling.call.collect")
    assert [w.duplicate for w in collect_hooks].count(True) == 1
    assert sim.faults.webhook_rules[0].seen >= 1


@pytest.mark.signalwire_simulator(
    faults=FaultPlan(webhook_rules=[WebhookRule("drop", event_type="calling.call.play")])
)
class TestMarkerScopes:
    """A class marker applies to each test, each with a fresh copy of its values."""

    @pytest.mark.signalwire_simulator(time_scale=0.03)
    def test_nearer_marker_adds_to_farther(self, signalwire_simulator: SimulatorThread) -> None:
        assert signalwire_simulator.time_scale == 0.03
        assert [r.action for r in signalwire_simulator.faults.webhook_rules] == ["drop"]

    @pytest.mark.parametrize("round_", [1, 2])
    def test_each_test_gets_a_fresh_plan(
        self, signalwire_simulator: SimulatorThread, round_: int
    ) -> None:
        sim = signalwire_simulator
        sim.script(HUMAN, Callee.answers(after=0.1))
        rule = sim.faults.webhook_rules[0]
        assert rule.seen == 0, f"round {round_}: the rule counter leaked from another test"

        async def play() -> None:
            async with session_for(sim) as session:
                call = await session.dial(to=HUMAN, from_=CALLER, url=SWML_URL)
                await call.answered(timeout=5)
                await call.play(silence(0.1))
                await sim.wait_for_webhook("calling.call.play", settled=True)
                await call.end()

        asyncio.run(play())  # a plain test: its own loop, the simulator in its thread
        assert sim.faults.webhook_rules[0].seen >= 1
        assert sim.webhooks_for(event_type="calling.call.play")[0].outcome == "dropped"


@pytest.mark.signalwire_simulator(time_scale=0.03, cps=2.0)
@pytest.mark.parametrize("signalwire_simulator", [{"cps": None}], indirect=True)
def test_indirect_parameter_wins_over_markers(signalwire_simulator: SimulatorThread) -> None:
    assert signalwire_simulator.cps is None
    assert signalwire_simulator.time_scale == 0.03


class TestOptionsFixture:
    @pytest.fixture
    def signalwire_simulator_options(self) -> SimulatorOptions:
        return {"time_scale": 0.04, "project": "my-project"}

    @pytest.mark.signalwire_simulator(project="marked")
    def test_overridden_options_fixture_sets_defaults(
        self, signalwire_simulator: SimulatorThread
    ) -> None:
        assert signalwire_simulator.time_scale == 0.04
        assert signalwire_simulator.project == "marked"


def test_resolve_options_rejects_unknown_and_positional_options() -> None:
    mark = pytest.mark.signalwire_simulator
    with pytest.raises(TypeError, match=r"@pytest.mark.signalwire_simulator: 'tme_scale' is not"):
        resolve_options({}, [mark(tme_scale=0.1).mark])
    with pytest.raises(TypeError, match="keyword options only"):
        resolve_options({}, [mark({"cps": None}).mark])
    with pytest.raises(TypeError, match="signalwire_simulator parameter: must be a dict"):
        resolve_options({}, [], param=0.5)
    with pytest.raises(TypeError, match="signalwire_simulator_options: 'bogus'"):
        resolve_options({"bogus": 1}, [])


def test_resolve_options_layers_and_copies() -> None:
    plan = FaultPlan(seed=3)
    far = pytest.mark.signalwire_simulator(time_scale=0.5, faults=plan, seed=1).mark
    near = pytest.mark.signalwire_simulator(seed=2).mark
    options = resolve_options({"cps": None, "seed": 9}, [near, far])  # nearest first
    assert options["time_scale"] == 0.5
    assert options["seed"] == 2
    assert options["cps"] is None
    assert options["faults"] == plan
    assert options["faults"] is not plan
    assert resolve_options({}, []) == {"time_scale": 0.01}


def test_bad_option_value_names_the_field() -> None:
    with pytest.raises(ValueError, match="time_scale: must be > 0"):
        SimulatorThread(time_scale=0)
    with pytest.raises(TypeError, match="bogus: not a Simulator option"):
        SimulatorThread(bogus=1)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- SimulatorThread


def test_options_match_the_simulator_signature() -> None:
    params = inspect.signature(Simulator.__init__).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(SimulatorOptions.__annotations__) == keywords


def test_carries_the_simulator_surface() -> None:
    """Every public name of Simulator is on SimulatorThread, but those left out on purpose."""
    left_out = {
        "engine": "the engine's objects live on the simulator's loop",
        "start": "SimulatorThread.start starts the thread",
        "aclose": "SimulatorThread.close stops the thread",
        "audio_lengths": "an option, or changed with call_in_loop",
        "unplayable": "changed with call_in_loop",
        "allow_external_webhooks": "read at start only",
        "max_queued_calls": "read at start only",
        "max_call_length": "read at start only",
    }
    public = {n for n in dir(Simulator) if not n.startswith("_")} | set(
        vars(Simulator(time_scale=1.0))
    )
    public = {n for n in public if not n.startswith("_")}
    missing = {n for n in public - set(left_out) if not hasattr(SimulatorThread, n)}
    assert missing == set()


def test_sync_use_with_two_loops(sim_thread: SimulatorThread) -> None:
    """The same simulator serves flows run by two event loops, one after the other."""
    sim = sim_thread
    sim.script(HUMAN, Callee.answers(after=0.2, digits=["1#", "2#"]))
    first = asyncio.run(collect_digits(sim))
    second = asyncio.run(collect_digits(sim))
    assert (first[1], second[1]) == ("1", "1")  # each call starts the callee's script over
    assert len(sim.calls) == 2
    assert sim.peak_live_calls >= 1
    assert len(sim.dial_times) == len(sim.start_times) == 2


async def test_snapshots_do_not_change_and_keep_their_links(sim_thread: SimulatorThread) -> None:
    sim = sim_thread
    sim.script(HUMAN, Callee.answers(after=0.5, digits="3#"))
    async with session_for(sim) as session:
        call = await session.dial(to=HUMAN, from_=CALLER, url=SWML_URL)
        answered = await sim.wait_for_call_state(call.id, "answered")
        menu = await call.collect(digits=Digits(max=1, terminators="#"))
        assert (await menu.finished(timeout=5)).digits == "3"
        op = sim.operation(call.id, menu.control_id)
        await call.end()
    ended = await sim.wait_for_call_state(call.id, "ended")
    assert answered.status == "answered"  # taken before: unchanged since
    assert "ended" not in answered.history
    assert ended.ended
    assert op.done
    assert op.call.id == call.id
    assert op.timers == []
    calls = sim.calls
    snap_op = calls[call.id].operations("collect")[0]
    assert snap_op.call is calls[call.id]  # links point into the same snapshot
    hooks = sim.webhooks
    assert hooks
    assert all(h._done is None for h in hooks)
    assert hooks[0].payload["event_type"]


async def test_wait_predicate_may_read_the_thread_object(sim_thread: SimulatorThread) -> None:
    sim = sim_thread
    sim.script(HUMAN, Callee.busy(after=0.1))
    waiting = asyncio.ensure_future(
        sim.wait_for(lambda: [c for c in sim.calls.values() if c.ended], timeout=5)
    )
    async with session_for(sim) as session:
        call = await session.dial(to=HUMAN, from_=CALLER, url=SWML_URL)
        ended = await waiting
        # the call's ended webhook is still on its way: let it land before the receiver
        # stops (one accepted during aiohttp's shutdown is left open until GC)
        await sim.wait_for_webhooks_idle()
    assert [c.id for c in ended] == [call.id]
    assert ended[0].end_reason == "busy"


async def test_cancelled_wait_leaves_nothing_behind(sim_thread: SimulatorThread) -> None:
    sim = sim_thread

    def tasks() -> int:
        return len(asyncio.all_tasks())

    before = sim.call_in_loop(lambda _: tasks())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await sim.wait_for_call(to="+15550000000", timeout=5)
    for _ in range(200):  # the waiting task on the simulator's loop is cancelled soon after
        if sim.call_in_loop(lambda _: tasks()) == before:
            break
        await asyncio.sleep(0.01)
    assert sim.call_in_loop(lambda _: tasks()) == before
    with pytest.raises(TimeoutError, match=r"simulator: condition not met within 0\.05 s"):
        await sim.wait_for_call(to="+15550000000", timeout=0.05)


async def test_faults_view_changes_the_plan_on_the_loop(sim_thread: SimulatorThread) -> None:
    sim = sim_thread
    rule = sim.faults.fail_command(400, command="dial")
    sim.faults.retry_after = 2.5
    assert sim.call_in_loop(lambda s: (s.faults.retry_after, s.faults.command_rules[0] is rule))
    assert sim.faults.retry_after == 2.5
    assert "FaultPlan(" in repr(sim.faults)
    assert sim.faults.fail_command.__doc__
    async with session_for(sim) as session:
        with pytest.raises(BadRequestError):
            await session.dial(to=HUMAN, from_=CALLER, url=SWML_URL)
    assert rule.seen >= 1  # the live rule, counted on the simulator's loop
    assert sim.faults.command_rules == [rule]  # an equal copy
    with pytest.raises(TypeError, match="add rules with the builders"):
        sim.faults.command_rules.append(rule)
    sim.faults = FaultPlan(seed=5)
    assert sim.faults.command_rules == []
    assert sim.faults.seed == 5
    with pytest.raises(ValueError, match=r"drop_rate: must be within 0\.\.1"):
        sim.faults = FaultPlan(drop_rate=2)


async def test_hangup_cps_and_voice_scope(sim_thread: SimulatorThread) -> None:
    sim = sim_thread
    sim.cps = 5.0
    assert sim.call_in_loop(lambda s: s.engine.cps) == 5.0
    with pytest.raises(ValueError, match="cps: must be > 0"):
        sim.cps = 0
    with pytest.raises(KeyError):
        sim.hangup("no-such-call")
    assert str(sim.port) in sim.base_url
    assert sim.url.endswith("/api/calling/calls")
    assert sim.auth_header.startswith("Basic ")
    assert (sim.host, sim.space, sim.seed) == ("127.0.0.1", "simulator", 0)
    assert sim.live_calls == sim.queued_calls == 0
    sim.voice_scope = False
    async with session_for(sim) as session:
        with pytest.raises(PermissionDeniedError):
            await session.dial(to=HUMAN, from_=CALLER, url=SWML_URL)
        sim.voice_scope = True
        sim.script(HUMAN, Callee.answers(after=0.1, hangup_after=60))
        call = await session.dial(to=HUMAN, from_=CALLER, url=SWML_URL)
        await call.answered(timeout=5)
        sim.hangup(call.id)
        assert await call.ended(timeout=5) == "hangup"
    assert sim.voice_scope
    assert (await sim.wait_for_command("dial")).status == 200  # the 403 was not recorded
    await sim.wait_for_webhooks_idle()


def test_load_callees_reads_in_the_callers_thread(
    sim_thread: SimulatorThread, tmp_path: Path
) -> None:
    path = tmp_path / "callees.json"
    path.write_text('{"+15550009": {"behavior": "busy"}}')
    sim_thread.load_callees(path)
    assert sim_thread.callees["+15550009"].behavior == "busy"
    path.write_text('{"+15550009": {"behavior": "sings"}}')
    with pytest.raises(ValueError, match="behavior"):
        sim_thread.load_callees(path)


def test_close_ends_the_thread_and_later_use_fails() -> None:
    sim = SimulatorThread(time_scale=0.01)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.calls
    assert "not started" in repr(sim)
    threads_before = set(threading.enumerate())
    with sim:
        (thread,) = set(threading.enumerate()) - threads_before
        assert thread.name.startswith("signalwire-simulator-")
        assert "running" in repr(sim)
    assert not thread.is_alive()
    assert not sim.running
    assert "closed" in repr(sim)
    sim.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sim.script(HUMAN, Callee.busy())
    with pytest.raises(RuntimeError, match="already started"):
        sim.start()


async def test_waiting_on_a_closed_simulator_fails_cleanly() -> None:
    sim = SimulatorThread(time_scale=0.01)
    sim.start()
    sim.close()
    with pytest.raises(RuntimeError, match="closed"):
        await sim.wait_for_call()


def test_start_failure_raises_and_leaves_no_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        threads_before = set(threading.enumerate())
        sim = SimulatorThread(port=port)
        with pytest.raises(OSError, match="address already in use"):
            sim.start()
    assert set(threading.enumerate()) == threads_before
    assert not sim.running
    sim.close()


@dataclass(frozen=True)
class _Frozen:
    items: list[int]


@dataclass
class _Node:
    name: str
    peer: _Node | None = None
    waiter: asyncio.Future[None] | None = None


async def test_snapshot_copies_deeply_and_drops_loop_objects() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    a = _Node("a", waiter=waiter)
    a.peer = _Node("b", peer=a)
    handle = loop.call_later(10, lambda: None)
    frozen = _Frozen([1])
    source = {"node": a, "timers": [handle, 1], "q": deque([1, 2], maxlen=3), "f": frozen}
    snap = _snapshot(source, {})
    handle.cancel()
    waiter.cancel()
    assert snap["node"] is not a
    assert snap["node"].waiter is None
    assert snap["node"].peer.peer is snap["node"]
    assert snap["timers"] == [1]
    assert snap["q"] == deque([1, 2])
    assert snap["q"].maxlen == 3
    assert snap["f"] is frozen
    a.name = "changed"
    assert snap["node"].name == "a"
