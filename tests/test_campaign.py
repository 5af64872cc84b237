"""Campaigns end to end: our session -> the simulator -> our receiver, on loopback.

Every simulator here comes from ``make_simulator``. Rates and windows are in simulated
seconds: a campaign with ``time_scale=s`` paces ``cps`` dials per simulated second.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from signalwire_calls import (
    AuthenticationError,
    Call,
    CallSession,
    RetryPolicy,
    silence,
    tts,
)
from signalwire_calls.campaign import (
    Campaign,
    MachineDetection,
    RetryRule,
    Target,
    read_report,
)
from signalwire_calls.testing import Callee, Simulator

TIME_SCALE = 0.01
CALLER = "+15559870000"
SWML: dict[str, Any] = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
T = 10.0  # real seconds any single wait in these tests may take at most


def make_simulator(**options: Any) -> Simulator:
    """Every simulator of the campaign tests is made here."""
    options.setdefault("time_scale", TIME_SCALE)
    options.setdefault("webhook_backoff", 0.02)
    options.setdefault("cps", None)  # the campaign paces; the platform's own queue is off
    return Simulator(**options)


def make_session(sim: Simulator, **options: Any) -> CallSession:
    options.setdefault("call_end_grace", 0.05)
    options.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_cap=0.05))
    return CallSession(
        space=sim.base_url,
        project=sim.project,
        token=sim.token,
        signing_key=sim.signing_key,
        **options,
    )


def number(i: int) -> str:
    return f"+1555{i:07d}"


def peak_live_calls(sim: Simulator) -> int:
    """The most calls the simulator had live at once (from creation to end)."""
    edges: list[tuple[float, int]] = []
    for call in sim.calls.values():
        edges.append((call.created_mono, 1))
        edges.append((call.ended_mono if call.ended_mono is not None else float("inf"), -1))
    edges.sort()
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


def dial_times(sim: Simulator) -> list[float]:
    """When the simulator received each dial it carried out, in simulated seconds."""
    times = sorted(sim.dial_times)
    return [(t - times[0]) / sim.time_scale for t in times] if times else []


#: The simulator stamps a dial when its handler reads the request; on a loaded 2-core
#: machine that reading lags by up to tens of milliseconds, which can bunch dials sent
#: an interval apart. Windows are shortened by this much real time to tell the pacing
#: apart from that lag.
READ_JITTER = 0.03


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most of ``times`` (sorted) in any half-open window of ``window`` seconds."""
    most = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def calls_per_number(sim: Simulator) -> Counter[str]:
    return Counter(call.to for call in sim.calls.values())


def live_calls(sim: Simulator) -> list[str]:
    return [call.id for call in sim.calls.values() if not call.ended]


def journal_targets(path: Path) -> dict[str, tuple[str, str | None, int]]:
    """key -> (state, outcome, attempts), read straight from the SQLite file."""
    with closing(sqlite3.connect(path)) as db:
        return {
            k: (s, o, int(a))
            for k, s, o, a in db.execute("SELECT key, state, outcome, attempts FROM targets")
        }


async def play_hello(call: Call, target: Target) -> str:
    play = await call.play(tts("hello there"))
    await play.finished(timeout=T)
    return target.number


def campaign(session: CallSession, targets: Iterable[Target] | Any, **options: Any) -> Campaign:
    options.setdefault("from_", CALLER)
    options.setdefault("swml", SWML)
    options.setdefault("time_scale", TIME_SCALE)
    options.setdefault("progress", "off")
    options.setdefault("handle_signals", False)
    flow = options.pop("flow", play_hello)
    return Campaign(session, targets, flow, **options)


# ------------------------------------------------------------------------ scale


_EXPECTED = {
    "answer": "completed",
    "busy": "busy",
    "no_answer": "no_answer",
    "fail": "failed",
    "voicemail": "machine",
}


