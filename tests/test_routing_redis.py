"""Webhook routing between processes on a real ``redis-server`` of the test's own.

Worker sessions (each with its own ``RedisBus``, so its own connections and owner id)
put a round-robin front (``RoundRobinFront``, standing for the load balancer) in their
``status_url``; the front spreads the simulator's webhooks over stateless receivers,
which forward each one through Redis to the session that owns it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from signalwire_calls import (
    CallEndedError,
    CallSession,
    CollectResult,
    ConfigurationError,
    Digits,
    PlayResult,
    Receiver,
    ReceiverSettings,
    RedisBus,
    RetryPolicy,
    tts,
)
from signalwire_calls._signing import sign
from signalwire_calls.metrics import SessionMetrics
from signalwire_calls.testing import Callee, RoundRobinFront, Simulator

from .redis_server import RedisServer, _free_port

SCALE = 0.02
T = 20.0  # a bound on every wait (real seconds); nothing here takes that long
HUMAN = "+15551230001"
CALLER = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


def make_simulator(**options: Any) -> Simulator:
    options.setdefault("time_scale", SCALE)
    options.setdefault("webhook_backoff", 0.02)
    options.setdefault("cps", None)
    sim = Simulator(**options)
    sim.script("*", Callee.answers(after=1.0, digits="1", input_delay=0.5))
    return sim


def worker_session(sim: Simulator, public_url: str, bus: RedisBus, **options: Any) -> CallSession:
    """A worker: no receiver of its own; its webhooks come through the front and Redis."""
    options.setdefault("call_end_grace", 0.1)
    options.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_cap=0.05))
    options.setdefault("serve_receiver", False)
    return CallSession(
        space=sim.base_url,
        project=sim.project,
        token=sim.token,
        signing_key=sim.signing_key,
        public_url=public_url,
        bus=bus,
        **options,
    )


@dataclass
class Cluster:
    front: RoundRobinFront
    receivers: list[Receiver]
    receiver_buses: list[RedisBus]
    workers: list[CallSession]
    buses: list[RedisBus] = field(default_factory=list)


@asynccontextmanager
async def cluster(
    redis_url: str, sim: Simulator, *, workers: int = 3, receivers: int = 2
) -> AsyncIterator[Cluster]:
    """``receivers`` stateless receivers behind a front, ``workers`` worker sessions."""
    async with AsyncExitStack() as stack:
        front = await stack.enter_async_context(RoundRobinFront([]))
        settings = ReceiverSettings(public_url=front.url, signing_key=sim.signing_key)
        rbuses = [await stack.enter_async_context(RedisBus(redis_url)) for _ in range(receivers)]
        recs = [await stack.enter_async_context(b.receiver(settings)) for b in rbuses]
        front.targets = [r.url.removesuffix(settings.path) for r in recs]
        buses = [RedisBus(redis_url, liveness_ttl=3.0) for _ in range(workers)]
        sessions = [
            await stack.enter_async_context(worker_session(sim, front.url, b)) for b in buses
        ]
        yield Cluster(front, recs, rbuses, sessions, buses)


async def call_flow(session: CallSession) -> tuple[PlayResult, CollectResult, str | None]:
    """Dial, play, collect, hang up: every step waits for webhooks routed to ``session``."""
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    play = await call.play(tts("press one"))
    played = await play.finished(timeout=T)
    menu = await call.collect(digits=Digits(max=1))
    got = await menu.finished(timeout=T)
    await call.end()
    reason = await call.ended(timeout=T)
    return played, got, reason


async def run_flows(sessions: Sequence[CallSession], per_session: int) -> list[Any]:
    results: list[Any] = []

    async def one(session: CallSession) -> None:
        results.append(await call_flow(session))

    with anyio.fail_after(T):
        async with anyio.create_task_group() as tg:
            for session in sessions:
                for _ in range(per_session):
                    tg.start_soon(one, session)
    return results


def assert_flow_results(results: list[Any], count: int) -> None:
    assert len(results) == count
    for played, got, _ in results:
        assert played == PlayResult(state="finished")
        assert got.kind == "digit"
        assert got.digits == "1"


def _popen(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


# ------------------------------------------------------------------------ routing


async def test_three_workers_two_receivers_every_handle_settles(
    redis_server: RedisServer,
) -> None:
    async with make_simulator() as sim, cluster(redis_server.url, sim) as c:
        results = await run_flows(c.workers, 15)
        await sim.wait_for_webhooks_idle(timeout=T)
        owners = {w.bus.owner_id for w in c.workers if w.bus is not None}
        assert len(owners) == 3
        for worker in c.workers:
            assert f"swc_owner={worker.bus.owner_id}" in worker.status_url  # type: ignore[union-attr]
            stats = worker.stats()
            assert stats.registry.expired == 0  # nothing waited in the early buffer in vain
            assert stats.registry.unmatched == 0
            assert stats.registry.live_calls == 0
            assert stats.registry.pending_operations == 0
            assert stats.bus is not None
            assert stats.bus.received > 0
        rstats = [r.stats() for r in c.receivers]
        delivered = [w for w in sim.webhooks if w.outcome == "delivered"]
        assert sum(s.forwarded for s in rstats) == len(delivered)
        assert all(s.forwarded > 0 for s in rstats)  # both receivers took their turn
        assert all(s.rejected_unavailable == 0 and s.rejected_signature == 0 for s in rstats)
        assert sum(b.stats().dead_lettered for b in c.receiver_buses) == 0
        # each worker got exactly the webhooks of its own calls
        received = [w.stats().bus for w in c.workers]
        assert sum(b.received for b in received if b is not None) == len(delivered)
        # the bus's counters reach Prometheus as they are
        scraped = _scrape(SessionMetrics(c.workers[0].stats))
        bus = c.workers[0].stats().bus
        assert bus is not None
        assert scraped["signalwire_calls_bus_received_total"] == bus.received > 0
        assert scraped["signalwire_calls_bus_connected"] == 1
        assert scraped["signalwire_calls_bus_dead_lettered_total"] == 0
    assert_flow_results(results, 45)


def _scrape(metrics: SessionMetrics) -> dict[str, float]:
    body, _ = metrics.render(None)
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if not sample.labels
    }


async def test_a_receiver_killed_mid_run_loses_nothing(redis_server: RedisServer) -> None:
    """Receivers are ``signalwire-calls receiver`` processes; one gets SIGKILL."""
    async with make_simulator() as sim, RoundRobinFront([]) as front:
        procs: list[subprocess.Popen[str]] = []
        try:
            for _ in range(2):
                args = [
                    sys.executable,
                    "-m",
                    "signalwire_calls",
                    "receiver",
                    "--redis",
                    redis_server.url,
                    "--signing-key",
                    sim.signing_key or "",
                    "--public-url",
                    front.url,
                    "--port",
                    "0",
                ]
                procs.append(await anyio.to_thread.run_sync(_popen, args))
            urls = []
            for proc in procs:
                assert proc.stdout is not None
                line = await anyio.to_thread.run_sync(proc.stdout.readline)
                assert line.startswith("signalwire receiver listening on "), line
                urls.append(line.split()[-1].removesuffix("/signalwire/events"))
            front.targets = urls
            buses = [RedisBus(redis_server.url) for _ in range(3)]
            async with AsyncExitStack() as stack:
                workers = [
                    await stack.enter_async_context(worker_session(sim, front.url, b))
                    for b in buses
                ]
                results: list[Any] = []

                async def one(session: CallSession) -> None:
                    results.append(await call_flow(session))

                with anyio.fail_after(T):
                    async with anyio.create_task_group() as tg:
                        for w in workers:
                            for _ in range(5):
                                tg.start_soon(one, w)
                        while front.forwarded < 20:
                            await anyio.sleep(0.005)
                        procs[0].send_signal(signal.SIGKILL)
                        killed_at = front.forwarded
                assert_flow_results(results, 15)
                assert front.forwarded > killed_at  # the run went on after the kill
                assert front.retried > 0  # the front took the survivor for the dead one
                for w in workers:
                    assert w.stats().registry.expired == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()
    assert procs[0].returncode == -signal.SIGKILL
    assert procs[1].returncode == 0


# ------------------------------------------------------------------------ Redis lost


async def _owners_alive(redis_url: str, buses: Sequence[RedisBus]) -> None:
    """Wait until every owner's liveness key is back in Redis."""
    async with Redis.from_url(redis_url) as client:
        with anyio.fail_after(T):
            while not all([await client.exists(f"swc:owner:{b.owner_id}") for b in buses]):
                await anyio.sleep(0.01)


