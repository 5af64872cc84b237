"""Slow and idle clients against real servers on 127.0.0.1: ``body_timeout`` answers 408
and closes, ``keepalive_timeout`` closes idle connections (standalone ``Receiver``), and
the ASGI adapter applies the body deadline through the ASGI protocol."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from signalwire_calls.errors import ConfigurationError
from signalwire_calls.receiver import (
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    app_stats,
    asgi_app,
    create_app,
)
from tests.test_receiver import BODY_B, ListSink, outcomes

SHORT = ReceiverSettings(body_timeout=0.3, keepalive_timeout=0.3)


class Conn:
    """A raw client connection that can write slowly and tell when the server closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def dribble(self, data: bytes, every: float = 0.05) -> None:
        """Send ``data`` one byte at a time; stops quietly once the server hung up."""
        with contextlib.suppress(OSError):
            for i in range(len(data)):
                await self.send(data[i : i + 1])
                await asyncio.sleep(every)

    async def status(self) -> int:
        head = await self.reader.readuntil(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1])

    async def closed_by_server(self) -> bool:
        """Reads until EOF (True) or a reset; anything else read is ignored."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Conn]:
    conn = await Conn.open(port)
    try:
        yield conn
    finally:
        await conn.aclose()


def head(path: str = "/signalwire/events", *, length: int | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_defaults_are_bounded() -> None:
    settings = ReceiverSettings()
    assert 15 <= settings.keepalive_timeout <= 75
    assert 5 <= settings.body_timeout <= 30


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_dribbled_body_gets_408_and_the_connection_closes(chunked: bool) -> None:
    sink = ListSink()
    async with Receiver(sink, SHORT) as receiver, connect(receiver.port) as conn:
        if chunked:
            await conn.send(head() + b"10\r\n")
        else:
            await conn.send(head(length=len(BODY_B)))
        dribbler = asyncio.create_task(conn.dribble(BODY_B))  # ~7 s at this pace
        try:
            async with asyncio.timeout(5):
                assert await conn.status() == 408
                assert await conn.closed_by_server()
        finally:
            dribbler.cancel()
            await asyncio.gather(dribbler, return_exceptions=True)
        stats = receiver.stats()
    assert stats == ReceiverStats(received=1, rejected_timeout=1)
    assert sink.events == []


async def test_body_within_the_deadline_is_accepted() -> None:
    """The deadline runs over the whole body: one sent in pieces in time is fine."""
    sink = ListSink()
    settings = ReceiverSettings(body_timeout=5.0)
    async with Receiver(sink, settings) as receiver, connect(receiver.port) as conn:
        await conn.send(head(length=len(BODY_B)))
        async with asyncio.timeout(5):
            await conn.dribble(BODY_B[:40], every=0.001)
            await conn.send(BODY_B[40:])
            assert await conn.status() == 200
        assert receiver.stats() == ReceiverStats(received=1, accepted=1)
    assert len(sink.events) == 1


async def test_idle_keep_alive_connection_is_closed() -> None:
    sink = ListSink()
    async with Receiver(sink, SHORT) as receiver, connect(receiver.port) as conn:
        async with asyncio.timeout(5):
            await conn.send(head(length=len(BODY_B)) + BODY_B)
            assert await conn.status() == 200  # HTTP/1.1: the connection stays open...
            assert await conn.closed_by_server()  # ...until it idled keepalive_timeout
        assert receiver.stats() == ReceiverStats(received=1, accepted=1)


async def test_long_keep_alive_keeps_the_connection() -> None:
    """The control for the test above: a longer keepalive_timeout keeps it open."""
    sink = ListSink()
    settings = ReceiverSettings(keepalive_timeout=30.0)
    async with Receiver(sink, settings) as receiver, connect(receiver.port) as conn:
        await conn.send(head(length=len(BODY_B)) + BODY_B)
        assert await asyncio.wait_for(conn.status(), 5) == 200
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.reader.read(1), 0.6)
        await conn.send(head(length=len(BODY_B)) + BODY_B)  # and it is still usable
        assert await asyncio.wait_for(conn.status(), 5) == 200


@pytest.mark.parametrize("dribbled", [False, True], ids=["silent", "dribbled-head"])
async def test_silent_or_dribbling_head_is_closed_after_keepalive_timeout(dribbled: bool) -> None:
    sink = ListSink()
    data = b"POST /signalwire/events HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 if dribbled else b""
    async with Receiver(sink, SHORT) as receiver, connect(receiver.port) as conn:
        dribbler = asyncio.create_task(conn.dribble(data, every=0.05))
        try:
            async with asyncio.timeout(5):
                assert await conn.closed_by_server()
        finally:
            dribbler.cancel()
            await asyncio.gather(dribbler, return_exceptions=True)
        assert receiver.stats() == ReceiverStats()  # no request reached the handler


async def test_mounted_app_applies_body_timeout() -> None:
    """Mounted, the body deadline is ours; keep-alive is the host server's setting."""
    sink = ListSink()
    user_app = web.Application()
    sub = create_app(sink, ReceiverSettings(body_timeout=0.3))
    user_app.add_subapp("/hooks", sub)
    runner = web.AppRunner(user_app, access_log=None, keepalive_timeout=0.3)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with connect(port) as conn:
            await conn.send(head("/hooks/signalwire/events", length=len(BODY_B)))
            dribbler = asyncio.create_task(conn.dribble(BODY_B))
            try:
                async with asyncio.timeout(5):
                    assert await conn.status() == 408
            finally:
                dribbler.cancel()
                await asyncio.gather(dribbler, return_exceptions=True)
    finally:
        await runner.cleanup()

    stats = app_stats(sub)
    assert stats == ReceiverStats(received=1, rejected_timeout=1)
    assert outcomes(stats) == stats.received


