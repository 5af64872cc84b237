"""Distributed campaigns: several workers (sessions and campaigns in this process) run one
campaign on a real ``redis-server`` of the test's own, against the simulator.

Rates and windows are in simulated seconds, as in ``test_campaign``.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import pytest
from redis.asyncio import Redis

from signalwire_calls import Call, CallSession, ConfigurationError, RetryPolicy, ValidationError
from signalwire_calls._campaign_redis import Claim
from signalwire_calls.campaign import (
    Campaign,
    CampaignReport,
    RedisBackend,
    RetryRule,
    Target,
)
from signalwire_calls.testing import Callee, Simulator

from .redis_server import RedisServer, _free_port
from .test_campaign import (
    CALLER,
    READ_JITTER,
    SWML,
    T,
    calls_per_number,
    dial_times,
    live_calls,
    make_session,
    make_simulator,
    max_in_window,
    number,
)


def worker(
    session: CallSession, targets: list[Target], backend: RedisBackend, **options: Any
) -> Campaign:
    options.setdefault("from_", CALLER)
    options.setdefault("swml", SWML)
    options.setdefault("progress", "off")
    options.setdefault("handle_signals", False)
    flow = options.pop("flow", None)
    return Campaign(session, targets, flow, backend=backend, **options)


@asynccontextmanager
async def sessions(sim: Simulator, n: int, **options: Any) -> AsyncIterator[list[CallSession]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(make_session(sim, **options)) for _ in range(n)]


async def run_all(campaigns: list[Campaign]) -> list[CampaignReport]:
    reports: list[CampaignReport | None] = [None] * len(campaigns)

    async def one(i: int) -> None:
        reports[i] = await campaigns[i].run()

    async with anyio.create_task_group() as tg:
        for i in range(len(campaigns)):
            tg.start_soon(one, i)
    assert all(r is not None for r in reports)
    return [r for r in reports if r is not None]


async def redis_state(server: RedisServer, name: str) -> dict[str, dict[str, Any]]:
    """key -> the target's state as the scripts keep it."""
    async with Redis.from_url(server.url, decode_responses=True) as client:
        raw: dict[Any, Any] = await client.hgetall(f"swc:{{{name}}}:state")
    return {k: json.loads(v) for k, v in raw.items()}


# ------------------------------------------------------------------------ scale, pacing


@pytest.mark.timeout(60)
async def test_2000_targets_over_3_workers_each_once_under_one_cps_limit(
    redis_server: RedisServer,
) -> None:
    # 25 dials per simulated second at time scale 0.2: 125 real dials per second for
    # the three workers together, 16 s. Each worker alone could go faster.
    scale, cps = 0.2, 25
    targets = [Target(number(i), {"i": i}) for i in range(2000)]
    async with make_simulator(time_scale=scale) as sim:
        sim.script("*", Callee.busy(after=0.5))
        async with sessions(sim, 3) as (s1, s2, s3):
            campaigns = [
                worker(
                    s,
                    targets,
                    RedisBackend(redis_server.url, "big"),
                    cps=cps,
                    concurrency=40,
                    time_scale=scale,
                )
                for s in (s1, s2, s3)
            ]
            reports = await run_all(campaigns)
        times = dial_times(sim)
        per_number = calls_per_number(sim)
        assert live_calls(sim) == []
    # every target dialled exactly once, by one of the workers
    assert len(per_number) == 2000
    assert set(per_number.values()) == {1}
    shares = [r.dials or 0 for r in reports]
    assert sum(shares) == 2000
    assert all(share > 300 for share in shares), shares
    # each worker's report is the whole campaign's
    for r in reports:
        assert r.targets == 2000
        assert r.outcomes == {"busy": 2000}
        assert r.attempts == {"busy": 2000}
    stats = campaigns[0].stats()
    assert (stats.done, stats.total, stats.dials) == (2000, 2000, 2000)
    # the one limit, seen from the simulator: windows of one simulated second, shortened
    # by the simulator's read lag (READ_JITTER real seconds, as in test_campaign)
    assert len(times) == 2000
    assert max_in_window(times, 1.0 - READ_JITTER / scale) <= cps + 1
    # and it is what binds (each worker alone could go as fast as all three): three
    # workers and the simulator share this process's event loop on a loaded machine,
    # whose stalls cost some slots (nothing is made up after a stall)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert 0.8 * cps <= achieved <= cps + 1, achieved