async def test_redis_restarted_mid_run_reconnects_and_losses_settle(
    redis_server: RedisServer,
) -> None:
    async with make_simulator() as sim, cluster(redis_server.url, sim) as c:
        calls = []
        for worker in c.workers:
            for _ in range(2):
                call = await worker.dial(to=HUMAN, from_=CALLER, swml=SWML)
                await call.answered(timeout=T)
                calls.append(call)
        await anyio.to_thread.run_sync(redis_server.stop)
        # Redis down: commands to the calls the workers own still work; their webhooks
        # cannot be routed (503, retried by the platform, then given up)
        plays = [await call.play(tts("this will not be heard of")) for call in calls]
        with anyio.fail_after(T):
            while sum(r.stats().rejected_unavailable for r in c.receivers) < len(plays):
                await anyio.sleep(0.01)
            await sim.wait_for_webhooks_idle(timeout=T)
        for call in calls:
            await call.end()
        await sim.wait_for_webhooks_idle(timeout=T)
        await anyio.to_thread.run_sync(redis_server.start)
        # the lost events settle by the call-end rule: no handle hangs
        with anyio.fail_after(T):
            for play in plays:
                with pytest.raises(CallEndedError):
                    await play.finished()
            for call in calls:
                await call.ended()
        for worker in c.workers:
            stats = worker.stats()
            assert stats.registry.calls_ended_locally >= 2  # their `ended` was lost too
            assert stats.bus is not None
            assert stats.bus.outages >= 1
        # counted where they were lost
        assert sum(r.stats().rejected_unavailable for r in c.receivers) >= 2 * len(plays)
        assert sum(b.stats().forward_failed for b in c.receiver_buses) >= 2 * len(plays)
        # routing resumes once the owners are back
        await _owners_alive(redis_server.url, c.buses)
        results = await run_flows(c.workers, 2)
        assert_flow_results(results, 6)
        assert all(w.stats().bus.connected for w in c.workers)  # type: ignore[union-attr]