# --------------------------------------------------------------------------- ASGI


async def run_asgi(
    settings: ReceiverSettings, messages: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], ReceiverStats]:
    """POST through the ASGI protocol; ``receive`` hands out ``messages`` and then
    blocks, as a server does while a slow client sends nothing."""
    app = asgi_app(ListSink(), settings)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": settings.path,
        "headers": [(b"host", b"internal")],
        "query_string": b"",
    }
    pending = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async with asyncio.timeout(5):
        await app(scope, receive, send)
    return sent, app.stats()


@pytest.mark.parametrize(
    "messages",
    [[], [{"type": "http.request", "body": BODY_B[:10], "more_body": True}]],
    ids=["nothing", "part"],
)
async def test_asgi_body_timeout_answers_408_and_asks_to_close(
    messages: list[dict[str, Any]],
) -> None:
    sent, stats = await run_asgi(ReceiverSettings(body_timeout=0.2), messages)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert stats == ReceiverStats(received=1, rejected_timeout=1)


async def test_asgi_body_in_time_is_accepted() -> None:
    messages = [
        {"type": "http.request", "body": BODY_B[:10], "more_body": True},
        {"type": "http.request", "body": BODY_B[10:], "more_body": False},
    ]
    sent, stats = await run_asgi(ReceiverSettings(body_timeout=0.2), messages)
    assert sent[0]["status"] == 200
    assert stats == ReceiverStats(received=1, accepted=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body_timeout", 0),
        ("body_timeout", -1.0),
        ("body_timeout", float("inf")),
        ("body_timeout", float("nan")),
        ("body_timeout", True),
        ("keepalive_timeout", 0.0),
        ("keepalive_timeout", float("inf")),
    ],
)
def test_timeouts_validated(field: str, value: float) -> None:
    options: dict[str, Any] = {field: value}
    with pytest.raises(ConfigurationError, match=rf"^{field}: must be a finite number"):
        ReceiverSettings(**options)
