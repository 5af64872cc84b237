"""The pooled HTTP transport: keep-alive connections, FIFO admission, Basic auth, retries.

``Transport.send(cmd, call_id)`` POSTs ``{base}/api/calling/calls`` and returns the
decoded call leg, or raises a ``RequestError`` (see ``errors``): ``APIStatusError``
subclasses for non-2xx answers, ``ConnectError`` / ``RequestTimeout`` when no usable
answer came back. Retries follow ``_retry``.

The bytes go through one of two engines (``HTTPSettings.engine``): the builtin HTTP/1.1
client of ``_h1`` (the default; about a third of the instructions per command) or
``aiohttp.ClientSession``. Policy (admission, the time budget, error mapping, retries)
is the same for both and lives here.

Whether a failed request may have reached the server (this decides ``dial`` resends):

* failing to connect (refused, DNS, TLS handshake, connect timeout: ``_h1.ConnectFailed``,
  ``aiohttp.ClientConnectorError``, ``aiohttp.ConnectionTimeoutError``) happens before
  any request byte is written: **not sent**.
* a connection lost after that (``_h1.ConnectionLost``, ``ServerDisconnectedError``, a
  reset on a reused keep-alive connection), a broken response and a timeout after
  admission: the request **may have been sent**.

Admission: aiohttp's connector hands a freed connection to whichever waiter asks first,
so at high concurrency some callers starve. Commands therefore queue first-in-first-out
in a limiter sized to the connection limit, in front of either engine; the engine's own
pool then never makes anyone wait.

The API token is only ever held inside the precomputed ``Authorization`` header; no
repr, str, error or log line contains it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import enum
import ipaddress
import logging
import math
import os
import platform
import random
import ssl
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias
from urllib.parse import urlsplit

import aiohttp
import msgspec
from multidict import CIMultiDictProxy
from yarl import URL

from . import _h1
from ._codec import MalformedLegError, decode_json, decode_leg, encode_command
from ._retry import Failure, RetryPolicy, compute_delay, parse_retry_after, should_retry
from .errors import (
    APIStatusError,
    ConfigurationError,
    ConnectError,
    RateLimitError,
    RequestError,
    RequestTimeout,
    SessionClosedError,
    status_error_class,
)
from .legs import AnyLeg

if TYPE_CHECKING:
    from .commands import Command

__all__ = [
    "API_PATH",
    "ENV_PROJECT",
    "ENV_SPACE",
    "ENV_TOKEN",
    "USE_DEFAULT",
    "Credentials",
    "HTTPSettings",
    "TimeoutArg",
    "Transport",
    "base_url_for_space",
    "credentials_from_env",
]

logger = logging.getLogger("signalwire_calls.http")

API_PATH: Final = "/api/calling/calls"
ENV_PROJECT: Final = "SIGNALWIRE_PROJECT_ID"
ENV_TOKEN: Final = "SIGNALWIRE_API_TOKEN"
ENV_SPACE: Final = "SIGNALWIRE_SPACE"

#: Response headers that may carry the server's request id, first present wins.
_REQUEST_ID_HEADERS: Final = (
    "x-request-id",
    "x-signalwire-request-id",
    "request-id",
    "x-amzn-requestid",
)
_DEBUG: Final = logging.DEBUG

# Indirections the tests replace to observe retry delays without waiting for them.
_sleep = asyncio.sleep
_now = time.time


class _UseDefault(enum.Enum):
    USE_DEFAULT = "USE_DEFAULT"

    def __repr__(self) -> str:
        return "USE_DEFAULT"


#: Per-call ``timeout=`` value meaning "the transport's default"; ``None`` means none.
USE_DEFAULT: Final = _UseDefault.USE_DEFAULT
#: A per-call timeout: seconds, ``None`` (no timeout) or ``USE_DEFAULT``.
TimeoutArg: TypeAlias = float | _UseDefault | None


# --------------------------------------------------------------------------- settings


class HTTPSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Connection pool and timeout settings of a ``Transport``.

    ``limit`` caps open connections (and commands in flight); more commands wait their
    turn first-in-first-out. ``limit_per_host`` (0 = same as ``limit``) matters only
    behind a proxy. ``keepalive_timeout`` closes idle connections after that many
    seconds; keep it below the server's own idle timeout. ``dns_cache_ttl`` caches DNS
    answers (``None`` forever, 0 not at all). ``timeout`` bounds each attempt, from
    joining the queue to the last byte of the answer (``None`` = no limit);
    ``connect_timeout`` bounds opening a connection. ``ca_file`` is a PEM bundle of CA
    certificates to trust instead of the system store (a TLS-intercepting proxy, a test
    server).

    ``engine`` picks the HTTP client: ``"builtin"`` (the default) is the library's lean
    HTTP/1.1 keep-alive client, which does only what the command endpoint needs and
    spends about a third of the CPU per command of aiohttp's general-purpose client (see
    the README's Performance section); ``"aiohttp"`` sends through ``aiohttp.ClientSession``
    instead, should a proxy or server in between need aiohttp's broader HTTP handling.
    Both give the same answers, errors and retries.

        HTTPSettings(limit=200, timeout=5.0)
    """

    limit: int = 100
    limit_per_host: int = 0
    keepalive_timeout: float = 15.0
    dns_cache_ttl: int | None = 300
    timeout: float | None = 10.0
    connect_timeout: float | None = 5.0
    ca_file: str | None = None
    engine: Literal["builtin", "aiohttp"] = "builtin"

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ConfigurationError(f"limit must be >= 1 connection, got {self.limit}")
        if self.limit_per_host < 0:
            raise ConfigurationError(
                f"limit_per_host must be >= 0 (0 = same as limit), got {self.limit_per_host}"
            )
        if not (self.keepalive_timeout >= 0 and math.isfinite(self.keepalive_timeout)):
            raise ConfigurationError(
                f"keepalive_timeout must be a finite number >= 0, got {self.keepalive_timeout}"
            )
        if self.dns_cache_ttl is not None and self.dns_cache_ttl < 0:
            raise ConfigurationError(
                f"dns_cache_ttl must be >= 0 or None, got {self.dns_cache_ttl}"
            )
        for name in ("timeout", "connect_timeout"):
            value: float | None = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be > 0 seconds or None, got {value}")
        if self.engine not in ("builtin", "aiohttp"):
            raise ConfigurationError(f"engine must be 'builtin' or 'aiohttp', got {self.engine!r}")
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConfigurationError(f"ca_file {self.ca_file!r} is not a file")

    @property
    def max_in_flight(self) -> int:
        """How many requests run at once; the rest queue FIFO."""
        if self.limit_per_host:
            return min(self.limit, self.limit_per_host)
        return self.limit

    def replace(self, **overrides: Any) -> HTTPSettings:
        """A copy with the given fields changed (validated again)."""
        return msgspec.structs.replace(self, **overrides)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Project id, API token and space. The token is left out of the repr."""

    project: str
    token: str = field(repr=False)
    space: str


def credentials_from_env(
    project: str | None = None, token: str | None = None, space: str | None = None
) -> Credentials:
    """Credentials from the arguments, else from ``SIGNALWIRE_PROJECT_ID``,
    ``SIGNALWIRE_API_TOKEN`` and ``SIGNALWIRE_SPACE``.

    Raises ``ConfigurationError`` naming every missing value and how to provide it.
    """
    values: dict[str, str] = {}
    missing: list[str] = []
    for arg, given, env, what in (
        ("project", project, ENV_PROJECT, "project id"),
        ("token", token, ENV_TOKEN, "API token"),
        ("space", space, ENV_SPACE, "space"),
    ):
        value = given if given is not None else os.environ.get(env)
        value = value.strip() if value is not None else ""
        if not value:
            source = f"{arg}= is empty" if given is not None else f"{env} is not set"
            missing.append(
                f"the {what} is missing ({source}): pass {arg}=... or set the "
                f"environment variable {env}"
            )
        values[arg] = value
    if missing:
        raise ConfigurationError("; ".join(missing))
    return Credentials(project=values["project"], token=values["token"], space=values["space"])


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_for_space(space: str) -> str:
    """The base URL for a space name, host or URL (no trailing slash).

    ``"myspace"`` and ``"myspace.signalwire.com"`` give ``https://myspace.signalwire.com``;
    an ``https://`` URL is kept; ``http://`` is allowed only for loopback hosts (the
    simulator), and a bare loopback host such as ``"127.0.0.1:8080"`` gets ``http://``.
    """
    raw = space.strip()
    if not raw:
        raise ConfigurationError(f"space is empty: pass space=... or set {ENV_SPACE}")
    if "://" in raw:
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        if not host:
            raise ConfigurationError(f"space {raw!r}: the URL has no host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(
                f"space {raw!r}: the URL must not carry credentials, a query or a fragment"
            )
        if scheme == "https":
            return raw.rstrip("/")
        if scheme == "http":
            if _is_loopback(host):
                return raw.rstrip("/")
            raise ConfigurationError(
                f"space {raw!r}: plain http:// is allowed only for loopback hosts "
                "(127.0.0.1, localhost, ::1); SignalWire spaces need https://"
            )
        raise ConfigurationError(f"space {raw!r}: the URL scheme must be https (or http)")
    # A bare IPv6 loopback ("::1") has no port; bracket it.
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        pass
    else:
        host = f"[{raw}]" if address.version == 6 else raw
        return f"http://{host}" if address.is_loopback else f"https://{host}"
    parts = urlsplit(f"//{raw}")
    try:
        host = parts.hostname or ""
        _ = parts.port  # validates the port
    except ValueError:
        raise ConfigurationError(f"space {raw!r}: not a space name or host[:port]") from None
    if not host or parts.path or parts.query or parts.fragment or parts.username:
        raise ConfigurationError(f"space {raw!r}: not a space name or host[:port]")
    if _is_loopback(host):
        return f"http://{raw}"
    if "." not in host:
        return f"https://{raw}.signalwire.com"
    return f"https://{raw}"


def _user_agent(engine: str = "aiohttp") -> str:
    """Names the library, Python and, on ``engine="aiohttp"``, aiohttp's version."""
    from . import __version__  # imported late: the package is fully loaded by now

    agent = f"signalwire-calls/{__version__} python/{platform.python_version()}"
    return f"{agent} aiohttp/{aiohttp.__version__}" if engine == "aiohttp" else agent