async def test_commands_and_own_webhooks_work_while_redis_is_down(
    redis_server: RedisServer,
) -> None:
    """A session with a bus and its own receiver: its webhooks come back to it, Redis or
    not, and its calls take commands."""
    async with make_simulator() as sim:
        # no front: the session's own receiver is in its status_url
        session = CallSession(
            space=sim.base_url,
            project=sim.project,
            token=sim.token,
            signing_key=sim.signing_key,
            bus=RedisBus(redis_server.url),
            call_end_grace=0.1,
        )
        async with session:
            assert "swc_owner=" in session.status_url
            await anyio.to_thread.run_sync(redis_server.stop)
            played, got, reason = await call_flow(session)
            assert played == PlayResult(state="finished")
            assert got.digits == "1"
            assert reason is not None
            assert session.stats().registry.expired == 0


async def test_events_of_a_gone_owner_are_dead_lettered_and_listed(
    redis_server: RedisServer,
) -> None:
    async with make_simulator() as sim, cluster(redis_server.url, sim, workers=1) as c:
        sim.script(HUMAN, Callee.answers(after=1.0, hangup_after=20.0))
        bus = RedisBus(redis_server.url)
        gone = worker_session(sim, c.front.url, bus)
        async with gone:
            call = await gone.dial(to=HUMAN, from_=CALLER, swml=SWML)
            await call.answered(timeout=T)
            owner = bus.owner_id
        # the owner closed (its liveness key went with it); the callee hangs up later
        with anyio.fail_after(T):
            while sum(b.stats().dead_lettered for b in c.receiver_buses) < 1:
                await anyio.sleep(0.01)
        await sim.wait_for_webhooks_idle(timeout=T)
        dead = sum(b.stats().dead_lettered for b in c.receiver_buses)
        out = await anyio.to_thread.run_sync(
            lambda: (
                subprocess.run(
                    [sys.executable, "-m", "signalwire_calls", "dlq", "--redis", redis_server.url],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                ).stdout
            )
        )
        rows = await anyio.to_thread.run_sync(
            lambda: (
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "signalwire_calls",
                        "dlq",
                        "--redis",
                        redis_server.url,
                        "--json",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                ).stdout
            )
        )
    assert out.splitlines()[0].startswith(f"{dead} webhook(s) dead-lettered in all")
    letters = [json.loads(line) for line in rows.splitlines()]
    assert len(letters) == dead
    assert {(x["owner"], x["reason"]) for x in letters} == {(owner, "owner_gone")}
    ended = [x for x in letters if x["event_type"] == "calling.call.state"]
    assert ended
    assert all(x["call_id"] == call.id for x in ended)
    assert f"owner={owner}" in out
    assert "calling.call.state" in out


