"""The webhook receiver over real loopback HTTP (aiohttp) and driven directly (ASGI)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from signalwire_calls._signing import SHA1_HEADER, SHA256_HEADER, sign
from signalwire_calls.errors import ConfigurationError
from signalwire_calls.events import AnyEvent, PlayEvent, UnknownEvent
from signalwire_calls.receiver import (
    ASGIReceiver,
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    app_stats,
    asgi_app,
    create_app,
)

# a published real-platform vector (signalwire 2.1.1's own tests)
KEY_A = "PSK_7TruNcSNTxp4zNrykMj4EPzF"
PUBLIC_A = "https://81f2-2-45-18-191.ngrok-free.app"
BODY_A = (
    b'{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":"fa3570ae-f8bd-42c2-'
    b'83f4-9950d906c91b@us-west","segment_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_s'
    b'tate":"created","direction":"inbound","type":"phone","from":"+12135877632","to":"+12089'
    b'806814","from_number":"+12135877632","to_number":"+12089806814","project_id":"4b7ae78a-d'
    b'02e-4889-a63b-08b156d5916e","space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}'
)
SHA1_A = "b18500437ebb010220ddd770cbe6fd531ea0ba0d"
SHA256_A = "e6cbf7dcd30152e9034464d4de0f1050893dc482c5f303d73c86d050407b294f"

# computed with openssl dgst -hmac and checked with signalwire-sdk 3.7.5: url https://example.com/sw/status?leg=a
KEY_B = "PSK_test_signing_key_123"
BODY_B = (
    b'{"event_type":"calling.call.play","params":{"call_id":"3fa85f64-5717-4562-b3fc-'
    b'2c963f66afa6","control_id":"play-1","state":"finished"}}'
)
SHA1_B = "45cd010d5be48d63e0590c1692dc5cac5047e495"
SHA256_B = "4e0077f6f7fa2e09ee9c2717f0c138d2f0c1b15bbe6813c899721225818eed66"

SETTINGS_B = ReceiverSettings(
    path="/sw/status", public_url="https://example.com", signing_key=KEY_B
)
UNKNOWN_BODY = b'{"event_type":"calling.call.hologram","params":{"call_id":"c1","x":1}}'


class ListSink:
    """Collects delivered events."""

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []

    def deliver(self, event: AnyEvent) -> None:
        self.events.append(event)


class FailingSink:
    """A sink with a bug."""

    def __init__(self) -> None:
        self.calls = 0

    def deliver(self, event: AnyEvent) -> None:
        self.calls += 1
        raise RuntimeError("sink bug")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, bytes]:
    async with (
        asyncio.timeout(10),
        http.request(method, URL(url, encoded=True), data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


def base(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}"


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    "headers",
    [
        {SHA256_HEADER: SHA256_B},
        {SHA1_HEADER: SHA1_B},
        {SHA256_HEADER: SHA256_B, SHA1_HEADER: SHA1_B},
        {SHA256_HEADER.lower(): SHA256_B},
    ],
    ids=["sha256", "sha1-only", "both", "lowercase-header-name"],
)
async def test_signed_event_accepted_over_public_url(
    http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    sink = ListSink()
    async with Receiver(sink, SETTINGS_B) as receiver:
        status, body = await post(http, base(receiver) + "/sw/status?leg=a", BODY_B, headers)
        assert (status, body) == (200, b"")
        assert receiver.stats() == ReceiverStats(received=1, accepted=1)
    assert len(sink.events) == 1
    event = sink.events[0]
    assert isinstance(event, PlayEvent)
    assert event.control_id == "play-1"
    assert event.call_id == "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/sw/status?leg=a&", {SHA256_HEADER: SHA256_B}),
        ("/sw/status?leg=a&", {SHA1_HEADER: SHA1_B}),
        ("/sw/status?leg=a", {SHA256_HEADER: SHA256_B.upper()}),
        ("/sw/status?leg=a", {SHA1_HEADER: SHA1_B.upper()}),
        ("/sw/status?leg=a", {SHA256_HEADER: "0" * 64}),
        ("/sw/status?leg=a", {SHA256_HEADER: "0" * 64, SHA1_HEADER: SHA1_B}),
        ("/sw/status?leg=a", {}),
        ("/sw/status", {SHA256_HEADER: SHA256_B}),
    ],
    ids=[
        "ampersand-sha256",
        "ampersand-sha1",
        "uppercase-sha256",
        "uppercase-sha1",
        "wrong",
        "bad-sha256-not-rescued-by-sha1",
        "missing",
        "query-dropped",
    ],
)
async def test_bad_signature_is_403_with_empty_body(
    http: aiohttp.ClientSession, target: str, headers: dict[str, str]
) -> None:
    sink = ListSink()
    async with Receiver(sink, SETTINGS_B) as receiver:
        status, body = await post(http, base(receiver) + target, BODY_B, headers)
        assert (status, body) == (403, b"")
        assert receiver.stats() == ReceiverStats(received=1, rejected_signature=1)
    assert sink.events == []


async def test_published_vector_a_accepted(http: aiohttp.ClientSession) -> None:
    sink = ListSink()
    settings = ReceiverSettings(path="/", public_url=PUBLIC_A + "/", signing_key=KEY_A)
    async with Receiver(sink, settings) as receiver:
        for headers in ({SHA1_HEADER: SHA1_A}, {SHA256_HEADER: SHA256_A}):
            assert await post(http, base(receiver) + "/", BODY_A, headers) == (200, b"")
        # a {"call": ...} document carries no event_type: delivered, counted as unknown
        assert receiver.stats() == ReceiverStats(received=2, accepted=2, unknown_events=2)
    assert [type(e) for e in sink.events] == [UnknownEvent, UnknownEvent]
    assert sink.events[0].call_id == "b5d63b2e-f75b-4dc8-b6d4-269b635f96c0"


async def test_without_public_url_the_served_url_is_signed(http: aiohttp.ClientSession) -> None:
    key = "PSK_local"
    sink = ListSink()
    async with Receiver(sink, ReceiverSettings(signing_key=key)) as receiver:
        url = receiver.url + "?tag=s1"
        assert url == f"http://127.0.0.1:{receiver.port}/signalwire/events?tag=s1"
        # computed independently of the library's signing helpers
        digest = hmac.new(key.encode(), url.encode() + BODY_B, hashlib.sha256).hexdigest()
        assert await post(http, url, BODY_B, {SHA256_HEADER: digest}) == (200, b"")
        wrong = hmac.new(b"other", url.encode() + BODY_B, hashlib.sha256).hexdigest()
        assert (await post(http, url, BODY_B, {SHA256_HEADER: wrong}))[0] == 403
        assert receiver.stats() == ReceiverStats(received=2, accepted=1, rejected_signature=1)
    assert len(sink.events) == 1


async def test_without_signing_key_nothing_is_checked(http: aiohttp.ClientSession) -> None:
    sink = ListSink()
    async with Receiver(sink) as receiver:
        assert await post(http, receiver.url, BODY_B) == (200, b"")
        assert await post(http, receiver.url, BODY_B, {SHA256_HEADER: "junk"}) == (200, b"")
    assert len(sink.events) == 2


# --------------------------------------------------------------------------- bodies


async def test_body_too_large_is_413(http: aiohttp.ClientSession) -> None:
    sink = ListSink()
    settings = ReceiverSettings(max_body_size=1024)
    padded = BODY_B[:-1] + b',"pad":"' + b"x" * (1024 - len(BODY_B) - 9) + b'"}'
    assert len(padded) == 1024

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 512

    async with Receiver(sink, settings) as receiver:
        assert await post(http, receiver.url, padded) == (200, b"")  # exactly the limit
        assert (await post(http, receiver.url, padded + b" "))[0] == 413  # Content-Length
        assert (await post(http, receiver.url, chunks()))[0] == 413  # chunked, while reading
        assert receiver.stats() == ReceiverStats(received=3, accepted=1, rejected_too_large=2)
    assert len(sink.events) == 1


async def test_limit_above_aiohttps_default_request_size_is_honoured(
    http: aiohttp.ClientSession,
) -> None:
    """aiohttp refuses request bodies over 1 MiB by default; a larger max_body_size wins."""
    sink = ListSink()
    limit = 3 * 1024 * 1024
    big = BODY_B[:-1] + b',"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    async with Receiver(sink, ReceiverSettings(max_body_size=limit)) as receiver:
        # (a BytesIO: aiohttp warns about large raw bytes bodies; it sends the length)
        assert await post(http, receiver.url, io.BytesIO(big)) == (200, b"")
        assert await post(http, receiver.url, chunks()) == (200, b"")  # chunked
        assert receiver.stats() == ReceiverStats(received=2, accepted=2)
    assert len(sink.events) == 2


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"params": {}}', b'{"event_type": 5}', b"\xff\xfe{}"],
    ids=["empty", "text", "array", "no-event-type", "event-type-not-str", "bad-utf8"],
)
async def test_malformed_body_is_400_and_counted(http: aiohttp.ClientSession, body: bytes) -> None:
    sink = ListSink()
    async with Receiver(sink) as receiver:
        assert (await post(http, receiver.url, body))[0] == 400
        assert receiver.stats() == ReceiverStats(received=1, rejected_malformed=1)
    assert sink.events == []


async def test_unknown_event_is_200_counted_and_delivered(http: aiohttp.ClientSession) -> None:
    sink = ListSink()
    async with Receiver(sink) as receiver:
        assert await post(http, receiver.url, UNKNOWN_BODY) == (200, b"")
        assert receiver.stats() == ReceiverStats(received=1, accepted=1, unknown_events=1)
    assert len(sink.events) == 1
    event = sink.events[0]
    assert isinstance(event, UnknownEvent)
    assert (event.event_type, event.call_id) == ("calling.call.hologram", "c1")


async def test_failing_sink_still_200_and_counted(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FailingSink()
    caplog.set_level(logging.ERROR, logger="signalwire_calls.receiver")
    async with Receiver(sink) as receiver:
        assert await post(http, receiver.url, BODY_B) == (200, b"")
        assert await post(http, receiver.url, BODY_B) == (200, b"")
        assert receiver.stats() == ReceiverStats(received=2, accepted=2, sink_errors=2)
    assert sink.calls == 2
    assert any("sink bug" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_405(http: aiohttp.ClientSession, method: str) -> None:
    sink = ListSink()
    async with Receiver(sink) as receiver:
        assert (await post(http, receiver.url, None, method=method))[0] == 405
        assert (await post(http, base(receiver) + "/elsewhere", BODY_B))[0] == 404
    assert sink.events == []


# --------------------------------------------------------------------------- mounting


async def test_mounted_under_prefix_signs_the_full_path(http: aiohttp.ClientSession) -> None:
    sink = ListSink()
    user_app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    user_app.router.add_get("/", hello)
    sub = create_app(sink, SETTINGS_B)
    user_app.add_subapp("/hooks", sub)
    runner = web.AppRunner(user_app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/hooks/sw/status?leg=a"
        full = sign(KEY_B, "https://example.com/hooks/sw/status?leg=a", BODY_B)
        assert await post(http, url, BODY_B, full) == (200, b"")
        # the vector signed over the path without the prefix must not pass
        assert (await post(http, url, BODY_B, {SHA256_HEADER: SHA256_B}))[0] == 403
        assert await post(http, f"http://127.0.0.1:{port}/", None, method="GET") == (
            200,
            b"hello",
        )
        assert app_stats(sub) == ReceiverStats(received=2, accepted=1, rejected_signature=1)
    finally:
        await runner.cleanup()
    assert len(sink.events) == 1
    with pytest.raises(ValueError, match=r"^app: not an application made by create_app\(\)$"):
        app_stats(user_app)


# --------------------------------------------------------------------------- lifecycle


async def test_restart_on_the_same_port(http: aiohttp.ClientSession) -> None:
    sink = ListSink()
    receiver = Receiver(sink)
    with pytest.raises(RuntimeError, match="start"):
        _ = receiver.url
    await receiver.start()
    await receiver.start()  # idempotent
    try:
        port = receiver.port
        assert port != 0
        assert repr(receiver).startswith("<Receiver running")
        assert await post(http, receiver.url, BODY_B) == (200, b"")
        await receiver.aclose()
        await receiver.aclose()  # idempotent
        assert repr(receiver).startswith("<Receiver stopped")
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(http, receiver.url, BODY_B)
        await receiver.start()
        assert receiver.port == port
        assert await post(http, receiver.url, BODY_B) == (200, b"")
        assert receiver.stats() == ReceiverStats(received=2, accepted=2)  # kept across restarts
    finally:
        await receiver.aclose()
    assert len(sink.events) == 2
    assert receiver.sink is sink


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"path": "sw"}, "path"),
        ({"path": "/sw?x=1"}, "path"),
        ({"public_url": "example.com"}, "public_url"),
        ({"public_url": "ftp://example.com"}, "public_url"),
        ({"public_url": "https://example.com/?a=1"}, "public_url"),
        ({"signing_key": ""}, "signing_key"),
        ({"max_body_size": 0}, "max_body_size"),
    ],
)
def test_settings_validation_names_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{field}:"):
        ReceiverSettings(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"inbound_path": "/signalwire/events"}, "inbound_path: must differ from path"),
        (
            {"metrics_path": "/signalwire/events"},
            "metrics_path: must differ from path and inbound_path",
        ),
        (
            {"metrics_path": "/signalwire/inbound"},
            "metrics_path: must differ from path and inbound_path",
        ),
        (
            {"metrics_path": "metrics"},
            "metrics_path: must start with '/' and hold no query or fragment, got 'metrics'",
        ),
    ],
)
def test_routes_that_collide_are_refused_word_for_word(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ReceiverSettings(**options)
    assert str(raised.value) == message
    # the defaults themselves are three distinct routes, and metrics are off
    settings = ReceiverSettings()
    assert (settings.path, settings.inbound_path, settings.metrics_path) == (
        "/signalwire/events",
        "/signalwire/inbound",
        None,
    )


def test_receiver_arguments_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"^port:"):
        Receiver(ListSink(), port=70000)
    with pytest.raises(ConfigurationError, match=r"^shutdown_timeout:"):
        Receiver(ListSink(), shutdown_timeout=-1)


# --------------------------------------------------------------------------- ASGI


class ASGIResult:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    @property
    def status(self) -> int | None:
        for m in self.messages:
            if m["type"] == "http.response.start":
                return int(m["status"])
        return None

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.messages if m["type"] == "http.response.body")


async def call_asgi(
    app: ASGIReceiver,
    *,
    method: str = "POST",
    path: str = "/sw/status",
    query: bytes = b"leg=a",
    chunks: Iterable[bytes] = (BODY_B,),
    headers: dict[str, str] | None = None,
    content_length: bool = True,
    root_path: str = "",
    raw_path: bool = True,
    disconnect: bool = False,
    host: str = "internal:8000",
) -> ASGIResult:
    """Drive ``app`` through the ASGI protocol; header values (and ``host``) are
    latin-1, so a str holds any bytes."""
    parts = list(chunks)
    raw_headers = [(b"host", host.encode("latin-1"))]
    if content_length:
        raw_headers.append((b"content-length", str(sum(map(len, parts))).encode()))
    raw_headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "query_string": query,
        "root_path": root_path,
        "headers": raw_headers,
        "server": ("internal", 8000),
    }
    if raw_path:
        scope["raw_path"] = path.encode()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    if disconnect:
        messages = [{"type": "http.request", "body": b"{", "more_body": True}]
        messages.append({"type": "http.disconnect"})
    result = ASGIResult()

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        result.messages.append(dict(message))

    async with asyncio.timeout(10):
        await app(scope, receive, send)
    return result


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({SHA256_HEADER: SHA256_B}, b"leg=a", 200),
        ({SHA1_HEADER: SHA1_B}, b"leg=a", 200),
        ({SHA256_HEADER: SHA256_B}, b"leg=a&", 403),
        ({SHA1_HEADER: SHA1_B.upper()}, b"leg=a", 403),
        ({SHA256_HEADER: SHA256_B.upper()}, b"leg=a", 403),
        ({}, b"leg=a", 403),
    ],
    ids=["sha256", "sha1-only", "ampersand", "uppercase-sha1", "uppercase-sha256", "missing"],
)
async def test_asgi_signature_vector_b(
    headers: dict[str, str], query: bytes, expected: int
) -> None:
    sink = ListSink()
    app = asgi_app(sink, SETTINGS_B)
    result = await call_asgi(app, headers=headers, query=query, chunks=[BODY_B[:40], BODY_B[40:]])
    assert (result.status, result.body) == (expected, b"")
    if expected == 200:
        assert app.stats() == ReceiverStats(received=1, accepted=1)
        assert [e.control_id for e in sink.events] == ["play-1"]
    else:
        assert app.stats() == ReceiverStats(received=1, rejected_signature=1)
        assert sink.events == []


async def test_asgi_vector_a_and_served_url() -> None:
    sink = ListSink()
    app = asgi_app(sink, ReceiverSettings(path="/", public_url=PUBLIC_A, signing_key=KEY_A))
    result = await call_asgi(
        app, path="/", query=b"", chunks=[BODY_A], headers={SHA1_HEADER: SHA1_A}
    )
    assert result.status == 200
    # no public_url: the Host header and the scope's scheme make the signed URL
    key = "PSK_local"
    app2 = asgi_app(sink, ReceiverSettings(signing_key=key))
    url = b"http://internal:8000/signalwire/events?tag=1"
    digest = hmac.new(key.encode(), url + BODY_B, hashlib.sha1).hexdigest()
    result = await call_asgi(
        app2, path="/signalwire/events", query=b"tag=1", headers={SHA1_HEADER: digest}
    )
    assert result.status == 200
    assert [type(e) for e in sink.events] == [UnknownEvent, PlayEvent]


@pytest.mark.parametrize("raw_path", [True, False])
async def test_asgi_mounted_with_root_path(raw_path: bool) -> None:
    sink = ListSink()
    app = asgi_app(sink, SETTINGS_B)
    headers = sign(KEY_B, "https://example.com/hooks/sw/status?leg=a", BODY_B)
    # ASGI: path includes root_path
    result = await call_asgi(
        app, path="/hooks/sw/status", root_path="/hooks", headers=headers, raw_path=raw_path
    )
    assert result.status == 200
    # older frameworks strip the mount prefix from path; the full URL is still signed
    result = await call_asgi(
        app, path="/sw/status", root_path="/hooks", headers=headers, raw_path=False
    )
    assert result.status == 200
    assert len(sink.events) == 2


async def test_asgi_size_limit_and_bad_bodies() -> None:
    sink = ListSink()
    app = asgi_app(sink, ReceiverSettings(max_body_size=100))
    big = [b"x" * 60, b"x" * 60]
    assert (await call_asgi(app, path="/signalwire/events", chunks=big)).status == 413
    streamed = await call_asgi(app, path="/signalwire/events", chunks=big, content_length=False)
    assert streamed.status == 413
    assert (await call_asgi(app, path="/signalwire/events", chunks=[b"{nope"])).status == 400
    assert (await call_asgi(app, path="/signalwire/events", chunks=[b""])).status == 400
    assert (await call_asgi(app, path="/signalwire/events", chunks=[UNKNOWN_BODY])).status == 200
    assert app.stats() == ReceiverStats(
        received=5, accepted=1, rejected_malformed=2, rejected_too_large=2, unknown_events=1
    )
    assert [type(e) for e in sink.events] == [UnknownEvent]


async def test_asgi_failing_sink_method_path_and_disconnect() -> None:
    app = asgi_app(FailingSink())
    ok = await call_asgi(app, path="/signalwire/events")
    assert (ok.status, ok.body) == (200, b"")
    not_post = await call_asgi(app, method="GET", path="/signalwire/events", chunks=[])
    assert not_post.status == 405
    assert (b"allow", b"POST") in not_post.messages[0]["headers"]
    assert (await call_asgi(app, path="/other")).status == 404
    gone = await call_asgi(app, path="/signalwire/events", disconnect=True, content_length=False)
    assert gone.messages == []  # nobody to answer; counted like an unreadable body
    assert app.stats() == ReceiverStats(received=2, accepted=1, rejected_malformed=1, sink_errors=1)


async def test_asgi_lifespan_and_websocket() -> None:
    app = asgi_app(ListSink())
    inbox: list[dict[str, Any]] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async with asyncio.timeout(10):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        await app({"type": "websocket", "path": "/signalwire/events"}, receive, send)
    assert sent[-1]["type"] == "websocket.close"


# --------------------------------------------------------------------------- never a 500
# Each of these answered 500 before (and counted the request in no outcome counter).


def raw_post(
    target: bytes,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    host: bytes = b"127.0.0.1",
    close: bool = True,
) -> bytes:
    """The bytes of a POST, exactly as given (headers may hold any byte but CR/LF)."""
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: " + host]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def raw_exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` on a new connection to 127.0.0.1:``port``; the status of the first
    response and its head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return int(head.split(b" ", 2)[1]), head


def outcomes(stats: ReceiverStats) -> int:
    """The sum of the outcome counters: equals ``received`` at all times."""
    return (
        stats.accepted
        + stats.rejected_signature
        + stats.rejected_malformed
        + stats.rejected_too_large
        + stats.rejected_timeout
        + stats.rejected_error
    )


HUGE_INT = b"9" * 310  # > 1.8e308: float() overflows
HUGE_TIMESTAMP_BODIES = [
    b'{"event_type":"calling.call.hologram","timestamp":' + HUGE_INT + b',"params":{}}',
    b'{"event_type":"calling.call.play","timestamp":' + HUGE_INT + b',"params":{}}',
    b'{"event_type":"calling.call.hologram","timestamp":' + b"9" * 4300 + b"}",
]


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("body", HUGE_TIMESTAMP_BODIES, ids=["unknown", "known", "4300-digits"])
async def test_huge_integer_timestamp_is_accepted_without_it(body: bytes, signed: bool) -> None:
    sink = ListSink()
    settings = ReceiverSettings(signing_key=KEY_B if signed else None)
    async with Receiver(sink, settings) as receiver:
        # raw_post sends "Host: 127.0.0.1": the signed URL has no port
        headers = sign(KEY_B, "http://127.0.0.1/signalwire/events", body) if signed else {}
        data = raw_post(
            settings.path.encode(), body, [(k.encode(), v.encode()) for k, v in headers.items()]
        )
        assert (await raw_exchange(receiver.port, data))[0] == 200
        assert receiver.stats() == ReceiverStats(received=1, accepted=1, unknown_events=1)
    assert [e.timestamp for e in sink.events] == [None]


@pytest.mark.parametrize(
    "value",
    ["é".encode(), b"\xff" * 64, "\u4e2d".encode() * 21 + b"a", b"\x80"],
    ids=["e-acute", "ff-bytes", "cjk-64-long", "lone-continuation"],
)
@pytest.mark.parametrize("header", [SHA256_HEADER, SHA1_HEADER])
async def test_non_ascii_signature_header_is_403(header: str, value: bytes) -> None:
    sink = ListSink()
    async with Receiver(sink, SETTINGS_B) as receiver:
        data = raw_post(b"/sw/status?leg=a", BODY_B, [(header.encode(), value)])
        assert (await raw_exchange(receiver.port, data))[0] == 403
        assert receiver.stats() == ReceiverStats(received=1, rejected_signature=1)
    app = asgi_app(sink, SETTINGS_B)
    result = await call_asgi(app, headers={header: value.decode("latin-1")})
    assert result.status == 403
    assert app.stats() == ReceiverStats(received=1, rejected_signature=1)
    assert sink.events == []


@pytest.mark.parametrize(
    "host",
    [b"h\xff\xe9st", b"\xc3\xa9xample.com:8080", b"\xed\xa0\x80"],
    ids=["ff", "utf8", "cesu"],
)
async def test_non_utf8_host_with_signing_key_is_checked_not_crashed(host: bytes) -> None:
    """Without public_url the Host header is part of the signed URL, byte for byte."""
    sink = ListSink()
    settings = ReceiverSettings(signing_key=KEY_B)
    async with Receiver(sink, settings) as receiver:
        target = b"/signalwire/events?x=%ff"
        signed_url = b"http://" + host + target
        good = hmac.new(KEY_B.encode(), signed_url + BODY_B, hashlib.sha256).hexdigest()
        for digest, status in ((good, 200), ("0" * 64, 403)):
            data = raw_post(target, BODY_B, [(SHA256_HEADER.encode(), digest.encode())], host=host)
            assert (await raw_exchange(receiver.port, data))[0] == status
        assert receiver.stats() == ReceiverStats(received=2, accepted=1, rejected_signature=1)
    # the ASGI adapter signs the bytes it was given in the same way
    app = asgi_app(sink, settings)
    raw_headers = {SHA256_HEADER: good}
    scope_host = host.decode("latin-1")
    result = await call_asgi(
        app,
        path="/signalwire/events",
        query=b"x=%ff",
        headers=raw_headers,
        host=scope_host,
    )
    assert result.status == 200
    assert len(sink.events) == 2


async def test_mounted_app_survives_the_same_inputs() -> None:
    sink = ListSink()
    user_app = web.Application()
    sub = create_app(sink, ReceiverSettings(path="/sw/status", signing_key=KEY_B))
    user_app.add_subapp("/hooks", sub)
    runner = web.AppRunner(user_app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        target = b"/hooks/sw/status"
        sig = (SHA256_HEADER.encode(), "é".encode())
        assert (await raw_exchange(port, raw_post(target, BODY_B, [sig])))[0] == 403
        assert (await raw_exchange(port, raw_post(target, BODY_B, [sig], host=b"\xff")))[0] == 403
        signed = sign(KEY_B, f"http://127.0.0.1{target.decode()}", HUGE_TIMESTAMP_BODIES[0])
        data = raw_post(
            target, HUGE_TIMESTAMP_BODIES[0], [(k.encode(), v.encode()) for k, v in signed.items()]
        )
        assert (await raw_exchange(port, data))[0] == 200
        stats = app_stats(sub)
        assert stats == ReceiverStats(
            received=3, accepted=1, rejected_signature=2, unknown_events=1
        )
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "params",
    [
        {"control_id": "c" * 129, "call_id": "x"},
        {"call_id": "c" * 129},
        {"call_id": "c" * 100_000},
    ],
    ids=["control-129", "call-129", "call-100k"],
)
@pytest.mark.parametrize("event_type", ["calling.call.play", "calling.call.hologram"])
async def test_oversized_ids_are_refused_as_malformed(
    http: aiohttp.ClientSession, event_type: str, params: dict[str, str]
) -> None:
    sink = ListSink()
    body = json.dumps({"event_type": event_type, "params": params}).encode()
    async with Receiver(sink) as receiver:
        assert (await post(http, receiver.url, body))[0] == 400
        ok = {k: v[:128] for k, v in params.items()}  # exactly the limit passes
        ok_body = json.dumps({"event_type": event_type, "params": ok}).encode()
        assert (await post(http, receiver.url, ok_body))[0] == 200
        unknown = int(event_type.endswith("hologram"))
        assert receiver.stats() == ReceiverStats(
            received=2, accepted=1, rejected_malformed=1, unknown_events=unknown
        )
    assert len(sink.events) == 1