async def test_a_429_seen_by_one_worker_pauses_and_slows_every_worker(
    redis_server: RedisServer,
) -> None:
    scale, cps = 0.05, 20
    async with make_simulator(time_scale=scale) as sim:
        sim.script("*", Callee.busy(after=0.2))
        sim.faults.retry_after = 2.0
        sim.faults.fail_command(429, command="dial", nth=30, count=1)
        targets = [Target(number(i)) for i in range(120)]
        async with sessions(sim, 2, retry=RetryPolicy(max_attempts=1)) as (s1, s2):
            campaigns = [
                worker(
                    s, targets, RedisBackend(redis_server.url, "aimd"), cps=cps, time_scale=scale
                )
                for s in (s1, s2)
            ]
            reports = await run_all(campaigns)
        times = dial_times(sim)
        per_number = calls_per_number(sim)
    assert set(per_number.values()) == {1}
    assert len(per_number) == 120
    assert reports[0].outcomes == {"busy": 120}
    # one worker was refused; both stopped dialing for the pause (simulated seconds)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    pause_at = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[pause_at] >= 2.0 - READ_JITTER / scale
    # then both dialed at the halved rate, growing back by 2 a second: in the first
    # second after the pause at most 10 + 2 + 1, not 20
    after = times[pause_at + 1]
    assert sum(1 for t in times if after <= t < after + 1.0 - READ_JITTER / scale) <= 13
    assert [c.stats().throttles for c in campaigns] == [1, 1]
    assert [r.attempts.get("not_sent") for r in reports] == [1, 1]


async def test_retries_wait_in_redis_and_any_worker_dials_them(redis_server: RedisServer) -> None:
    async with make_simulator() as sim:
        sim.script("*", Callee.busy(after=0.5))
        targets = [Target(number(i)) for i in range(20)]
        async with sessions(sim, 2) as ss:
            campaigns = [
                worker(
                    s,
                    targets,
                    RedisBackend(redis_server.url, "retry"),
                    cps=None,
                    retry={"busy": RetryRule(2, after=1.0)},
                    time_scale=0.05,
                )
                for s in ss
            ]
            reports = await run_all(campaigns)
        per_number = calls_per_number(sim)
    # three attempts each (the first and two retries), never more
    assert per_number == Counter({number(i): 3 for i in range(20)})
    assert reports[0].outcomes == {"busy": 20}
    assert reports[0].attempts == {"busy": 60}
    assert sum(r.dials or 0 for r in reports) == 60
    state = await redis_state(redis_server, "retry")
    assert {(t["st"], t["at"], t["n"]) for t in state.values()} == {("done", 3, 3)}


# ------------------------------------------------------------------------ Redis outages


async def _wait_done(campaign: Campaign, count: int) -> None:
    with anyio.fail_after(T):
        while campaign.stats().done < count:
            await anyio.sleep(0.01)


