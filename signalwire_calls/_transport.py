"""The command transport: one ``aiohttp.ClientSession`` over a ``TCPConnector``, with
first-in-first-out admission, a time budget per attempt, error mapping and retries.

``Transport.post(body, command)`` POSTs ``{base}/api/calling/calls`` and returns the
decoded call leg, or raises a ``RequestError`` (see ``errors``): ``APIStatusError``
subclasses for non-2xx answers (redirects are not followed: a 3xx is an
``APIStatusError`` too), ``ResponseValidationError`` for a 2xx that is not a call leg,
``ConnectError`` / ``RequestTimeout`` subclasses when no usable answer came back.
Retries follow ``_retry``.

Whether a failed request may have reached the server (this decides ``dial`` resends)
is set on every ``TransportError`` as ``request_sent``:

* waiting for a connection slot too long (``PoolTimeout``), failing to connect (refused,
  DNS, TLS handshake, proxy: ``aiohttp.ClientConnectorError``) and a connect timeout
  (``ConnectTimeout``) happen before any request byte is written: **not sent**.
* a connection lost after that (``ServerDisconnectedError``, a reset on a reused
  keep-alive connection), a broken response and a timeout once connected
  (``ReadTimeout``): the request **may have been sent**.

Admission: aiohttp's connector hands a freed connection to whichever waiter asks first,
so at high concurrency some callers starve. Commands therefore queue first-in-first-out
in a limiter sized to the connection limit, in front of aiohttp; its pool then never
makes anyone wait.

Time budget: each attempt has one deadline covering its queueing and its request. As
admission is first-in-first-out, attempts under the same timeout reach their deadlines
in the order they started, so one timer per transport watches them all (``_Budget``),
instead of aiohttp's timer and timeout context per request (a fifth of the client CPU
of a command). Attempts whose deadline would come before an earlier attempt's (a
shorter per-call timeout) get aiohttp's total timeout instead. aiohttp keeps the
connect timeout, which it arms only when a connection must be opened.

The API token is only ever held inside the precomputed ``Authorization`` header. No
repr, str, error or log line contains it: aiohttp's exceptions carry the request
headers, so they are summarised (with every credential scrubbed) instead of chained.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import platform
import random
import ssl
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import unquote, urlsplit

import aiohttp
import msgspec
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._codec import MalformedLegError, decode_json, decode_leg, encode_command
from ._retry import Failure, RetryPolicy, compute_delay, parse_retry_after, should_retry
from ._settings import API_PATH, ENV_PROJECT, ENV_TOKEN, HTTPSettings, base_url_for_space
from .errors import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RequestError,
    ResponseValidationError,
    SessionClosedError,
    TransportError,
    status_error_class,
)
from .legs import AnyLeg

if TYPE_CHECKING:
    from .commands import Command

__all__ = ["DEFAULT", "Default", "TimeoutArg", "Transport", "TransportStats", "has_control_id"]

logger = logging.getLogger("signalwire_calls.http")

#: Response headers that may carry the server's request id, first present wins.
_REQUEST_ID_HEADERS: Final = (
    "x-request-id",
    "x-signalwire-request-id",
    "request-id",
    "x-amzn-requestid",
)
_DEBUG: Final = logging.DEBUG
#: Share of the time left that connecting may take when it is less than
#: ``connect_timeout``: the connect deadline then fires before the request's, so a
#: connect that stalls is always a ``ConnectTimeout`` (never sent).
_CONNECT_SHARE: Final = 0.9

# Indirections the tests replace to observe retry delays without waiting for them.
_sleep = asyncio.sleep
_now = time.time


class Default:
    """The type of ``DEFAULT``: "the transport's default timeout"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


#: Per-call ``request_timeout`` default: the transport's ``HTTPSettings.timeout``.
DEFAULT: Final = Default()
#: A per-command HTTP time budget: seconds, ``None`` (no limit), or ``DEFAULT`` (left out:
#: the session's ``HTTPSettings.timeout``).
TimeoutArg: TypeAlias = float | Default | None


class TransportStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the command transport (a snapshot).

    ``requests`` counts HTTP attempts made (retries included), ``retries`` the attempts
    after a first one; ``rate_limited`` the 429 answers, ``server_errors`` the 5xx ones;
    ``pool_timeouts``/``connect_timeouts``/``read_timeouts`` the timeouts by kind;
    ``connect_errors`` connections refused, reset or lost. ``queued`` is the number of
    commands waiting for a connection slot now, ``queued_peak`` the most ever waiting,
    ``in_flight`` the commands being sent now.
    """

    requests: int
    retries: int
    rate_limited: int
    server_errors: int
    pool_timeouts: int
    connect_timeouts: int
    read_timeouts: int
    connect_errors: int
    queued: int
    queued_peak: int
    in_flight: int


def _user_agent() -> str:
    """Names the library, Python and aiohttp."""
    from . import __version__  # imported late: the package is fully loaded by now

    return (
        f"signalwire-calls/{__version__} python/{platform.python_version()} "
        f"aiohttp/{aiohttp.__version__}"
    )


# --------------------------------------------------------------------------- admission


class _FifoLimiter:
    """At most ``size`` holders; waiters are admitted strictly first-in-first-out.

    A released slot is handed straight to the oldest live waiter, so newcomers cannot
    barge in. Cancellation-safe: a waiter cancelled after it was handed a slot passes
    it on.
    """

    __slots__ = ("_closed", "_free", "_waiters", "peak")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self.peak = 0

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def try_acquire(self) -> bool:
        """Take a slot without waiting when one is free and nobody queues."""
        if self._free > 0 and not self._waiters and not self._closed:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self._closed:
            raise SessionClosedError("the transport is closed")
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        waiters.append(fut)
        if len(waiters) > self.peak:
            self.peak = len(waiters)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # handed a slot, then cancelled: pass it on
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

    def close(self) -> None:
        """Fail every waiter with ``SessionClosedError``."""
        self._closed = True
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(SessionClosedError("the transport was closed"))


# --------------------------------------------------------------------------- transport


_LIVE: Final = 0
_DONE: Final = 1
_EXPIRED: Final = 2


class _Budget:
    """The deadline of one attempt, watched by the transport's one timer: when it
    passes, the task running the attempt is cancelled (as ``asyncio.timeout`` does) and
    the attempt turns that cancellation into ``PoolTimeout`` or ``ReadTimeout``."""

    __slots__ = ("cancelling", "deadline", "state", "task")

    def __init__(self, deadline: float, task: asyncio.Task[Any]) -> None:
        self.deadline = deadline
        self.task = task
        self.cancelling = task.cancelling()  # cancellations requested before ours
        self.state = _LIVE

    def expired(self) -> bool:
        """Whether this budget's expiry (and nothing else) cancelled its task; call once,
        on the ``CancelledError``."""
        return self.state == _EXPIRED and self.task.uncancel() <= self.cancelling


class _TransportCause(Exception):
    """What the HTTP client reported, with every credential scrubbed; the ``__cause__``
    of a ``TransportError`` (the client's own exception holds the request headers)."""


class Transport:
    """Sends command bodies over one pooled aiohttp session and decodes the call leg.

        async with Transport(base_url="https://example.signalwire.com",
                             project=PROJECT, token=TOKEN) as transport:
            leg = await transport.send(Dial(...), None)

    The aiohttp session is opened on first use (or ``async with``) inside the running
    loop. ``aclose()`` is idempotent; a command sent afterwards raises
    ``SessionClosedError``. ``resolver`` replaces aiohttp's DNS resolver (e.g. aiodns'
    ``AsyncResolver``); connections then still use aiohttp's happy eyeballs across
    every address it returns.
    """

    def __init__(
        self,
        *,
        base_url: str,
        project: str,
        token: str,
        settings: HTTPSettings | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        if not project:
            raise ConfigurationError(f"project is empty: pass project=... or set {ENV_PROJECT}")
        if not token:
            raise ConfigurationError(f"token is empty: pass token=... or set {ENV_TOKEN}")
        self._base_url = base_url_for_space(base_url)
        self._url = URL(self._base_url + API_PATH)
        self._project = project
        self._settings = settings if settings is not None else HTTPSettings()
        self._retry = retry if retry is not None else RetryPolicy()
        self._rng = rng if rng is not None else random.Random()
        auth = base64.b64encode(f"{project}:{token}".encode()).decode("ascii")
        self._headers: dict[str, str] = {
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            # no compressed answers (small JSON); a default header rather than
            # skip_auto_headers, which costs aiohttp a copy of the headers per request
            "Accept-Encoding": "identity",
            "User-Agent": _user_agent(),
        }
        self._secrets = _secrets_of(token, auth, self._settings.proxy)
        self._resolver = resolver
        self._limiter = _FifoLimiter(self._settings.limit)
        self._client_timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._budget_timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._budgets: collections.deque[_Budget] = collections.deque()
        self._budget_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxy: URL | None = None
        self._proxy_headers: dict[str, str] | None = None
        self._request_headers: CIMultiDictProxy[str] | None = None
        self._closed = False
        self._in_flight = 0
        self._requests = 0
        self._retries = 0
        self._rate_limited = 0
        self._server_errors = 0
        self._pool_timeouts = 0
        self._connect_timeouts = 0
        self._read_timeouts = 0
        self._connect_errors = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._session else "unopened")
        return (
            f"<Transport {state} base_url={self._base_url!r} project={self._project!r} "
            f"limit={self._settings.limit}>"
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def settings(self) -> HTTPSettings:
        return self._settings

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    @property
    def user_agent(self) -> str:
        return self._headers["User-Agent"]

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def waiting(self) -> int:
        """Commands queued for admission right now."""
        return self._limiter.waiting

    @property
    def proxy(self) -> str | None:
        """The proxy in use (without its credentials), once the transport is open."""
        return None if self._proxy is None else str(self._proxy)

    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        return TransportStats(
            requests=self._requests,
            retries=self._retries,
            rate_limited=self._rate_limited,
            server_errors=self._server_errors,
            pool_timeouts=self._pool_timeouts,
            connect_timeouts=self._connect_timeouts,
            read_timeouts=self._read_timeouts,
            connect_errors=self._connect_errors,
            queued=self._limiter.waiting,
            queued_peak=self._limiter.peak,
            in_flight=self._in_flight,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise SessionClosedError("the transport is closed")
        self._loop = asyncio.get_running_loop()
        s = self._settings
        tls: ssl.SSLContext | bool = True
        if self._url.scheme == "https" and s.ca_file is not None:
            tls = ssl.create_default_context(cafile=s.ca_file)
        connector = aiohttp.TCPConnector(
            limit=s.limit,
            limit_per_host=0,
            keepalive_timeout=s.keepalive_timeout,
            ttl_dns_cache=s.dns_cache_ttl,
            use_dns_cache=s.dns_cache_ttl != 0,
            ssl=tls,
            resolver=self._resolver,
        )
        proxy: URL | None = None
        proxy_auth: aiohttp.BasicAuth | None = None
        if s.proxy is not None:
            proxy, proxy_auth = aiohttp.helpers.strip_auth_from_url(URL(s.proxy))
        elif s.trust_env:
            # aiohttp's own environment lookup (HTTP(S)_PROXY, NO_PROXY, ~/.netrc), done
            # once: the URL never changes, and ClientSession(trust_env=True) would run it
            # in a thread for every request
            try:
                proxy, proxy_auth = aiohttp.helpers.get_env_proxy_for_url(self._url)
            except LookupError:
                proxy = None
        self._proxy = proxy
        if proxy_auth is not None:
            self._proxy_headers = {"Proxy-Authorization": proxy_auth.encode()}
            self._secrets = _secrets_of(
                proxy_auth.password, self._proxy_headers["Proxy-Authorization"], None, self._secrets
            )
        headers = self._headers
        if proxy is not None:
            # aiohttp merges a session's default headers into the proxy's headers too,
            # and sends an Authorization found there to the proxy as Proxy-Authorization:
            # with a proxy, the API credentials go with each request instead
            headers = {k: v for k, v in headers.items() if k != "Authorization"}
            self._request_headers = CIMultiDictProxy(
                CIMultiDict(Authorization=self._headers["Authorization"])
            )
        # The time budget is set per request (it also covers queueing).
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
            trust_env=False,
        )
        return self._session

    async def __aenter__(self) -> Transport:
        if self._session is None:
            self._open()  # raises SessionClosedError once closed
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool; waiting commands fail with ``SessionClosedError``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._limiter.close()
        if self._budget_timer is not None:
            self._budget_timer.cancel()
            self._budget_timer = None
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- sending -----------------------------------------------------------------------

    async def send(
        self, cmd: Command, call_id: str | None, *, timeout: float | Default | None = DEFAULT
    ) -> AnyLeg:
        """Encode ``cmd`` for the call ``call_id``, send it, return the call leg."""
        return await self.post(
            encode_command(cmd, call_id),
            cmd.command,
            has_control_id=has_control_id(cmd),
            timeout=timeout,
        )

    async def post(
        self,
        body: bytes,
        command: str,
        *,
        has_control_id: bool = False,
        timeout: float | Default | None = DEFAULT,
    ) -> AnyLeg:
        """Send an encoded command body and return the call leg of the answer.

        ``timeout`` bounds each attempt, queueing included (``DEFAULT``: the settings'
        ``timeout``; ``None``: no limit). ``command`` and ``has_control_id`` decide
        which failures may be retried (see ``_retry.should_retry``).
        """
        if self._closed:
            raise SessionClosedError("the transport is closed")
        seconds = self._settings.timeout if isinstance(timeout, Default) else timeout
        session = self._session or self._open()
        limiter = self._limiter
        attempt = 1
        while True:
            self._requests += 1
            error: RequestError | SessionClosedError
            budget = None if seconds is None else self._budget(seconds)
            try:
                try:
                    if limiter.try_acquire():
                        left = seconds
                    else:
                        left = await self._admit(seconds, command, budget)
                    self._in_flight += 1
                    try:
                        if budget is None:
                            client_timeout = self._client_timeouts.get(left)
                            if client_timeout is None:
                                client_timeout = self._client_timeout(left, cache=left is seconds)
                        else:
                            client_timeout = self._budget_timeouts.get(left)
                            if client_timeout is None:
                                client_timeout = self._budget_timeout(left, cache=left is seconds)
                        if self._proxy is None:
                            resp = await session.post(
                                self._url, data=body, timeout=client_timeout, allow_redirects=False
                            )
                        else:
                            resp = await session.post(
                                self._url,
                                data=body,
                                timeout=client_timeout,
                                allow_redirects=False,
                                headers=self._request_headers,
                                proxy=self._proxy,
                                proxy_headers=self._proxy_headers,
                            )
                        try:
                            data = await resp.read()
                        finally:
                            resp.release()
                    finally:
                        self._in_flight -= 1
                        limiter.release()
                except asyncio.CancelledError:
                    if budget is None or not budget.expired():
                        raise
                    # the budget ran out while the request was out: as aiohttp's timer
                    raise TimeoutError from None
                finally:
                    if budget is not None:
                        self._retire(budget)
            except PoolTimeout as exc:
                error = exc
            except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
                error = self._transport_error(exc, command, seconds)
            else:
                status = resp.status
                if 200 <= status < 300:
                    try:
                        leg = decode_leg(data)
                    except MalformedLegError as exc:
                        error = self._unreadable(command, status, data, resp.headers, exc)
                    else:
                        if logger.isEnabledFor(_DEBUG):
                            logger.debug("%s -> %d (leg %s)", command, status, leg.id)
                        return leg
                else:
                    error = self._status_error(command, status, data, resp.headers)
            # raised here, outside any except clause, so that nothing of the HTTP
            # client's exception (which holds the request headers) is chained to it
            if isinstance(error, SessionClosedError | ResponseValidationError):
                raise error
            delay = self._retry_delay(error, command, has_control_id, attempt)
            if delay is None:
                raise error
            await _sleep(delay)
            if self._closed:
                raise SessionClosedError("the transport was closed while retrying")
            attempt += 1
            self._retries += 1

    # -- time budgets --------------------------------------------------------------------

    def _budget(self, seconds: float) -> _Budget | None:
        """Start watching an attempt's deadline, ``seconds`` from now; ``None`` when it
        would come before an earlier attempt's (aiohttp's timer keeps it then)."""
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + seconds
        budgets = self._budgets
        if budgets and deadline < budgets[-1].deadline:
            return None
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - a coroutine of asyncio runs in a task
            return None
        budget = _Budget(deadline, task)
        budgets.append(budget)
        timer = self._budget_timer
        # the timer may still be set for a finished attempt's later deadline
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._budget_timer = loop.call_at(deadline, self._expire)
        return budget

    def _retire(self, budget: _Budget) -> None:
        """The attempt is over: stop watching it (and every finished one before it)."""
        if budget.state == _LIVE:
            budget.state = _DONE
        budgets = self._budgets
        while budgets and budgets[0].state != _LIVE:
            budgets.popleft()

    def _expire(self) -> None:
        """The timer: cancel the attempts whose deadline passed; re-arm for the next."""
        loop = self._loop
        assert loop is not None
        self._budget_timer = None
        budgets = self._budgets
        now = loop.time()
        while budgets:
            budget = budgets[0]
            if budget.state == _LIVE:
                if budget.deadline > now:
                    self._budget_timer = loop.call_at(budget.deadline, self._expire)
                    return
                budget.state = _EXPIRED
                budget.task.cancel()
            budgets.popleft()

    async def _admit(
        self, seconds: float | None, command: str, budget: _Budget | None
    ) -> float | None:
        """Wait for admission (first in, first out) under ``budget``; returns the seconds
        left for the request. ``PoolTimeout`` when the budget runs out while queued."""
        if budget is None:
            return await self._queue(seconds, command)
        try:
            await self._limiter.acquire()
        except asyncio.CancelledError:
            if budget.expired():
                raise self._pool_timeout(seconds, command) from None
            raise
        assert self._loop is not None
        return max(budget.deadline - self._loop.time(), 0.001)

    def _budget_timeout(self, left: float | None, *, cache: bool = False) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for an attempt whose deadline a ``_Budget`` watches: the
        connect timeout only."""
        connect = self._connect_timeout(left)
        client_timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect)
        if cache and len(self._budget_timeouts) < 16:
            self._budget_timeouts[left] = client_timeout
        return client_timeout

    def _pool_timeout(self, timeout: float | None, command: str) -> PoolTimeout:
        self._pool_timeouts += 1
        return PoolTimeout(
            f"{command}: waited {timeout} s for one of the {self._settings.limit} "
            "connection slots (HTTPSettings.limit); the command was not sent",
            command=command,
        )

    def _connect_timeout(self, total: float | None) -> float | None:
        """The connect timeout of an attempt with ``total`` seconds left (see
        ``_CONNECT_SHARE``)."""
        connect = self._settings.connect_timeout
        if total is not None and (connect is None or connect > total * _CONNECT_SHARE):
            connect = total * _CONNECT_SHARE
        return connect

    def _client_timeout(self, total: float | None, *, cache: bool = False) -> aiohttp.ClientTimeout:
        connect = self._connect_timeout(total)
        client_timeout = aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=connect)
        if cache and len(self._client_timeouts) < 16:  # the default and a few per-call
            self._client_timeouts[total] = client_timeout
        return client_timeout

    async def _queue(self, timeout: float | None, command: str) -> float | None:
        """Wait for admission (first in, first out); returns the seconds left for the
        request. ``PoolTimeout`` when the budget runs out while queued."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._limiter.acquire()
        except TimeoutError:
            raise self._pool_timeout(timeout, command) from None
        return None if deadline is None else max(deadline - loop.time(), 0.001)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _transport_error(
        self, exc: BaseException, command: str, timeout: float | None
    ) -> TransportError | SessionClosedError:
        """The ``TransportError`` for an aiohttp or socket failure, or
        ``SessionClosedError`` when the failure came from closing the transport."""
        if self._closed:
            return SessionClosedError("the transport was closed while the command was sent")
        what = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
        target = self._base_url if self._proxy is None else f"{self._base_url} via {self.proxy}"
        error: TransportError
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            self._connect_timeouts += 1
            error = ConnectTimeout(
                f"{command}: timed out connecting to {target}; the command was not sent",
                command=command,
            )
        elif isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientHttpProxyError):
            # refused, DNS, TLS, or a proxy that refused the CONNECT: nothing was sent
            self._connect_errors += 1
            error = ConnectError(
                f"{command}: could not connect to {target}: {what}; the command was not sent",
                command=command,
                request_sent=False,
            )
        elif isinstance(exc, TimeoutError):  # aiohttp's total or sock_read timer
            self._read_timeouts += 1
            error = ReadTimeout(
                f"{command}: no answer from {target} within {timeout} s; the command may "
                "have been carried out",
                command=command,
            )
        else:
            self._connect_errors += 1
            error = ConnectError(
                f"{command}: the connection to {target} failed after the request may have "
                f"been sent: {what}",
                command=command,
                request_sent=True,
            )
        error.__cause__ = _TransportCause(what)
        error.__suppress_context__ = True
        return error

    def _unreadable(
        self,
        command: str,
        status: int,
        data: bytes,
        headers: Any,
        exc: MalformedLegError,
    ) -> ResponseValidationError:
        named = _header_map(headers)
        return ResponseValidationError(
            f"{command}: HTTP {status} with a body that is not a call leg: {exc}; the "
            "command was carried out",
            status=status,
            body=_parse_body(self._scrub_bytes(data)),
            request_id=_request_id(named),
            command=command,
        )

    def _scrub_bytes(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret.encode(), b"***")
        return data

    def _status_error(self, command: str, status: int, data: bytes, headers: Any) -> APIStatusError:
        named = {name: self._scrub(value) for name, value in _header_map(headers).items()}
        if status == 429:
            self._rate_limited += 1
        elif status >= 500:
            self._server_errors += 1
        body = _parse_body(self._scrub_bytes(data))
        request_id = _request_id(named)
        detail = self._scrub(_detail(body))
        message = f"{command}: HTTP {status}"
        if detail:
            message += f": {detail}"
        cls = status_error_class(status)
        if cls is AuthenticationError:
            message += (
                f" (check the project id ({ENV_PROJECT}) and the API token ({ENV_TOKEN}): "
                f"both must belong to the space {self._base_url}, and the token needs the "
                "Voice scope)"
            )
        elif 300 <= status < 400:
            location = named.get("location")
            message += f" (redirect to {location!r} not followed)" if location else ""
        if request_id:
            message += f" (request id {request_id})"
        return cls(
            message,
            status=status,
            body=body,
            request_id=request_id,
            command=command,
            headers=named,
            retry_after=parse_retry_after(named.get("retry-after"), _now()),
        )

    def _retry_delay(
        self, error: RequestError, command: str, has_control_id: bool, attempt: int
    ) -> float | None:
        """Seconds to wait before retrying after ``error``, or None: do not retry."""
        failure, status, retry_after = _classify(error)
        policy = self._retry
        retry = not self._closed and should_retry(
            command=command,
            has_control_id=has_control_id,
            status=status,
            failure=failure,
            attempt=attempt,
            policy=policy,
        )
        detail = f"{failure}{f' {status}' if status is not None else ''}"
        if not retry:
            if logger.isEnabledFor(_DEBUG):
                logger.debug(
                    "%s attempt %d failed (%s): not retried: %s", command, attempt, detail, error
                )
            return None
        delay = compute_delay(policy, attempt, retry_after, self._rng)
        if logger.isEnabledFor(_DEBUG):
            logger.debug(
                "%s attempt %d failed (%s): retrying in %.3f s%s",
                command,
                attempt,
                detail,
                delay,
                " (Retry-After)" if retry_after is not None else "",
                extra={"sw_delay": delay, "sw_attempt": attempt},
            )
        return delay


def _secrets_of(
    token: str | None,
    auth: str | None,
    proxy: str | None,
    known: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """Every string that must never appear in an error: the token, the Basic credentials
    in base64, and a proxy URL's password and credentials (raw, unquoted, base64)."""
    secrets = set(known)
    if token:
        secrets.add(token)
    if auth:
        secrets.add(auth)
        secrets.add(auth.removeprefix("Basic "))
    if proxy:
        parts = urlsplit(proxy)
        if parts.password:
            user = parts.username or ""
            for password in (parts.password, unquote(parts.password)):
                secrets.add(password)
            pair = f"{unquote(user)}:{unquote(parts.password)}"
            secrets.add(base64.b64encode(pair.encode()).decode("ascii"))
    # longest first, so a secret containing another is replaced whole
    return tuple(sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True))


def _header_map(headers: Any) -> dict[str, str]:
    """Lower-cased header names to values (the first of repeated names wins)."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), value)
    return out


def has_control_id(cmd: Command) -> bool:
    """Whether ``cmd`` carries a control_id (a resend of it is then harmless)."""
    control_id = getattr(cmd, "control_id", None)
    return isinstance(control_id, str) and bool(control_id)


def _classify(exc: RequestError) -> tuple[Failure, int | None, float | None]:
    """How an attempt failed, its status and the server's Retry-After, for the policy."""
    if isinstance(exc, APIStatusError):
        return "status", exc.status, exc.retry_after
    if isinstance(exc, PoolTimeout):
        return "pool_timeout", None, None
    if isinstance(exc, TransportError):
        if not exc.request_sent:
            return "connect_not_sent", None, None
        if isinstance(exc, ReadTimeout):
            return "timeout", None, None
        return "connect_maybe_sent", None, None
    return "status", None, None  # pragma: no cover - every RequestError is one of these


def _parse_body(data: bytes) -> Any:
    if not data:
        return None
    try:
        return decode_json(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", "replace")


def _request_id(headers: dict[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _detail(body: Any) -> str:
    """A short human summary of an error body."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for item in errors[:5]:
                if isinstance(item, dict):
                    text = str(item.get("message") or item.get("code") or "")
                    attribute = item.get("attribute")
                    parts.append(f"{attribute}: {text}" if attribute else text)
            return "; ".join(p for p in parts if p)
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value[:200]
        return ""
    if isinstance(body, str):
        return body.strip()[:200]
    return ""