def _mixed_callee(rng: random.Random) -> tuple[str, Callee]:
    pick = rng.random()
    if pick < 0.55:
        return "answer", Callee.answers(after=rng.uniform(0.5, 2.5))
    if pick < 0.65:
        return "busy", Callee.busy(after=rng.uniform(0.5, 2.0))
    if pick < 0.75:
        return "no_answer", Callee.no_answer(after=rng.uniform(2.0, 5.0))
    if pick < 0.85:
        return "fail", Callee.fails()
    return "voicemail", Callee.voicemail(greeting=3.0, after=rng.uniform(0.5, 2.0))


@pytest.mark.timeout(90)
async def test_two_thousand_targets_keep_both_limits(tmp_path: Path) -> None:
    # 10 dials per simulated second at time scale 0.15: 67 real dials per second, 30 s.
    # The callees' calls would peak at ~37 live calls: the cap of 32 binds now and then.
    scale, cps, concurrency = 0.15, 10, 32
    rng = random.Random(7)
    expected: dict[str, str] = {}
    async with make_simulator(time_scale=scale) as sim:
        targets = []
        for i in range(2000):
            kind, callee = _mixed_callee(rng)
            sim.script(number(i), callee)
            expected[number(i)] = _EXPECTED[kind]
            targets.append(Target(number(i), {"kind": kind}))
        async with make_session(sim) as session:
            c = campaign(
                session,
                targets,
                cps=cps,
                concurrency=concurrency,
                journal=tmp_path / "big.db",
                machine_detection=MachineDetection(),
                time_scale=scale,
            )
            report = await c.run()
        assert live_calls(sim) == []
        peak = peak_live_calls(sim)
        times = dial_times(sim)
        per_number = calls_per_number(sim)
    rows = journal_targets(tmp_path / "big.db")
    assert len(rows) == 2000
    got = {key: outcome for key, (_, outcome, _) in rows.items()}
    assert got == expected
    assert all(state == "done" and attempts == 1 for state, _, attempts in rows.values())
    assert set(per_number.values()) == {1}
    assert len(per_number) == 2000
    assert report.dials == 2000
    assert not report.stopped
    assert report.outcomes == dict(Counter(expected.values()))
    assert peak == concurrency
    assert len(times) == 2000
    assert max_in_window(times, 1.0 - READ_JITTER / scale) <= cps + 1
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert abs(achieved - cps) <= 0.1 * cps, achieved


async def test_the_concurrency_cap_binds() -> None:
    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=1.0))

        async def hold(call: Call, target: Target) -> None:
            await anyio.sleep(0.05)  # ~5 simulated seconds on the phone

        async with make_session(sim) as session:
            c = campaign(
                session,
                [Target(number(i)) for i in range(150)],
                flow=hold,
                cps=None,
                concurrency=20,
            )
            report = await c.run()
        assert peak_live_calls(sim) == 20
        assert report.outcomes == {"completed": 150}
        assert live_calls(sim) == []


async def test_targets_from_an_async_iterable() -> None:
    async def source() -> AsyncIterator[Target]:
        for i in range(30):
            await anyio.lowlevel.checkpoint()
            yield Target(number(i), {"i": i})

    async with make_simulator() as sim, make_session(sim) as session:
        report = await campaign(session, source(), cps=None, concurrency=10).run()
        assert report.outcomes == {"completed": 30}
        assert calls_per_number(sim) == Counter({number(i): 1 for i in range(30)})


async def test_duplicate_targets_are_dialled_once() -> None:
    async with make_simulator() as sim, make_session(sim) as session:
        targets = [Target(number(i % 5)) for i in range(10)]
        c = campaign(session, targets, cps=None)
        report = await c.run()
        assert report.outcomes == {"completed": 5}
        assert c.stats().duplicates == 5
        assert set(calls_per_number(sim).values()) == {1}


# ------------------------------------------------------------------------ stop, resume


async def _wait_for(predicate: Any, timeout: float = T) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