# ------------------------------------------------------------------------ the receiver


async def _post(url: str, body: bytes, key: str | None, signed_url: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers.update(sign(key, signed_url or url, body))
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status


def _state_body(call_id: str) -> bytes:
    return json.dumps(
        {
            "event_type": "calling.call.state",
            "params": {"call_id": call_id, "call_state": "ended", "node_id": "n"},
        }
    ).encode()


async def test_stateless_receiver_dead_letters_no_owner_bad_owner_and_503_without_redis(
    redis_server: RedisServer,
) -> None:
    key = "k3y"
    async with (
        RedisBus(redis_server.url) as bus,
        bus.receiver(ReceiverSettings(signing_key=key)) as receiver,
    ):
        base = receiver.url
        body = _state_body("c-1")
        assert await _post(base, body, key) == 200  # no owner
        assert await _post(f"{base}?swc_owner={'x' * 80}", body, key) == 200  # bad owner
        assert await _post(f"{base}?swc_owner=nobody", body, key) == 200  # never alive
        assert await _post(f"{base}?swc_owner=nobody", body, "wrong") == 403
        assert await _post(f"{base}?swc_owner=nobody", b"{not json", key) == 400
        total, letters = await bus.dead_letters(10)
        assert total == 3
        assert [(x.reason, x.owner) for x in letters] == [
            ("no_owner", ""),
            ("bad_owner", "x" * 80),
            ("owner_gone", "nobody"),
        ]
        assert all(x.body == body for x in letters)
        await anyio.to_thread.run_sync(redis_server.stop)
        assert await _post(f"{base}?swc_owner=nobody", body, key) == 503
        stats = receiver.stats()
        assert stats.received == 6
        assert stats.accepted == 3
        assert stats.forwarded == 3
        assert stats.rejected_signature == 1
        assert stats.rejected_malformed == 1
        assert stats.rejected_unavailable == 1
        assert bus.stats().dead_lettered == 3
        assert bus.stats().forward_failed == 1


async def test_asgi_and_mounted_receivers_route_too(redis_server: RedisServer) -> None:
    from signalwire_calls import asgi_app, create_app

    async with RedisBus(redis_server.url) as bus:
        app = asgi_app(bus, ReceiverSettings(), router=bus)
        sent: list[MutableMapping[str, Any]] = []
        body = _state_body("c-2")
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/signalwire/events",
            "query_string": b"swc_owner=gone-owner",
            "headers": [],
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == 200
        assert app.stats().forwarded == 1
        total, letters = await bus.dead_letters(5)
        assert total == 1
        assert letters[0].owner == "gone-owner"
        # the aiohttp app, mounted under a prefix in a real server
        root = web.Application()
        root.add_subapp("/hooks", create_app(bus, router=bus))
        async with TestServer(root, host="127.0.0.1") as server:
            url = str(server.make_url("/hooks/signalwire/events?swc_owner=another-gone"))
            assert await _post(url, body, None) == 200
        total, letters = await bus.dead_letters(5)
        assert total == 2
        assert (letters[-1].owner, letters[-1].reason) == ("another-gone", "owner_gone")


# ------------------------------------------------------------------------ start and misuse


async def test_unreachable_redis_at_start_is_named_without_its_password() -> None:
    url = f"redis://:s3cret@127.0.0.1:{_free_port()}/0"
    async with make_simulator() as sim:
        bus = RedisBus(url, connect_timeout=1)
        session = CallSession(space=sim.base_url, project=sim.project, token=sim.token, bus=bus)
        with anyio.fail_after(T), pytest.raises(OSError, match="cannot reach") as info:
            await session.open()
    message = str(info.value)
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "s3cret" not in message
    assert "s3cret" not in repr(bus)


async def test_cancelling_open_leaves_nothing_running() -> None:
    """Redis that accepts but never answers; the open is cancelled meanwhile."""
    closed = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client closes its end
        closed.set()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, make_simulator() as sim:
        bus = RedisBus(f"redis://127.0.0.1:{port}/0", connect_timeout=10)
        session = CallSession(space=sim.base_url, project=sim.project, token=sim.token, bus=bus)
        task = asyncio.create_task(session.open())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with anyio.fail_after(5):
            await closed.wait()  # the connection to "Redis" was closed
        assert "closed" in repr(bus)
        assert not [t for t in asyncio.all_tasks() if "signalwire_calls bus" in t.get_name()]


@pytest.mark.parametrize("delay", [0.0, 0.0001, 0.0005, 0.002, 0.02])
async def test_a_session_closed_at_any_moment_of_the_inbox_read_closes(
    redis_server: RedisServer, delay: float
) -> None:
    """redis-py can swallow a cancellation that lands while a command is being sent;
    closing must not hang on it (it did: the inbox reader then read on forever)."""
    for _ in range(5):
        session = CallSession(
            space="http://127.0.0.1:1",
            project="p",
            token="t",
            serve_receiver=False,
            public_url="http://127.0.0.1:2",
            allow_unsigned_webhooks=True,
            bus=RedisBus(redis_server.url),
        )
        await session.open()
        await asyncio.sleep(delay)
        with anyio.fail_after(5):
            await session.aclose()
        assert not [t for t in asyncio.all_tasks() if "signalwire_calls bus" in t.get_name()]


async def test_a_bus_serves_one_session(redis_server: RedisServer) -> None:
    bus = RedisBus(redis_server.url)
    first = CallSession(space="http://127.0.0.1:1", project="p", token="t", bus=bus)
    with pytest.raises(ConfigurationError, match="already serves another CallSession"):
        CallSession(space="http://127.0.0.1:1", project="p", token="t", bus=bus)
    assert first.bus is bus


def test_bad_bus_options_are_named() -> None:
    with pytest.raises(ConfigurationError, match="url: expected a redis://"):
        RedisBus("http://x")
    with pytest.raises(ConfigurationError, match="owner_id"):
        RedisBus("redis://x", owner_id="a b")
    with pytest.raises(ConfigurationError, match="liveness_ttl"):
        RedisBus("redis://x", liveness_ttl=0)
    with pytest.raises(ConfigurationError, match="bus: expected a RedisBus"):
        CallSession(space="http://127.0.0.1:1", project="p", token="t", bus="redis://x")  # type: ignore[arg-type]


_DOOMED_OWNER = """
import asyncio, sys
from signalwire_calls import RedisBus

async def main() -> None:
    bus = RedisBus(sys.argv[1], owner_id="doomed", liveness_ttl=0.5)
    await bus.serve(lambda event: None)
    print("serving", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_an_owner_killed_is_gone_once_its_liveness_expires(
    redis_server: RedisServer,
) -> None:
    """A process that dies (SIGKILL: no goodbye) stops refreshing its liveness key: its
    webhooks are forwarded while the key lives, dead-lettered once it expired."""
    proc = await anyio.to_thread.run_sync(
        _popen, [sys.executable, "-c", _DOOMED_OWNER, redis_server.url]
    )
    try:
        assert proc.stdout is not None
        assert await anyio.to_thread.run_sync(proc.stdout.readline) == "serving\n"
        async with RedisBus(redis_server.url) as bus:
            body = _state_body("c-3")
            assert await bus.forward("doomed", body)
            proc.send_signal(signal.SIGKILL)
            await anyio.to_thread.run_sync(proc.wait)
            assert await bus.forward("doomed", body)  # its key outlives it a moment
            assert bus.stats().forwarded == 2
            with anyio.fail_after(T):
                while bus.stats().dead_lettered == 0:
                    assert await bus.forward("doomed", body)
                    await anyio.sleep(0.05)
            total, letters = await bus.dead_letters(1)
            assert total == bus.stats().dead_lettered
            assert (letters[0].owner, letters[0].reason) == ("doomed", "owner_gone")
            async with Redis.from_url(redis_server.url) as client:
                # the two it got before dying wait in its inbox, which expires in time
                assert await client.xlen("swc:inbox:doomed") >= 2
                assert 0 < await client.pttl("swc:inbox:doomed") <= 60_000
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("command", ["receiver", "dlq"])
async def test_the_commands_name_an_unreachable_redis_without_its_password(command: str) -> None:
    url = f"redis://:s3cret@127.0.0.1:{_free_port()}/0"
    args = [sys.executable, "-m", "signalwire_calls", command, "--redis", url]
    if command == "receiver":
        args += ["--signing-key", "k", "--port", "0"]
    proc = await anyio.to_thread.run_sync(
        lambda: subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: redis: cannot reach redis://:***@127.0.0.1:")
    assert "s3cret" not in proc.stderr + proc.stdout
