"""The receiver's routing and metrics branches, on each front end (the standalone
server, the aiohttp app, the ASGI app), with an in-memory ``EventRouter`` and
``MetricsSource`` that record what the receiver asks of them.

``tests/test_routing_redis.py`` runs the same paths end to end over Redis; this module
pins each decision down (which counter moves, what is forwarded, what each front end
answers) quickly enough for mutation testing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from signalwire_calls._signing import sign
from signalwire_calls.errors import MalformedWebhookError
from signalwire_calls.receiver import (
    OWNER_PARAM,
    EventRouter,
    InboundAnswer,
    MetricsSource,
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    app_stats,
    asgi_app,
    create_app,
)

from .test_receiver import BODY_B, KEY_B, ListSink, call_asgi

PUBLIC = "https://hooks.example.com"
PATH = "/sw/status"
FRONTS = ["standalone", "aiohttp", "asgi"]
PLAY_FINISHED = BODY_B  # a calling.call.play event, control_id "play-1"


class TableRouter:
    """An ``EventRouter`` the way ``RedisBus`` decides (its own owner id and no owner
    are local), forwarding into a list; ``up=False`` plays a Redis that cannot take it."""

    def __init__(self, me: str = "me") -> None:
        self.me = me
        self.up = True
        self.asked: list[str | None] = []
        self.forwarded: list[tuple[str | None, bytes]] = []

    def is_local(self, owner: str | None) -> bool:
        self.asked.append(owner)
        return owner is None or owner == self.me

    async def forward(self, owner: str | None, body: bytes) -> bool:
        await asyncio.sleep(0)  # a real router awaits Redis
        if not self.up:
            return False
        self.forwarded.append((owner, body))
        return True


class RecordingMetrics:
    """A ``MetricsSource`` that records the receiver's calls; ``broken`` makes
    ``render`` fail like a collector with a bug."""

    def __init__(self, sink: ListSink | None = None) -> None:
        self.calls: list[str] = []
        self.accepts: list[str | None] = []
        self.broken = False
        self.sink = sink

    def begin_webhook(self) -> None:
        # what the sink held when the receiver began: timing starts before delivery
        held = len(self.sink.events) if self.sink is not None else -1
        self.calls.append(f"begin:{held}")

    def end_webhook(self) -> None:
        held = len(self.sink.events) if self.sink is not None else -1
        self.calls.append(f"end:{held}")

    def render(self, accept: str | None) -> tuple[bytes, str]:
        self.accepts.append(accept)
        if self.broken:
            raise RuntimeError("collector bug")
        return b"swc_up 1\n", "text/plain; version=0.0.4; charset=utf-8"


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


class Front:
    """One receiver front end serving ``sink`` with ``router`` / ``metrics``."""

    def __init__(
        self,
        kind: str,
        sink: ListSink,
        settings: ReceiverSettings,
        router: EventRouter | None = None,
        metrics: MetricsSource | None = None,
        inbound: InboundAnswer | None = None,
    ) -> None:
        self.kind = kind
        self.settings = settings
        self.base = ""
        self._stats: Callable[[], ReceiverStats]
        self._http: aiohttp.ClientSession | None = None
        if kind == "asgi":
            self.asgi = asgi_app(sink, settings, router=router, metrics=metrics, inbound=inbound)
            self._stats = self.asgi.stats
        elif kind == "standalone":
            self.receiver = Receiver(
                sink, settings, router=router, metrics=metrics, inbound=inbound
            )
            self._stats = self.receiver.stats
        else:
            self.app = create_app(sink, settings, router=router, metrics=metrics, inbound=inbound)
            self._stats = lambda: app_stats(self.app)

    def stats(self) -> ReceiverStats:
        return self._stats()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Front]:
        if self.kind == "asgi":
            yield self
            return
        async with aiohttp.ClientSession() as self._http:
            if self.kind == "standalone":
                async with self.receiver:
                    self.base = f"http://127.0.0.1:{self.receiver.port}"
                    yield self
                return
            runner = web.AppRunner(self.app)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                self.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
                yield self
            finally:
                await runner.cleanup()

    async def request(
        self,
        path_qs: str,
        body: bytes = b"",
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if self.kind == "asgi":
            path, _, query = path_qs.partition("?")
            result = await call_asgi(
                self.asgi,
                method=method,
                path=path,
                query=query.encode(),
                chunks=[body],
                headers=headers,
            )
            start = next(m for m in result.messages if m["type"] == "http.response.start")
            # ASGI: header names are lowercase bytes, as servers pass them on as they are
            assert all(k == k.lower() for k, _ in start["headers"]), start
            got = {k.decode().lower(): v.decode() for k, v in start["headers"]}
            assert result.status is not None
            return Reply(result.status, result.body, got)
        assert self._http is not None
        url = URL(self.base + path_qs, encoded=True)
        async with (
            asyncio.timeout(10),
            self._http.request(method, url, data=body, headers=headers) as response,
        ):
            got = {k.lower(): v for k, v in response.headers.items()}
            return Reply(response.status, await response.read(), got)

    async def webhook(self, query: str, body: bytes = PLAY_FINISHED, signed: bool = True) -> int:
        path_qs = f"{PATH}?{query}" if query else PATH
        headers = sign(KEY_B, PUBLIC + path_qs, body) if signed else {}
        return (await self.request(path_qs, body, headers=headers)).status


def signed_settings(**options: Any) -> ReceiverSettings:
    return ReceiverSettings(path=PATH, public_url=PUBLIC, signing_key=KEY_B, **options)


def moved(before: ReceiverStats, after: ReceiverStats) -> dict[str, int]:
    """The counters that changed, and by how much."""
    fields = ReceiverStats.__struct_fields__
    return {
        name: getattr(after, name) - getattr(before, name)
        for name in fields
        if getattr(after, name) != getattr(before, name)
    }


@asynccontextmanager
async def routed(kind: str, router: TableRouter, sink: ListSink) -> AsyncIterator[Front]:
    async with Front(kind, sink, signed_settings(), router=router).serving() as front:
        yield front


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize("kind", FRONTS)
async def test_an_event_for_this_process_goes_to_the_sink(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    async with routed(kind, router, sink) as front:
        before = front.stats()
        assert await front.webhook(f"leg=a&{OWNER_PARAM}=me") == 200
        assert router.asked == ["me"]
        assert router.forwarded == []
        assert [e.params.control_id for e in sink.events] == ["play-1"]  # type: ignore[union-attr]
        assert moved(before, front.stats()) == {"received": 1, "accepted": 1}


@pytest.mark.parametrize("kind", FRONTS)
async def test_an_event_without_an_owner_is_this_processs(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    async with routed(kind, router, sink) as front:
        assert await front.webhook("leg=a") == 200
        assert router.asked == [None]
        assert len(sink.events) == 1
        assert router.forwarded == []


@pytest.mark.parametrize("kind", FRONTS)
async def test_an_event_for_another_owner_is_forwarded_as_it_came(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    async with routed(kind, router, sink) as front:
        before = front.stats()
        # the first swc_owner counts, as the signature covers the whole query
        assert await front.webhook(f"{OWNER_PARAM}=w-2&leg=a&{OWNER_PARAM}=me") == 200
        assert router.asked == ["w-2"]
        assert router.forwarded == [("w-2", PLAY_FINISHED)]
        assert sink.events == []
        assert moved(before, front.stats()) == {"received": 1, "accepted": 1, "forwarded": 1}


@pytest.mark.parametrize("kind", FRONTS)
async def test_a_forged_event_for_another_owner_is_403_and_not_forwarded(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    async with routed(kind, router, sink) as front:
        before = front.stats()
        # signed for another owner: moving it to w-2 breaks the signature
        body = PLAY_FINISHED
        headers = sign(KEY_B, f"{PUBLIC}{PATH}?{OWNER_PARAM}=me", body)
        reply = await front.request(f"{PATH}?{OWNER_PARAM}=w-2", body, headers=headers)
        assert reply.status == 403
        assert await front.webhook(f"{OWNER_PARAM}=w-2", signed=False) == 403
        assert router.forwarded == []
        assert moved(before, front.stats()) == {"received": 2, "rejected_signature": 2}


@pytest.mark.parametrize("kind", FRONTS)
async def test_a_malformed_event_for_another_owner_is_400_and_not_forwarded(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    router, sink = TableRouter(), ListSink()
    async with routed(kind, router, sink) as front:
        before = front.stats()
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls.receiver"):
            for _ in range(2):
                status = await front.webhook(f"{OWNER_PARAM}=w-2", body=b'{"event_type": 5}')
                assert status == 400
        assert router.forwarded == []
        assert moved(before, front.stats()) == {"received": 2, "rejected_malformed": 2}
        lines = [r.getMessage() for r in caplog.records if r.name == "signalwire_calls.receiver"]
        assert [line for line in lines if line.startswith("webhook refused (400): ")] == [
            "webhook refused (400): 'event_type: missing or not a string'"
        ] * 2, lines


@pytest.mark.parametrize("kind", FRONTS)
async def test_a_router_that_cannot_take_an_event_is_a_503(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    router.up = False
    async with routed(kind, router, sink) as front:
        before = front.stats()
        assert await front.webhook(f"{OWNER_PARAM}=w-2") == 503
        assert moved(before, front.stats()) == {"received": 1, "rejected_unavailable": 1}
        router.up = True  # the platform's retry, once Redis is back
        assert await front.webhook(f"{OWNER_PARAM}=w-2") == 200
        assert router.forwarded == [("w-2", PLAY_FINISHED)]


@pytest.mark.parametrize("kind", FRONTS)
async def test_without_a_signing_key_the_owner_still_routes(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    settings = ReceiverSettings(path=PATH)
    async with Front(kind, sink, settings, router=router).serving() as front:
        assert await front.webhook(f"{OWNER_PARAM}=w-9", signed=False) == 200
        assert await front.webhook(f"{OWNER_PARAM}=me", signed=False) == 200
        assert router.forwarded == [("w-9", PLAY_FINISHED)]
        assert len(sink.events) == 1


async def test_asgi_takes_the_owner_from_a_query_with_undecodable_bytes() -> None:
    router, sink = TableRouter(), ListSink()
    app = asgi_app(sink, ReceiverSettings(path=PATH), router=router)
    result = await call_asgi(app, path=PATH, query=b"x=\xff&" + OWNER_PARAM.encode() + b"=w-2")
    assert result.status == 200
    assert router.forwarded == [("w-2", PLAY_FINISHED)]


async def test_the_standalone_server_logs_where_it_listens_and_when_it_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(ListSink(), ReceiverSettings(path=PATH))
    with caplog.at_level(logging.INFO, logger="signalwire_calls.receiver"):
        async with receiver:
            port = receiver.port
    lines = [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "signalwire_calls.receiver"
    ]
    assert lines == [
        (logging.INFO, f"webhook receiver listening on http://127.0.0.1:{port}{PATH}"),
        (logging.INFO, f"webhook receiver on 127.0.0.1:{port} stopped"),
    ]


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("kind", FRONTS)
async def test_each_webhook_is_timed_around_its_delivery(kind: str) -> None:
    sink = ListSink()
    metrics = RecordingMetrics(sink)
    settings = signed_settings()
    async with Front(kind, sink, settings, metrics=metrics).serving() as front:
        assert await front.webhook("leg=a") == 200
        assert metrics.calls == ["begin:0", "end:1"]
        # refused ones are timed too: the begin/end pair always closes
        assert await front.webhook("leg=a", body=b"[]") == 400
        assert await front.webhook("leg=a", signed=False) == 403
        assert metrics.calls == ["begin:0", "end:1", "begin:1", "end:1", "begin:1", "end:1"]


@pytest.mark.parametrize("kind", FRONTS)
async def test_the_metrics_path_answers_a_get_with_the_exposition(kind: str) -> None:
    sink = ListSink()
    metrics = RecordingMetrics()
    settings = signed_settings(metrics_path="/metrics")
    async with Front(kind, sink, settings, metrics=metrics).serving() as front:
        before = front.stats()
        reply = await front.request(
            "/metrics", method="GET", headers={"Accept": "application/openmetrics-text"}
        )
        assert reply.status == 200
        assert reply.body == b"swc_up 1\n"
        assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert reply.headers["content-length"] == "9"
        assert metrics.accepts == ["application/openmetrics-text"]
        reply = await front.request("/metrics", method="GET")
        assert reply.status == 200
        if kind != "asgi":  # aiohttp's client sends Accept: */* by default
            assert metrics.accepts[-1] == "*/*"
        else:
            assert metrics.accepts[-1] is None
        # a scrape is not a webhook: no counter moves, nothing is timed
        assert moved(before, front.stats()) == {}
        assert metrics.calls == []


@pytest.mark.parametrize("kind", FRONTS)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_the_metrics_path_refuses_other_methods_with_405(kind: str, method: str) -> None:
    sink = ListSink()
    metrics = RecordingMetrics()
    settings = signed_settings(metrics_path="/metrics")
    async with Front(kind, sink, settings, metrics=metrics).serving() as front:
        reply = await front.request("/metrics", b"x=1", method=method)
        assert reply.status == 405
        assert reply.headers["allow"] == "GET"
        if kind != "aiohttp":  # in a mounted app the 405 is aiohttp's router's, with text
            assert reply.body == b""
        assert metrics.accepts == []  # nothing rendered
        assert front.stats().received == 0
        # the webhook path still refuses a GET with its own Allow
        reply = await front.request(PATH, method="GET")
        assert reply.status == 405
        assert reply.headers["allow"] == "POST"


@pytest.mark.parametrize("kind", FRONTS)
async def test_a_failing_collector_is_a_500_with_an_empty_body_logged_once(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ListSink()
    metrics = RecordingMetrics()
    metrics.broken = True
    settings = signed_settings(metrics_path="/metrics")
    async with Front(kind, sink, settings, metrics=metrics).serving() as front:
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls.receiver"):
            for _ in range(3):
                reply = await front.request("/metrics", method="GET")
                assert reply.status == 500
                assert reply.body == b""
                assert "content-type" not in reply.headers or kind != "asgi"
        errors = [r for r in caplog.records if r.name == "signalwire_calls.receiver"]
        assert [(r.levelno, r.getMessage()) for r in errors] == [
            (logging.ERROR, "metrics: rendering failed")
        ]
        assert errors[0].exc_info is not None
        assert str(errors[0].exc_info[1]) == "collector bug"
        # webhooks are unaffected
        assert await front.webhook("leg=a") == 200


async def test_asgi_metrics_take_an_accept_header_with_undecodable_bytes() -> None:
    metrics = RecordingMetrics()
    app = asgi_app(ListSink(), ReceiverSettings(metrics_path="/metrics"), metrics=metrics)
    result = await call_asgi(
        app, method="GET", path="/metrics", chunks=[], headers={"Accept": "text/\xff"}
    )
    assert result.status == 200
    assert metrics.accepts == ["text/\ufffd"]


@pytest.mark.parametrize("kind", FRONTS)
async def test_without_a_metrics_path_it_is_404(kind: str) -> None:
    sink = ListSink()
    metrics = RecordingMetrics()
    async with Front(kind, sink, signed_settings(), metrics=metrics).serving() as front:
        reply = await front.request("/metrics", method="GET")
        assert reply.status == 404
        assert metrics.accepts == []


# --------------------------------------------------------------------------- inbound SWML

INBOUND = "/signalwire/inbound"
SWML_REPLY = b'{"version":"1.0.0","sections":{"main":["answer",{"sleep":-1}]}}'
SWML_REQUEST = b'{"call":{"call_id":"c-1","call_state":"created"},"vars":{}}'


class Answering:
    """An ``InboundAnswer``: the SWML reply, ``None`` (no handler set) or a refusal,
    as ``mode`` says; it records the bodies it was given."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.bodies: list[bytes] = []

    def answer(self, body: bytes) -> bytes | None:
        self.bodies.append(body)
        if self.mode == "none":
            return None
        if self.mode == "malformed":
            raise MalformedWebhookError("call: missing")
        if self.mode == "bug":
            raise RuntimeError("handler bug")
        return SWML_REPLY


