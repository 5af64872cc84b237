"""The transport's network behaviour on 127.0.0.1: TLS with a private CA, proxies,
happy eyeballs past a black-holed address, the three kinds of timeout, redirects,
cancellation, uvloop, and no credential in any error it raises."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from signalwire_calls._codec import decode_json
from signalwire_calls._retry import RetryPolicy
from signalwire_calls._settings import HTTPSettings
from signalwire_calls._transport import Transport
from signalwire_calls.commands import Dial, End, Play, silence
from signalwire_calls.errors import (
    APIStatusError,
    AuthenticationError,
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RequestError,
    ResponseValidationError,
    SessionClosedError,
    SignalWireError,
)

from .proxy_server import ProxyServer

PROJECT = "proj-net"
TOKEN = "PT-net-secret-token-0042"
AUTH64 = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
CALL_ID = "call-net-1"
ONCE = RetryPolicy(max_attempts=1)
LIMIT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def leg(call_id: str = CALL_ID) -> dict[str, Any]:
    return {"id": call_id, "type": "relay_pstn_call", "status": "answered"}


def dial() -> Dial:
    return Dial(to="+15550198765", from_="+12069708643", url="https://example.com/swml")


async def answer_leg(request: web.Request) -> web.StreamResponse:
    """The call leg, for requests carrying the API credentials (else 401)."""
    if request.headers.get("Authorization") != f"Basic {AUTH64}":
        return web.json_response({"error": "Unauthorized"}, status=401)
    doc = decode_json(await request.read())
    return web.json_response(leg(doc.get("id") or "new-call"))


@contextlib.asynccontextmanager
async def serving(
    handler: Handler = answer_leg,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """An aiohttp app answering POST /api/calling/calls with ``handler``; yields the port."""
    app = web.Application()
    app.router.add_post("/api/calling/calls", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def black_hole(host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    """A listening port whose accept queue is full: further SYNs are dropped, so a
    connect hangs until its timeout, as with a firewalled address."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(0)
    bound = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the backlog; the queue holds one or two
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                filler.connect((host, bound))
            fillers.append(filler)
        yield bound
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def transport(base_url: str, **kwargs: Any) -> Transport:
    kwargs.setdefault("retry", ONCE)
    return Transport(base_url=base_url, project=PROJECT, token=TOKEN, **kwargs)


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything reachable through __cause__ and __context__."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [e.__cause__, e.__context__]
    return out


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for e in chain(exc):
        texts = [str(e), repr(e), repr(e.args), repr(getattr(e, "__dict__", {}))]
        for text in texts:
            for secret in (TOKEN, AUTH64, *secrets):
                assert secret not in text, f"{type(e).__name__} leaks {secret!r}: {text}"


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[ssl.SSLContext, str]]:
    """A server context with a certificate for "localhost", and the file of its CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    with ca.cert_pem.tempfile() as ca_file:
        yield server, ca_file


async def test_tls_trusts_ca_file_and_refuses_the_system_store(
    tls: tuple[ssl.SSLContext, str],
) -> None:
    server_tls, ca_file = tls
    async with asyncio.timeout(LIMIT), serving(tls=server_tls) as port:
        base = f"https://localhost:{port}"
        async with transport(base, settings=HTTPSettings(ca_file=ca_file)) as t:
            got = await t.send(End(reason="hangup"), CALL_ID)
            assert got.id == CALL_ID
        async with transport(base) as t:  # the system store does not know the test CA
            with pytest.raises(ConnectError) as info:
                await t.send(End(reason="hangup"), CALL_ID)
    assert info.value.request_sent is False
    assert "certificate" in str(info.value).lower()


# --------------------------------------------------------------------------- redirects


async def test_a_redirect_is_an_error_and_is_not_followed() -> None:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect(location="/elsewhere")

    async with (
        asyncio.timeout(LIMIT),
        serving(redirect) as port,
        transport(f"http://127.0.0.1:{port}") as t,
    ):
        with pytest.raises(APIStatusError) as info:
            await t.send(dial(), None)
    assert info.value.status == 307
    assert "not followed" in str(info.value)
    assert hits == ["/api/calling/calls"]  # never re-POSTed anywhere


# --------------------------------------------------------------------------- timeouts


async def test_pool_timeout_was_never_sent_and_is_not_retried() -> None:
    release = asyncio.Event()
    seen: list[bytes] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        seen.append(await request.read())
        await release.wait()
        return web.json_response(leg())

    settings = HTTPSettings(limit=1)
    async with (
        asyncio.timeout(LIMIT),
        serving(slow) as port,
        transport(f"http://127.0.0.1:{port}", settings=settings, retry=None) as t,
    ):
        holder = asyncio.create_task(t.send(End(), CALL_ID))
        while not seen:
            await asyncio.sleep(0.005)
        with pytest.raises(PoolTimeout) as info:
            await t.send(Play(control_id="c1", play=[silence(1)]), CALL_ID, timeout=0.2)
        assert t.stats().pool_timeouts == 1
        release.set()
        await holder
    assert isinstance(info.value, TimeoutError)
    assert info.value.request_sent is False
    assert "not sent" in str(info.value)
    assert len(seen) == 1  # the queued play never reached the server, nor was it retried


async def test_connect_timeout_was_never_sent() -> None:
    settings = HTTPSettings(connect_timeout=0.2)
    with black_hole() as port:
        async with (
            asyncio.timeout(LIMIT),
            transport(f"http://127.0.0.1:{port}", settings=settings) as t,
        ):
            with pytest.raises(ConnectTimeout) as info:
                await t.send(dial(), None)
            assert t.stats().connect_timeouts == 1
    assert isinstance(info.value, TimeoutError)
    assert info.value.request_sent is False


async def test_connect_timeout_is_retried_even_for_a_dial() -> None:
    settings = HTTPSettings(connect_timeout=0.1)
    policy = RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_cap=0.001)
    with black_hole() as port:
        async with (
            asyncio.timeout(LIMIT),
            transport(f"http://127.0.0.1:{port}", settings=settings, retry=policy) as t,
        ):
            with pytest.raises(ConnectTimeout):
                await t.send(dial(), None)
            stats = t.stats()
    assert (stats.requests, stats.retries, stats.connect_timeouts) == (2, 1, 2)


async def test_read_timeout_may_have_been_sent() -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async with (
        asyncio.timeout(LIMIT),
        serving(never) as port,
        transport(f"http://127.0.0.1:{port}") as t,
    ):
        with pytest.raises(ReadTimeout) as info:
            await t.send(dial(), None, timeout=0.3)
        assert t.stats().read_timeouts == 1
    assert isinstance(info.value, TimeoutError)
    assert info.value.request_sent is True
    assert "may have been carried out" in str(info.value)


# --------------------------------------------------------------------------- happy eyeballs


class TwoAddresses(AbstractResolver):
    """Resolves every name to a black-holed loopback address first, then a healthy one
    (the broken-IPv6 case: a first address that drops SYNs)."""

    def __init__(self, first: str, second: str) -> None:
        self.addresses = (first, second)
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_a_black_holed_first_address_falls_back_to_the_second() -> None:
    # connect_timeout is long: trying the addresses one after the other would spend it
    # all on the first, so success shows the second was tried alongside (happy eyeballs)
    settings = HTTPSettings(connect_timeout=3.0, timeout=3.0)
    async with asyncio.timeout(LIMIT), serving(host="127.0.0.1") as port:
        with black_hole("127.0.0.2", port):
            resolver = TwoAddresses("127.0.0.2", "127.0.0.1")
            base = f"http://localhost:{port}"
            async with transport(base, settings=settings, resolver=resolver) as t:
                for _ in range(3):
                    got = await t.send(End(), CALL_ID)
                    assert got.id == CALL_ID
                stats = t.stats()
    assert resolver.lookups >= 1
    assert (stats.connect_timeouts, stats.connect_errors, stats.requests) == (0, 0, 3)


# --------------------------------------------------------------------------- proxies


async def test_proxy_from_settings_forwards_http() -> None:
    async with asyncio.timeout(LIMIT), serving() as port, ProxyServer() as proxy:
        settings = HTTPSettings(proxy=proxy.url)
        async with transport(f"http://127.0.0.1:{port}", settings=settings) as t:
            got = await t.send(End(), CALL_ID)
            assert t.proxy == proxy.url
    assert got.id == CALL_ID
    # the proxy never sees the API credentials (aiohttp would pass a session-wide
    # Authorization header to the proxy as Proxy-Authorization)
    assert [(s.method, s.target, s.proxy_authorization) for s in proxy.seen] == [
        ("POST", f"http://127.0.0.1:{port}/api/calling/calls", None)
    ]


async def test_proxy_with_credentials_tunnels_https(tls: tuple[ssl.SSLContext, str]) -> None:
    server_tls, ca_file = tls
    async with (
        asyncio.timeout(LIMIT),
        serving(tls=server_tls) as port,
        ProxyServer(username="carol", password="pr0xy-pass") as proxy,
    ):
        settings = HTTPSettings(proxy=proxy.url_with_credentials(), ca_file=ca_file)
        async with transport(f"https://localhost:{port}", settings=settings) as t:
            got = await t.send(End(), CALL_ID)
            assert t.proxy == proxy.url  # shown without its credentials
    assert got.id == CALL_ID
    expected = base64.b64encode(b"carol:pr0xy-pass").decode()
    assert [(s.method, s.target, s.proxy_authorization) for s in proxy.seen] == [
        ("CONNECT", f"localhost:{port}", f"Basic {expected}")
    ]


async def test_proxy_refusing_the_tunnel_leaks_no_credential(
    tls: tuple[ssl.SSLContext, str],
) -> None:
    server_tls, ca_file = tls
    async with (
        asyncio.timeout(LIMIT),
        serving(tls=server_tls) as port,
        ProxyServer(username="carol", password="right-pass") as proxy,
    ):
        wrong = proxy.url_with_credentials().replace("right-pass", "wr0ng-pass")
        settings = HTTPSettings(proxy=wrong, ca_file=ca_file)
        async with transport(f"https://localhost:{port}", settings=settings) as t:
            with pytest.raises(ConnectError) as info:
                await t.send(dial(), None)
    assert info.value.request_sent is False
    assert "407" in str(info.value)
    wrong64 = base64.b64encode(b"carol:wr0ng-pass").decode()
    assert_no_secret(info.value, "wr0ng-pass", wrong64)


async def test_proxy_from_the_environment_only_when_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with asyncio.timeout(LIMIT), serving() as port, ProxyServer() as proxy:
        for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        base = f"http://127.0.0.1:{port}"
        async with transport(base) as t:  # not trusted: the variable is ignored
            await t.send(End(), CALL_ID)
            assert t.proxy is None
        assert proxy.seen == []
        async with transport(base, settings=HTTPSettings(trust_env=True)) as t:
            await t.send(End(), CALL_ID)
            await t.send(End(), CALL_ID)
            assert t.proxy == proxy.url
        assert len(proxy.seen) == 1  # one keep-alive connection through the proxy
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        async with transport(base, settings=HTTPSettings(trust_env=True)) as t:
            await t.send(End(), CALL_ID)
            assert t.proxy is None
        assert len(proxy.seen) == 1


# --------------------------------------------------------------------------- secrets


def echo_auth(status: int, *, json_body: bool = True) -> Handler:
    """Answers ``status`` and echoes the request's credentials in the body and a header,
    as a misbehaving server or proxy might."""

    async def handler(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        headers = {"X-Echo": auth, "Retry-After": "0"}
        if json_body:
            return web.json_response(
                {"error": f"bad credentials {auth}", "errors": [{"message": auth}]},
                status=status,
                headers=headers,
            )
        return web.Response(status=status, text=f"<html>{auth} {TOKEN}</html>", headers=headers)

    return handler


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 307, 418])
async def test_no_token_in_status_errors(status: int) -> None:
    async with (
        asyncio.timeout(LIMIT),
        serving(echo_auth(status)) as port,
        transport(f"http://127.0.0.1:{port}") as t,
    ):
        with pytest.raises(APIStatusError) as info:
            await t.send(Play(control_id="p", play=[silence(1)]), CALL_ID)
    assert info.value.status == status
    assert_no_secret(info.value)


async def test_no_token_in_an_unreadable_2xx() -> None:
    async with (
        asyncio.timeout(LIMIT),
        serving(echo_auth(200, json_body=False)) as port,
        transport(f"http://127.0.0.1:{port}") as t,
    ):
        with pytest.raises(ResponseValidationError) as info:
            await t.send(dial(), None)
    assert_no_secret(info.value)


async def test_no_token_in_transport_failures() -> None:
    errors: list[SignalWireError] = []

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async with asyncio.timeout(LIMIT):
        refused = socket.socket()
        refused.bind(("127.0.0.1", 0))
        refused_port = refused.getsockname()[1]
        try:
            async with transport(f"http://127.0.0.1:{refused_port}") as t:
                with pytest.raises(ConnectError) as info:
                    await t.send(dial(), None)
                errors.append(info.value)
        finally:
            refused.close()
        async with serving(drop) as port, transport(f"http://127.0.0.1:{port}") as t:
            with pytest.raises(ConnectError) as info:
                await t.send(dial(), None)
            assert info.value.request_sent is True
            errors.append(info.value)
        async with (
            serving(stall) as port,
            transport(f"http://127.0.0.1:{port}", settings=HTTPSettings(limit=1)) as t,
        ):
            with pytest.raises(ReadTimeout) as read_info:
                await t.send(dial(), None, timeout=0.2)
            errors.append(read_info.value)
            first = asyncio.create_task(t.send(End(), CALL_ID, timeout=5))
            await asyncio.sleep(0.05)
            with pytest.raises(PoolTimeout) as pool_info:
                await t.send(End(), CALL_ID, timeout=0.1)
            errors.append(pool_info.value)
            queued = asyncio.create_task(t.send(End(), CALL_ID, timeout=5))
            await asyncio.sleep(0.05)
            await t.aclose()
            for task in (first, queued):
                with pytest.raises(SessionClosedError) as closed_info:
                    await task
                errors.append(closed_info.value)
        with black_hole() as port:
            async with transport(
                f"http://127.0.0.1:{port}", settings=HTTPSettings(connect_timeout=0.1)
            ) as t:
                with pytest.raises(ConnectTimeout) as connect_info:
                    await t.send(dial(), None)
                errors.append(connect_info.value)
    assert {type(e) for e in errors} >= {
        ConnectError,
        ReadTimeout,
        PoolTimeout,
        ConnectTimeout,
        SessionClosedError,
    }
    for error in errors:
        assert_no_secret(error)
        if isinstance(error, RequestError):
            assert error.command in ("dial", "calling.end")


async def test_a_401_says_what_to_check() -> None:
    async with (
        asyncio.timeout(LIMIT),
        serving(echo_auth(401)) as port,
        transport(f"http://127.0.0.1:{port}") as t,
    ):
        with pytest.raises(AuthenticationError) as info:
            await t.send(End(), CALL_ID)
    message = str(info.value)
    assert "SIGNALWIRE_PROJECT_ID" in message
    assert "SIGNALWIRE_API_TOKEN" in message
    assert f"http://127.0.0.1:{port}" in message


# --------------------------------------------------------------------------- cancellation


async def test_cancel_mid_body_frees_the_slot() -> None:
    half_sent = asyncio.Event()

    async def half(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"id": "x"')
        half_sent.set()
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    calls = 0

    async def then_ok(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return await half(request)
        return await answer_leg(request)

    async with (
        asyncio.timeout(LIMIT),
        serving(then_ok) as port,
        transport(f"http://127.0.0.1:{port}", settings=HTTPSettings(limit=1)) as t,
    ):
        task = asyncio.create_task(t.send(End(), CALL_ID))
        await half_sent.wait()
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = t.stats()
        assert (stats.in_flight, stats.queued) == (0, 0)
        got = await t.send(End(), CALL_ID, timeout=2)  # the one slot came back
        assert got.id == CALL_ID


# --------------------------------------------------------------------------- uvloop


def test_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")  # a dev dependency (absent only on Windows)

    async def main() -> None:
        async with (
            asyncio.timeout(LIMIT),
            serving() as port,
            transport(f"http://127.0.0.1:{port}") as t,
        ):
            for _ in range(3):
                assert (await t.send(End(), CALL_ID)).id == CALL_ID

    uvloop.run(main())