# --------------------------------------------------------------------------- admission


class _FifoLimiter:
    """At most ``size`` holders; waiters are admitted strictly first-in-first-out.

    A released slot is handed straight to the oldest live waiter, so newcomers cannot
    barge in. Cancellation-safe: a waiter cancelled after it was handed a slot passes
    it on.
    """

    __slots__ = ("_closed", "_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

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
        self._waiters.append(fut)
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


class Transport:
    """Sends commands over one pooled aiohttp session and decodes the call leg.

        async with Transport(base_url="https://example.signalwire.com",
                             project=PROJECT, token=TOKEN) as transport:
            leg = await transport.send(Dial(...), None)

    The aiohttp session is opened on first use (or ``async with``) inside the running
    loop. ``aclose()`` is idempotent; any use afterwards raises ``SessionClosedError``.
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
            "User-Agent": _user_agent(self._settings.engine),
        }
        self._limiter = _FifoLimiter(self._settings.max_in_flight)
        self._client_timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._session: aiohttp.ClientSession | None = None
        self._pool: _h1.H1Pool | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._opened else "unopened")
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
    def _opened(self) -> bool:
        return self._pool is not None or self._session is not None

    @property
    def waiting(self) -> int:
        """Commands queued for admission right now."""
        return self._limiter.waiting

    # -- lifecycle ---------------------------------------------------------------------

    def _open(self) -> None:
        if self._closed:
            raise SessionClosedError("the transport is closed")
        s = self._settings
        tls = None
        if self._url.scheme == "https":
            tls = ssl.create_default_context(cafile=s.ca_file)
        if s.engine == "builtin":
            host = self._url.raw_host or ""
            port = self._url.port or (443 if tls is not None else 80)
            self._pool = _h1.H1Pool(
                host,
                port,
                head=_h1.build_request_head(
                    self._url.raw_path,
                    host,
                    port,
                    443 if tls is not None else 80,
                    self._headers,
                ),
                tls=tls,
                keepalive_timeout=s.keepalive_timeout,
                connect_timeout=s.connect_timeout,
                dns_cache_ttl=s.dns_cache_ttl,
            )
        else:
            connector = aiohttp.TCPConnector(
                limit=s.limit,
                limit_per_host=s.limit_per_host,
                keepalive_timeout=s.keepalive_timeout,
                ttl_dns_cache=s.dns_cache_ttl,
                use_dns_cache=s.dns_cache_ttl != 0,
                ssl=tls if tls is not None else True,
            )
            # The total per attempt is enforced per request (it also covers queueing).
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout),
                skip_auto_headers=("Accept-Encoding",),
                raise_for_status=False,
            )

    async def __aenter__(self) -> Transport:
        if not self._opened:
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
        session, self._session = self._session, None
        pool, self._pool = self._pool, None
        if session is not None:
            await session.close()
        if pool is not None:
            await pool.aclose()

    # -- sending -----------------------------------------------------------------------

    async def send(
        self, cmd: Command, call_id: str | None, *, timeout: TimeoutArg = USE_DEFAULT
    ) -> AnyLeg:
        """Send ``cmd`` for the call ``call_id`` and return the call leg of the answer.

        ``timeout`` bounds each attempt (``USE_DEFAULT``: the settings' ``timeout``;
        ``None``: no limit). Retries follow the transport's ``RetryPolicy``.
        """
        return await self.send_raw(
            encode_command(cmd, call_id),
            cmd.command,
            has_control_id=has_control_id(cmd),
            timeout=timeout,
        )

    async def send_raw(
        self,
        body: bytes,
        command_name: str,
        *,
        has_control_id: bool = False,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> AnyLeg:
        """Send an already encoded command body; ``command_name`` and ``has_control_id``
        decide which failures may be retried (see ``_retry.should_retry``)."""
        if self._closed:
            raise SessionClosedError("the transport is closed")
        seconds = self._settings.timeout if timeout is USE_DEFAULT else timeout
        limiter = self._limiter
        attempt = 1
        # One coroutine frame for the whole exchange, attempts included: every frame
        # between the caller and the HTTP client is paid again on each resumption.
        while True:
            if not self._opened:
                self._open()
            try:
                # One budget covers queueing and the request; asyncio.timeout is only
                # armed when the command must queue.
                if limiter.try_acquire():
                    left = seconds
                else:
                    left = await self._queue(seconds)
                try:
                    pool = self._pool
                    if pool is not None:
                        answer = await pool.post(body, left)
                        status, data = answer.status, answer.body
                        headers: _AnyHeaders = answer.headers
                    elif self._session is not None:
                        client_timeout = self._client_timeouts.get(left)
                        if client_timeout is None:
                            client_timeout = self._client_timeout(left, cache=left is seconds)
                        resp = await self._session.post(
                            self._url, data=body, timeout=client_timeout
                        )
                        try:
                            data = await resp.read()
                        finally:
                            resp.release()
                        status, headers = resp.status, resp.headers
                    else:
                        raise SessionClosedError("the transport is closed")
                finally:
                    limiter.release()
            except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
                error: RequestError = self._transport_error(exc, command_name, seconds)
            else:
                if 200 <= status < 300:
                    try:
                        leg = decode_leg(data)
                    except MalformedLegError as exc:
                        named = _header_map(headers)
                        error = APIStatusError(
                            f"{command_name}: HTTP {status} with an unreadable call leg: {exc}",
                            status=status,
                            body=_parse_body(data),
                            request_id=_request_id(named),
                            command=command_name,
                            headers=named,
                        )
                    else:
                        if logger.isEnabledFor(_DEBUG):
                            logger.debug("%s -> %d (leg %s)", command_name, status, leg.id)
                        return leg
                else:
                    error = _status_error(command_name, status, data, _header_map(headers))
            delay = self._retry_delay(error, command_name, has_control_id, attempt)
            if delay is None:
                raise error
            await _sleep(delay)
            if self._closed:
                raise SessionClosedError("the transport was closed while retrying")
            attempt += 1

    def _client_timeout(self, total: float | None, *, cache: bool = False) -> aiohttp.ClientTimeout:
        client_timeout = aiohttp.ClientTimeout(
            total=total, sock_connect=self._settings.connect_timeout
        )
        if cache and len(self._client_timeouts) < 16:  # the default and a few per-call
            self._client_timeouts[total] = client_timeout
        return client_timeout

    async def _queue(self, timeout: float | None) -> float | None:
        """Wait for admission (first in, first out); returns the seconds left for the
        request. ``TimeoutError`` when the budget runs out while queued."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with asyncio.timeout_at(deadline):
            await self._limiter.acquire()
        return None if deadline is None else max(deadline - loop.time(), 0.001)

    def _transport_error(
        self, exc: BaseException, command: str, timeout: float | None
    ) -> RequestError:
        """The ``RequestError`` for an aiohttp or socket failure (``__cause__`` set);
        raises ``SessionClosedError`` when the failure came from closing the transport."""
        error: RequestError
        if isinstance(exc, _CONNECT_ERRORS):
            if self._closed:
                raise SessionClosedError("the transport was closed") from exc
            if isinstance(exc, _CONNECT_TIMEOUTS):
                error = RequestTimeout(
                    f"{command}: timed out connecting to {self._base_url}", command=command
                )
            else:
                error = ConnectError(
                    f"{command}: could not connect to {self._base_url}: {exc}",
                    command=command,
                    request_sent=False,
                )
        elif isinstance(exc, aiohttp.ServerTimeoutError):
            error = RequestTimeout(
                f"{command}: timed out waiting for {self._base_url}", command=command
            )
        elif isinstance(exc, TimeoutError):  # asyncio.timeout() fired while queued
            error = RequestTimeout(
                f"{command}: no answer from {self._base_url} within {timeout} s",
                command=command,
            )
        else:
            if self._closed:
                raise SessionClosedError("the transport was closed") from exc
            error = ConnectError(
                f"{command}: connection to {self._base_url} failed after the request may "
                f"have been sent: {type(exc).__name__}: {exc}",
                command=command,
                request_sent=True,
            )
        error.__cause__ = exc
        error.__suppress_context__ = True
        return error

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


# What "the request never left" looks like from either engine.
_CONNECT_TIMEOUTS: Final = (aiohttp.ConnectionTimeoutError, _h1.ConnectTimeout)
_CONNECT_ERRORS: Final = (*_CONNECT_TIMEOUTS, aiohttp.ClientConnectorError, _h1.ConnectFailed)

#: Response headers as either engine hands them over.
_AnyHeaders: TypeAlias = "CIMultiDictProxy[str] | list[tuple[str, str]]"


def _header_map(headers: _AnyHeaders) -> dict[str, str]:
    """Lower-cased header names to values (the first of repeated names wins)."""
    out: dict[str, str] = {}
    for name, value in headers.items() if not isinstance(headers, list) else headers:
        out.setdefault(name.lower(), value)
    return out


def has_control_id(cmd: Command) -> bool:
    """Whether ``cmd`` carries a control_id (a resend of it is then harmless)."""
    control_id = getattr(cmd, "control_id", None)
    return isinstance(control_id, str) and bool(control_id)


def _classify(exc: RequestError) -> tuple[Failure, int | None, float | None]:
    """How an attempt failed, its status and the server's Retry-After, for the policy."""
    if isinstance(exc, APIStatusError):
        retry_after = (
            exc.retry_after
            if isinstance(exc, RateLimitError)
            else parse_retry_after(exc.headers.get("retry-after"), _now())
        )
        return "status", exc.status, retry_after
    if isinstance(exc, ConnectError):
        return ("connect_maybe_sent" if exc.request_sent else "connect_not_sent"), None, None
    if isinstance(exc.__cause__, _CONNECT_TIMEOUTS):
        return "connect_not_sent", None, None
    return "timeout", None, None


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


def _status_error(
    command: str, status: int, data: bytes, headers: dict[str, str]
) -> APIStatusError:
    body = _parse_body(data)
    request_id = _request_id(headers)
    detail = _detail(body)
    message = f"{command}: HTTP {status}"
    if detail:
        message += f": {detail}"
    if request_id:
        message += f" (request id {request_id})"
    cls = status_error_class(status)
    err = cls(
        message,
        status=status,
        body=body,
        request_id=request_id,
        command=command,
        headers=headers,
    )
    if isinstance(err, RateLimitError):
        err.retry_after = parse_retry_after(headers.get("retry-after"), _now())
    return err


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
                return value
        return ""
    if isinstance(body, str):
        text = body.strip()
        return text[:200]
    return ""