async def test_redis_restarted_mid_campaign_nothing_lost_nothing_twice(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    scale = 0.05
    n = 300

    async def talk(call: Call, target: Target) -> str:
        await anyio.sleep(0.2)
        return "ok"

    async with make_simulator(time_scale=scale) as sim:
        sim.script("*", Callee.answers(after=0.5))
        targets = [Target(number(i)) for i in range(n)]
        async with sessions(sim, 3) as ss:
            campaigns = [
                worker(
                    s,
                    targets,
                    RedisBackend(redis_server.url, "outage", claim_idle=5),
                    flow=talk,
                    cps=100,
                    concurrency=10,
                    time_scale=scale,
                )
                for s in ss
            ]
            async with anyio.create_task_group() as tg:
                for c in campaigns:
                    tg.start_soon(c.run)
                await _wait_done(campaigns[0], 60)
                # Redis keeps its data across this restart (saved on shutdown)
                async with Redis.from_url(redis_server.url) as client:
                    await client.config_set("save", "3600 1")
                await anyio.to_thread.run_sync(redis_server.stop)
                down_at = time.monotonic()
                live_when_down = len(live_calls(sim))
                await anyio.sleep(0.6)
                up_at = time.monotonic()
                await anyio.to_thread.run_sync(redis_server.start)
            reports = [c.stats() for c in campaigns]
        per_number = calls_per_number(sim)
        assert live_calls(sim) == []
    # dialing paused: after the dials already on their way when Redis went (their HTTP
    # request read by the simulator within READ_JITTER), no dial until it was back;
    # the calls up then went on (and their outcomes were saved once it was back)
    assert not [t for t in sim.dial_times if down_at + READ_JITTER < t < up_at]
    assert live_when_down > 0
    # each worker said so once when it lasted, and once when Redis was back
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m and "dialing paused" in m for m in messages) == 3
    assert sum("is back after" in m and "dialing resumes" in m for m in messages) == 3
    assert len(per_number) == n
    assert set(per_number.values()) == {1}
    for stats in reports:
        assert stats.outcomes == {"completed": n}
    state = await redis_state(redis_server, "outage")
    assert {t["o"] for t in state.values()} == {"completed"}


async def test_redis_back_without_its_data_stops_the_workers(redis_server: RedisServer) -> None:
    scale = 0.05
    async with make_simulator(time_scale=scale) as sim:
        sim.script("*", Callee.answers(after=0.5))
        targets = [Target(number(i)) for i in range(200)]

        async def talk(call: Call, target: Target) -> None:
            await anyio.sleep(0.05)

        async with sessions(sim, 2) as ss:
            campaigns = [
                worker(
                    s,
                    targets,
                    RedisBackend(redis_server.url, "amnesia"),
                    flow=talk,
                    cps=100,
                    concurrency=10,
                    time_scale=scale,
                )
                for s in ss
            ]
            errors: list[BaseException] = []

            async def run(c: Campaign) -> None:
                try:
                    await c.run()
                except OSError as exc:
                    errors.append(exc)

            with anyio.fail_after(T):
                async with anyio.create_task_group() as tg:
                    for c in campaigns:
                        tg.start_soon(run, c)
                    await _wait_done(campaigns[0], 30)
                    await anyio.to_thread.run_sync(redis_server.restart)  # empty again
        per_number = calls_per_number(sim)
        for call_id in live_calls(sim):
            sim.hangup(call_id)
    assert len(errors) == 2
    assert all(
        "is gone from" in str(e) and "nothing is dialled a second time" in str(e) for e in errors
    )
    assert max(per_number.values()) == 1
    assert len(per_number) < 200


# ------------------------------------------------------------------------ taking over


async def _worker(server: RedisServer, name: str, **options: Any) -> Any:
    backend = RedisBackend(server.url, name, **options)
    return await backend._start(cps=None, time_scale=1.0, give_up_after=5.0)


async def test_the_reclaim_rule_a_mid_dial_target_is_unknown_the_others_are_dialled(
    redis_server: RedisServer,
) -> None:
    a = await _worker(redis_server, "rule", claim_idle=0.2)
    b = await _worker(redis_server, "rule", claim_idle=0.2)
    try:
        await a.seed([Target(number(i)) for i in range(4)], lambda t: t)
        held = [await a.claim() for _ in range(3)]
        assert all(isinstance(c, Claim) for c in held)
        c0, c1, c2 = (c for c in held if isinstance(c, Claim))
        assert await a.begin(c0.handle, 1)  # c0: dialing when A goes silent
        assert await a.begin(c1.handle, 1)  # c1: refused, not dialled, kept by A
        a.journal.finish(
            c1.handle, 1, "not_sent", state="pending", outcome=None, attempts=0, now=time.time()
        )
        await a.journal.flush()
        # A stops answering (no heartbeat); B takes over after claim_idle
        await anyio.sleep(0.3)
        assert await b.reclaim() == 1
        taken = [await b.claim() for _ in range(3)]
        keys = {c.key for c in taken if isinstance(c, Claim)}
        assert keys == {c1.key, c2.key, number(3)}
        state = await redis_state(redis_server, "rule")
        assert (state[c0.key]["st"], state[c0.key]["o"]) == ("done", "unknown")
        assert "stopped answering while dialing" in state[c0.key]["err"]
        # A comes back: it may not dial what B has now ...
        assert not await a.begin(c2.handle, 1)
        # ... and its late outcome for the call it did place replaces "unknown"
        a.journal.finish(
            c0.handle,
            1,
            "completed",
            state="done",
            outcome="completed",
            attempts=1,
            now=time.time(),
            call_id="call-0",
            result='"ok"',
        )
        await a.journal.flush()
        snap = await b.refresh()
        assert snap.outcomes == {"completed": 1}
        assert snap.attempts == {"completed": 1, "not_sent": 1}
        assert snap.counts == {"completed": 1, "pending": 3}
    finally:
        await a.close()
        await b.close()
    # leaving hands back what B held but never dialled
    c = await _worker(redis_server, "rule", claim_idle=0.2)
    try:
        got = [await c.claim() for _ in range(4)]
        assert {g.key for g in got if isinstance(g, Claim)} == {c1.key, c2.key, number(3)}
    finally:
        await c.close()


