"""The lean HTTP/1.1 client (``_h1``) against real servers on 127.0.0.1.

Framing edge cases use ``RawServer``: an ``asyncio.start_server`` that parses each request
and answers with scripted bytes (whole, in fragments, late, never, or closing instead).
Interoperability and TLS use a real aiohttp server. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import random
import socket
import ssl
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import trustme
from aiohttp import web

from signalwire_calls._h1 import (
    MAX_BODY,
    MAX_HEAD,
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    H1Pool,
    ProtocolError,
    build_request_head,
)
from signalwire_calls._http import HTTPSettings, Transport
from signalwire_calls._retry import RetryPolicy
from signalwire_calls.commands import End
from signalwire_calls.errors import ConnectError

LIMIT = 5.0  # bound of every test's asyncio.timeout, in seconds
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
PAYLOAD = b'{"call_id": "0e9c80d7", "state": "answered"}' * 10

# --------------------------------------------------------------------------- raw server


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``parts`` written ``pause`` s apart after ``delay`` s."""

    parts: tuple[bytes, ...] = ()
    pause: float = 0.0
    delay: float = 0.0
    close: bool = False  # close the connection after the parts
    hang: bool = False  # never answer: wait for the client to go away


Step = bytes | Reply
CLOSE = Reply(close=True)
HANG = Reply(hang=True)


def pieces(data: bytes, size: int, pause: float = 0.002) -> Reply:
    """``data`` written ``size`` bytes at a time."""
    return Reply(tuple(data[i : i + size] for i in range(0, len(data), size)), pause=pause)