@asynccontextmanager
async def answering(kind: str, inbound: Answering, sink: ListSink) -> AsyncIterator[Front]:
    async with Front(kind, sink, signed_settings(), inbound=inbound).serving() as front:
        yield front


async def swml_request(front: Front, body: bytes = SWML_REQUEST, signed: bool = True) -> Reply:
    headers = sign(KEY_B, PUBLIC + INBOUND, body) if signed else {}
    return await front.request(INBOUND, body, headers=headers)


@pytest.mark.parametrize("kind", FRONTS)
async def test_an_inbound_swml_request_is_answered_with_the_reply(kind: str) -> None:
    inbound, sink = Answering(), ListSink()
    async with answering(kind, inbound, sink) as front:
        before = front.stats()
        for _ in range(2):
            reply = await swml_request(front)
            assert reply.status == 200
            assert reply.body == SWML_REPLY
            assert reply.headers["content-type"].split(";")[0] == "application/json"
            assert reply.headers["content-length"] == str(len(SWML_REPLY))
        assert inbound.bodies == [SWML_REQUEST] * 2
        assert sink.events == []
        assert moved(before, front.stats()) == {"received": 2, "accepted": 2}
        # the events path beside it still takes webhooks
        assert await front.webhook("leg=a") == 200
        assert inbound.bodies == [SWML_REQUEST] * 2
        assert len(sink.events) == 1


