"""Edges of the receiver: exact limits, the URL each front end signs, the ASGI messages
sent, settings and constructor bounds, and the standalone server's own options."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from signalwire_calls._signing import SHA1_HEADER, SHA256_HEADER, sign
from signalwire_calls.errors import ConfigurationError
from signalwire_calls.receiver import (
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    app_stats,
    asgi_app,
    create_app,
)
from tests.test_receiver import (
    BODY_B,
    KEY_B,
    SETTINGS_B,
    ListSink,
    post,
    raw_exchange,
    raw_post,
)


def padded(size: int) -> bytes:
    """BODY_B padded with a JSON string to exactly ``size`` bytes (still an event)."""
    body = BODY_B[:-1] + b',"pad":"' + b"x" * (size - len(BODY_B) - 9) + b'"}'
    assert len(body) == size
    return body


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.asynccontextmanager
async def serving(app: web.Application, **runner_options: Any) -> Any:
    """``app`` as the root application of a real server on 127.0.0.1; yields the port."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "/sw#x"}, "path: must start with '/' and hold no query or fragment"),
        ({"public_url": "https://example.com/?"}, "public_url: must hold no query or fragment"),
        ({"public_url": "https://example.com/#"}, "public_url: must hold no query or fragment"),
        ({"public_url": "https://example.com/#f"}, "public_url: must hold no query or fragment"),
        ({"public_url": "https://"}, "public_url: must be an http(s) URL with a host"),
        ({"signing_key": ""}, "signing_key: must be a non-empty string or None"),
        ({"signing_key": "k\ud800"}, "signing_key: must be encodable as UTF-8"),
        ({"max_body_size": 0}, "max_body_size: must be >= 1 byte, got 0"),
        ({"max_body_size": True}, "max_body_size: must be >= 1 byte, got True"),
        ({"body_timeout": -1}, "body_timeout: must be a finite number of seconds > 0, got -1"),
    ],
)
def test_settings_messages(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ReceiverSettings(**options)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "options",
    [
        {"public_url": "http://example.com"},
        {"public_url": "https://example.com/base/"},
        {"max_body_size": 1},
        {"body_timeout": 0.001, "keepalive_timeout": 1e-3},
        {"signing_key": "clé"},
    ],
)
def test_settings_accepted(options: dict[str, Any]) -> None:
    assert ReceiverSettings(**options)


@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        ({"port": 0}, True),
        ({"port": 65535}, True),
        ({"port": 65536}, False),
        ({"port": -1}, False),
        ({"shutdown_timeout": 0}, True),
        ({"shutdown_timeout": 0.5}, True),
        ({"shutdown_timeout": float("inf")}, False),
        ({"shutdown_timeout": float("nan")}, False),
    ],
)
def test_receiver_argument_bounds(options: dict[str, Any], accepted: bool) -> None:
    if accepted:
        assert not Receiver(ListSink(), **options).running
    else:
        with pytest.raises(ConfigurationError, match=rf"^{next(iter(options))}: must be"):
            Receiver(ListSink(), **options)


# --------------------------------------------------------------------------- standalone


