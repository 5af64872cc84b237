"""``CallSession``: the entry point. Owns the transport, the webhook receiver and the
correlation core (``_core.Core``), and wires them together.

async with CallSession.from_env(public_url="https://hooks.example.com") as session:
    call = await session.dial(to="+15551230001", from_="+15559870000", url=SWML_URL)
    await call.answered(timeout=60)
    menu = await call.collect(digits=Digits(max=1))
    result = await menu.finished(timeout=30)
    await call.end()
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from . import commands as _cmd
from ._bus_redis import BusStats, RedisBus, owner_url
from ._core import Core, MeteredCore, RegistryStats
from ._inbound import InboundDispatcher, InboundHandler, InboundStats, SwmlReply
from ._retry import RetryPolicy
from ._settings import HTTPSettings, base_url_for_space, credentials_from_env
from ._transport import DEFAULT, TimeoutArg, Transport, TransportStats
from .call import Call
from .commands import _opt
from .errors import ConfigurationError, SessionStateError, ValidationError
from .events import Event, describe_event
from .receiver import (
    ASGIReceiver,
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    app_stats,
    asgi_app,
    create_app,
)

if TYPE_CHECKING:
    from .metrics import SessionMetrics

__all__ = ["CallSession", "SessionStats", "TraceRecord"]

logger = logging.getLogger("signalwire_calls.session")

_H = TypeVar("_H", bound=InboundHandler)
_ALL_CALL_EVENTS: tuple[_cmd.StatusEvent, ...] = ("created", "ringing", "answered", "ended")


class TraceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a session trace: a command sent or an event received.

    ``kind`` is ``"command"`` or ``"event"``; ``at`` is seconds since the session opened.
    """

    kind: Literal["command", "event"]
    at: float
    name: str
    call_id: str | None = None
    control_id: str | None = None
    detail: str | None = None


class SessionStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the receiver, the correlation registry, the transport, inbound
    calls (``None`` without ``on_inbound``) and the Redis bus (``None`` without one)."""

    receiver: ReceiverStats | None
    registry: RegistryStats
    transport: TransportStats
    commands_sent: int
    inbound: InboundStats | None = None
    bus: BusStats | None = None


def _is_local(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _InboundRelay:
    """The receivers' way to the session's inbound dispatcher, which may be set after
    they were made (``on_inbound`` before ``open``): ``None`` when there is none."""

    __slots__ = ("_session",)

    def __init__(self, session: CallSession) -> None:
        self._session = session

    def answer(self, body: bytes) -> bytes | None:
        dispatcher = self._session._inbound
        return None if dispatcher is None else dispatcher.answer(body)


class CallSession:
    """The entry point: sends commands, receives their webhooks, joins the two.

    ``space`` is the space name (``"example"`` -> ``https://example.signalwire.com``) or a
    base URL (``http://127.0.0.1:PORT`` for the simulator). ``public_url`` is the base
    URL at which the platform reaches this session's receiver (a tunnel or load
    balancer); without it the receiver's own address is used, which only a local
    simulator can reach. ``serve_receiver=False`` runs no server: mount
    ``session.webhook_app()`` (aiohttp) or ``session.asgi_app()`` in your own app under
    ``mount_path`` (e.g. ``"/hooks"``); ``public_url`` is then your app's origin.

    Webhooks that can come from outside (a ``public_url`` or ``receiver_host`` that is
    not loopback) must be signed: give ``signing_key`` (the project's signing key), or
    pass ``allow_unsigned_webhooks=True`` knowing that anyone who reaches the receiver
    can then resolve handles with forged events.

    Timing: ``call_end_grace`` is how long pending operations of an ended call wait for
    their own final event; ``wait_timeout`` bounds every ``finished()``/``answered()``/
    ``ended()`` given no ``timeout`` (none by default); ``max_call_length`` ends calls
    the library has heard nothing of for that long (the platform's default maximum);
    ``webhook_warning_after`` logs a WARNING when no webhook arrives for a dial in that
    many seconds (``None`` turns it off).

    Several processes behind one ``public_url`` (a load balancer): give each session
    its own ``bus=RedisBus(url)``. Its owner id then goes into every ``status_url``
    (query parameter ``swc_owner``), and a webhook reaching the wrong process is
    forwarded to its owner through Redis (docs/architecture.md, "Scaling out").
    """

    def __init__(
        self,
        space: str | None = None,
        project: str | None = None,
        token: str | None = None,
        *,
        public_url: str | None = None,
        signing_key: str | None = None,
        allow_unsigned_webhooks: bool = False,
        receiver: ReceiverSettings | None = None,
        receiver_host: str = "127.0.0.1",
        receiver_port: int = 0,
        serve_receiver: bool = True,
        mount_path: str = "",
        http: HTTPSettings | None = None,
        retry: RetryPolicy | None = None,
        call_end_grace: float = 2.0,
        wait_timeout: float | None = None,
        max_call_length: float = 4 * 3600.0,
        webhook_warning_after: float | None = 10.0,
        early_event_ttl: float = 15.0,
        early_event_max: int = 10_000,
        trace: Callable[[TraceRecord], None] | None = None,
        bus: RedisBus | None = None,
    ) -> None:
        creds = credentials_from_env(project=project, token=token, space=space)
        if bus is not None and not isinstance(bus, RedisBus):
            raise ConfigurationError(f"bus: expected a RedisBus or None, got {type(bus).__name__}")
        if call_end_grace < 0:
            raise ConfigurationError("call_end_grace must be >= 0 seconds")
        if wait_timeout is not None and not wait_timeout > 0:
            raise ConfigurationError("wait_timeout must be > 0 seconds or None")
        if not early_event_ttl > 0:
            raise ConfigurationError("early_event_ttl must be > 0 seconds")
        if early_event_max < 0:
            raise ConfigurationError("early_event_max must be >= 0")
        settings = receiver or ReceiverSettings()
        if signing_key is not None or public_url is not None:
            settings = msgspec.structs.replace(
                settings,
                signing_key=signing_key if signing_key is not None else settings.signing_key,
                public_url=public_url if public_url is not None else settings.public_url,
            )
        if mount_path and (not mount_path.startswith("/") or mount_path.endswith("/")):
            raise ConfigurationError(
                f"mount_path: must start with '/' and not end with one, got {mount_path!r}"
            )
        exposed = (
            settings.public_url is not None
            and not _is_local(urlsplit(settings.public_url).hostname)
        ) or (serve_receiver and not _is_local(receiver_host))
        if exposed and settings.signing_key is None and not allow_unsigned_webhooks:
            raise ConfigurationError(
                "signing_key: webhooks can reach this session from outside "
                f"(public_url={settings.public_url!r}, receiver_host={receiver_host!r}) "
                "and would be accepted unsigned, so anyone could forge results: pass "
                "signing_key=... (or set SIGNALWIRE_SIGNING_KEY), or "
                "allow_unsigned_webhooks=True to accept that risk"
            )
        self._unsigned_exposed = exposed and settings.signing_key is None
        self._receiver_settings = settings
        self._base_url = base_url_for_space(creds.space)
        self._transport = Transport(
            base_url=self._base_url,
            project=creds.project,
            token=creds.token,
            settings=http or HTTPSettings(),
            retry=retry or RetryPolicy(),
        )
        self._trace = trace
        self._t0 = time.monotonic()
        self._metrics: SessionMetrics | None = None
        if settings.metrics_path is not None:
            from .metrics import SessionMetrics  # the metrics extra: a clear ImportError

            self._metrics = SessionMetrics(self.stats)
        # with metrics, a core that times the waits webhooks complete (a subclass: a
        # session without metrics pays nothing for them)
        core_class: type[Core] = Core if self._metrics is None else MeteredCore
        self._core = core_class(
            self._transport,
            call_end_grace=call_end_grace,
            early_event_ttl=early_event_ttl,
            early_event_max=early_event_max,
            wait_timeout=wait_timeout,
            max_call_length=max_call_length,
            webhook_warning_after=webhook_warning_after,
            trace_command=self._trace_command if trace else None,
            trace_event=self._trace_event if trace else None,
            rejections=self._signature_rejections,
        )
        if isinstance(self._core, MeteredCore):
            assert self._metrics is not None
            self._core.meter = self._metrics
        self._receiver_host = receiver_host
        self._receiver_port = receiver_port
        self._serve_receiver = serve_receiver
        self._mount_path = mount_path
        self._receiver: Receiver | None = None
        self._mounted_stats: Callable[[], ReceiverStats] | None = None
        self._status_url: str | None = None
        self._inbound: InboundDispatcher | None = None
        self._answer = _InboundRelay(self)
        self._bus = bus
        if not serve_receiver:
            self._status_url = self._public_status_url(None)
        if bus is not None:
            bus.claim(self)

    @classmethod
    def from_env(
        cls,
        *,
        public_url: str | None = None,
        signing_key: str | None = None,
        allow_unsigned_webhooks: bool = False,
        receiver: ReceiverSettings | None = None,
        receiver_host: str = "127.0.0.1",
        receiver_port: int = 0,
        serve_receiver: bool = True,
        mount_path: str = "",
        http: HTTPSettings | None = None,
        retry: RetryPolicy | None = None,
        call_end_grace: float = 2.0,
        wait_timeout: float | None = None,
        max_call_length: float = 4 * 3600.0,
        webhook_warning_after: float | None = 10.0,
        early_event_ttl: float = 15.0,
        early_event_max: int = 10_000,
        trace: Callable[[TraceRecord], None] | None = None,
        bus: RedisBus | None = None,
    ) -> CallSession:
        """A session configured from ``SIGNALWIRE_SPACE``, ``SIGNALWIRE_PROJECT_ID``,
        ``SIGNALWIRE_API_TOKEN`` (and ``SIGNALWIRE_SIGNING_KEY``,
        ``SIGNALWIRE_PUBLIC_URL`` when set); keywords as for ``CallSession`` override."""
        return cls(
            public_url=public_url or os.environ.get("SIGNALWIRE_PUBLIC_URL") or None,
            signing_key=signing_key or os.environ.get("SIGNALWIRE_SIGNING_KEY") or None,
            allow_unsigned_webhooks=allow_unsigned_webhooks,
            receiver=receiver,
            receiver_host=receiver_host,
            receiver_port=receiver_port,
            serve_receiver=serve_receiver,
            mount_path=mount_path,
            http=http,
            retry=retry,
            call_end_grace=call_end_grace,
            wait_timeout=wait_timeout,
            max_call_length=max_call_length,
            webhook_warning_after=webhook_warning_after,
            early_event_ttl=early_event_ttl,
            early_event_max=early_event_max,
            trace=trace,
            bus=bus,
        )

    def __repr__(self) -> str:
        return (
            f"<CallSession {self._core.state} base_url={self._base_url!r} "
            f"status_url={self._commands_url()!r} live_calls={len(self._core.calls)}>"
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> CallSession:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Start the receiver (unless ``serve_receiver=False``). A session opens once;
        opening it again raises ``SessionStateError``."""
        core = self._core
        core.check_unopened()
        self._t0 = time.monotonic()
        bus = self._bus
        try:
            if bus is not None:
                # Redis unreachable: an OSError naming the URL, before anything else starts
                await bus.serve(core.deliver)
            if self._serve_receiver:
                receiver = Receiver(
                    core,
                    self._receiver_settings,
                    host=self._receiver_host,
                    port=self._receiver_port,
                    inbound=self._answer,
                    metrics=self._metrics,
                    router=bus,
                )
                await receiver.start()
                self._receiver = receiver
                self._status_url = self._public_status_url(receiver.url)
        except BaseException:  # cancelled too: nothing is left running
            core.close()
            try:
                if bus is not None:
                    await bus.aclose()
            finally:
                await self._transport.aclose()
            raise
        url = self._commands_url()
        assert url is not None
        core.open(url)
        if self._inbound is not None:
            self._inbound.open()
        if self._unsigned_exposed:
            logger.warning(
                "webhooks are accepted unsigned at %s (allow_unsigned_webhooks=True): anyone "
                "who can reach it can forge operation results",
                self._status_url,
            )
        logger.info("session open; webhooks at %s", self._status_url)

    async def aclose(self) -> None:
        """Close: settle every pending handle and call with ``SessionClosedError``, stop
        the receiver, close the connection pool. Idempotent."""
        core = self._core
        if core.state == "closed":
            return
        if self._inbound is not None:
            # inbound handlers first: they hang their calls up while the transport is open
            await self._inbound.aclose()
        core.close()
        try:
            if self._receiver is not None:
                await self._receiver.aclose()
            if self._bus is not None:
                await self._bus.aclose()
        finally:
            await self._transport.aclose()
        logger.info("session closed")

    # -- inbound calls ----------------------------------------------------------------------

    @overload
    def on_inbound(
        self,
        handler: _H,
        *,
        swml: SwmlReply | None = None,
        overflow_swml: SwmlReply | None = None,
        max_concurrent: int = 100,
    ) -> _H: ...
    @overload
    def on_inbound(
        self,
        handler: None = None,
        *,
        swml: SwmlReply | None = None,
        overflow_swml: SwmlReply | None = None,
        max_concurrent: int = 100,
    ) -> Callable[[_H], _H]: ...

    def on_inbound(
        self,
        handler: _H | None = None,
        *,
        swml: SwmlReply | None = None,
        overflow_swml: SwmlReply | None = None,
        max_concurrent: int = 100,
    ) -> _H | Callable[[_H], _H]:
        """Answer inbound calls: serve the SWML webhook at ``inbound_url`` and run
        ``handler(call, request)`` for each call, as a task the session owns (closing
        the session cancels running handlers, which then hang their calls up).

        The reply is ``swml`` (a document, or a function of the request returning one;
        default: ``answer`` then ``sleep: -1``, which keeps the call up for REST
        commands). When the handler returns, the call is hung up unless it called
        ``request.keep_call()``; when it raises, the exception is logged with the call
        id and the call is hung up. Beyond ``max_concurrent`` running handlers a call is
        answered with ``overflow_swml`` (default: a short busy message, then hang up)
        and counted. A document is checked and encoded once, here. Usable as a
        decorator; call it before the session opens.
        """

        def register(fn: _H) -> _H:
            if self._core.state != "unopened":
                raise SessionStateError("on_inbound: register the handler before the session opens")
            try:
                self._inbound = InboundDispatcher(
                    self._core,
                    fn,
                    swml=swml,
                    overflow_swml=overflow_swml,
                    max_concurrent=max_concurrent,
                )
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
            return fn

        return register if handler is None else register(handler)

    @property
    def inbound_url(self) -> str:
        """The URL to route a number's incoming calls to (its SWML webhook)."""
        settings = self._receiver_settings
        if self._status_url is None:
            self._core.check_open()  # raises SessionStateError: not open yet
        assert self._status_url is not None
        base = self._status_url.removesuffix(settings.path)
        return base + settings.inbound_path

    # -- receiver ---------------------------------------------------------------------------

    def _public_status_url(self, served: str | None) -> str:
        settings = self._receiver_settings
        if settings.public_url:
            return settings.public_url.rstrip("/") + self._mount_path + settings.path
        if served is None:
            raise ConfigurationError(
                "serve_receiver=False needs public_url: the address where the platform "
                "reaches the app you mount session.webhook_app() in"
            )
        return served

    def _commands_url(self) -> str | None:
        """The status_url commands carry: the receiver's, naming the owner with a bus."""
        url = self._status_url
        if url is None or self._bus is None:
            return url
        return owner_url(url, self._bus.owner_id)

    @property
    def status_url(self) -> str:
        """The URL given as ``status_url`` with every command (known before the session
        opens when ``serve_receiver=False``; else once the receiver is bound). With a
        ``bus`` it names the session's owner id (``?swc_owner=...``)."""
        url = self._commands_url()
        if url is None:
            return self._core.status_url  # raises SessionStateError: not open yet
        return url

    @property
    def bus(self) -> RedisBus | None:
        """The Redis bus routing this session's webhooks between processes, if any."""
        return self._bus

    @property
    def receiver(self) -> Receiver | None:
        """The embedded webhook receiver (``None`` with ``serve_receiver=False``)."""
        return self._receiver

    def webhook_app(self) -> web.Application:
        """An aiohttp ``Application`` feeding this session, to mount in your own app
        (under ``mount_path``); ``stats()`` then reports its counters."""
        app = create_app(
            self._core,
            self._receiver_settings,
            inbound=self._answer,
            metrics=self._metrics,
            router=self._bus,
        )
        self._mounted_stats = lambda: app_stats(app)
        return app

    def asgi_app(self) -> ASGIReceiver:
        """An ASGI app feeding this session (FastAPI / Starlette ``mount`` under
        ``mount_path``); ``stats()`` then reports its counters."""
        app = asgi_app(
            self._core,
            self._receiver_settings,
            inbound=self._answer,
            metrics=self._metrics,
            router=self._bus,
        )
        self._mounted_stats = app.stats
        return app

    @property
    def metrics(self) -> SessionMetrics | None:
        """The session's Prometheus metrics (``None`` unless the receiver settings have
        a ``metrics_path``): ``metrics.registry`` is its own ``CollectorRegistry``."""
        return self._metrics

    def _receiver_stats(self) -> ReceiverStats | None:
        if self._receiver is not None:
            return self._receiver.stats()
        if self._mounted_stats is not None:
            return self._mounted_stats()
        return None

    def _signature_rejections(self) -> int:
        stats = self._receiver_stats()
        return stats.rejected_signature if stats is not None else 0

    def deliver(self, event: Event) -> None:
        """Feed a webhook event that reached you by other means (your own receiver, a
        queue) exactly as the session's receiver does: after ``decode_event`` and, if
        it came over the network, after checking its signature. Never raises."""
        self._core.deliver(event)

    def stats(self) -> SessionStats:
        """Receiver, registry and transport counters."""
        return SessionStats(
            receiver=self._receiver_stats(),
            registry=self._core.stats(),
            transport=self._transport.stats(),
            commands_sent=self._core.commands_sent,
            inbound=self._inbound.stats() if self._inbound is not None else None,
            bus=self._bus.stats() if self._bus is not None else None,
        )

    # -- calls ------------------------------------------------------------------------------

    async def dial(
        self,
        to: str | None = None,
        from_: str | None = None,
        *,
        url: str | None = None,
        swml: dict[str, Any] | str | None = None,
        to_script: str | dict[str, Any] | None = None,
        caller_id: str | None = None,
        fallback_url: str | None = None,
        url_method: Literal["GET", "POST"] | None = None,
        codecs: Sequence[_cmd.Codec] | str | None = None,
        timeout: int | None = None,
        max_price_per_minute: float | None = None,
        send_digits: str | None = None,
        region: str | Sequence[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        custom_variables: dict[str, str] | None = None,
        headers: Sequence[_cmd.Header] | None = None,
        status_url: str | None = None,
        status_events: Sequence[_cmd.StatusEvent] | None = None,
        correlate: bool = True,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> Call:
        """Place an outbound call (``dial``) and return its ``Call``.

        Exactly one of ``url`` (SWML webhook) or ``swml`` (inline SWML) is required;
        ``timeout`` is the ring timeout (1-600 s); the other keywords are the ``dial``
        params of the same name. The session subscribes to every call-state event
        itself, so ``call.answered()``/``call.ended()`` work; ``status_url`` and
        ``status_events`` are yours to set only with ``correlate=False`` (the call's
        webhooks then go to your URL and the session cannot follow it).
        ``request_timeout`` bounds the HTTP request (default: ``HTTPSettings.timeout``).
        """
        core = self._core
        core.check_open()
        if from_ is None:
            raise ValidationError("from", "dial needs the caller number (from_=...)")
        if correlate:
            if status_events is not None:
                raise ValidationError(
                    "status_events",
                    "the session subscribes to every call state (created, ringing, "
                    "answered, ended) itself to follow the call; pass correlate=False to "
                    "choose your own",
                )
            status_url = core.correlated_status_url(status_url)
            events: Sequence[_cmd.StatusEvent] | None = _ALL_CALL_EVENTS
        else:
            events = status_events
        cmd = _cmd.Dial(
            to=_opt(to),
            from_=from_,
            url=_opt(url),
            swml=_opt(swml),
            to_script=_opt(to_script),
            caller_id=_opt(caller_id),
            fallback_url=_opt(fallback_url),
            status_url=_opt(status_url),
            status_events=_opt(None if events is None else list(events)),
            url_method=_opt(url_method),
            codecs=_opt(codecs if codecs is None or isinstance(codecs, str) else list(codecs)),
            timeout=_opt(timeout),
            max_price_per_minute=_opt(max_price_per_minute),
            send_digits=_opt(send_digits),
            region=_opt(region if region is None or isinstance(region, str) else list(region)),
            username=_opt(username),
            password=_opt(password),
            custom_variables=_opt(custom_variables),
            headers=_opt(None if headers is None else list(headers)),
        )
        return await core.dial(cmd, correlate=correlate, request_timeout=request_timeout)

    def call(self, call_id: str) -> Call:
        """Attach to an existing call by id (e.g. one your SWML handed over). No
        call-state webhooks come for it: the session learns of its end from a 404, from
        operation events that show it is gone (confirmed with a probe), or from the
        maximum call length."""
        return self._core.attach(call_id, direction="attached")

    @property
    def calls(self) -> Sequence[Call]:
        """The calls this session follows that have not ended."""
        return list(self._core.calls.values())

    # -- tracing ----------------------------------------------------------------------------

    def _trace_command(self, cmd: _cmd.Command, call_id: str | None) -> None:
        assert self._trace is not None
        control_id = getattr(cmd, "control_id", None)
        self._trace(
            TraceRecord(
                kind="command",
                at=time.monotonic() - self._t0,
                name=cmd.command,
                call_id=call_id,
                control_id=control_id if isinstance(control_id, str) else None,
            )
        )

    def _trace_event(self, event: Event) -> None:
        assert self._trace is not None
        params = getattr(event, "params", None)
        detail = describe_event(event).removeprefix(event.event_type).strip() or None
        result = getattr(params, "result", None)
        if result is not None and getattr(result, "type", None):
            rp = getattr(result, "params", None)
            extra = getattr(rp, "digits", None) or getattr(rp, "text", None)
            detail = f"{result.type}" + (f" {extra!r}" if extra else "")
        detect = getattr(params, "detect", None)
        if detect is not None and getattr(detect, "params", None) is not None:
            detail = f"{detect.type} {detect.params.event}" + (
                " beep" if detect.params.beep else ""
            )
        self._trace(
            TraceRecord(
                kind="event",
                at=time.monotonic() - self._t0,
                name=event.event_type,
                call_id=event.call_id,
                control_id=event.control_id,
                detail=detail,
            )
        )