def ok(body: bytes = b"ok", *headers: str, version: str = "1.1") -> bytes:
    """A 200 response framed by ``Content-Length``."""
    lines = [f"HTTP/{version} 200 OK", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def body_of(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[2]


class RawServer:
    """A TCP server answering each request with the next step of its script (or of
    ``respond(raw request)``); counts connections and those the client closed."""

    def __init__(self, *script: Step, respond: Callable[[bytes], Step] | None = None) -> None:
        self.script = list(script)
        self.respond = respond
        self.requests: list[bytes] = []
        self.connections = 0
        self.client_closed = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # (no task.cancel(): on 3.11 a cancelled handler makes asyncio log an error)
        self._stopping.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def _next(self, request: bytes) -> Reply:
        step = self.respond(request) if self.respond is not None else self.script.pop(0)
        return Reply((step,)) if isinstance(step, bytes) else step

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.connections += 1
        try:
            while not self._stopping.is_set():
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self._next(request)
                if reply.hang:
                    while await reader.read(65536):
                        pass
                    self.client_closed += 1
                    return
                await self._sleep(reply.delay)
                for i, part in enumerate(reply.parts):
                    if i:
                        await self._sleep(reply.pause)
                    writer.write(part)
                    await writer.drain()
                if reply.close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_closed += 1
        finally:
            writer.close()


def head_for(port: int, path: str = "/api/calls", **headers: str) -> bytes:
    return build_request_head(path, "127.0.0.1", port, 80, headers)


@contextlib.asynccontextmanager
async def serving(
    *script: Step,
    respond: Callable[[bytes], Step] | None = None,
    keepalive_timeout: float = 15.0,
    limit: float = LIMIT,
) -> AsyncIterator[tuple[RawServer, H1Pool]]:
    """A RawServer, a pool to it, and a bound on the time the block may take."""
    async with asyncio.timeout(limit), RawServer(*script, respond=respond) as srv:
        pool = H1Pool(
            "127.0.0.1", srv.port, head=head_for(srv.port), keepalive_timeout=keepalive_timeout
        )
        try:
            yield srv, pool
        finally:
            await pool.aclose()


async def until(predicate: Callable[[], bool]) -> None:
    """Wait for ``predicate`` (the caller's asyncio.timeout bounds the wait)."""
    while not predicate():
        await asyncio.sleep(0.005)


@pytest.fixture(autouse=True)
async def _no_loop_errors() -> AsyncIterator[None]:
    """Fail a test whose event loop reported an error (a callback that raised, a task
    or future exception never retrieved)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert not errors, [e.get("message") for e in errors]


# --------------------------------------------------------------------------- the request


@pytest.mark.parametrize(
    ("host", "port", "default_port", "host_line"),
    [
        ("example.com", 443, 443, "Host: example.com"),
        ("example.com", 8443, 443, "Host: example.com:8443"),
        ("::1", 443, 443, "Host: [::1]"),
        ("2001:db8::1", 8080, 80, "Host: [2001:db8::1]:8080"),
    ],
)
def test_build_request_head(host: str, port: int, default_port: int, host_line: str) -> None:
    head = build_request_head("/a/b?c=1", host, port, default_port, {"X-A": "1", "X-B": "two"})
    expected = f"POST /a/b?c=1 HTTP/1.1\r\n{host_line}\r\nX-A: 1\r\nX-B: two\r\nContent-Length: "
    assert head == expected.encode()


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nX-Injected: 1"}, {"X-A": "a\nb"}, {"X-A": "a\rb"}, {"X-A\r\nB": "1"}],
)
def test_build_request_head_refuses_crlf(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="control characters"):
        build_request_head("/", "example.com", 443, 443, headers)


@pytest.mark.parametrize("default_port", [80, 0], ids=["other-port", "default-port"])
async def test_request_bytes_on_the_wire(default_port: int) -> None:
    headers = {"Authorization": "Basic cHJvajp0b2s=", "Content-Type": "application/json"}
    async with asyncio.timeout(LIMIT), RawServer(ok(b"1"), ok(b"2")) as srv:
        default_port = default_port or srv.port
        head = build_request_head("/api/calls/abc", "127.0.0.1", srv.port, default_port, headers)
        pool = H1Pool("127.0.0.1", srv.port, head=head)
        try:
            assert (await pool.post(b'{"command": "calling.end"}', 2.0)).body == b"1"
            assert (await pool.post(b"", 2.0)).body == b"2"
        finally:
            await pool.aclose()
    host = "127.0.0.1" if default_port == srv.port else f"127.0.0.1:{srv.port}"
    head = (
        f"POST /api/calls/abc HTTP/1.1\r\nHost: {host}\r\n"
        "Authorization: Basic cHJvajp0b2s=\r\nContent-Type: application/json\r\n"
    ).encode()
    assert srv.requests == [
        head + b'Content-Length: 26\r\n\r\n{"command": "calling.end"}',
        head + b"Content-Length: 0\r\n\r\n",
    ]


# --------------------------------------------------------------------------- framing


async def test_content_length_response() -> None:
    raw = b"HTTP/1.1 201 Created\r\nX-Request-ID:  abc \r\nCONTENT-LENGTH: 5\r\n\r\nhello"
    async with serving(raw) as (_, pool):
        response = await pool.post(b"x", 2.0)
    assert (response.status, response.body) == (201, b"hello")
    assert response.headers == [("x-request-id", "abc"), ("content-length", "5")]
    assert response.header("x-request-id") == "abc"
    assert response.header("missing") is None


INTERIM = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
HEX = b"A\r\n0123456789\r\n1f\r\n%s\r\n1F\r\n%s\r\n0\r\n\r\n" % (b"x" * 31, b"y" * 31)
EXT = b'5;a=b\r\nhello\r\n1 ; c="d;e"\r\n!\r\n0;x\r\n\r\n'
GOOD = {  # response, expected status and body; each followed by a reuse of the connection
    "content-length-0": (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, b""),
    "204": (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    "304-ignores-length": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 304, b""),
    "same-length-twice": (ok(b"same", "content-length: 4"), 200, b"same"),
    "head-under-max": (ok(b"big", "X-Big: " + "a" * (MAX_HEAD - 200)), 200, b"big"),
    "bytewise": (pieces(ok(b"byte by byte", "X-A: 1"), 1), 200, b"byte by byte"),
    "head-then-body": (Reply((ok(b"body")[:-4], b"body"), 0.02), 200, b"body"),
    "split-blank-line": (Reply((ok(b"body")[:-5], b"\nbody"), 0.02), 200, b"body"),
    "split-three": (Reply((ok(b"xy")[:27], ok(b"xy")[27:-1], b"y"), 0.02), 200, b"xy"),
    "chunked": (CHUNKED + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 200, b"hello world"),
    "chunk-extensions": (CHUNKED + EXT, 200, b"hello!"),
    "trailers": (CHUNKED + b"3\r\nabc\r\n0\r\nX-Sum: 9001\r\nX-More: 1\r\n\r\n", 200, b"abc"),
    "hex-case": (CHUNKED + HEX, 200, b"0123456789" + b"x" * 31 + b"y" * 31),
    "no-chunks": (CHUNKED + b"0\r\n\r\n", 200, b""),
    "chunked-bytewise": (pieces(CHUNKED + b"3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n", 1), 200, b"abc"),
    "chunked-by-3": (
        pieces(CHUNKED + b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n", 3),
        200,
        b"wikipedia",
    ),
    "interim": (INTERIM + ok(b"final"), 200, b"final"),
    "interim-apart": (Reply((INTERIM, ok(b"final")), 0.02), 200, b"final"),
}


@pytest.mark.parametrize(("reply", "status", "body"), GOOD.values(), ids=GOOD.keys())
async def test_framed_response_keeps_the_connection(reply: Step, status: int, body: bytes) -> None:
    async with serving(reply, ok(b"next")) as (srv, pool):
        response = await pool.post(b"x", 3.0)
        assert (await pool.post(b"y", 2.0)).body == b"next"  # the response was read exactly
    assert (response.status, response.body) == (status, body)
    assert response.header("link") is None  # the 1xx heads' headers are not kept
    assert pool.opened == srv.connections == 1


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"],
    ids=["no-framing", "identity"],
)
async def test_unframed_body_runs_to_the_end_of_the_connection(head: bytes) -> None:
    reply = Reply((head, b"part one, ", b"part two"), pause=0.02, close=True)
    async with serving(reply, ok(b"new")) as (srv, pool):
        assert (await pool.post(b"x", 2.0)).body == b"part one, part two"
        assert (await pool.post(b"y", 2.0)).body == b"new"
    assert pool.opened == srv.connections == 2


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


async def test_stacked_content_codings_are_undone_last_first() -> None:
    encoded = gzip.compress(zlib.compress(PAYLOAD))  # deflate applied first, then gzip
    one_header = ok(encoded, "Content-Encoding: deflate, gzip")
    two_headers = ok(encoded, "Content-Encoding: deflate\r\nContent-Encoding: gzip")
    async with serving(one_header, two_headers) as (_, pool):
        assert (await pool.post(b"x", 2.0)).body == PAYLOAD
        assert (await pool.post(b"y", 2.0)).body == PAYLOAD


async def test_head_of_exactly_max_head_bytes_split_before_its_end() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: "
    head += b"a" * (MAX_HEAD - len(head))
    assert len(head) == MAX_HEAD
    reply = Reply((head + b"\r\n", b"\r\nok"), 0.02)  # the blank line arrives apart
    async with serving(reply) as (_, pool):
        assert (await pool.post(b"x", 2.0)).body == b"ok"


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(PAYLOAD)),
        ("x-gzip", gzip.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)),
        ("deflate", _raw_deflate(PAYLOAD)),
        ("identity", PAYLOAD),
    ],
    ids=["gzip", "x-gzip", "zlib-deflate", "raw-deflate", "identity"],
)
async def test_content_encoding_is_decoded(coding: str, encoded: bytes) -> None:
    n = len(encoded) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (encoded[:n], encoded[n:], b""))
    chunked = CHUNKED[:-2] + f"Content-Encoding: {coding}\r\n\r\n".encode() + chunks
    async with serving(ok(encoded, f"Content-Encoding: {coding}"), chunked) as (_, pool):
        assert (await pool.post(b"x", 2.0)).body == PAYLOAD
        assert (await pool.post(b"y", 2.0)).body == PAYLOAD


# --------------------------------------------------------------------------- keep-alive


async def test_sequential_posts_reuse_one_connection() -> None:
    async with serving(respond=lambda request: ok(b"echo:" + body_of(request))) as (srv, pool):
        bodies = [(await pool.post(b"%d" % i, 2.0)).body for i in range(5)]
        assert (pool.idle, pool.busy) == (1, 0)
    assert bodies == [b"echo:%d" % i for i in range(5)]
    assert pool.opened == srv.connections == 1
    assert len(srv.requests) == 5


@pytest.mark.parametrize(
    "first",
    [
        ok(b"bye", "Connection: close"),
        ok(b"bye", "Connection: keep-alive, Close"),
        ok(b"bye", version="1.0"),
        ok(b"bye") + ok(b"nobody asked"),  # left-over bytes: out of step
        Reply((ok(b"bye"), ok(b"nobody asked")), pause=0.05),  # bytes while idle
    ],
    ids=["close", "close-token", "http10", "two-answers", "answer-while-idle"],
)
async def test_connection_that_must_not_be_reused_is_dropped(first: Step) -> None:
    async with serving(first, ok(b"new")) as (srv, pool):
        assert (await pool.post(b"x", 2.0)).body == b"bye"
        await until(lambda: srv.client_closed == 1)  # the client closed it
        assert (await pool.post(b"y", 2.0)).body == b"new"
    assert pool.opened == srv.connections == 2


async def test_concurrent_posts_get_their_own_connection_and_answer() -> None:
    def respond(request: bytes) -> Reply:
        return Reply((ok(b"re:" + body_of(request)),), delay=0.05)

    async with serving(respond=respond) as (srv, pool):
        bodies = [b"request-%02d" % i for i in range(20)]
        responses = await asyncio.gather(*(pool.post(b, 3.0) for b in bodies))
        assert [r.body for r in responses] == [b"re:" + b for b in bodies]
        assert (pool.opened, srv.connections, pool.busy, pool.idle) == (20, 20, 0, 20)
        await pool.post(b"one more", 2.0)
        assert pool.opened == 20


# --------------------------------------------------------------------------- bad responses

BAD = {  # each answered on a connection the server keeps open: the bytes alone must fail
    "http2": b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "http1x": b"HTTP/1.x 200 OK\r\nContent-Length: 0\r\n\r\n",
    "foo": b"FOO\r\n\r\n",
    "short-status": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    "long-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "status-99": b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "no-colon": b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 2\r\n\r\nok",
    "conflicting-length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "word-length": b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
    "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "plus-length": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "list-length": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "empty-length": b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
    "above-max-body": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    "endless-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD,
    "head-above-max": ok(b"x", "X-Big: " + "a" * MAX_HEAD),
    "chunk-zz": CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk-negative": CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk-underscore": CHUNKED + b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n",
    "chunk-0x": CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk-empty-size": CHUNKED + b"\r\nhello\r\n0\r\n\r\n",
    "chunk-above-max-body": CHUNKED + b"%x\r\n" % (MAX_BODY + 1),
    "chunk-no-crlf": CHUNKED + b"5\r\nhelloXX0\r\n\r\n",
    "chunk-too-long": CHUNKED + b"5\r\nhello world\r\n0\r\n\r\n",
    "coding-unknown": ok(b"\x1b\x00\x00", "Content-Encoding: br"),
    "coding-bad-gzip": ok(b"not gzip at all", "Content-Encoding: gzip"),
    "coding-bad-deflate": ok(b"\xff\xfe\xfd", "Content-Encoding: deflate"),
    "coding-gzip-then-junk": ok(gzip.compress(b"{}") + b"junk", "Content-Encoding: gzip"),
}


@pytest.mark.parametrize("raw", BAD.values(), ids=BAD.keys())
async def test_bad_response_is_a_protocol_error_and_not_reused(raw: bytes) -> None:
    async with serving(raw, ok(b"after")) as (srv, pool):
        with pytest.raises(ProtocolError):
            await pool.post(b"x", 2.0)
        assert pool.busy == 0
        await until(lambda: srv.client_closed == 1)  # the client dropped the connection
        assert (await pool.post(b"y", 2.0)).body == b"after"
    assert pool.opened == srv.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        CLOSE,
        Reply((b"HTTP/1.1 200 OK\r\nContent-Le",), close=True),
        Reply((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",), close=True),
        Reply((CHUNKED + b"5\r\nhello\r\n",), close=True),
    ],
    ids=["before-answering", "mid-head", "mid-body", "mid-chunks"],
)
async def test_server_closing_early_is_connection_lost(reply: Reply) -> None:
    async with serving(reply, ok(b"after")) as (srv, pool):
        with pytest.raises(ConnectionLost):
            await pool.post(b"x", 2.0)
        assert len(srv.requests) == 1  # it was sent
        assert (await pool.post(b"y", 2.0)).body == b"after"
    assert pool.opened == srv.connections == 2


async def test_truncated_gzip_body_is_a_protocol_error() -> None:
    truncated = gzip.compress(PAYLOAD)[:-20]
    async with serving(ok(truncated, "Content-Encoding: gzip")) as (_, pool):
        with pytest.raises(ProtocolError):
            await pool.post(b"x", 2.0)


async def test_undecodable_unframed_body_is_a_protocol_error() -> None:
    reply = Reply((b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\nabc",), close=True)
    async with serving(reply) as (_, pool):
        with pytest.raises(ProtocolError):
            await pool.post(b"x", 2.0)


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    "stall",
    [
        HANG,
        Reply((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",)),
        Reply((CHUNKED + b"5\r\nhel",)),
    ],
    ids=["no-answer", "mid-body", "mid-chunk"],
)
async def test_response_timeout(stall: Reply) -> None:
    async with serving(stall, ok(b"after")) as (srv, pool):
        with pytest.raises(TimeoutError) as info:
            await pool.post(b"x", 0.2)
        assert type(info.value) is TimeoutError  # not ConnectTimeout: it was sent
        assert pool.busy == 0
        await until(lambda: srv.client_closed == 1)  # the stalled connection was dropped
        assert (await pool.post(b"y", 2.0)).body == b"after"
    assert pool.opened == srv.connections == 2


async def test_refused_connection_is_connect_failed() -> None:
    with socket.socket() as bound:  # bound, never listening
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        pool = H1Pool("127.0.0.1", port, head=head_for(port), connect_timeout=2.0)
        try:
            async with asyncio.timeout(LIMIT):
                for _ in range(2):
                    with pytest.raises(ConnectFailed) as info:
                        await pool.post(b"x", 3.0)
                    assert not isinstance(info.value, ConnectTimeout)
                    assert isinstance(info.value.__cause__, ConnectionRefusedError)
        finally:
            await pool.aclose()
    assert (pool.opened, pool.busy) == (0, 0)


@pytest.mark.parametrize(("connect_timeout", "timeout"), [(0.2, 3.0), (3.0, 0.2)])
async def test_stalled_tls_handshake_is_connect_timeout(
    connect_timeout: float, timeout: float
) -> None:
    # a TCP server that accepts and never says a word: the TLS handshake never completes
    async with asyncio.timeout(LIMIT), RawServer() as srv:
        tls = ssl.create_default_context()
        pool = H1Pool("localhost", srv.port, head=b"", tls=tls, connect_timeout=connect_timeout)
        try:
            with pytest.raises(ConnectTimeout) as info:
                await pool.post(b"x", timeout)
            assert isinstance(info.value, TimeoutError)
            assert (pool.opened, pool.busy) == (0, 0)
            await until(lambda: srv.client_closed == srv.connections == 1)  # not leaked
        finally:
            await pool.aclose()
    assert srv.requests == []


# --------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize(
    "stall",
    [HANG, Reply((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",))],
    ids=["before-head", "mid-body"],
)
async def test_cancelled_post_leaves_no_busy_connection(stall: Reply) -> None:
    async with serving(stall, ok(b"after")) as (srv, pool):
        task = asyncio.create_task(pool.post(b"x", None))
        await until(lambda: len(srv.requests) == 1)
        await asyncio.sleep(0.02)  # let the partial answer arrive
        assert pool.busy == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (pool.busy, pool.idle) == (0, 0)
        await until(lambda: srv.client_closed == 1)
        assert (await pool.post(b"y", 2.0)).body == b"after"
    assert pool.opened == srv.connections == 2


async def test_cancelled_while_connecting() -> None:
    async with asyncio.timeout(LIMIT), RawServer() as srv:  # stalls the TLS handshake
        pool = H1Pool("localhost", srv.port, head=b"", tls=ssl.create_default_context())
        try:
            task = asyncio.create_task(pool.post(b"x", None))
            await until(lambda: srv.connections == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
            await until(lambda: srv.client_closed == 1)
        finally:
            await pool.aclose()


# --------------------------------------------------------------------------- idle, aclose


async def test_idle_connection_expires() -> None:
    async with serving(ok(b"one"), ok(b"two"), keepalive_timeout=0.2) as (srv, pool):
        assert (await pool.post(b"x", 2.0)).body == b"one"
        assert pool.idle == 1
        await asyncio.sleep(0.5)
        await until(lambda: srv.client_closed == 1)  # the server saw the pool close it
        assert pool.idle == 0
        assert (await pool.post(b"y", 2.0)).body == b"two"
    assert pool.opened == srv.connections == 2


async def test_zero_keepalive_never_reuses() -> None:
    async with serving(ok(b"1"), ok(b"2"), ok(b"3"), keepalive_timeout=0) as (srv, pool):
        for i in (1, 2, 3):
            assert (await pool.post(b"x", 2.0)).body == b"%d" % i
            assert pool.idle == 0
        await until(lambda: srv.client_closed == 3)
    assert pool.opened == srv.connections == 3


async def test_aclose() -> None:
    def respond(request: bytes) -> Step:
        return HANG if body_of(request) == b"hang" else ok(b"fast")

    async with serving(respond=respond) as (srv, pool):
        in_flight = asyncio.create_task(pool.post(b"hang", None))
        await until(lambda: len(srv.requests) == 1)
        assert (await pool.post(b"quick", 2.0)).body == b"fast"  # a second connection
        assert (pool.busy, pool.idle) == (1, 1)
        await pool.aclose()
        with pytest.raises(ConnectionLost):
            await in_flight
        assert (pool.busy, pool.idle) == (0, 0)
        await until(lambda: srv.client_closed == 2)  # both connections closed
        with pytest.raises(ConnectFailed) as info:
            await pool.post(b"late", 2.0)
        assert not isinstance(info.value, ConnectTimeout)
        await pool.aclose()  # idempotent
    assert pool.opened == srv.connections == 2


async def test_aclose_during_unframed_body_is_connection_lost() -> None:
    async with serving(Reply((b"HTTP/1.1 200 OK\r\n\r\npartial",))) as (srv, pool):
        in_flight = asyncio.create_task(pool.post(b"x", None))
        await until(lambda: len(srv.requests) == 1)
        await asyncio.sleep(0.05)  # let the partial body arrive
        await pool.aclose()
        with pytest.raises(ConnectionLost):
            await in_flight


# --------------------------------------------------------------------------- aiohttp, TLS


@contextlib.asynccontextmanager
async def aiohttp_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """An aiohttp server on 127.0.0.1: POST /echo echoes, POST /stream streams gzip."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=b"echo:" + body, headers={"X-Host": request.host})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        for i in range(5):
            await response.write(PAYLOAD + b"%d" % i)
        await response.write_eof()
        return response

    async def command(request: web.Request) -> web.Response:
        doc = json.loads(await request.read())
        return web.json_response({"id": doc["id"], "type": "relay_pstn_call"})

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/stream", stream)
    app.router.add_post("/api/calling/calls", command)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def test_against_aiohttp_server() -> None:
    async with asyncio.timeout(LIMIT), aiohttp_server() as port:
        echo = H1Pool("127.0.0.1", port, head=head_for(port, "/echo"))
        gz = {"Accept-Encoding": "gzip"}
        stream = H1Pool("127.0.0.1", port, head=head_for(port, "/stream", **gz))
        try:
            for i in range(3):
                response = await echo.post(b"n=%d" % i, 2.0)
                assert (response.status, response.body) == (200, b"echo:n=%d" % i)
            assert response.header("x-host") == f"127.0.0.1:{port}"
            streamed = await stream.post(b"", 2.0)
            assert streamed.header("transfer-encoding") == "chunked"
            assert streamed.header("content-encoding") == "gzip"
            assert streamed.body == b"".join(PAYLOAD + b"%d" % i for i in range(5))
            assert (await stream.post(b"", 2.0)).body == streamed.body
            assert (echo.opened, stream.opened) == (1, 1)
        finally:
            await echo.aclose()
            await stream.aclose()


def test_on_uvloop() -> None:
    """uvloop's transports are not ``asyncio.Transport`` subclasses; the pool must not care."""
    uvloop = pytest.importorskip("uvloop")  # a dev dependency (absent only on Windows)

    async def main() -> None:
        async with asyncio.timeout(LIMIT), aiohttp_server() as port:
            pool = H1Pool("127.0.0.1", port, head=head_for(port, "/echo"))
            try:
                for i in range(3):
                    response = await pool.post(b"n=%d" % i, 2.0)
                    assert (response.status, response.body) == (200, b"echo:n=%d" % i)
                assert pool.opened == 1
            finally:
                await pool.aclose()

    uvloop.run(main())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for "localhost", and the file of its CA."""
    ca, ca_file = trustme.CA(), str(tmp_path_factory.mktemp("tls") / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    return server, ca_file


async def test_tls_with_trusted_ca(tls: tuple[ssl.SSLContext, str]) -> None:
    server_tls, ca_file = tls
    async with asyncio.timeout(LIMIT), aiohttp_server(server_tls) as port:
        head = build_request_head("/echo", "localhost", port, 443, {})
        pool = H1Pool("localhost", port, head=head, tls=ssl.create_default_context(cafile=ca_file))
        try:
            for i in range(3):
                response = await pool.post(b"secret %d" % i, 2.0)
                assert (response.status, response.body) == (200, b"echo:secret %d" % i)
            assert response.header("x-host") == f"localhost:{port}"
            assert pool.opened == 1
        finally:
            await pool.aclose()


@pytest.mark.parametrize("engine", ["builtin", "aiohttp"])
async def test_transport_trusts_ca_file_on_either_engine(
    tls: tuple[ssl.SSLContext, str], engine: Literal["builtin", "aiohttp"]
) -> None:
    server_tls, ca_file = tls
    once = RetryPolicy(max_attempts=1)
    async with asyncio.timeout(LIMIT), aiohttp_server(server_tls) as port:
        base = f"https://localhost:{port}"
        trusting = HTTPSettings(ca_file=ca_file, engine=engine)
        async with Transport(base_url=base, project="p", token="t", settings=trusting) as t:
            leg = await t.send(End(reason="hangup"), "call-1")
        assert leg.id == "call-1"
        plain = HTTPSettings(engine=engine)  # the system store does not know the test CA
        async with Transport(
            base_url=base, project="p", token="t", settings=plain, retry=once
        ) as t:
            with pytest.raises(ConnectError) as info:
                await t.send(End(reason="hangup"), "call-1")
        assert info.value.request_sent is False


@pytest.mark.parametrize(
    ("host", "trusted"),
    [("localhost", False), ("127.0.0.1", True)],
    ids=["unknown-ca", "wrong-name"],
)
async def test_tls_verification_failure_is_connect_failed(
    tls: tuple[ssl.SSLContext, str], host: str, trusted: bool
) -> None:
    client = ssl.create_default_context(cafile=tls[1] if trusted else None)
    async with asyncio.timeout(LIMIT), aiohttp_server(tls[0]) as port:
        pool = H1Pool(host, port, head=head_for(port, "/echo"), tls=client)
        try:
            with pytest.raises(ConnectFailed) as info:
                await pool.post(b"x", 2.0)
        finally:
            await pool.aclose()
    assert not isinstance(info.value, ConnectTimeout)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert pool.opened == 0


# --------------------------------------------------------------------------- fuzz

FUZZ_BASES = [
    ok(b'{"id": 1}', "Content-Type: application/json"),
    CHUNKED + b"4;x=y\r\nabcd\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
    ok(gzip.compress(b"hello " * 20), "Content-Encoding: gzip"),
    b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after interim"),
    b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nto the end",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]
FUZZ_TOKENS = [b"\r\n", b"\r\n\r\n", b":", b" ", b";", b"0", b"f", b"-", b"HTTP/1.1 ", b"\xff"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """1 to 3 of: flip a bit, truncate, insert a token or random bytes, delete a run."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op, pos = rng.randrange(4), rng.randint(0, len(out))
        if op == 0 and pos < len(out):
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            del out[pos:]
        elif op == 2:
            out[pos:pos] = rng.choice(FUZZ_TOKENS) if rng.random() < 0.6 else rng.randbytes(3)
        else:
            del out[pos : pos + rng.randint(1, 8)]
    return bytes(out)


async def test_fuzzed_responses_only_fail_cleanly() -> None:
    rng = random.Random(20240611)
    cases = [mutate(rng, base) for _ in range(334) for base in FUZZ_BASES][:2000]
    outcomes: Counter[str] = Counter()
    async with serving(keepalive_timeout=0, limit=30.0) as (srv, pool):  # a connection each
        for i, mutated in enumerate(cases):
            cut = rng.randint(0, len(mutated)) if i % 4 == 0 else len(mutated)  # split some
            pause = 0.001 if i % 4 == 0 else 0.0
            srv.script.append(Reply((mutated[:cut], mutated[cut:]), pause=pause, close=True))
            try:
                response = await pool.post(b"fuzz", 0.3)
            except (ProtocolError, ConnectionLost, TimeoutError) as exc:
                outcomes[type(exc).__name__] += 1
            else:
                outcomes["H1Response"] += 1
                assert 200 <= response.status <= 999  # 1xx heads are never the answer
                assert len(response.body) <= MAX_BODY
            assert pool.busy == 0
        for base in FUZZ_BASES:  # and the pool still parses the originals
            srv.script.append(Reply((base,), close=True))
            assert (await pool.post(b"plain", 2.0)).status in (200, 204)
    assert pool.opened == srv.connections == len(cases) + len(FUZZ_BASES)
    assert set(outcomes) <= {"H1Response", "ProtocolError", "ConnectionLost", "TimeoutError"}
    assert min(outcomes["H1Response"], outcomes["ProtocolError"], outcomes["ConnectionLost"]) > 50
