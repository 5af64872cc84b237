"""``CallSession``: owns the pooled transport, the webhook receiver and the registry.

async with CallSession.from_env(public_url="https://hooks.example.com") as session:
    call = await session.dial(to="+15551230001", from_="+15559870000", url=SWML_URL)
    await call.answered()
    menu = await call.collect(digits=Digits(max=1))
    result = await menu.finished(timeout=30)
    await call.end()
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal

import msgspec
from aiohttp import web

from . import commands as _cmd
from ._codec import encode_command
from ._registry import Registry, RegistryStats
from ._retry import RetryPolicy
from ._settings import HTTPSettings, base_url_for_space, credentials_from_env
from ._transport import Transport, has_control_id
from .call import Call
from .errors import ConfigurationError, SessionClosedError, ValidationError
from .events import Event
from .legs import AnyLeg
from .receiver import (
    ASGIReceiver,
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    app_stats,
    asgi_app,
    create_app,
)

__all__ = ["CallSession", "SessionStats", "TraceRecord"]

logger = logging.getLogger("signalwire_calls.session")

_ALL_CALL_EVENTS = ["created", "ringing", "answered", "ended"]
_UNSET: Any = msgspec.UNSET


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


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
    """Counters of the receiver and of the correlation registry."""

    receiver: ReceiverStats | None
    registry: RegistryStats
    commands_sent: int


class _TracingSink:
    """Wraps the registry to report each routed event to a trace callback."""

    __slots__ = ("_registry", "_session")

    def __init__(self, session: CallSession, registry: Registry) -> None:
        self._session = session
        self._registry = registry

    def deliver(self, event: Event) -> None:
        self._session._trace_event(event)
        self._registry.deliver(event)


class CallSession:
    """The entry point: sends commands, receives their webhooks, joins the two.

    ``space`` is the space name (``"example"`` -> ``https://example.signalwire.com``) or a
    base URL (``http://127.0.0.1:PORT`` for the simulator). ``public_url`` is the base
    URL at which the platform reaches this session's receiver (a tunnel or load
    balancer); without it the receiver's own address is used, which only a local
    simulator can reach. ``serve_receiver=False`` runs no server: mount
    ``session.webhook_app()`` (aiohttp) or ``session.asgi_app()`` in your own app under
    ``mount_path`` (e.g. ``"/hooks"``); ``public_url`` is then your app's origin.
    """

    def __init__(
        self,
        space: str | None = None,
        project: str | None = None,
        token: str | None = None,
        *,
        public_url: str | None = None,
        signing_key: str | None = None,
        receiver: ReceiverSettings | None = None,
        receiver_host: str = "127.0.0.1",
        receiver_port: int = 0,
        serve_receiver: bool = True,
        mount_path: str = "",
        http: HTTPSettings | None = None,
        retry: RetryPolicy | None = None,
        call_end_grace: float = 2.0,
        early_event_ttl: float = 30.0,
        early_event_max: int = 10_000,
        trace: Callable[[TraceRecord], None] | None = None,
    ) -> None:
        creds = credentials_from_env(project=project, token=token, space=space)
        if call_end_grace < 0:
            raise ConfigurationError("call_end_grace must be >= 0 seconds")
        settings = receiver or ReceiverSettings()
        if signing_key is not None or public_url is not None:
            settings = msgspec.structs.replace(
                settings,
                signing_key=signing_key if signing_key is not None else settings.signing_key,
                public_url=public_url if public_url is not None else settings.public_url,
            )
        self._receiver_settings = settings
        self._base_url = base_url_for_space(creds.space)
        self._transport = Transport(
            base_url=self._base_url,
            project=creds.project,
            token=creds.token,
            settings=http or HTTPSettings(),
            retry=retry or RetryPolicy(),
        )
        self._registry = Registry(buffer_ttl=early_event_ttl, buffer_max=early_event_max)
        self._call_end_grace = call_end_grace
        self._receiver_host = receiver_host
        self._receiver_port = receiver_port
        self._serve_receiver = serve_receiver
        if mount_path and (not mount_path.startswith("/") or mount_path.endswith("/")):
            raise ConfigurationError(
                f"mount_path: must start with '/' and not end with one, got {mount_path!r}"
            )
        self._mount_path = mount_path
        self._receiver: Receiver | None = None
        self._mounted_stats: Callable[[], ReceiverStats] | None = None
        self._trace = trace
        self._t0 = time.monotonic()
        self._sink: Any = _TracingSink(self, self._registry) if trace else self._registry
        self._state = _State.UNOPENED
        self._status_url: str | None = None
        # control ids: a random per-session prefix and a counter (~0.2 us, unique
        # across processes), instead of str(uuid4()) at ~2.6 us
        self._id_prefix = os.urandom(6).hex()
        self._id_counter = itertools.count(1)
        self.commands_sent = 0
        if not serve_receiver:
            self._status_url = self._public_status_url(None)

    @classmethod
    def from_env(cls, **options: Any) -> CallSession:
        """A session configured from ``SIGNALWIRE_SPACE``, ``SIGNALWIRE_PROJECT_ID``,
        ``SIGNALWIRE_API_TOKEN`` (and ``SIGNALWIRE_SIGNING_KEY``,
        ``SIGNALWIRE_PUBLIC_URL`` when set); keyword options override."""
        options.setdefault("signing_key", os.environ.get("SIGNALWIRE_SIGNING_KEY") or None)
        options.setdefault("public_url", os.environ.get("SIGNALWIRE_PUBLIC_URL") or None)
        return cls(**options)

    def __repr__(self) -> str:
        return (
            f"<CallSession {self._state.value} base_url={self._base_url!r} "
            f"status_url={self._status_url!r} live_calls={len(self._registry.calls)}>"
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
        """Start the receiver (unless ``serve_receiver=False``). A session opens once."""
        if self._state is not _State.UNOPENED:
            raise SessionClosedError(
                "a CallSession can be opened only once; create a new one"
                if self._state is _State.CLOSED
                else "the session is already open"
            )
        self._state = _State.OPEN
        self._t0 = time.monotonic()
        if self._serve_receiver:
            receiver = Receiver(
                self._sink,
                self._receiver_settings,
                host=self._receiver_host,
                port=self._receiver_port,
            )
            try:
                await receiver.start()
            except BaseException:
                self._state = _State.CLOSED
                await self._transport.aclose()
                raise
            self._receiver = receiver
            self._status_url = self._public_status_url(receiver.url)
        logger.debug("session open; webhooks at %s", self._status_url)

    async def aclose(self) -> None:
        """Close: settle every pending handle and call with ``SessionClosedError``, stop
        the receiver, close the connection pool. Idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        registry = self._registry
        for call in list(registry.calls.values()):
            call._settle_closed()
        registry.calls.clear()
        # operations on calls the session does not follow (dial(correlate=False))
        for op in list(registry.operations.values()):
            op._settle_session_closed()
        try:
            if self._receiver is not None:
                await self._receiver.aclose()
        finally:
            await self._transport.aclose()

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise SessionClosedError(
                "the session is closed"
                if self._state is _State.CLOSED
                else "the session is not open yet: use `async with session:` "
                "or `await session.open()`"
            )

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

    def _correlated_status_url(self, given: object) -> str:
        """The session's status_url for a correlated command; a caller's own is refused."""
        if given is not None and given is not msgspec.UNSET:
            raise ValidationError(
                "status_url",
                "the session sets status_url itself to correlate webhooks; "
                "pass correlate=False to send your own",
            )
        return self.status_url

    @property
    def status_url(self) -> str:
        """The URL given as ``status_url`` with every command."""
        if self._status_url is None:
            self._check_open()
            raise AssertionError("unreachable")  # pragma: no cover
        return self._status_url

    @property
    def receiver(self) -> Receiver | None:
        """The embedded webhook receiver (``None`` with ``serve_receiver=False``)."""
        return self._receiver

    def webhook_app(self) -> web.Application:
        """An aiohttp ``Application`` feeding this session, to mount in your own app
        (under ``mount_path``); ``stats()`` then reports its counters."""
        app = create_app(self._sink, self._receiver_settings)
        self._mounted_stats = lambda: app_stats(app)
        return app

    def asgi_app(self) -> ASGIReceiver:
        """An ASGI app feeding this session (FastAPI / Starlette ``mount`` under
        ``mount_path``); ``stats()`` then reports its counters."""
        app = asgi_app(self._sink, self._receiver_settings)
        self._mounted_stats = app.stats
        return app

    def stats(self) -> SessionStats:
        """Receiver and registry counters."""
        if self._receiver is not None:
            receiver_stats: ReceiverStats | None = self._receiver.stats()
        elif self._mounted_stats is not None:
            receiver_stats = self._mounted_stats()
        else:
            receiver_stats = None
        return SessionStats(
            receiver=receiver_stats,
            registry=self._registry.stats(),
            commands_sent=self.commands_sent,
        )

    # -- commands ---------------------------------------------------------------------------

    def _new_control_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter)}"

    def _encode(self, cmd: _cmd.Command, call_id: str | None) -> bytes:
        """All a command needs before the wire (open check, trace, count, body), done
        synchronously so the caller awaits the transport with no frame in between."""
        if self._state is not _State.OPEN:
            self._check_open()
        if self._trace is not None:
            self._trace_command(cmd, call_id)
        body = encode_command(cmd, call_id)
        self.commands_sent += 1
        return body

    async def _send(self, cmd: _cmd.Command, call_id: str | None) -> AnyLeg:
        body = self._encode(cmd, call_id)
        return await self._transport.post(body, cmd.command, has_control_id=has_control_id(cmd))

    async def dial(
        self,
        to: str | None = None,
        from_: str | None = None,
        *,
        url: str | None = None,
        swml: dict[str, Any] | str | None = None,
        correlate: bool = True,
        **options: Any,
    ) -> Call:
        """Place an outbound call (``dial``) and return its ``Call``.

        Exactly one of ``url`` (SWML webhook) or ``swml`` (inline SWML) is required.
        Other ``Dial`` options (``caller_id``, ``timeout``, ``codecs``, ``send_digits``,
        ``custom_variables``, ``headers``, ...) pass through. The session subscribes to
        every call-state event itself, so ``call.answered()``/``call.ended()`` work.
        """
        self._check_open()
        if from_ is None:
            raise ValidationError("from", "dial needs the caller number (from_=...)")
        if correlate:
            options["status_url"] = self._correlated_status_url(options.get("status_url"))
            options["status_events"] = list(_ALL_CALL_EVENTS)
        cmd = _cmd.Dial(
            to=_UNSET if to is None else to,
            from_=from_,
            url=_UNSET if url is None else url,
            swml=_UNSET if swml is None else swml,
            **options,
        )
        leg = await self._send(cmd, None)
        call = Call(self, leg.id, leg)
        if correlate:
            self._registry.add_call(call)
        else:
            call._followed = False
        return call

    def call(self, call_id: str) -> Call:
        """Attach to an existing call (e.g. an inbound call your SWML handed over)."""
        self._check_open()
        existing = self._registry.calls.get(call_id)
        if existing is not None:
            return existing
        call = Call(self, call_id)
        call.state = "answered"
        call._was_answered = True
        self._registry.add_call(call)
        return call

    @property
    def calls(self) -> Sequence[Call]:
        """The calls this session follows that have not ended."""
        return list(self._registry.calls.values())

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
        detail = None
        for attr in ("call_state", "state", "event"):
            value = getattr(params, attr, None)
            if isinstance(value, str):
                detail = value
                break
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
                name=getattr(event, "event_type", type(event).__name__),
                call_id=event.call_id,
                control_id=event.control_id,
                detail=detail,
            )
        )
