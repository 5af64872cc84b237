"""The command transport (aiohttp) against real servers on 127.0.0.1, scripted per request."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from signalwire_calls import _transport
from signalwire_calls._codec import decode_json, encode_command
from signalwire_calls._retry import RetryPolicy, compute_delay, parse_retry_after
from signalwire_calls._settings import (
    HTTPSettings,
    _Credentials,
    base_url_for_space,
    credentials_from_env,
)
from signalwire_calls._transport import DEFAULT, Default, Transport, _classify, _FifoLimiter
from signalwire_calls.commands import Dial, End, Play, Transfer, silence
from signalwire_calls.errors import (
    APIErrorItem,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    ConnectTimeout,
    NotFoundError,
    PermissionDeniedError,
    PoolTimeout,
    RateLimitError,
    ReadTimeout,
    RequestTimeout,
    ResponseValidationError,
    ServerError,
    SessionClosedError,
    UnprocessableEntityError,
)
from signalwire_calls.legs import CallLeg, GenericLeg

PROJECT = "proj-1234"
TOKEN = "PT-very-secret-token-5678"
CALL_ID = "0e9c80d7-a149-4917-892d-420043709f45"
FAST = RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_cap=0.002, retry_after_cap=60.0)


# --------------------------------------------------------------------------- commands


def dial() -> Dial:
    return Dial(to="+15550198765", from_="+12069708643", url="https://example.com/swml")


def play(control_id: str = "ctl-1") -> Play:
    return Play(control_id=control_id, play=[silence(1)])


def end() -> End:
    return End(reason="hangup")


# --------------------------------------------------------------------------- server


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def leg_body(call_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "from": "+12069708643",
        "to": "+15550198765",
        "direction": "outbound-api",
        "source": "realtime_api",
        "url": None,
        "charge": 0,
        "created_at": "2024-05-06T12:20:00Z",
        "charge_details": [],
        "status": "queued",
        "duration": None,
        "duration_ms": None,
        "billing_ms": None,
        "type": "relay_pstn_call",
        "parent_id": None,
        **extra,
    }


async def ok(request: web.Request, body: bytes) -> web.StreamResponse:
    """200 with a call leg whose id is the request's call id (or a new one for dial)."""
    doc = decode_json(body)
    return web.json_response(leg_body(doc.get("id") or "new-call-id"))


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Behaviour:
    async def behaviour(request: web.Request, raw: bytes) -> web.StreamResponse:
        if isinstance(body, str | bytes):
            return web.Response(status=status, body=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return behaviour


async def drop(request: web.Request, body: bytes) -> web.StreamResponse:
    """Close the connection without answering."""
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(30)  # cancelled: the server runs with handler_cancellation
    raise AssertionError("unreachable")


@dataclass
class FakeServer:
    """Records every request; answers each with the next scripted behaviour, else ``ok``."""

    script: list[Behaviour] = field(default_factory=list)
    default: Behaviour = ok
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        behaviour = self.script.pop(0) if self.script else self.default
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await behaviour(request, body)
        finally:
            self.in_flight -= 1

    def slow(self, seconds: float, then: Behaviour = ok) -> Behaviour:
        """Answer after ``seconds`` (or when the test ends)."""

        async def behaviour(request: web.Request, body: bytes) -> web.StreamResponse:
            try:
                async with asyncio.timeout(seconds):
                    await self.release.wait()
            except TimeoutError:
                pass
            return await then(request, body)

        return behaviour


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_post("/api/calling/calls", fake.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


Factory = Callable[..., Transport]


@pytest.fixture
async def make_transport() -> AsyncIterator[Factory]:
    """Transports with fast retries, closed after the test."""
    made: list[Transport] = []

    def factory(base_url: str, **kwargs: Any) -> Transport:
        kwargs.setdefault("retry", FAST)
        t = Transport(base_url=base_url, project=PROJECT, token=TOKEN, **kwargs)
        made.append(t)
        return t

    yield factory
    for t in made:
        await t.aclose()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry delays the transport asked for; the waits themselves are skipped."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(_transport, "_sleep", fake_sleep)
    return delays


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        sock.close()


# --------------------------------------------------------------------------- success


async def test_success_decodes_the_leg_and_sends_the_exact_body(
    server: FakeServer, make_transport: Factory
) -> None:
    transport = make_transport(server.url)
    cmd = play()
    async with asyncio.timeout(5):
        leg = await transport.send(cmd, CALL_ID)
    assert isinstance(leg, CallLeg)
    assert (leg.id, leg.status, leg.type) == (CALL_ID, "queued", "relay_pstn_call")
    assert len(server.seen) == 1
    seen = server.seen[0]
    assert (seen.method, seen.path) == ("POST", "/api/calling/calls")
    assert seen.body == encode_command(cmd, CALL_ID)
    assert decode_json(seen.body)["command"] == "calling.play"


async def test_headers_auth_user_agent_and_json(
    server: FakeServer, make_transport: Factory
) -> None:
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        await transport.send(dial(), None)
    headers = server.seen[0].headers
    expected = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    assert headers["Authorization"] == f"Basic {expected}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    agent = headers["User-Agent"]
    assert agent == transport.user_agent
    assert agent.startswith("signalwire-calls/")
    assert " python/3." in agent
    assert f" aiohttp/{aiohttp.__version__}" in agent


async def test_other_leg_types_decode_generically(
    server: FakeServer, make_transport: Factory
) -> None:
    server.script.append(reply(200, {"id": "room-leg", "type": "video_room_pstn_leg"}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        leg = await transport.send(end(), CALL_ID)
    assert isinstance(leg, GenericLeg)
    assert leg.id == "room-leg"


async def test_keep_alive_connection_is_reused(server: FakeServer, make_transport: Factory) -> None:
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        for _ in range(3):
            await transport.send(end(), CALL_ID)
    assert len(server.seen) == 3
    assert all(s.headers.get("Connection", "keep-alive").lower() != "close" for s in server.seen)


# --------------------------------------------------------------------------- status errors

ERROR_CASES: list[tuple[int, type[APIStatusError], Any]] = [
    (400, BadRequestError, {"error": "Bad Request"}),
    (401, AuthenticationError, {"error": "Unauthorized"}),
    (403, PermissionDeniedError, {"error": "Forbidden"}),
    (404, NotFoundError, {"error": "Not Found"}),
    (409, ConflictError, {"error": "Conflict"}),
    (
        422,
        UnprocessableEntityError,
        {
            "errors": [
                {
                    "type": "validation_error",
                    "code": "missing_required_parameter",
                    "message": "url must be a valid http or https url",
                    "attribute": "url",
                    "url": "https://signalwire.com/docs/apis/error-codes",
                }
            ]
        },
    ),
    (500, ServerError, {"error": "Internal Server Error"}),
    (418, APIStatusError, "I'm a teapot"),
]


@pytest.mark.parametrize(("status", "cls", "body"), ERROR_CASES)
async def test_error_status_maps_to_its_class_and_is_not_retried(
    server: FakeServer,
    make_transport: Factory,
    sleeps: list[float],
    status: int,
    cls: type[APIStatusError],
    body: Any,
) -> None:
    server.script.append(reply(status, body, {"X-Request-Id": f"req-{status}"}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(APIStatusError) as info:
            await transport.send(play(), CALL_ID)
    exc = info.value
    assert type(exc) is cls
    assert exc.status == status
    assert exc.body == body
    assert exc.request_id == f"req-{status}"
    assert exc.command == "calling.play"
    assert exc.headers["x-request-id"] == f"req-{status}"
    assert f"HTTP {status}" in str(exc)
    assert len(server.seen) == 1
    assert sleeps == []


async def test_422_errors_are_parsed_into_items(
    server: FakeServer, make_transport: Factory
) -> None:
    items = [
        {"type": "validation_error", "code": "not_e164", "message": "bad to", "attribute": "to"},
        {"code": "invalid_parameter", "message": "bad timeout", "attribute": None},
    ]
    server.script.append(reply(422, {"errors": items}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(UnprocessableEntityError) as info:
            await transport.send(dial(), None)
    assert info.value.errors == [
        APIErrorItem(type="validation_error", code="not_e164", message="bad to", attribute="to"),
        APIErrorItem(code="invalid_parameter", message="bad timeout"),
    ]
    assert "to: bad to" in str(info.value)
    assert info.value.command == "dial"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "a"}, "a"),
        ({"X-SignalWire-Request-Id": "b"}, "b"),
        ({"Request-Id": "c"}, "c"),
        ({"X-Amzn-RequestId": "d"}, "d"),
        ({"X-Amzn-RequestId": "d", "X-Request-Id": "a"}, "a"),
        ({}, None),
    ],
)
async def test_request_id_is_the_first_present_header(
    server: FakeServer, make_transport: Factory, headers: dict[str, str], expected: str | None
) -> None:
    server.script.append(reply(404, {"error": "Not Found"}, headers))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(NotFoundError) as info:
            await transport.send(end(), CALL_ID)
    assert info.value.request_id == expected


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"status": "queued"}', b""])
async def test_2xx_with_an_unreadable_body_is_a_response_validation_error(
    server: FakeServer, make_transport: Factory, body: bytes
) -> None:
    server.script.append(reply(200, body, {"Content-Type": "application/json"}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(ResponseValidationError) as info:
            await transport.send(play(), CALL_ID)
    assert not isinstance(info.value, APIStatusError)
    assert info.value.status == 200
    assert info.value.command == "calling.play"
    assert "carried out" in str(info.value)
    assert info.value.__context__ is None
    assert len(server.seen) == 1  # carried out: never resent, even with a control_id


# --------------------------------------------------------------------------- retries


async def test_503_then_success_is_retried(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(reply(503, {"error": "Service Unavailable"}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        leg = await transport.send(dial(), None)
    assert leg.id == "new-call-id"
    assert len(server.seen) == 2
    assert server.seen[0].body == server.seen[1].body
    assert len(sleeps) == 1
    assert 0 < sleeps[0] <= FAST.backoff_cap


async def test_503_every_time_gives_up_after_max_attempts(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.default = reply(503, {"error": "Service Unavailable"})
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(ServerError) as info:
            await transport.send(end(), CALL_ID)
    assert info.value.status == 503
    assert len(server.seen) == FAST.max_attempts
    assert len(sleeps) == FAST.max_attempts - 1


async def test_429_retry_after_seconds_is_honoured(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(reply(429, {"error": "Too Many Requests"}, {"Retry-After": "2"}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        leg = await transport.send(dial(), None)
    assert leg.id == "new-call-id"
    assert len(server.seen) == 2
    expected = compute_delay(FAST, 1, parse_retry_after("2", time.time()), random.Random())
    assert sleeps == [expected] == [2.0]


async def test_429_retry_after_http_date_is_honoured(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.default = reply(429, {"error": "Too Many Requests"}, {"Retry-After": date})
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(RateLimitError) as info:
            await transport.send(play(), CALL_ID)
    assert len(server.seen) == FAST.max_attempts
    assert len(sleeps) == FAST.max_attempts - 1
    # An HTTP-date has whole seconds: the wait is 29-30 s, never the tiny backoff.
    assert all(28.0 < d <= 30.0 for d in sleeps)
    assert info.value.retry_after is not None
    assert 28.0 < info.value.retry_after <= 30.0
    hint = parse_retry_after(date, time.time())
    assert hint is not None
    assert compute_delay(FAST, 1, hint, random.Random()) == hint


async def test_retry_after_is_capped_by_the_policy(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(reply(429, "slow down", {"Retry-After": "3600"}))
    policy = FAST.replace(retry_after_cap=0.5)
    transport = make_transport(server.url, retry=policy)
    async with asyncio.timeout(5):
        await transport.send(end(), CALL_ID)
    assert sleeps == [0.5]


async def test_503_retry_after_is_honoured(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(reply(503, {"error": "busy"}, {"Retry-After": "1"}))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        await transport.send(end(), CALL_ID)
    assert sleeps == [1.0]


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_are_resent_only_when_safe(
    server: FakeServer, make_transport: Factory, sleeps: list[float], status: int
) -> None:
    transport = make_transport(server.url)
    server.script.append(reply(status, "bad gateway"))
    async with asyncio.timeout(5):
        await transport.send(play(), CALL_ID)
    assert len(server.seen) == 2
    server.script.append(reply(status, "bad gateway"))
    async with asyncio.timeout(5):
        with pytest.raises(ServerError):
            await transport.send(dial(), None)
    assert len(server.seen) == 3


async def test_dropped_connection_does_not_resend_a_dial(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(drop)
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        with pytest.raises(ConnectError) as info:
            await transport.send(dial(), None)
    assert info.value.request_sent is True
    assert info.value.command == "dial"
    assert len(server.seen) == 1
    assert sleeps == []


async def test_dropped_connection_resends_an_end(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    """Ending an ended call is harmless (the retry may get a 404), so calling.end is
    resent after a failure that may have reached the server; update/transfer are not."""
    server.script.append(drop)
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        leg = await transport.send(end(), CALL_ID)
    assert leg.id == CALL_ID
    assert len(server.seen) == 2
    server.script.append(drop)
    async with asyncio.timeout(5):
        with pytest.raises(ConnectError) as info:
            await transport.send(Transfer(dest="+15550001111"), CALL_ID)
    assert info.value.request_sent is True
    assert len(server.seen) == 3


async def test_dropped_connection_resends_a_play_with_control_id(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(drop)
    transport = make_transport(server.url)
    cmd = play("ctl-resend")
    async with asyncio.timeout(5):
        leg = await transport.send(cmd, CALL_ID)
    assert leg.id == CALL_ID
    assert len(server.seen) == 2
    assert server.seen[0].body == server.seen[1].body == encode_command(cmd, CALL_ID)
    assert len(sleeps) == 1


async def test_connection_refused_is_retried_then_raised(
    refused_url: str, make_transport: Factory, sleeps: list[float]
) -> None:
    transport = make_transport(refused_url)
    async with asyncio.timeout(5):
        with pytest.raises(ConnectError) as info:
            await transport.send(dial(), None)
    assert info.value.request_sent is False
    assert len(sleeps) == FAST.max_attempts - 1  # even a dial: it was never sent


# --------------------------------------------------------------------------- timeouts


async def test_per_call_timeout_raises_request_timeout(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.default = server.slow(5.0)
    transport = make_transport(server.url)
    started = time.monotonic()
    async with asyncio.timeout(5):
        with pytest.raises(RequestTimeout) as info:
            await transport.send(dial(), None, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert type(info.value) is ReadTimeout
    assert info.value.request_sent is True
    assert info.value.command == "dial"
    assert time.monotonic() - started < 2.0
    assert len(server.seen) == 1  # a dial that may have arrived is not resent


async def test_timeout_resends_a_control_command(
    server: FakeServer, make_transport: Factory, sleeps: list[float]
) -> None:
    server.script.append(server.slow(5.0))
    transport = make_transport(server.url)
    async with asyncio.timeout(5):
        leg = await transport.send(play(), CALL_ID, timeout=0.1)
    assert leg.id == CALL_ID
    assert len(server.seen) == 2


@pytest.mark.parametrize(
    ("default", "per_call", "times_out"),
    [
        (0.1, DEFAULT, True),
        (0.1, None, False),
        (0.1, 3.0, False),
        (None, DEFAULT, False),
        (None, 0.1, True),
    ],
)
async def test_default_and_per_call_timeouts(
    server: FakeServer,
    make_transport: Factory,
    default: float | None,
    per_call: float | Default | None,
    times_out: bool,
) -> None:
    server.default = server.slow(0.3)
    transport = make_transport(server.url, settings=HTTPSettings(timeout=default))
    async with asyncio.timeout(5):
        if times_out:
            with pytest.raises(RequestTimeout):
                await transport.send(end(), CALL_ID, timeout=per_call)
        else:
            leg = await transport.send(end(), CALL_ID, timeout=per_call)
            assert leg.id == CALL_ID


def test_retry_classification_reads_the_error_fields() -> None:
    assert _classify(ConnectTimeout("x", command="calling.end")) == ("connect_not_sent", None, None)
    assert _classify(ReadTimeout("x", command="calling.end")) == ("timeout", None, None)
    assert _classify(PoolTimeout("x", command="calling.end")) == ("pool_timeout", None, None)
    assert _classify(ConnectError("x", request_sent=False)) == ("connect_not_sent", None, None)
    assert _classify(ConnectError("x", request_sent=True)) == ("connect_maybe_sent", None, None)
    limited = RateLimitError("x", status=429, retry_after=2.5)
    assert _classify(limited) == ("status", 429, 2.5)


# --------------------------------------------------------------------------- secrets


async def test_token_never_appears_in_reprs_or_logs(
    server: FakeServer,
    refused_url: str,
    make_transport: Factory,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoded = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    creds = _Credentials(project=PROJECT, token=TOKEN, space="example")
    transport = make_transport(server.url)
    server.default = reply(503, {"error": "busy"})
    with caplog.at_level(logging.DEBUG):
        async with asyncio.timeout(5):
            with pytest.raises(ServerError) as status_info:
                await transport.send(end(), CALL_ID)
            with pytest.raises(ConnectError) as connect_info:
                await make_transport(refused_url).send(dial(), None)
    texts = [
        repr(transport),
        str(transport),
        repr(creds),
        str(creds),
        caplog.text,
        str(status_info.value),
        repr(status_info.value.headers),
        str(connect_info.value),
    ]
    assert "retrying" in caplog.text
    assert "not retried" in caplog.text
    assert PROJECT in repr(transport)
    for text in texts:
        assert TOKEN not in text
        assert encoded not in text


# --------------------------------------------------------------------------- lifecycle


async def test_aclose_is_idempotent_and_use_after_close_raises(
    server: FakeServer, make_transport: Factory
) -> None:
    transport = make_transport(server.url)
    assert repr(transport).startswith("<Transport unopened ")
    async with asyncio.timeout(5):
        await transport.send(end(), CALL_ID)
        assert repr(transport).startswith("<Transport open ")
        await transport.aclose()
        await transport.aclose()
        assert transport.closed
        assert repr(transport).startswith("<Transport closed ")
        with pytest.raises(SessionClosedError):
            await transport.send(end(), CALL_ID)
        with pytest.raises(SessionClosedError):
            await transport.__aenter__()


async def test_async_with_opens_and_closes(server: FakeServer) -> None:
    async with asyncio.timeout(5):
        async with Transport(base_url=server.url, project=PROJECT, token=TOKEN) as transport:
            leg = await transport.send(end(), CALL_ID)
            assert leg.id == CALL_ID
    assert transport.closed


async def test_aclose_fails_queued_commands(server: FakeServer, make_transport: Factory) -> None:
    server.default = server.slow(5.0)
    transport = make_transport(server.url, settings=HTTPSettings(limit=1))
    async with asyncio.timeout(5):
        first = asyncio.create_task(transport.send(end(), CALL_ID))
        queued = asyncio.create_task(transport.send(end(), CALL_ID))
        while transport.waiting < 1:
            await asyncio.sleep(0.005)
        await transport.aclose()
        with pytest.raises(SessionClosedError):
            await queued
        with pytest.raises(SessionClosedError):
            await first


def test_closing_an_unopened_transport_is_fine() -> None:
    transport = Transport(base_url="example", project=PROJECT, token=TOKEN)
    asyncio.run(transport.aclose())
    assert transport.closed


@pytest.mark.parametrize(("project", "token"), [("", TOKEN), (PROJECT, "")])
def test_transport_requires_credentials(project: str, token: str) -> None:
    with pytest.raises(ConfigurationError):
        Transport(base_url="example", project=project, token=token)


# --------------------------------------------------------------------------- admission


async def test_fifo_admission_under_a_small_pool(
    server: FakeServer, make_transport: Factory
) -> None:
    server.default = server.slow(0.005)
    transport = make_transport(server.url, settings=HTTPSettings(limit=2))
    finished: list[int] = []

    async def one(i: int) -> None:
        leg = await transport.send(end(), f"call-{i}")
        assert leg.id == f"call-{i}"
        finished.append(i)

    async with asyncio.timeout(8):
        await asyncio.gather(*(one(i) for i in range(50)))
    arrived = [int(decode_json(s.body)["id"].split("-")[1]) for s in server.seen]
    assert server.max_in_flight <= 2
    assert sorted(finished) == list(range(50))
    # Two run at once, so neighbours may swap; nobody overtakes by more than the pool.
    assert all(abs(pos - i) <= 2 for pos, i in enumerate(arrived))
    assert all(abs(pos - i) <= 2 for pos, i in enumerate(finished))


async def test_limiter_is_fifo_and_cancellation_safe() -> None:
    limiter = _FifoLimiter(1)
    order: list[str] = []

    async def worker(name: str) -> None:
        await limiter.acquire()
        order.append(name)
        limiter.release()

    async with asyncio.timeout(5):
        await limiter.acquire()
        a = asyncio.create_task(worker("a"))
        b = asyncio.create_task(worker("b"))
        c = asyncio.create_task(worker("c"))
        await asyncio.sleep(0)
        assert limiter.waiting == 3
        b.cancel()  # cancelled while queued: must not take a slot
        await asyncio.sleep(0)
        limiter.release()
        # "a" was handed the slot; cancel it before it runs: it must pass the slot on.
        a.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
        await c
        assert order == ["c"]
        await limiter.acquire()  # the slot came back
        limiter.release()


async def test_limiter_does_not_let_newcomers_barge_in() -> None:
    limiter = _FifoLimiter(1)
    order: list[str] = []

    async def worker(name: str) -> None:
        await limiter.acquire()
        order.append(name)
        await asyncio.sleep(0)
        limiter.release()

    async with asyncio.timeout(5):
        await limiter.acquire()
        first = asyncio.create_task(worker("queued"))
        await asyncio.sleep(0)
        limiter.release()  # handed to "queued", which has not run yet
        newcomer = asyncio.create_task(worker("newcomer"))
        await asyncio.gather(first, newcomer)
    assert order == ["queued", "newcomer"]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ("myspace", "https://myspace.signalwire.com"),
        (" myspace ", "https://myspace.signalwire.com"),
        ("myspace.signalwire.com", "https://myspace.signalwire.com"),
        ("https://myspace.signalwire.com", "https://myspace.signalwire.com"),
        ("https://myspace.signalwire.com/", "https://myspace.signalwire.com"),
        ("https://proxy.example.com:8443/sw", "https://proxy.example.com:8443/sw"),
        ("http://127.0.0.1:8080/prefix/", "http://127.0.0.1:8080/prefix"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.5.0.1:8080/", "http://127.5.0.1:8080"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("127.0.0.1", "http://127.0.0.1"),
        ("localhost:8080", "http://localhost:8080"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("::1", "http://[::1]"),
        ("10.0.0.5:8443", "https://10.0.0.5:8443"),
        # a subdomain of localhost may resolve anywhere: never plain http
        ("app.localhost:8080", "https://app.localhost:8080"),
    ],
)
def test_base_url_for_space(space: str, expected: str) -> None:
    assert base_url_for_space(space) == expected


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ("", "empty"),
        ("http://myspace.signalwire.com", "loopback"),
        ("http://10.0.0.1:8080", "loopback"),
        ("ftp://myspace.signalwire.com", "scheme"),
        ("https://", "no host"),
        ("https://user:pw@myspace.signalwire.com", "credentials"),
        ("my space/x", "whitespace"),
        ("myspace:notaport", "not a space name"),
        ("http://app.localhost:8080", "loopback"),
        ("myspace?x=1", "'\\?'"),
        ("https://myspace.signalwire.com#frag", "'#'"),
        ("my\tspace", "whitespace"),
        ("my\x00space", "control"),
        ("myspace\x7f", "control"),
    ],
)
def test_base_url_for_space_refuses(space: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        base_url_for_space(space)


def test_credentials_from_arguments_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "env-project")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "env-token")
    monkeypatch.setenv("SIGNALWIRE_SPACE", "env-space")
    assert credentials_from_env() == _Credentials("env-project", "env-token", "env-space")
    creds = credentials_from_env(project="p", token="t", space="s")
    assert creds == _Credentials("p", "t", "s")
    assert repr(creds) == "_Credentials(project='p', space='s')"


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({"SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE"}, ["SIGNALWIRE_PROJECT_ID", "project="]),
        ({"SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_SPACE"}, ["SIGNALWIRE_API_TOKEN", "token="]),
        ({"SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN"}, ["SIGNALWIRE_SPACE", "space="]),
    ],
)
def test_credentials_missing_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, present: set[str], missing: list[str]
) -> None:
    for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE"):
        if name in present:
            monkeypatch.setenv(name, "value")
        else:
            monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError) as info:
        credentials_from_env()
    message = str(info.value)
    for part in missing:
        assert part in message
    others = {"SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE"} - {missing[0]}
    assert not any(name in message for name in others)


def test_credentials_all_missing_and_empty_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE"):
        monkeypatch.setenv(name, "  ")
    with pytest.raises(ConfigurationError) as info:
        credentials_from_env(token="")
    message = str(info.value)
    assert "SIGNALWIRE_PROJECT_ID" in message
    assert "SIGNALWIRE_SPACE" in message
    assert "token= is empty" in message


def test_http_settings_defaults_validation_and_replace() -> None:
    settings = HTTPSettings()
    assert settings.limit == 100
    assert (settings.ca_file, settings.proxy, settings.trust_env) == (None, None, False)
    copy = settings.replace(limit=5, timeout=None)
    assert (copy.limit, copy.timeout, settings.limit) == (5, None, 100)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": 0}, "limit"),
        ({"keepalive_timeout": -1.0}, "keepalive_timeout"),
        ({"dns_cache_ttl": -5}, "dns_cache_ttl"),
        ({"timeout": 0.0}, "timeout"),
        ({"connect_timeout": float("inf")}, "connect_timeout"),
        ({"ca_file": "/no/such/bundle.pem"}, "ca_file"),
        ({"proxy": "socks5://h:1080"}, "proxy"),
        ({"proxy": "http://"}, "proxy"),
    ]
    for overrides, name in cases:
        with pytest.raises(ConfigurationError, match=name):
            settings.replace(**overrides)
        with pytest.raises(ConfigurationError, match=name):
            HTTPSettings(**overrides)
    with pytest.raises(AttributeError):
        settings.limit = 3  # type: ignore[misc]
    with pytest.raises(ConfigurationError) as info:
        HTTPSettings(proxy="ftp://user:hunter2@proxy:21")
    assert "hunter2" not in str(info.value)
    shown = repr(HTTPSettings(proxy="http://user:hunter2@proxy:3128"))
    assert "hunter2" not in shown
    assert "proxy:3128" in shown