async def test_a_live_worker_keeps_its_long_calls(redis_server: RedisServer) -> None:
    # calls last four times claim_idle: the workers' heartbeats keep them theirs
    async def hold(call: Call, target: Target) -> str:
        await anyio.sleep(1.2)
        return "held"

    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.5))
        targets = [Target(number(i)) for i in range(12)]
        async with sessions(sim, 2) as ss:
            campaigns = [
                worker(
                    s,
                    targets,
                    RedisBackend(redis_server.url, "long", claim_idle=0.3),
                    flow=hold,
                    cps=None,
                    concurrency=6,
                )
                for s in ss
            ]
            reports = await run_all(campaigns)
        assert Counter(calls_per_number(sim).values()) == Counter({1: 12})
    assert reports[0].outcomes == {"completed": 12}
    assert sorted(r.dials or 0 for r in reports) == [6, 6]


async def test_a_stopped_worker_hands_its_targets_to_the_others(
    redis_server: RedisServer,
) -> None:
    async def talk(call: Call, target: Target) -> None:
        await anyio.sleep(0.02)

    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.5))
        targets = [Target(number(i)) for i in range(300)]
        async with sessions(sim, 2) as (s1, s2):
            first = worker(
                s1,
                targets,
                RedisBackend(redis_server.url, "handover"),
                flow=talk,
                cps=200,
                concurrency=5,
            )
            second = worker(
                s2,
                targets,
                RedisBackend(redis_server.url, "handover"),
                flow=talk,
                cps=200,
                concurrency=5,
            )
            reports: list[CampaignReport] = []

            async def run(c: Campaign) -> None:
                reports.append(await c.run())

            async with anyio.create_task_group() as tg:
                tg.start_soon(run, first)
                tg.start_soon(run, second)
                await _wait_done(second, 60)
                first.stop()  # this worker only: what it holds goes to the other
        per_number = calls_per_number(sim)
    stopped, finished = reports
    assert stopped.stopped
    assert not finished.stopped
    assert stopped.dials
    assert finished.dials
    assert stopped.dials + finished.dials == 300
    assert len(per_number) == 300
    assert set(per_number.values()) == {1}
    assert finished.outcomes == {"completed": 300}


# ------------------------------------------------------------------------ set-up errors


async def test_unreachable_redis_is_named_without_its_password() -> None:
    url = f"redis://admin:s3cret-pw@127.0.0.1:{_free_port()}/0"
    backend = RedisBackend(url, "nowhere", connect_timeout=1)
    assert "s3cret" not in repr(backend)
    async with make_simulator() as sim, make_session(sim) as session:
        c = worker(session, [Target(number(0))], backend)
        with pytest.raises(OSError, match="cannot reach") as caught:
            await c.run()
        assert list(sim.commands) == []
    message = str(caught.value)
    assert f"redis://admin:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "s3cret" not in message


