"""Prometheus metrics (``signalwire_calls.metrics``): a real call flow through the
simulator, then the receiver's ``metrics_path`` scraped over HTTP and parsed with
prometheus_client's own parser, on all three front ends."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import uvicorn
from aiohttp import web
from fastapi import FastAPI
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from signalwire_calls import (
    CallSession,
    ConfigurationError,
    ReceiverSettings,
    RetryPolicy,
    asgi_app,
    create_app,
    silence,
)
from signalwire_calls.metrics import PREFIX, SessionMetrics
from signalwire_calls.receiver import Receiver
from signalwire_calls.testing import Callee, Simulator

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
CALLER = "+15559870000"
HUMAN = "+15551230001"
T = 5.0
METRICS = ReceiverSettings(metrics_path="/metrics")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(time_scale=0.01, webhook_backoff=0.02, cps=None) as simulator:
        # rings for 0.2 s: the answer comes after the dial's HTTP response, as a webhook
        simulator.script(HUMAN, Callee.answers(after=20))
        yield simulator


def make_session(sim: Simulator, **options: Any) -> CallSession:
    options.setdefault("receiver", METRICS)
    return CallSession(
        space=sim.base_url,
        project=sim.project,
        token=sim.token,
        signing_key=sim.signing_key,
        call_end_grace=0.05,
        retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.05),
        **options,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------- helpers


class Scrape(msgspec.Struct):
    status: int
    content_type: str
    text: str

    def families(self) -> dict[str, list[Sample]]:
        return {f.name: f.samples for f in text_string_to_metric_families(self.text)}

    def value(self, name: str, **labels: str) -> float:
        """The one sample called ``name`` (full sample name) with these labels."""
        found = [
            s.value
            for samples in self.families().values()
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{name} {labels}: {found}"
        return found[0]


async def scrape(url: str, method: str = "GET", accept: str | None = None) -> Scrape:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, url, headers=headers) as response,
    ):
        return Scrape(
            status=response.status,
            content_type=response.headers.get("Content-Type", ""),
            text=await response.text(),
        )


async def flow(session: CallSession, sim: Simulator, events_url: str) -> None:
    """A call: answered, a play finished, hung up (three waits webhooks complete), and
    one forged webhook refused for its signature."""
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    play = await call.play(silence(0.5))
    assert (await play.finished(timeout=T)).state == "finished"
    await call.end()
    await call.ended(timeout=T)
    async with aiohttp.ClientSession() as client:
        forged = b'{"event_type": "calling.call.play", "params": {}}'
        async with client.post(events_url, data=forged) as response:
            assert response.status == 403


def check_scrape(result: Scrape, session: CallSession, sim: Simulator) -> None:
    """The scraped values are the session's counters after ``flow``."""
    assert result.status == 200
    assert result.content_type.startswith("text/plain")
    stats = session.stats()
    assert stats.receiver is not None
    p = PREFIX
    # the flow's own numbers
    assert result.value(f"{p}_commands_sent_total") == 3  # dial, play, end
    assert result.value(f"{p}_webhooks_rejected_total", reason="signature") == 1
    assert result.value(f"{p}_webhooks_rejected_total", reason="malformed") == 0
    received = result.value(f"{p}_webhooks_received_total")
    accepted = result.value(f"{p}_webhooks_accepted_total")
    assert accepted >= 5  # created, ringing, answered, play playing and finished, ...
    assert received == accepted + 1
    assert result.value(f"{p}_events_routed_total") == accepted
    assert result.value(f"{p}_pending_operations") == 0
    assert result.value(f"{p}_live_calls") == 0
    # and every counter is the session's own, read at scrape time
    assert received == stats.receiver.received
    assert accepted == stats.receiver.accepted
    assert result.value(f"{p}_http_requests_total") == stats.transport.requests
    assert result.value(f"{p}_http_timeouts_total", kind="read") == 0
    # three waits completed by webhooks: answered(), finished(), ended()
    hist = f"{p}_webhook_to_waiter_seconds"
    assert result.value(f"{hist}_count") == 3
    assert 0 < result.value(f"{hist}_sum") < 3 * T
    assert result.value(f"{hist}_bucket", le="+Inf") == 3
    buckets = [s.value for s in result.families()[hist] if s.name == f"{hist}_bucket"]
    assert buckets == sorted(buckets)
    # nothing secret in it
    for secret in (sim.token, sim.signing_key, sim.project):
        assert secret
        assert secret not in result.text


# ------------------------------------------------------------------------- the front ends