async def test_binds_the_port_it_is_given(http: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Receiver(ListSink(), port=port) as receiver:
        assert receiver.port == port
        assert receiver.url == f"http://127.0.0.1:{port}/signalwire/events"
        assert (await post(http, receiver.url, BODY_B))[0] == 200


async def test_binds_only_the_host_it_is_given() -> None:
    """127.0.0.1 only: another loopback address of this machine gets no server."""
    async with Receiver(ListSink()) as receiver:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.2", receiver.port)
        _, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br"])
async def test_undecodable_content_encoding_is_a_quiet_400(
    caplog: pytest.LogCaptureFixture, encoding: bytes
) -> None:
    """aiohttp inflates compressed bodies; junk fails the read (400, malformed) and
    again when aiohttp drains it: that second failure stays at DEBUG. (Without the
    Brotli package, aiohttp's parser refuses ``br`` outright: a parser 400.)"""
    caplog.set_level(logging.DEBUG)
    async with Receiver(ListSink()) as receiver:
        for body in (b"\x1f\x8b\x08\x00junkjunkjunk", b"plainly not compressed"):
            data = raw_post(b"/signalwire/events", body, [(b"Content-Encoding", encoding)])
            assert (await raw_exchange(receiver.port, data))[0] == 400
        async with asyncio.timeout(5):
            while (s := receiver.stats()).rejected_malformed + s.rejected_protocol < 2:
                await asyncio.sleep(0.01)
    assert s.received == s.rejected_malformed
    assert s.rejected_malformed + s.rejected_protocol == 2
    quiet = logging.DEBUG
    if encoding != b"br":
        assert s == ReceiverStats(received=2, rejected_malformed=2)
    else:
        quiet = logging.WARNING  # the one throttled parser-refusal line
    lifecycle = "webhook receiver "  # the INFO lines of the server's start and stop
    assert [
        r.getMessage()
        for r in caplog.records
        if r.levelno > quiet and not r.getMessage().startswith(lifecycle)
    ] == []


@pytest.mark.parametrize("access_log", [None, False, True])
async def test_access_log_only_when_asked(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, access_log: bool | None
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    options: dict[str, Any] = {} if access_log is None else {"access_log": access_log}
    async with Receiver(ListSink(), **options) as receiver:
        assert (await post(http, receiver.url, BODY_B))[0] == 200
    lines = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == int(bool(access_log))


async def test_aclose_does_not_wait_past_shutdown_timeout_for_a_slow_client() -> None:
    settings = ReceiverSettings(body_timeout=30.0)
    receiver = Receiver(ListSink(), settings, shutdown_timeout=0.2)
    await receiver.start()
    _, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    try:
        writer.write(raw_post(b"/signalwire/events", BODY_B, close=False)[:-10])
        await writer.drain()
        await asyncio.sleep(0.1)  # the handler now waits for the rest of the body
        async with asyncio.timeout(5):  # the runner's own default would wait 60 s
            await receiver.aclose()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_405_names_the_allowed_method(http: aiohttp.ClientSession) -> None:
    async with (
        Receiver(ListSink()) as receiver,
        http.get(receiver.url) as resp,
    ):
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"


async def test_announced_oversize_is_refused_before_any_body() -> None:
    """Content-Length over the limit: 413 at once, nothing read (else: a 408 later)."""
    settings = ReceiverSettings(max_body_size=100, body_timeout=0.5)
    async with Receiver(ListSink(), settings) as receiver:
        head = b"POST /signalwire/events HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n"
        status, answer = await raw_exchange(receiver.port, head)
        assert status == 413
        assert b"\r\nConnection: close\r\n" in answer  # the unread body ends the connection
        head = head.replace(b"101", b"100")  # at the limit it waits for the body
        assert (await raw_exchange(receiver.port, head))[0] == 408
        assert receiver.stats() == ReceiverStats(
            received=2, rejected_too_large=1, rejected_timeout=1
        )


async def send_chunked(port: int, pieces: list[bytes]) -> int:
    """POST ``pieces`` as chunks, each in its own write a moment apart."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            writer.write(
                b"POST /signalwire/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for piece in pieces:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.write(b"0\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return int(head.split(b" ", 2)[1])


async def test_chunked_body_counted_across_pieces() -> None:
    sink = ListSink()
    async with Receiver(sink, ReceiverSettings(max_body_size=1024)) as receiver:
        exact = padded(1024)  # cut inside the JSON structure: pieces must join as sent
        assert await send_chunked(receiver.port, [exact[:20], exact[20:]]) == 200
        over = padded(1025)
        assert await send_chunked(receiver.port, [over[:600], over[600:]]) == 413
        assert receiver.stats() == ReceiverStats(received=2, accepted=1, rejected_too_large=1)
    assert len(sink.events) == 1


async def wait_for_stats(receiver: Receiver, received: int) -> ReceiverStats:
    async with asyncio.timeout(5):
        while receiver.stats().received < received or outcomes_of(receiver) < received:
            await asyncio.sleep(0.01)
    return receiver.stats()


def outcomes_of(receiver: Receiver) -> int:
    s = receiver.stats()
    return (
        s.accepted
        + s.rejected_signature
        + s.rejected_malformed
        + s.rejected_too_large
        + s.rejected_timeout
        + s.rejected_error
    )


async def test_client_gone_mid_body_is_an_unreadable_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="signalwire_calls.receiver")
    async with Receiver(ListSink()) as receiver:
        _, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(raw_post(b"/signalwire/events", BODY_B)[:-10])
        await writer.drain()
        await asyncio.sleep(0.1)  # the handler is reading the body
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
            stats = await wait_for_stats(receiver, 1)
    assert stats == ReceiverStats(received=1, rejected_malformed=1)
    # Every line but the receiver's own start and stop (INFO) is about this request.
    messages = [r.getMessage() for r in caplog.records if r.levelno != logging.INFO]
    assert messages == [
        "webhook refused (400): body could not be read (ConnectionResetError('Connection lost'))"
    ]


async def test_broken_chunked_encoding_mid_body_ends_in_the_body_deadline() -> None:
    """aiohttp queues the parser's 400 behind the request being read and gives that
    request's body no error: the body deadline is what ends it."""
    async with Receiver(ListSink(), ReceiverSettings(body_timeout=0.3)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        try:
            async with asyncio.timeout(5):
                writer.write(
                    b"POST /signalwire/events HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n"
                )
                await writer.drain()
                await asyncio.sleep(0.1)
                writer.write(b"zz\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert head.startswith(b"HTTP/1.1 408 ")
        assert receiver.stats() == ReceiverStats(received=1, rejected_timeout=1)


@pytest.mark.parametrize("late", [False, True], ids=["at-once", "late-body"])
async def test_mounted_under_a_root_with_a_smaller_client_max_size(late: bool) -> None:
    """The root application's request size limit applies first: 413, not a 500 --
    whether the body came with the head or after it."""
    sink = ListSink()
    root = web.Application(client_max_size=200)
    sub = create_app(sink, ReceiverSettings(max_body_size=4096))
    root.add_subapp("/hooks", sub)
    async with serving(root) as port:
        for size, status in ((300, 413), (200, 200)):
            data = raw_post(b"/hooks/signalwire/events", padded(size))
            if not late:
                assert (await raw_exchange(port, data))[0] == status
                continue
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                async with asyncio.timeout(5):
                    writer.write(data[:-50])
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(data[-50:])
                    head = await reader.readuntil(b"\r\n\r\n")
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            assert int(head.split(b" ", 2)[1]) == status
    assert app_stats(sub) == ReceiverStats(received=2, accepted=1, rejected_too_large=1)


async def test_created_app_as_root_honours_a_limit_over_one_mib() -> None:
    sink = ListSink()
    app = create_app(sink, ReceiverSettings(max_body_size=3 * 1024 * 1024))
    async with serving(app) as port:
        body = padded(2 * 1024 * 1024)
        assert (await raw_exchange(port, raw_post(b"/signalwire/events", body)))[0] == 200
    assert len(sink.events) == 1


@pytest.mark.parametrize(
    ("first", "second", "status"),
    [("good", "bad", 200), ("bad", "good", 403)],
)
async def test_first_of_repeated_signature_headers_counts(
    first: str, second: str, status: int
) -> None:
    """The same on every front end: the first header of a name is the one checked."""
    values = {"good": SHA256_B_GOOD, "bad": "0" * 64}
    name = SHA256_HEADER.encode()
    headers = [(name, values[first].encode()), (name, values[second].encode())]
    async with Receiver(ListSink(), SETTINGS_B) as receiver:
        data = raw_post(b"/sw/status?leg=a", BODY_B, headers)
        assert (await raw_exchange(receiver.port, data))[0] == status
    app = asgi_app(ListSink(), SETTINGS_B)
    sent = await drive(app, headers=[(b"host", b"x"), *[(n.lower(), v) for n, v in headers]])
    assert sent[0]["status"] == status


SHA256_B_GOOD = sign(KEY_B, "https://example.com/sw/status?leg=a", BODY_B)[SHA256_HEADER]


# --------------------------------------------------------------------------- ASGI


async def drive(
    app: Any,
    *,
    scope: dict[str, Any] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    block: bool = False,
) -> list[dict[str, Any]]:
    """Call ``app`` with a POST to /sw/status?leg=a (``scope`` overrides keys; a value of
    None removes one); ``receive`` hands out ``messages`` (default: BODY_B) then blocks
    when ``block``, else reports a disconnect."""
    full: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "method": "POST",
        "scheme": "http",
        "path": "/sw/status",
        "raw_path": b"/sw/status",
        "query_string": b"leg=a",
        "root_path": "",
        "headers": headers if headers is not None else [(b"host", b"internal:8000")],
        "server": ("internal", 8000),
    }
    for key, value in (scope or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    pending = list(messages if messages is not None else [{"type": "http.request", "body": BODY_B}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        if block:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async with asyncio.timeout(5):
        await app(full, receive, send)
    return sent


SIGNED_URLS = [
    ({}, [], b"http://internal:8000/sw/status?leg=a"),
    ({"raw_path": b"/sw/st%61tus"}, [], b"http://internal:8000/sw/st%61tus?leg=a"),
    ({"raw_path": b"/sw/st\xffus"}, [], b"http://internal:8000/sw/st\xffus?leg=a"),
    (
        {"raw_path": None, "root_path": "/m:@x\udcff", "path": "/m:@x\udcff/sw/status"},
        [],
        b"http://internal:8000/m:@x%FF/sw/status?leg=a",
    ),
    ({"raw_path": None, "root_path": None}, [], b"http://internal:8000/sw/status?leg=a"),
    ({}, [(b"host", b"h\xffst")], b"http://h\xffst/sw/status?leg=a"),
    ({"server": ("10.0.0.1", 9000)}, None, b"http://10.0.0.1:9000/sw/status?leg=a"),
    ({"server": None}, None, b"http://localhost/sw/status?leg=a"),
    ({"scheme": "https"}, [], b"https://internal:8000/sw/status?leg=a"),
    ({"scheme": None}, [], b"http://internal:8000/sw/status?leg=a"),
    ({"query_string": None}, [], b"http://internal:8000/sw/status"),
    ({"query_string": b"a=\xff"}, [], b"http://internal:8000/sw/status?a=\xff"),
]


@pytest.mark.parametrize(("overrides", "extra_headers", "url"), SIGNED_URLS)
@pytest.mark.parametrize("sha1", [False, True], ids=["sha256", "sha1"])
async def test_asgi_signs_the_url_as_received(
    overrides: dict[str, Any],
    extra_headers: list[tuple[bytes, bytes]] | None,
    url: bytes,
    sha1: bool,
) -> None:
    """``extra_headers`` None: no Host header at all; [] the default Host."""
    settings = ReceiverSettings(path="/sw/status", signing_key=KEY_B)
    app = asgi_app(ListSink(), settings)
    digest = hmac.new(KEY_B.encode(), url + BODY_B, hashlib.sha1 if sha1 else hashlib.sha256)
    name = (SHA1_HEADER if sha1 else SHA256_HEADER).lower().encode()
    host = [(b"host", b"internal:8000")]
    headers = [] if extra_headers is None else extra_headers or host
    headers = [*headers, (name, digest.hexdigest().encode())]
    sent = await drive(app, scope=overrides, headers=headers)
    assert sent[0]["status"] == 200, url
    assert app.stats() == ReceiverStats(received=1, accepted=1)


async def test_asgi_sends_exactly_start_and_body() -> None:
    app = asgi_app(ListSink(), ReceiverSettings(path="/sw/status"))
    empty = [(b"content-length", b"0")]
    assert await drive(app) == [
        {"type": "http.response.start", "status": 200, "headers": empty},
        {"type": "http.response.body", "body": b""},
    ]
    assert await drive(app, scope={"path": "/other"}) == [
        {"type": "http.response.start", "status": 404, "headers": empty},
        {"type": "http.response.body", "body": b""},
    ]
    assert (await drive(app, scope={"method": "GET"}))[0] == {
        "type": "http.response.start",
        "status": 405,
        "headers": [(b"content-length", b"0"), (b"allow", b"POST")],
    }


async def test_asgi_websocket_is_closed_normally() -> None:
    app = asgi_app(ListSink())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "websocket", "path": "/signalwire/events"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]


async def test_asgi_announced_oversize_is_refused_before_any_body() -> None:
    app = asgi_app(
        ListSink(), ReceiverSettings(path="/sw/status", max_body_size=100, body_timeout=0.2)
    )
    for length, status in ((b"101", 413), (b"100", 408), (b"junk", 408)):
        headers = [(b"host", b"x"), (b"content-length", length)]
        sent = await drive(app, headers=headers, messages=[], block=True)
        assert sent[0]["status"] == status
    assert app.stats() == ReceiverStats(received=3, rejected_too_large=1, rejected_timeout=2)


async def test_asgi_streamed_body_limit_is_exact() -> None:
    sink = ListSink()
    app = asgi_app(sink, ReceiverSettings(path="/sw/status", max_body_size=1024))

    def pieces(body: bytes) -> list[dict[str, Any]]:
        return [
            {"type": "http.request", "body": body[:300], "more_body": True},
            {"type": "http.request", "more_body": True},  # "body" may be left out
            {"type": "http.request", "body": body[300:]},  # and so may "more_body"
        ]

    for size, status, close in ((1024, 200, []), (1025, 413, [(b"connection", b"close")])):
        sent = await drive(app, headers=[(b"host", b"x")], messages=pieces(padded(size)))
        assert sent[0]["status"] == status
        assert sent[0]["headers"] == [(b"content-length", b"0"), *close]
    assert app.stats() == ReceiverStats(received=2, accepted=1, rejected_too_large=1)
    assert len(sink.events) == 1


async def test_wrong_path_with_a_body_closes_the_connection() -> None:
    """404 leaves the body unread (a junk compressed one fails aiohttp's drain): the
    answer says so, so a client does not reuse a connection the server drops."""
    async with Receiver(ListSink()) as receiver:
        data = raw_post(b"/elsewhere", b"junk", [(b"Content-Encoding", b"gzip")], close=False)
        status, head = await raw_exchange(receiver.port, data)
        assert status == 404
        assert b"\r\nConnection: close\r\n" in head