async def test_sigint_stops_dialing_then_resume_dials_the_rest(tmp_path: Path) -> None:
    journal = tmp_path / "sigint.db"
    targets = [Target(number(i), {"i": i}) for i in range(300)]

    async def talk(call: Call, target: Target) -> int:
        play = await call.play(silence(2.0))
        await play.finished(timeout=T)
        return int(target.data["i"])

    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.5))
        async with make_session(sim) as session:
            first = campaign(
                session,
                targets,
                flow=talk,
                cps=100,
                concurrency=20,
                journal=journal,
                handle_signals=True,
            )
            async with anyio.create_task_group() as tg:
                result: list[Any] = []

                async def run() -> None:
                    result.append(await first.run())

                tg.start_soon(run)
                await _wait_for(lambda: first.stats().done >= 40)
                os.kill(os.getpid(), signal.SIGINT)
            report = result[0]
            assert report.stopped
            # the live calls were let finish: nothing was hung up, nothing is live
            assert live_calls(sim) == []
            assert "canceled" not in report.outcomes
            done_first = report.outcomes.get("completed", 0)
            assert 40 <= done_first < 300
            dialled_first = calls_per_number(sim)
            assert sum(dialled_first.values()) == done_first

            second = campaign(session, targets, flow=talk, cps=100, concurrency=20, journal=journal)
            report2 = await second.run()
        assert not report2.stopped
        assert report2.outcomes == {"completed": 300}
        assert report2.dials == 300 - done_first
        assert second.stats().skipped == done_first
        per_number = calls_per_number(sim)
        assert per_number == Counter({t.number: 1 for t in targets})
        assert live_calls(sim) == []
    rows = journal_targets(journal)
    assert {r[1] for r in rows.values()} == {"completed"}
    assert len(rows) == 300


async def test_second_stop_hangs_up_live_calls(tmp_path: Path) -> None:
    async def forever(call: Call, target: Target) -> None:
        await call.ended()

    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.2))
        async with make_session(sim) as session:
            c = campaign(
                session,
                [Target(number(i)) for i in range(50)],
                flow=forever,
                cps=None,
                concurrency=10,
                journal=tmp_path / "hard.db",
                drain_timeout=10_000,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(c.run)
                await _wait_for(lambda: sum(1 for x in sim.calls.values() if x.answered_mono) >= 10)
                c.stop()
                await anyio.sleep(0.05)
                assert c.stats().live == 10  # still talking: the drain waits
                c.stop(hang_up=True)
        assert live_calls(sim) == []
        ended = [x for x in sim.commands if x.command == "calling.end"]
        assert len(ended) == 10
    report = read_report(tmp_path / "hard.db")
    assert report.outcomes == {"canceled": 10}


async def test_the_drain_deadline_hangs_up(tmp_path: Path) -> None:
    async def forever(call: Call, target: Target) -> None:
        await call.ended()

    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.2))
        async with make_session(sim) as session:
            c = campaign(
                session,
                [Target(number(i)) for i in range(20)],
                flow=forever,
                cps=None,
                concurrency=5,
                drain_timeout=5.0,  # simulated: 50 ms
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(c.run)
                await _wait_for(lambda: sum(1 for x in sim.calls.values() if x.answered_mono) >= 5)
                c.stop()
            assert c.stats().outcomes == {"canceled": 5}
        assert live_calls(sim) == []


async def test_cancelling_run_leaves_no_call_live(tmp_path: Path) -> None:
    async def forever(call: Call, target: Target) -> None:
        await call.ended()

    journal = tmp_path / "cancel.db"
    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.2))
        async with make_session(sim) as session:
            c = campaign(
                session,
                [Target(number(i)) for i in range(40)],
                flow=forever,
                cps=None,
                concurrency=8,
                journal=journal,
            )
            with anyio.move_on_after(T) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(c.run)
                    await _wait_for(lambda: len(sim.calls) >= 8)
                    tg.cancel_scope.cancel()
            assert not scope.cancelled_caught
            assert live_calls(sim) == []
        rows = journal_targets(journal)
        assert len(rows) == 8
        assert {o for _, o, _ in rows.values()} == {"canceled"}
        # resuming later dials only the targets never reached
        async with make_session(sim) as session:
            report = await campaign(
                session, [Target(number(i)) for i in range(40)], cps=None, journal=journal
            ).run()
        assert report.outcomes == {"canceled": 8, "completed": 32}
        assert set(calls_per_number(sim).values()) == {1}