@pytest.mark.parametrize("kind", FRONTS)
@pytest.mark.parametrize(
    ("mode", "status", "line"),
    [
        ("none", 404, "inbound SWML request refused (404): no inbound handler is set"),
        ("malformed", 400, "inbound SWML request refused (400): 'call: missing'"),
    ],
)
async def test_an_inbound_request_no_one_answers_is_refused_and_counted(
    kind: str, mode: str, status: int, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbound, sink = Answering(), ListSink()
    inbound.mode = mode
    async with answering(kind, inbound, sink) as front:
        before = front.stats()
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls.receiver"):
            for _ in range(2):
                reply = await swml_request(front)
                assert reply.status == status
                assert reply.body == b""
        assert inbound.bodies == [SWML_REQUEST] * 2
        assert moved(before, front.stats()) == {"received": 2, "rejected_malformed": 2}
        lines = [r.getMessage() for r in caplog.records if r.name == "signalwire_calls.receiver"]
        assert [x for x in lines if x.startswith("inbound")] == [line] * 2


@pytest.mark.parametrize("kind", FRONTS)
async def test_an_inbound_handler_that_fails_is_a_400_never_a_500(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbound, sink = Answering(), ListSink()
    inbound.mode = "bug"
    async with answering(kind, inbound, sink) as front:
        before = front.stats()
        with caplog.at_level(logging.DEBUG, logger="signalwire_calls.receiver"):
            reply = await swml_request(front)
        assert reply.status == 400
        assert reply.body == b""
        assert not reply.headers.get("content-type", "").startswith("application/json")
        assert moved(before, front.stats()) == {"received": 1, "rejected_error": 1}
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "webhook refused (400): unexpected RuntimeError while handling it"
        ]


@pytest.mark.parametrize("kind", FRONTS)
async def test_an_unsigned_inbound_request_is_403_and_never_answered(kind: str) -> None:
    inbound, sink = Answering(), ListSink()
    async with answering(kind, inbound, sink) as front:
        before = front.stats()
        assert (await swml_request(front, signed=False)).status == 403
        # signed for the events path, sent to the inbound one
        headers = sign(KEY_B, PUBLIC + PATH, SWML_REQUEST)
        assert (await front.request(INBOUND, SWML_REQUEST, headers=headers)).status == 403
        assert inbound.bodies == []
        assert moved(before, front.stats()) == {"received": 2, "rejected_signature": 2}


@pytest.mark.parametrize("kind", FRONTS)
async def test_the_inbound_path_takes_only_post_and_exists_only_with_a_handler(
    kind: str,
) -> None:
    inbound, sink = Answering(), ListSink()
    async with answering(kind, inbound, sink) as front:
        reply = await front.request(INBOUND, method="GET")
        assert reply.status == 405
        assert reply.headers["allow"] == "POST"
        assert inbound.bodies == []
    async with Front(kind, sink, signed_settings()).serving() as front:
        assert (await swml_request(front)).status == 404
        assert front.stats().received == 0


# --------------------------------------------------------------------------- all at once


@pytest.mark.parametrize("kind", FRONTS)
async def test_routing_metrics_and_inbound_together(kind: str) -> None:
    router, sink = TableRouter(), ListSink()
    metrics = RecordingMetrics(sink)
    inbound = Answering()
    settings = signed_settings(metrics_path="/metrics")
    front = Front(kind, sink, settings, router=router, metrics=metrics, inbound=inbound)
    async with front.serving():
        assert await front.webhook(f"{OWNER_PARAM}=w-2") == 200
        assert await front.webhook(f"{OWNER_PARAM}=me") == 200
        assert router.forwarded == [("w-2", PLAY_FINISHED)]
        assert len(sink.events) == 1
        # the local one is timed; a forwarded one is timed by its owner when it arrives
        assert metrics.calls == ["begin:0", "end:1"]
        assert (await front.request("/metrics", method="GET")).status == 200
        assert (await swml_request(front)).body == SWML_REPLY
        assert inbound.bodies == [SWML_REQUEST]