def test_passwords_are_hidden_wherever_the_url_holds_them() -> None:
    from signalwire_calls._campaign_redis import redact

    assert redact("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact("redis://:pw@h/0") == "redis://:***@h/0"
    assert redact("rediss://u:p:w@[::1]:6380/2") == "rediss://u:***@[::1]:6380/2"
    assert redact("redis://h:1/0?password=pw&db=2") == "redis://h:1/0?password=***&db=2"
    assert redact("redis://h:1/0") == "redis://h:1/0"
    assert redact("unix:///run/redis.sock?password=pw") == "unix:///run/redis.sock?password=***"
    assert "pw" not in repr(RedisBackend("redis://u:pw@h:1/0?password=pw", "x"))


async def test_workers_must_agree_on_the_limit(redis_server: RedisServer) -> None:
    a = await _worker(redis_server, "agree")
    try:
        with pytest.raises(ConfigurationError, match=r"cps: campaign 'agree' runs at no limit"):
            await RedisBackend(redis_server.url, "agree")._start(
                cps=5.0, time_scale=1.0, give_up_after=5.0
            )
        with pytest.raises(ConfigurationError, match="time_scale"):
            await RedisBackend(redis_server.url, "agree")._start(
                cps=None, time_scale=0.5, give_up_after=5.0
            )
    finally:
        await a.close()


def test_bad_settings_are_refused_naming_the_field(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="name"):
        RedisBackend("redis://127.0.0.1:1/0", "has space")
    with pytest.raises(ValidationError, match="name"):
        RedisBackend("redis://127.0.0.1:1/0", "{slot}")
    with pytest.raises(ConfigurationError, match="redis: expected a redis://"):
        RedisBackend("http://user:pw@host/", "x")
    with pytest.raises(ConfigurationError, match="claim_idle"):
        RedisBackend("redis://127.0.0.1:1/0", "x", claim_idle=0)
    backend = RedisBackend("redis://127.0.0.1:1/0", "x")
    session = CallSession(space="http://127.0.0.1:1", project="p", token="t")
    with pytest.raises(ConfigurationError, match="journal"):
        Campaign(session, [], from_=CALLER, swml=SWML, backend=backend, journal=tmp_path / "j.db")
    with pytest.raises(ConfigurationError, match="redial_unknown"):
        Campaign(session, [], from_=CALLER, swml=SWML, backend=backend, redial_unknown=True)


# ------------------------------------------------------------------------ reading


async def test_report_and_export_of_the_whole_campaign(redis_server: RedisServer) -> None:
    async def greet(call: Call, target: Target) -> dict[str, Any]:
        return {"greeted": target.data["name"]}

    targets = [Target(number(i), {"name": f"n{i}"}) for i in range(30)]
    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.5))
        sim.script(number(7), Callee.busy())
        async with sessions(sim, 2) as ss:
            await run_all(
                [
                    worker(
                        s, targets, RedisBackend(redis_server.url, "export"), flow=greet, cps=None
                    )
                    for s in ss
                ]
            )
    backend = RedisBackend(redis_server.url, "export")
    report = await backend.report()
    assert report.targets == 30
    assert report.outcomes == {"completed": 29, "busy": 1}
    assert report.journal == f"{redis_server.url}#export"
    stats = await backend.stats()
    assert (stats.done, stats.total, stats.dials, stats.live) == (30, 30, 30, 0)
    assert stats.outcomes == {"completed": 29, "busy": 1}
    assert stats.elapsed > 0
    out = io.StringIO()
    assert await backend.export(out, format="json") == 30
    data = json.loads(out.getvalue())
    assert [t["key"] for t in data["targets"]] == [number(i) for i in range(30)]
    row = data["targets"][3]
    assert row["outcome"] == "completed"
    assert row["result"] == {"greeted": "n3"}
    assert row["data"] == {"name": "n3"}
    assert row["call_id"]
    assert data["targets"][7]["outcome"] == "busy"
    assert data["summary"]["outcomes"] == {"completed": 29, "busy": 1}
    out = io.StringIO()
    await backend.export(out, format="csv")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(",name")
    assert len(lines) == 31
    assert await backend.delete() == 7  # every key but the (empty) retry set
    with pytest.raises(OSError, match="no campaign 'export'"):
        await backend.report()