async def test_a_crash_mid_dial_is_unknown_unless_redial_asked(tmp_path: Path) -> None:
    journal = tmp_path / "crash.db"
    targets = [Target(number(i)) for i in range(6)]
    # a journal as a crash leaves it: target 0 done, target 1 mid-dial
    from signalwire_calls._journal import Journal

    j = Journal(journal)
    j.open()
    j.db.execute(
        "INSERT INTO targets (id, key, number, state, outcome, attempts, updated_at) "
        "VALUES (1, ?, ?, 'done', 'completed', 1, 0)",
        (number(0), number(0)),
    )
    j.db.execute(
        "INSERT INTO targets (id, key, number, state, attempts, updated_at) "
        "VALUES (2, ?, ?, 'active', 0, 0)",
        (number(1), number(1)),
    )
    j.db.execute(
        "INSERT INTO attempts (target_id, n, status, started_at) VALUES (2, 1, 'dialing', 0)"
    )
    j.close()
    async with make_simulator() as sim, make_session(sim) as session:
        report = await campaign(session, targets, cps=None, journal=journal).run()
        assert report.outcomes == {"completed": 5, "unknown": 1}
        assert number(0) not in calls_per_number(sim)
        assert number(1) not in calls_per_number(sim)
        report = await campaign(
            session, targets, cps=None, journal=journal, redial_unknown=True
        ).run()
        assert report.outcomes == {"completed": 6}
        assert calls_per_number(sim)[number(1)] == 1
        assert number(0) not in calls_per_number(sim)


# ------------------------------------------------------------------------ faults


async def test_429_storm_and_faults_lose_nothing_and_dial_nothing_twice(tmp_path: Path) -> None:
    journal = tmp_path / "storm.db"
    n = 200
    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.5))
        sim.faults.retry_after = 0.5
        sim.faults.fail_command(429, command="dial", nth=20, count=40)  # a storm
        sim.faults.fail_command(503, command="dial", nth=90, count=6)
        sim.faults.reset_command(command="dial", nth=120, count=2)  # before processing
        sim.faults.reset_command(command="dial", nth=140, after_processing=True)
        sim.faults.fail_command(500, command="dial", nth=160, count=2)
        async with make_session(sim, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)) as s:
            c = campaign(
                s, [Target(number(i)) for i in range(n)], cps=50, concurrency=20, journal=journal
            )
            report = await c.run()
            stats = c.stats()
        # the one call whose dial answer was lost after the simulator placed it is the
        # only one left: the campaign never learned its id (outcome "unknown")
        orphans = live_calls(sim)
        assert len(orphans) == 1
        sim.hangup(orphans[0])
        per_number = calls_per_number(sim)
        sim_dials = [x for x in sim.commands if x.command == "dial"]
    # no target dialled twice: the simulator created at most one call per number
    assert max(per_number.values()) == 1
    rows = journal_targets(journal)
    assert len(rows) == n
    assert all(state == "done" for state, _, _ in rows.values())
    # the five dials that may have been carried out (2 resets, 1 reset after processing,
    # 2 answered 500) end as "unknown"; nothing refused before placing a call does
    unknown = {k for k, (_, o, _) in rows.items() if o == "unknown"}
    assert len(unknown) == 5
    assert report.outcomes == {"completed": n - 5, "unknown": 5}
    # the reset after processing did place its call: it is the only unknown with one
    assert sum(1 for k in unknown if per_number.get(k)) == 1
    # every refused dial was dialled again later, the others once
    assert stats.refused >= 1
    assert stats.dials == n + stats.refused
    assert stats.throttles >= 1
    refused = [x for x in sim_dials if x.status in (429, 503)]
    assert len(refused) == 46


