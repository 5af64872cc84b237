"""The webhook receiver: signature check -> decode -> hand to an ``EventSink``.

One core (``_Core.process``) holds the logic; three front ends use it: ``create_app``
(an aiohttp ``Application``, mountable with ``add_subapp``), ``Receiver`` (a standalone
aiohttp low-level ``Server`` on a ``TCPSite``) and ``asgi_app`` (a plain ASGI 3
callable). Nothing a client sends produces a 500, a hang or a flood of log lines: a bad
signature is 403 (empty body), an oversized body 413, a body not received within
``body_timeout`` 408, an unreadable one 400, anything decodable 200 -- even when the sink
fails -- and a bug met while handling a request 400 (counted, logged once a minute).

    async with Receiver(registry, ReceiverSettings(signing_key=KEY)) as receiver:
        print(receiver.url)          # give this (or public_url + path) as status_url
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import msgspec
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import access_logger, server_logger
from aiohttp.web_protocol import RequestPayloadError

from ._codec import decode_event
from ._logthrottle import LogThrottle
from ._signing import SHA1_HEADER, SHA256_HEADER, Verifier
from .errors import ConfigurationError, MalformedWebhookError
from .events import AnyEvent, UnknownEvent

__all__ = [
    "ASGIReceiver",
    "EventRouter",
    "EventSink",
    "InboundAnswer",
    "MetricsSource",
    "Receiver",
    "ReceiverSettings",
    "ReceiverStats",
    "app_stats",
    "asgi_app",
    "create_app",
]

logger = logging.getLogger("signalwire_calls.receiver")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[Message]]
ASGISend = Callable[[Message], Awaitable[None]]


class EventSink(Protocol):
    """Where decoded webhooks go (the session's registry implements it).

    ``deliver`` should never raise; if it does, the receiver logs and counts it
    (``sink_errors``) and still answers 200. A sink may also expose its own ``stats()``;
    the receiver does not call it -- ``CallSession.stats()`` merges the registry's
    counters with ``Receiver.stats()`` (reach the sink through ``Receiver.sink``).
    """

    def deliver(self, event: AnyEvent) -> None: ...


class EventRouter(Protocol):
    """Where webhooks for other processes go (``RedisBus`` implements it).

    ``owner`` is the ``swc_owner`` query parameter of the URL the webhook was sent to
    (``None`` without one). ``is_local(owner)`` says whether the event is this
    process's (then it goes to the sink); otherwise the verified body is handed to
    ``forward``, which returns ``False`` when it could not be taken (the receiver then
    answers 503, so the platform sends it again).
    """

    def is_local(self, owner: str | None) -> bool: ...

    async def forward(self, owner: str | None, body: bytes) -> bool: ...


#: The query parameter naming the owner of a webhook (see ``EventRouter``).
OWNER_PARAM = "swc_owner"


class InboundAnswer(Protocol):
    """Answers the platform's SWML request for an inbound call (the session's
    ``on_inbound`` dispatcher implements it).

    ``answer`` gets the verified body and returns the SWML reply (JSON bytes), or
    ``None`` when no inbound handler is set (the receiver then answers 404); it raises
    ``MalformedWebhookError`` for a body that is not an SWML request (400).
    """

    def answer(self, body: bytes) -> bytes | None: ...


class MetricsSource(Protocol):
    """What the receiver needs to time webhooks and serve ``metrics_path`` (the
    session's ``signalwire_calls.metrics.SessionMetrics`` implements it).

    ``begin_webhook`` is called when the receiver starts handling a webhook's body and
    ``end_webhook`` when it is done with it (both on the webhook path: keep them cheap);
    ``render(accept)`` returns the exposition (body, content type) for a scrape whose
    ``Accept`` header is ``accept``.
    """

    def begin_webhook(self) -> None: ...

    def end_webhook(self) -> None: ...

    def render(self, accept: str | None) -> tuple[bytes, str]: ...


_ROUTES = ("path", "inbound_path", "metrics_path")


class ReceiverSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration of the webhook receiver.

    ``path`` is the route inside the receiver's app, ``inbound_path`` the route of the
    SWML webhook for inbound calls (served when the session has ``on_inbound``).
    ``public_url`` is the base URL the
    platform calls (``"https://abc.ngrok.io"``); signatures are checked over
    ``public_url + request path + query``, so verification works behind a tunnel or
    proxy. Without it the URL the server saw (``scheme://host/path?query``) is used.
    ``signing_key`` turns verification on (the SHA-256 header is preferred, the SHA-1
    one accepted); ``max_body_size`` bounds a body in bytes (413 beyond).

    ``metrics_path`` (``"/metrics"``, say) turns Prometheus metrics on: the receiver then
    answers GET requests there with the session's counters and its webhook-to-waiter
    latency histogram (needs the ``metrics`` extra, ``prometheus-client``; see
    ``signalwire_calls.metrics``). It is served without authentication: on a public
    receiver, restrict it at your proxy.

    ``body_timeout`` (seconds) bounds the read of one body, from the end of the headers:
    a client slower than that gets 408 and its connection is closed (all three front
    ends). ``keepalive_timeout`` (seconds) closes a connection idle that long, or one
    that has not sent a whole request head that long after connecting; it applies to the
    standalone ``Receiver`` only -- mounted in your app, your server's own keep-alive
    setting applies (aiohttp's ``AppRunner(keepalive_timeout=...)``, uvicorn's
    ``--timeout-keep-alive``).

        ReceiverSettings(public_url="https://hooks.example.com", signing_key="PSK_...")
    """

    path: str = "/signalwire/events"
    inbound_path: str = "/signalwire/inbound"
    public_url: str | None = None
    signing_key: str | None = None
    max_body_size: int = 256 * 1024
    body_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    metrics_path: str | None = None

    def __post_init__(self) -> None:
        names = ("path", "inbound_path") if self.metrics_path is None else _ROUTES
        for name in names:
            route: str | None = getattr(self, name)
            if (
                not isinstance(route, str)
                or not route.startswith("/")
                or "?" in route
                or "#" in route
            ):
                raise ConfigurationError(
                    f"{name}: must start with '/' and hold no query or fragment, got {route!r}"
                )
        if self.inbound_path == self.path:
            raise ConfigurationError("inbound_path: must differ from path")
        if self.metrics_path in (self.path, self.inbound_path):
            raise ConfigurationError("metrics_path: must differ from path and inbound_path")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigurationError(
                    f"public_url: must be an http(s) URL with a host, got {self.public_url!r}"
                )
            if parts.query or parts.fragment or self.public_url.endswith(("?", "#")):
                raise ConfigurationError(
                    f"public_url: must hold no query or fragment, got {self.public_url!r}"
                )
        if self.signing_key is not None:
            if not self.signing_key:
                raise ConfigurationError("signing_key: must be a non-empty string or None")
            try:
                self.signing_key.encode()
            except UnicodeEncodeError:
                raise ConfigurationError("signing_key: must be encodable as UTF-8") from None
        if isinstance(self.max_body_size, bool) or self.max_body_size < 1:
            raise ConfigurationError(
                f"max_body_size: must be >= 1 byte, got {self.max_body_size!r}"
            )
        for name in ("body_timeout", "keepalive_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(
                    f"{name}: must be a finite number of seconds > 0, got {value!r}"
                )


class ReceiverStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the receiver's counters.

    ``received`` counts POSTs reaching the handler, and each ends in exactly one of
    ``accepted`` (answered 200, including ``unknown_events``, ``sink_errors`` and
    ``forwarded``: events handed to another process through a ``router``) or a refusal:
    ``rejected_unavailable`` (503: the router could not take an event for another
    process), ``rejected_signature`` (403), ``rejected_malformed`` (400: unreadable body,
    not an event, an id over 128 characters), ``rejected_too_large`` (413),
    ``rejected_timeout`` (408: body slower than ``body_timeout``) or ``rejected_error``
    (400: an unexpected error while handling it, logged). ``rejected_protocol`` counts
    requests the standalone server's HTTP parser refused (400) before any handler: they
    are not in ``received``. Routing counters (routed, buffered, expired, duplicates)
    belong to the registry.
    """

    received: int = 0
    accepted: int = 0
    rejected_signature: int = 0
    rejected_malformed: int = 0
    rejected_too_large: int = 0
    rejected_timeout: int = 0
    rejected_error: int = 0
    rejected_protocol: int = 0
    rejected_unavailable: int = 0
    unknown_events: int = 0
    sink_errors: int = 0
    forwarded: int = 0


def _clip(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters for a log line (log it with ``%r``)."""
    return text if len(text) <= limit else text[:limit] + "..."


class _Core:
    """The shared logic and the live counters of one receiver.

    A front end counts ``received`` once a request reaches it, then ends it through
    exactly one of the methods returning a status (``process``, ``too_large``,
    ``unreadable``, ``timed_out``, ``failed``), each of which counts its outcome.
    """

    __slots__ = (
        "_error_log",
        "_metrics_log",
        "_signature_log",
        "_sink_log",
        "_timeout_log",
        "_verifier",
        "accepted",
        "base_url",
        "body_timeout",
        "forwarded",
        "inbound",
        "max_body_size",
        "metrics",
        "metrics_path",
        "protocol_log",
        "received",
        "rejected_error",
        "rejected_malformed",
        "rejected_protocol",
        "rejected_signature",
        "rejected_timeout",
        "rejected_too_large",
        "rejected_unavailable",
        "router",
        "settings",
        "signing_key",
        "sink",
        "sink_errors",
        "unknown_events",
    )

    def __init__(
        self,
        sink: EventSink,
        settings: ReceiverSettings,
        inbound: InboundAnswer | None = None,
        metrics: MetricsSource | None = None,
        router: EventRouter | None = None,
    ) -> None:
        self.sink = sink
        self.router = router
        self.settings = settings
        self.inbound = inbound
        self.metrics = metrics
        # served only with a source to render: _make_core refuses a path without one
        self.metrics_path = settings.metrics_path
        self.signing_key = settings.signing_key
        self._verifier = Verifier(settings.signing_key) if settings.signing_key else None
        self.base_url = settings.public_url.rstrip("/") if settings.public_url else None
        self.max_body_size = settings.max_body_size
        self.body_timeout = settings.body_timeout
        self.received = 0
        self.accepted = 0
        self.rejected_signature = 0
        self.rejected_malformed = 0
        self.rejected_too_large = 0
        self.rejected_timeout = 0
        self.rejected_error = 0
        self.rejected_protocol = 0
        self.rejected_unavailable = 0
        self.unknown_events = 0
        self.sink_errors = 0
        self.forwarded = 0
        self._signature_log = LogThrottle(logger)  # WARNING
        self._timeout_log = LogThrottle(logger)
        self._error_log = LogThrottle(logger, logging.ERROR)
        self._sink_log = LogThrottle(logger, logging.ERROR)
        self.protocol_log = LogThrottle(logger)
        self._metrics_log = LogThrottle(logger, logging.ERROR)

    def stats(self) -> ReceiverStats:
        return ReceiverStats(
            received=self.received,
            accepted=self.accepted,
            rejected_signature=self.rejected_signature,
            rejected_malformed=self.rejected_malformed,
            rejected_too_large=self.rejected_too_large,
            rejected_timeout=self.rejected_timeout,
            rejected_error=self.rejected_error,
            rejected_protocol=self.rejected_protocol,
            rejected_unavailable=self.rejected_unavailable,
            unknown_events=self.unknown_events,
            sink_errors=self.sink_errors,
            forwarded=self.forwarded,
        )

    def too_large(self) -> int:
        self.rejected_too_large += 1
        logger.debug("webhook refused (413): body over %d bytes", self.max_body_size)
        return 413

    def unreadable(self, exc: BaseException) -> int:
        self.rejected_malformed += 1
        logger.debug("webhook refused (400): body could not be read (%r)", exc)
        return 400

    def timed_out(self) -> int:
        self.rejected_timeout += 1
        self._timeout_log(
            "webhook refused (408): body not received within body_timeout=%s s",
            self.body_timeout,
        )
        return 408

    def failed(self, exc: Exception) -> int:
        """The last resort: an unexpected error while handling a request is a 400."""
        self.rejected_error += 1
        self._error_log(
            "webhook refused (400): unexpected %s while handling it",
            type(exc).__name__,
            exc_info=exc,
        )
        return 400

    def protocol_error(self, exc: HttpProcessingError) -> None:
        """A request the standalone server's HTTP parser refused (aiohttp answers 400)."""
        self.rejected_protocol += 1
        self.protocol_log(
            "request refused by the HTTP parser (%d): %s %r",
            exc.code,
            type(exc).__name__,
            _clip(exc.message),
        )

    def process(self, body: bytes, url: str, header: Callable[[str], str | None]) -> int:
        """Verify, decode and deliver one webhook body; return the HTTP status.

        ``url`` is the URL the signature covers (ignored without a signing key);
        ``header`` looks up a request header by name (case-insensitively).
        """
        verifier = self._verifier
        if verifier is not None and not verifier.verify(url, body, header):
            return self._bad_signature(url, header)
        try:
            event = decode_event(body)
        except MalformedWebhookError as exc:
            self.rejected_malformed += 1
            logger.debug("webhook refused (400): %r", str(exc))
            return 400
        if type(event) is UnknownEvent:
            self.unknown_events += 1
        try:
            self.sink.deliver(event)
        except Exception as exc:
            self.sink_errors += 1
            self._sink_log("event sink failed on %s", type(event).__name__, exc_info=exc)
        self.accepted += 1
        return 200

    async def process_routed(
        self, body: bytes, url: str, header: Callable[[str], str | None], owner: str | None
    ) -> int:
        """``process`` with a router: an event for another process is forwarded (200
        once the router took it, 503 when it could not)."""
        router = self.router
        assert router is not None
        if router.is_local(owner):
            return self.process(body, url, header)
        verifier = self._verifier
        if verifier is not None and not verifier.verify(url, body, header):
            return self._bad_signature(url, header)
        try:
            decode_event(body)
        except MalformedWebhookError as exc:
            self.rejected_malformed += 1
            logger.debug("webhook refused (400): %r", str(exc))
            return 400
        if not await router.forward(owner, body):
            self.rejected_unavailable += 1
            return 503
        self.forwarded += 1
        self.accepted += 1
        return 200

    def process_inbound(
        self, body: bytes, url: str, header: Callable[[str], str | None]
    ) -> tuple[int, bytes | None]:
        """Verify the platform's SWML request for an inbound call and answer it: the
        status and, with 200, the SWML reply."""
        verifier = self._verifier
        if verifier is not None and not verifier.verify(url, body, header):
            return self._bad_signature(url, header), None
        inbound = self.inbound
        assert inbound is not None  # the front ends serve inbound_path only with one
        try:
            reply = inbound.answer(body)
        except MalformedWebhookError as exc:
            self.rejected_malformed += 1
            logger.debug("inbound SWML request refused (400): %r", str(exc))
            return 400, None
        if reply is None:
            self.rejected_malformed += 1
            logger.debug("inbound SWML request refused (404): no inbound handler is set")
            return 404, None
        self.accepted += 1
        return 200, reply

    def _bad_signature(self, url: str, header: Callable[[str], str | None]) -> int:
        self.rejected_signature += 1
        # the usual cause is a wrong public_url or mount path, or a wrong key: name the
        # URL checked and the header found (never the key, the body or the header value)
        if header(SHA256_HEADER):
            found = f"the {SHA256_HEADER} header does not match"
        elif header(SHA1_HEADER):
            found = f"the {SHA1_HEADER} header (SHA-1; no SHA-256 one) does not match"
        else:
            found = f"no {SHA256_HEADER} or {SHA1_HEADER} header"
        self._signature_log(
            "webhook refused (403): %s; URL checked: %r (is public_url, with any mount "
            "path, the URL the platform calls? is signing_key this project's key?)",
            found,
            _clip(url),
        )
        return 403

    def scrape(self, method: str, accept: str | None) -> tuple[int, bytes, str | None]:
        """Answer a request at ``metrics_path``: (status, body, content type)."""
        metrics = self.metrics
        if method != "GET" or metrics is None:
            return 405, b"", None
        try:
            body, content_type = metrics.render(accept)
        except Exception as exc:  # a bug in a collector: logged, never a traceback flood
            self._metrics_log("metrics: rendering failed", exc_info=exc)
            return 500, b"", None
        return 200, body, content_type


class _MeteredCore(_Core):
    """A ``_Core`` that tells its ``MetricsSource`` when it begins and ends handling a
    webhook's body (the start of the webhook-to-waiter latency). A subclass, so a
    receiver without metrics pays nothing for it."""

    __slots__ = ()

    def process(self, body: bytes, url: str, header: Callable[[str], str | None]) -> int:
        metrics = self.metrics
        assert metrics is not None
        metrics.begin_webhook()
        try:
            return super().process(body, url, header)
        finally:
            metrics.end_webhook()


def _make_core(
    sink: EventSink,
    settings: ReceiverSettings | None,
    inbound: InboundAnswer | None,
    metrics: MetricsSource | None,
    router: EventRouter | None = None,
) -> _Core:
    settings = settings or ReceiverSettings()
    if metrics is None:
        if settings.metrics_path is not None:
            raise ConfigurationError(
                "metrics_path: set, but no metrics= source to serve (a CallSession passes "
                "its own; see signalwire_calls.metrics)"
            )
        return _Core(sink, settings, inbound, router=router)
    return _MeteredCore(sink, settings, inbound, metrics, router)


# --------------------------------------------------------------------------- aiohttp

_CORE_KEY = web.AppKey("signalwire_calls.receiver", _Core)


async def _read_chunked(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body of a request without Content-Length, or ``None`` once it exceeds ``limit``."""
    chunks: list[bytes] = []
    size = 0
    content = request.content
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _closing(status: int) -> web.Response:
    """A response after which the connection closes (``Connection: close``): for an
    answer that leaves the body (partly) unread, so the connection is of no more use."""
    response = web.Response(status=status)
    response.force_close()
    return response


def _metrics_response(core: _Core, request: web.BaseRequest) -> web.Response:
    """The answer at ``metrics_path``: the exposition to a GET, else 405."""
    status, body, content_type = core.scrape(request.method, request.headers.get(hdrs.ACCEPT))
    if status == 405:
        response = _closing(405)  # a body sent along is left unread
        response.headers[hdrs.ALLOW] = "GET"
        return response
    response = web.Response(status=status, body=body)
    if content_type is not None:
        response.headers[hdrs.CONTENT_TYPE] = content_type
    return response


def _make_handler(
    core: _Core, *, route: bool = False, inbound: bool = False
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The request handler; with ``route`` it also answers 404/405 itself (the
    standalone server has no router in front of it) and serves the inbound SWML path
    beside the events path; ``inbound`` makes it the inbound SWML handler."""
    limit = core.max_body_size
    path = core.settings.path
    inbound_path = core.settings.inbound_path if core.inbound is not None else None
    body_timeout = core.body_timeout

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        swml = inbound
        if route:
            here = request.path
            swml = here == inbound_path
            if request.method != "POST" or (here != path and not swml):
                if here == core.metrics_path:
                    return _metrics_response(core, request)
                # closing: a body sent along is left unread (and aiohttp may fail to drain it)
                response = _closing(404 if here != path and not swml else 405)
                if response.status == 405:
                    response.headers[hdrs.ALLOW] = "POST"
                return response
        core.received += 1
        try:
            length = request.content_length
            if length is not None and length > limit:
                return _closing(core.too_large())
            body: bytes | None
            try:
                if length is None:
                    async with asyncio.timeout(body_timeout):
                        body = await _read_chunked(request, limit)
                elif request.content.is_eof():  # the usual webhook: all came with the head
                    body = await request.read()
                else:
                    async with asyncio.timeout(body_timeout):
                        body = await request.read()
            except web.HTTPRequestEntityTooLarge:  # a root app's smaller client_max_size
                body = None
            except TimeoutError:
                return _closing(core.timed_out())
            except Exception as exc:  # a broken upload: the connection is of no more use
                return _closing(core.unreadable(exc))
            if body is None:
                return _closing(core.too_large())
            url = ""
            if core.signing_key is not None:
                base = core.base_url
                url = (
                    base + request.raw_path
                    if base is not None
                    else f"{request.scheme}://{request.host}{request.raw_path}"
                )
            if swml:
                status, reply = core.process_inbound(body, url, request.headers.get)
                if reply is None:
                    return web.Response(status=status)
                return web.Response(status=status, body=reply, content_type="application/json")
            if core.router is None:
                return web.Response(status=core.process(body, url, request.headers.get))
            owner = request.query.get(OWNER_PARAM)
            status = await core.process_routed(body, url, request.headers.get, owner)
            return web.Response(status=status)
        except Exception as exc:  # never a 500
            return web.Response(status=core.failed(exc))

    return handle


def create_app(
    sink: EventSink,
    settings: ReceiverSettings | None = None,
    *,
    inbound: InboundAnswer | None = None,
    metrics: MetricsSource | None = None,
    router: EventRouter | None = None,
) -> web.Application:
    """An aiohttp app answering webhook POSTs at ``settings.path`` (and, with
    ``inbound``, the platform's SWML requests for inbound calls at ``inbound_path``).

    Mount it in your own app (``app.add_subapp("/hooks", create_app(...))``); the
    signed URL then includes the prefix. ``app_stats(app)`` reads its counters. The
    body deadline is applied here; keep-alive and what aiohttp's HTTP parser logs for
    junk requests (one ERROR traceback each, at ``aiohttp.server``) are your server's:
    pass ``keepalive_timeout=`` to your ``AppRunner``, and a ``logger=`` or a filter on
    ``aiohttp.server`` if junk requests reach it. With ``metrics`` (a session passes its
    own) webhooks are timed and ``settings.metrics_path``, if set, serves them (GET).
    """
    return _build_app(_make_core(sink, settings, inbound, metrics, router))


def _build_app(core: _Core) -> web.Application:
    app = web.Application(client_max_size=core.max_body_size)
    app[_CORE_KEY] = core
    app.router.add_post(core.settings.path, _make_handler(core))
    if core.inbound is not None:
        app.router.add_post(core.settings.inbound_path, _make_handler(core, inbound=True))
    if core.metrics_path is not None:

        async def metrics(request: web.Request) -> web.Response:
            return _metrics_response(core, request)

        # GET only: aiohttp's router answers any other method with 405
        app.router.add_get(core.metrics_path, metrics, allow_head=False)
    return app


def app_stats(app: web.Application) -> ReceiverStats:
    """The counters of an app made by ``create_app``."""
    try:
        core = app[_CORE_KEY]
    except KeyError:
        raise ValueError("app: not an application made by create_app()") from None
    return core.stats()


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """What the standalone server's aiohttp protocol logs, made flood-proof.

    A request its HTTP parser refused (a header over 8,190 bytes, a bad request line or
    URL: an ``HttpProcessingError``) is counted as ``rejected_protocol`` and logged one
    line a minute at most instead of one ERROR traceback each. A body that fails again
    while aiohttp drains it after our answer (``RequestPayloadError``: bad gzip, say) was
    counted by the handler already: DEBUG. Any other warning or error aiohttp logs goes
    to its ``aiohttp.server`` logger, at most once a minute per level.
    """

    def __init__(self, core: _Core) -> None:
        super().__init__(server_logger)
        self._core = core
        self._throttles: dict[int, LogThrottle] = {}

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if exc is True:  # logger.exception(...) inside an except block
            exc = sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self._core.protocol_error(exc)
        elif level >= logging.WARNING and not isinstance(exc, RequestPayloadError):
            throttle = self._throttles.get(level)
            if throttle is None:
                throttle = self._throttles[level] = LogThrottle(server_logger, level)
            throttle(str(msg), *args, exc_info=exc)
        else:
            super().log(min(level, logging.DEBUG), msg, *args, **kwargs)


class Receiver:
    """A standalone webhook server on ``host:port`` (``port=0`` picks a free port).

    ``start()`` and ``aclose()`` are idempotent; a closed receiver starts again on the
    port it had, keeping its counters. The access log is off unless ``access_log=True``.
    The server closes a connection idle for ``settings.keepalive_timeout`` and, after a
    refusal, drains the rest of an unread body for at most ``settings.body_timeout``.
    Requests its HTTP parser refuses are counted (``rejected_protocol``) and logged once
    a minute at most. With ``metrics`` (a session passes its own) webhooks are timed and
    ``settings.metrics_path``, if set, serves them (GET; ``metrics_url``).

        async with Receiver(sink, ReceiverSettings(), port=0) as receiver:
            status_url = receiver.url
    """

    def __init__(
        self,
        sink: EventSink,
        settings: ReceiverSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
        shutdown_timeout: float = 5.0,
        inbound: InboundAnswer | None = None,
        metrics: MetricsSource | None = None,
        router: EventRouter | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"port: must be 0..65535, got {port}")
        if not (shutdown_timeout >= 0 and math.isfinite(shutdown_timeout)):
            raise ConfigurationError(
                f"shutdown_timeout: must be a finite number >= 0, got {shutdown_timeout}"
            )
        self._core = _make_core(sink, settings, inbound, metrics, router)
        self._host = host
        self._port = port
        self._access_log = access_log
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.ServerRunner | None = None
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> ReceiverSettings:
        return self._core.settings

    @property
    def sink(self) -> EventSink:
        return self._core.sink

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        """The bound port (the requested one before the first ``start()``)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port/path`` -- where this server takes webhooks."""
        if self._port == 0:
            raise RuntimeError("the receiver has no port yet: await start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}{self._core.settings.path}"

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` -- where Prometheus scrapes this server (``None``
        when metrics are off)."""
        metrics_path = self._core.metrics_path
        if metrics_path is None:
            return None
        return self.url.removesuffix(self._core.settings.path) + metrics_path

    def stats(self) -> ReceiverStats:
        """A snapshot of the counters (kept across restarts)."""
        return self._core.stats()

    async def start(self) -> None:
        """Bind and serve. Does nothing when already running."""
        async with self._lock:
            if self._runner is not None:
                return
            # aiohttp's low-level server: one path needs no Application, router or
            # middleware chain, which are a measurable part of each webhook's cost
            loop = asyncio.get_running_loop()
            limit = self._core.max_body_size

            def make_request(
                message: Any, payload: Any, protocol: Any, writer: Any, task: Any
            ) -> web.BaseRequest:
                return web.BaseRequest(
                    message, payload, protocol, writer, task, loop, client_max_size=limit
                )

            settings = self._core.settings
            server = web.Server(
                _make_handler(self._core, route=True),
                request_factory=make_request,
                access_log=access_logger if self._access_log else None,
                logger=cast(logging.Logger, _ServerLog(self._core)),
                keepalive_timeout=settings.keepalive_timeout,
                lingering_time=settings.body_timeout,
            )
            runner = web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout)
            await runner.setup()
            try:
                site = web.TCPSite(runner, self._host, self._port)
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
            self._port = int(runner.addresses[0][1])
            self._runner = runner
            logger.info("webhook receiver listening on %s", self.url)

    async def aclose(self) -> None:
        """Stop serving. Idempotent; ``start()`` may be called again."""
        async with self._lock:
            runner, self._runner = self._runner, None
            if runner is not None:
                await runner.cleanup()
                logger.info("webhook receiver on %s:%d stopped", self._host, self._port)

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return f"<Receiver {state} {self._host}:{self._port}{self._core.settings.path}>"


# --------------------------------------------------------------------------- ASGI

_EMPTY_HEADERS = [(b"content-length", b"0")]
_405_HEADERS = [(b"content-length", b"0"), (b"allow", b"POST")]
_405_GET_HEADERS = [(b"content-length", b"0"), (b"allow", b"GET")]
_CLOSE_HEADERS = [(b"content-length", b"0"), (b"connection", b"close")]
_SIGNATURE_NAMES = {name.lower().encode(): name for name in (SHA256_HEADER, SHA1_HEADER)}
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


async def _respond(send: ASGISend, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class ASGIReceiver:
    """A plain ASGI 3 app answering webhook POSTs at ``settings.path`` (relative to
    ``root_path`` when mounted). Made by ``asgi_app``; ``stats()`` reads its counters.

    It applies ``body_timeout`` (408 and ``connection: close``); keep-alive, header
    deadlines and malformed HTTP are the ASGI server's (uvicorn: ``--timeout-keep-alive``).
    The deadline is an anyio cancel scope, so the app makes no asyncio-only call."""

    def __init__(
        self,
        sink: EventSink,
        settings: ReceiverSettings | None = None,
        *,
        inbound: InboundAnswer | None = None,
        metrics: MetricsSource | None = None,
        router: EventRouter | None = None,
    ) -> None:
        self._core = _make_core(sink, settings, inbound, metrics, router)

    def stats(self) -> ReceiverStats:
        return self._core.stats()

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        core = self._core
        path: str = scope["path"]
        root: str = scope.get("root_path") or ""
        if root and path.startswith(root):
            relative = path[len(root) :]
        else:
            relative = path
            path = root + path
        swml = core.inbound is not None and relative == core.settings.inbound_path
        if relative != core.settings.path and not swml:
            if relative == core.metrics_path:
                await self._scrape(scope, send)
            else:
                await _respond(send, 404, _EMPTY_HEADERS)
            return
        if scope["method"] != "POST":
            await _respond(send, 405, _405_HEADERS)
            return
        core.received += 1
        reply: bytes | None = None
        try:
            status, reply = await self._serve(scope, path, receive, swml)
        except Exception as exc:  # never a 500
            status = core.failed(exc)
        if status in (408, 413):  # refused with the body (partly) unread: end the connection
            await _respond(send, status, _CLOSE_HEADERS)
        elif reply is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(reply)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": reply})
        elif status:
            await _respond(send, status, _EMPTY_HEADERS)

    async def _scrape(self, scope: Scope, send: ASGISend) -> None:
        accept: str | None = None
        for name, value in scope["headers"]:
            if name.lower() == b"accept":
                accept = value.decode(errors="replace")
                break
        status, body, content_type = self._core.scrape(scope["method"], accept)
        if status == 405:
            await _respond(send, 405, _405_GET_HEADERS)
            return
        headers = [(b"content-length", str(len(body)).encode())]
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _serve(
        self, scope: Scope, path: str, receive: ASGIReceive, swml: bool
    ) -> tuple[int, bytes | None]:
        """Read, verify and deliver (or answer) one POST; the status to answer (0: the
        client is gone) and the SWML reply of an inbound request."""
        core = self._core
        length: int | None = None
        host: str | None = None
        signatures: dict[str, str] = {}
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    pass  # not a number: the body is read to its end
            elif name == b"host":
                host = value.decode(errors="surrogateescape")
            elif name in _SIGNATURE_NAMES:
                # the first of repeated headers counts (as in aiohttp); any bytes decode
                header = _SIGNATURE_NAMES[name]
                signatures.setdefault(header, value.decode(errors="surrogateescape"))
        limit = core.max_body_size
        if length is not None and length > limit:
            return core.too_large(), None
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(core.body_timeout) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    core.unreadable(ConnectionResetError("the client disconnected"))
                    return 0, None
                chunk: bytes | None = message.get("body")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        return core.too_large(), None
                    chunks.append(chunk)
                if not message.get("more_body"):
                    break
        if deadline.cancelled_caught:
            return core.timed_out(), None
        body = b"".join(chunks)  # one chunk: that very object, no copy
        url = ""
        if core.signing_key is not None:
            # undecodable bytes become lone surrogates, which signing turns back into them
            raw_path: bytes | None = scope.get("raw_path")
            target = (
                raw_path.decode(errors="surrogateescape")
                if raw_path
                else quote(path, safe=_PATH_SAFE, errors="surrogateescape")
            )
            query: bytes = scope.get("query_string") or b""
            if query:
                target = f"{target}?{query.decode(errors='surrogateescape')}"
            base = core.base_url
            if base is None:
                if host is None:
                    server = scope.get("server")
                    host = f"{server[0]}:{server[1]}" if server else "localhost"
                base = f"{scope.get('scheme', 'http')}://{host}"
            url = base + target
        if swml:
            return core.process_inbound(body, url, signatures.get)
        if core.router is None:
            return core.process(body, url, signatures.get), None
        owner = _owner_of(scope.get("query_string") or b"")
        return await core.process_routed(body, url, signatures.get, owner), None


def _owner_of(query: bytes) -> str | None:
    """The ``swc_owner`` value of a raw query string (the first one), if any."""
    for value in parse_qs(query.decode(errors="surrogateescape")).get(OWNER_PARAM, ()):
        return value
    return None


async def _lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_app(
    sink: EventSink,
    settings: ReceiverSettings | None = None,
    *,
    inbound: InboundAnswer | None = None,
    metrics: MetricsSource | None = None,
    router: EventRouter | None = None,
) -> ASGIReceiver:
    """An ASGI 3 app feeding ``sink`` (mount it in FastAPI / Starlette); with
    ``inbound`` it also answers inbound calls' SWML requests at ``inbound_path``; with
    ``metrics`` it times webhooks and serves ``metrics_path`` (GET), if set; with
    ``router`` events for another process are forwarded to it."""
    return ASGIReceiver(sink, settings, inbound=inbound, metrics=metrics, router=router)