async def test_standalone_receiver_serves_the_session_metrics(sim: Simulator) -> None:
    async with make_session(sim) as session:
        assert session.receiver is not None
        url = session.receiver.metrics_url
        assert url is not None
        assert url.endswith("/metrics")
        empty = await scrape(url)
        assert empty.value(f"{PREFIX}_webhook_to_waiter_seconds_count") == 0
        await flow(session, sim, session.status_url)
        check_scrape(await scrape(url), session, sim)
        posted = await scrape(url, method="POST")
        assert posted.status == 405
        async with aiohttp.ClientSession() as client, client.put(url) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET"


async def test_aiohttp_mount_serves_the_session_metrics(sim: Simulator) -> None:
    port = free_port()
    session = make_session(
        sim, serve_receiver=False, public_url=f"http://127.0.0.1:{port}", mount_path="/hooks"
    )
    app = web.Application()
    app.add_subapp("/hooks", session.webhook_app())
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with session:
            await flow(session, sim, session.status_url)
            url = f"http://127.0.0.1:{port}/hooks/metrics"
            check_scrape(await scrape(url), session, sim)
            assert (await scrape(url, method="POST")).status == 405
            assert (await scrape(f"http://127.0.0.1:{port}/metrics")).status == 404
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any, port: int) -> AsyncIterator[None]:
    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    server = uvicorn.Server(
        # A plain ASGI 3 function in front of the app: uvicorn guesses factories and ASGI
        # versions from the app's signature, which mutmut's trampolines hide.
        uvicorn.Config(
            asgi,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(T):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        async with asyncio.timeout(T):
            await task


async def test_asgi_mount_serves_the_session_metrics(sim: Simulator) -> None:
    port = free_port()
    session = make_session(
        sim, serve_receiver=False, public_url=f"http://127.0.0.1:{port}", mount_path="/hooks"
    )
    app = FastAPI()
    app.mount("/hooks", session.asgi_app())
    async with uvicorn_server(app, port), session:
        await flow(session, sim, session.status_url)
        url = f"http://127.0.0.1:{port}/hooks/metrics"
        check_scrape(await scrape(url), session, sim)
        posted = await scrape(url, method="POST")
        assert posted.status == 405


# ------------------------------------------------------------------------- off, and apart


@pytest.mark.parametrize("front", ["standalone", "aiohttp", "asgi"])
async def test_metrics_off_is_404(front: str) -> None:
    class Sink:
        def deliver(self, event: object) -> None:
            pass

    settings = ReceiverSettings()
    if front == "standalone":
        async with Receiver(Sink(), settings) as receiver:
            assert receiver.metrics_url is None
            url = receiver.url.removesuffix(settings.path)
            assert (await scrape(url + "/metrics")).status == 404
        return
    port = free_port()
    if front == "aiohttp":
        runner = web.AppRunner(create_app(Sink(), settings))
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            assert (await scrape(f"http://127.0.0.1:{port}/metrics")).status == 404
        finally:
            await runner.cleanup()
        return
    async with uvicorn_server(asgi_app(Sink(), settings), port):
        assert (await scrape(f"http://127.0.0.1:{port}/metrics")).status == 404


async def test_a_session_without_metrics_has_none(sim: Simulator) -> None:
    async with make_session(sim, receiver=ReceiverSettings()) as session:
        assert session.metrics is None
        assert session.receiver is not None
        assert session.receiver.metrics_url is None
        base = session.status_url.removesuffix("/signalwire/events")
        assert (await scrape(base + "/metrics")).status == 404


async def test_two_sessions_in_one_process_keep_their_own_metrics(sim: Simulator) -> None:
    async with make_session(sim) as first, make_session(sim) as second:
        await flow(first, sim, first.status_url)
        assert first.receiver is not None
        assert second.receiver is not None
        assert first.receiver.metrics_url is not None
        assert second.receiver.metrics_url is not None
        one = await scrape(first.receiver.metrics_url)
        other = await scrape(second.receiver.metrics_url)
        assert one.value(f"{PREFIX}_commands_sent_total") == 3
        assert other.value(f"{PREFIX}_commands_sent_total") == 0
        assert other.value(f"{PREFIX}_webhook_to_waiter_seconds_count") == 0
        assert first.metrics is not None
        assert second.metrics is not None
        assert first.metrics.registry is not second.metrics.registry


async def test_openmetrics_when_the_scraper_asks_for_it(sim: Simulator) -> None:
    async with make_session(sim) as session:
        assert session.receiver is not None
        assert session.receiver.metrics_url is not None
        result = await scrape(
            session.receiver.metrics_url, accept="application/openmetrics-text; version=1.0.0"
        )
        assert result.status == 200
        assert result.content_type.startswith("application/openmetrics-text")
        assert result.text.endswith("# EOF\n")


async def test_a_failing_collector_is_a_500_logged_once(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_session(sim) as session:
        assert session.metrics is not None
        assert session.receiver is not None
        url = session.receiver.metrics_url
        assert url is not None

        class Broken(Collector):
            def collect(self) -> Iterator[Metric]:
                raise RuntimeError("collector bug")

        session.metrics.registry.register(Broken())
        with caplog.at_level("ERROR", logger="signalwire_calls.receiver"):
            for _ in range(3):
                assert (await scrape(url)).status == 500
        errors = [r for r in caplog.records if "metrics" in r.getMessage()]
        assert len(errors) == 1


# ------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("path", ["metrics", "/m?x=1", "/signalwire/events", "/signalwire/inbound"])
def test_a_bad_metrics_path_is_refused(path: str) -> None:
    with pytest.raises(ConfigurationError, match="metrics_path"):
        ReceiverSettings(metrics_path=path)


@pytest.mark.parametrize("make", [create_app, asgi_app, Receiver])
def test_a_metrics_path_without_a_source_is_refused(make: Callable[..., object]) -> None:
    class Sink:
        def deliver(self, event: object) -> None:
            pass

    with pytest.raises(ConfigurationError) as raised:
        make(Sink(), METRICS)
    assert str(raised.value) == (
        "metrics_path: set, but no metrics= source to serve (a CallSession passes its own; "
        "see signalwire_calls.metrics)"
    )


def test_a_session_metrics_can_be_made_on_its_own() -> None:
    """The collector reads whatever returns the stats' shape (no session needed)."""
    session = CallSession(space="http://127.0.0.1:9", project="p", token="t", receiver=METRICS)
    metrics = SessionMetrics(session.stats)
    body, content_type = metrics.render(None)
    assert content_type.startswith("text/plain")
    assert f"{PREFIX}_commands_sent_total 0.0" in body.decode()


def _run_without_prometheus(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``prometheus_client`` cannot be imported."""
    prelude = "import sys; sys.modules['prometheus_client'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )


def test_missing_prometheus_client_names_the_extra() -> None:
    result = _run_without_prometheus(
        """
        from signalwire_calls import CallSession, ReceiverSettings
        CallSession(space="http://127.0.0.1:9", project="p", token="t")  # metrics off: fine
        try:
            CallSession(
                space="http://127.0.0.1:9", project="p", token="t",
                receiver=ReceiverSettings(metrics_path="/metrics"),
            )
        except ImportError as exc:
            print("ImportError:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError:" in result.stdout
    assert "prometheus-client" in result.stdout
    assert "signalwire_calls[metrics]" in result.stdout


# ------------------------------------------------------------------------- the docs


def test_the_metrics_page_lists_every_metric() -> None:
    """docs/metrics.md names every metric the collector can produce, with its type."""

    class Stats(msgspec.Struct):
        receiver: Any
        registry: Any
        transport: Any
        commands_sent: int
        inbound: Any
        bus: Any

    from signalwire_calls._bus_redis import BusStats
    from signalwire_calls._core import RegistryStats
    from signalwire_calls._inbound import InboundStats
    from signalwire_calls._transport import TransportStats
    from signalwire_calls.receiver import ReceiverStats

    def zero(cls: type[msgspec.Struct]) -> Any:
        return cls(**dict.fromkeys(cls.__struct_fields__, 0))

    full = Stats(
        receiver=ReceiverStats(),
        registry=zero(RegistryStats),
        transport=zero(TransportStats),
        commands_sent=0,
        inbound=zero(InboundStats),
        bus=BusStats(
            owner_id="o",
            connected=True,
            forwarded=0,
            dead_lettered=0,
            forward_failed=0,
            received=0,
            malformed=0,
            outages=0,
        ),
    )
    metrics = SessionMetrics(lambda: full)
    produced = {
        (f.name, f.type) for f in text_string_to_metric_families(metrics.render(None)[0].decode())
    }
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(signalwire_calls_\w+)` \| (\w+) \|", page, re.M))
    # the page names counters as exposed (with _total)
    as_documented = {
        (f"{name}_total" if kind == "counter" else name, kind) for name, kind in produced
    }
    assert as_documented == documented