async def test_a_429_lowers_the_rate_then_it_recovers() -> None:
    async with make_simulator() as sim:
        sim.faults.retry_after = 2.0
        sim.faults.fail_command(429, command="dial", nth=10, count=1)
        async with make_session(sim, retry=RetryPolicy(max_attempts=1)) as session:
            c = campaign(session, [Target(number(i)) for i in range(120)], cps=20)
            limits: list[float | None] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(c.run)
                while c.stats().done < 120:
                    limits.append(c.stats().cps_limit)
                    await anyio.sleep(0.002)
        assert min(x for x in limits if x is not None) == 10.0  # halved once
        assert limits[-1] == 20  # and back
        times = dial_times(sim)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) >= 2.0  # the pause honoured Retry-After (simulated seconds)
        assert c.stats().outcomes == {"completed": 120}


async def test_a_failing_flow_is_recorded_and_the_campaign_goes_on() -> None:
    async def flaky(call: Call, target: Target) -> str:
        if target.data.get("boom"):
            raise RuntimeError(f"no luck with {target.number}")
        return "ok"

    targets = [Target(number(i), {"boom": i % 4 == 0}) for i in range(20)]
    async with make_simulator() as sim, make_session(sim) as session:
        c = campaign(session, targets, flow=flaky, cps=None, journal=None)
        report = await c.run()
        assert report.outcomes == {"completed": 15, "flow_error": 5}
        assert live_calls(sim) == []
        # each failing call was hung up by the campaign (calling.end), after answer
        ended_ids = {x.call_id for x in sim.commands if x.command == "calling.end"}
        failing = {x.id for x in sim.calls.values() if x.to in {number(i) for i in range(0, 20, 4)}}
        assert failing <= ended_ids


async def test_flow_error_and_results_are_in_the_export(tmp_path: Path) -> None:
    import io
    import json

    from signalwire_calls.campaign import export_report

    async def flaky(call: Call, target: Target) -> dict[str, Any]:
        if target.number == number(1):
            raise ValueError("bad input")
        return {"said": "hello", "n": target.number}

    async with make_simulator() as sim, make_session(sim) as session:
        await campaign(
            session,
            [Target(number(i)) for i in range(3)],
            flow=flaky,
            cps=None,
            journal=tmp_path / "x.db",
        ).run()
    out = io.StringIO()
    assert export_report(tmp_path / "x.db", out, format="json") == 3
    data = json.loads(out.getvalue())
    by_key = {t["key"]: t for t in data["targets"]}
    assert by_key[number(0)]["result"] == {"said": "hello", "n": number(0)}
    assert by_key[number(1)]["outcome"] == "flow_error"
    assert by_key[number(1)]["error"] == "ValueError: bad input"
    assert data["summary"]["outcomes"] == {"completed": 2, "flow_error": 1}


async def test_authentication_failure_stops_the_campaign_and_loses_nothing(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "auth.db"
    async with make_simulator() as sim:
        session = CallSession(space=sim.base_url, project=sim.project, token="wrong")
        async with session:
            c = campaign(session, [Target(number(i)) for i in range(10)], journal=journal)
            with pytest.raises(AuthenticationError):
                await c.run()
        assert sim.calls == {}
    report = read_report(journal)
    assert report.outcomes.get("pending", 0) >= 1
    assert all(o in ("pending", None) for _, o, _ in journal_targets(journal).values())


# ------------------------------------------------------------------------ retries, AMD


async def test_busy_and_no_answer_are_retried_by_their_rules(tmp_path: Path) -> None:
    journal = tmp_path / "retry.db"
    async with make_simulator() as sim:
        sim.script(number(0), Callee.busy(after=0.5))
        sim.script(number(1), Callee.no_answer(after=1.0))
        sim.script(number(2), Callee.answers(after=0.5))
        async with make_session(sim) as session:
            c = campaign(
                session,
                [Target(number(i)) for i in range(3)],
                cps=None,
                journal=journal,
                retry={
                    "busy": RetryRule(times=2, after=5.0),
                    "no_answer": RetryRule(times=1, after=3),
                },
            )
            report = await c.run()
        per_number = calls_per_number(sim)
        first_dial: dict[str, float] = {}
        gaps: dict[str, list[float]] = {}
        for call in sorted(sim.calls.values(), key=lambda x: x.created_mono):
            prev = first_dial.get(call.to)
            if prev is not None:
                gaps.setdefault(call.to, []).append((call.created_mono - prev) / sim.time_scale)
            first_dial[call.to] = call.ended_mono or call.created_mono
    assert per_number == Counter({number(0): 3, number(1): 2, number(2): 1})
    assert report.outcomes == {"busy": 1, "no_answer": 1, "completed": 1}
    assert all(g >= 5.0 for g in gaps[number(0)])
    assert len(gaps[number(0)]) == 2
    assert gaps[number(1)][0] >= 3.0
    rows = journal_targets(journal)
    assert rows[number(0)] == ("done", "busy", 3)
    assert rows[number(1)] == ("done", "no_answer", 2)
    assert read_report(journal).attempts == {"busy": 3, "no_answer": 2, "completed": 1}


async def test_machine_detection_policies() -> None:
    async def voicemail(call: Call, target: Target) -> str:
        play = await call.play(tts("please call us back"))
        await play.finished(timeout=T)
        return "message left"

    async with make_simulator() as sim:
        sim.script(number(0), Callee.voicemail(greeting=2.0, beep=True))
        sim.script(number(1), Callee.answers(after=0.5))
        async with make_session(sim) as session:
            for policy, machine_outcome in (
                ("hangup", "machine"),
                ("voicemail", "machine"),
                ("flow", "completed"),
            ):
                detection = MachineDetection(
                    on_machine=policy,  # type: ignore[arg-type]
                    voicemail=voicemail if policy == "voicemail" else None,
                )
                c = campaign(
                    session,
                    [Target(number(0), id=f"vm-{policy}"), Target(number(1), id=f"h-{policy}")],
                    cps=None,
                    machine_detection=detection,
                )
                report = await c.run()
                expected = Counter([machine_outcome, "completed"])
                assert report.outcomes == dict(expected), policy
        plays = [x for x in sim.commands if x.command == "calling.play"]
        detects = [x for x in sim.commands if x.command == "calling.detect"]
        assert len(detects) == 6
        # the human got the flow 3 times, the machine the voicemail once and the flow once
        assert len(plays) == 5
        assert live_calls(sim) == []


async def test_a_platform_refusing_every_dial_stops_the_campaign(tmp_path: Path) -> None:
    journal = tmp_path / "refused.db"
    async with make_simulator() as sim:
        sim.faults.retry_after = 0.5
        sim.faults.fail_command(429, command="dial", count=10**6)
        async with make_session(sim, retry=RetryPolicy(max_attempts=1)) as session:
            c = campaign(session, [Target(number(i)) for i in range(5)], cps=10, journal=journal)
            c._give_up_after = 8.0  # simulated seconds of nothing but refusals
            with pytest.raises(TimeoutError, match="every dial refused"):
                await c.run()
            stats = c.stats()
        assert sim.calls == {}
    assert stats.refused >= 3
    assert stats.throttles >= 3
    # nothing lost: the targets tried stay pending (no attempt placed), to resume later
    rows = journal_targets(journal)
    assert rows
    assert set(rows.values()) == {("pending", None, 0)}


async def test_a_bad_number_is_an_error_and_nothing_is_dialled_for_it(tmp_path: Path) -> None:
    targets = [Target(number(0)), Target("555-0100"), Target(number(2))]
    journal = tmp_path / "bad.db"
    async with make_simulator() as sim, make_session(sim) as session:
        report = await campaign(session, targets, cps=None, journal=journal).run()
        assert report.outcomes == {"completed": 2, "error": 1}
        assert set(calls_per_number(sim)) == {number(0), number(2)}
        assert [x.command for x in sim.commands].count("dial") == 2
    with closing(sqlite3.connect(journal)) as db:
        (error,) = db.execute("SELECT error FROM targets WHERE key = '555-0100'").fetchone()
    assert error.startswith("ValidationError: to: a phone number must be E.164")
