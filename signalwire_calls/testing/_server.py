"""The simulator: an aiohttp app serving ``POST /api/calling/calls`` like a SignalWire space."""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from ._callees import Callee, load_callees
from ._engine import DEFAULT_MAX_QUEUED_CALLS, TERMINAL_STATES, ApiError, Engine, Operation, SimCall
from ._faults import FaultPlan
from ._inbound import place_inbound
from ._protocol import parse_command, peek_command
from ._schema import CommandSpec, command_specs
from ._webhooks import WebhookRecord, WebhookSender
from ._wire import START, SUB_COMMANDS, WIRE_COMMANDS

__all__ = ["ReceivedCommand", "Simulator"]

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode
PATH = "/api/calling/calls"
_JSON = "application/json"


@dataclass(slots=True, eq=False)
class ReceivedCommand:
    """One request the simulator received and how it answered.

    ``params`` is the wire dict as validated (after the 3.7.5 leniencies rewrote it),
    ``lenient`` names the leniencies applied, ``status`` the HTTP status answered and
    ``error`` the error body (or ``"fault"`` for an injected fault).
    """

    command: str
    call_id: str | None
    params: dict[str, Any]
    status: int
    received_at: float
    lenient: tuple[str, ...] = ()
    error: Any = None


class Simulator:
    """A local SignalWire space for tests, demos and benchmarks.

    ::

        callees = {"+15550001": Callee.answers(digits="1#")}
        async with Simulator(time_scale=0.01, callees=callees) as sim:
            ...  # point a client at sim.base_url with sim.project / sim.token
            call = await sim.wait_for_call(to="+15550001")
            await sim.wait_for_call_state(call.id, "ended", timeout=5)

    Every simulated duration is multiplied by ``time_scale`` (0.01 runs a 30 s call flow
    in 0.3 s). ``faults`` is a :class:`FaultPlan` that may be changed during a test.

    ``cps`` paces dials as the platform does: at most that many calls per simulated
    second leave ``queued`` (first in, first out; the platform's default is 1); the others
    wait, still answered 200 ``queued``, and may be canceled while they wait. Past
    ``max_queued_calls`` waiting dials a dial is refused with 422
    ``max_queued_calls_exceeded``. ``cps=None`` starts every call at once. Tests that
    dial many calls at once and do not test pacing should pass ``cps=None``.

    ``history_limit`` bounds what is kept for introspection: commands, webhooks, dial and
    start times, and ended calls (the oldest are forgotten, and commands on them get 404).
    """

    def __init__(
        self,
        *,
        project: str = "test-project",
        token: str = "test-token",
        signing_key: str | None = "test-signing-key",
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        callees: Mapping[str, Callee] | None = None,
        faults: FaultPlan | None = None,
        default_callee: Callee | None = None,
        max_call_length: float = 4 * 3600.0,
        space: str = "simulator",
        voice_scope: bool = True,
        audio_lengths: Mapping[str, float] | None = None,
        webhook_concurrency: int = 64,
        webhook_attempts: int = 4,
        webhook_backoff: float = 0.5,
        webhook_timeout: float = 10.0,
        history_limit: int | None = None,
        allow_external_webhooks: bool = False,
        cps: float | None = 1.0,
        max_queued_calls: int = DEFAULT_MAX_QUEUED_CALLS,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale: must be > 0")
        if cps is not None and not cps > 0:
            raise ValueError("cps: must be > 0 (or None for no limit)")
        if max_queued_calls < 0:
            raise ValueError("max_queued_calls: must be >= 0")
        if history_limit is not None and history_limit < 1:
            raise ValueError("history_limit: must be >= 1 (or None to keep everything)")
        self._cps = cps
        self.max_queued_calls = max_queued_calls
        self.project = project
        self.token = token
        self.signing_key = signing_key
        self.time_scale = time_scale
        self.host = host
        self.port = port
        self.seed = seed
        self.space = space
        self.voice_scope = voice_scope
        self.max_call_length = max_call_length
        self.callees: dict[str, Callee] = dict(callees or {})
        if default_callee is not None:
            self.callees["*"] = default_callee
        self._faults = faults if faults is not None else FaultPlan(seed=seed)
        self.audio_lengths: dict[str, float] = dict(audio_lengths or {})
        self.unplayable: set[str] = set()
        self.commands: deque[ReceivedCommand] = deque(maxlen=history_limit)
        self._history_limit = history_limit
        # webhooks go to loopback addresses only unless allowed: tests stay off the network
        self.allow_external_webhooks = allow_external_webhooks
        self._webhook_settings = (
            webhook_concurrency,
            webhook_attempts,
            webhook_backoff,
            webhook_timeout,
        )
        self._auth = "Basic " + base64.b64encode(f"{project}:{token}".encode()).decode()
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._runner: web.AppRunner | None = None
        self._sender: WebhookSender | None = None
        self._engine: Engine | None = None
        self._commands_map: Mapping[str, CommandSpec] = {}
        self._base_url: str | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind the server, then start the webhook sender.

        Binding comes first, so a port already in use raises :class:`OSError` with
        nothing left open.
        """
        if self._runner is not None or self._closed:
            raise RuntimeError("Simulator: already started (or closed); use a new instance")
        self._commands_map = command_specs()
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(PATH, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=1024)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        concurrency, attempts, backoff, timeout = self._webhook_settings
        self._sender = WebhookSender(
            signing_key=self.signing_key,
            concurrency=concurrency,
            attempts=attempts,
            backoff=backoff * self.time_scale,
            timeout=timeout,
            on_change=self._notify,
            allow_external=self.allow_external_webhooks,
        )
        await self._sender.start()
        self._engine = Engine(
            project=self.project,
            space=self.space,
            time_scale=self.time_scale,
            faults=self._faults,
            sender=self._sender,
            callees=self.callees,
            seed=self.seed,
            max_call_length=self.max_call_length,
            audio_lengths=self.audio_lengths,
            unplayable=self.unplayable,
            history_limit=self._history_limit,
            notify=self._notify,
            cps=self._cps,
            max_queued_calls=self.max_queued_calls,
        )
        address = runner.addresses[0]
        self.port = int(address[1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"http://{host}:{self.port}"

    async def aclose(self) -> None:
        """Stop serving, cancel every timer and pending webhook; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None:
            self._engine.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._sender is not None:
            await self._sender.aclose()
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    # ------------------------------------------------------------------ properties

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if self._base_url is None:
            raise RuntimeError("Simulator: not started; use `async with Simulator(...)`")
        return self._base_url

    @property
    def url(self) -> str:
        """The full command endpoint URL."""
        return self.base_url + PATH

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force (mutable during a test)."""
        return self._faults

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self._faults = plan
        if self._engine is not None:
            self._engine.faults = plan

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Simulator: not started")
        return self._engine

    @property
    def calls(self) -> dict[str, SimCall]:
        """Every call created, by call id."""
        return self._engine.calls if self._engine is not None else {}

    @property
    def webhooks(self) -> deque[WebhookRecord]:
        """Every webhook sent (or dropped), in the order they were produced."""
        if self._engine is None:
            return deque()
        return self._engine.webhooks

    @property
    def cps(self) -> float | None:
        """Calls per simulated second that may leave ``queued`` (None: no limit).

        May be changed at any time; calls already waiting then follow the new pace.
        """
        return self._cps

    @cps.setter
    def cps(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError("cps: must be > 0 (or None for no limit)")
        self._cps = value
        if self._engine is not None:
            self._engine.set_cps(value)

    @property
    def dial_times(self) -> deque[float]:
        """``time.monotonic()`` of each accepted dial, in arrival order."""
        return self._engine.dial_times if self._engine is not None else deque()

    @property
    def start_times(self) -> deque[float]:
        """``time.monotonic()`` of each dialled call leaving ``queued``, in that order."""
        return self._engine.start_times if self._engine is not None else deque()

    @property
    def live_calls(self) -> int:
        """Calls (dialled or inbound) not yet in a terminal state."""
        return self._engine.live_calls if self._engine is not None else 0

    @property
    def peak_live_calls(self) -> int:
        """The most calls that were live at the same time."""
        return self._engine.peak_live_calls if self._engine is not None else 0

    @property
    def queued_calls(self) -> int:
        """Dials waiting for their turn under the ``cps`` limit."""
        return self._engine.queued_calls if self._engine is not None else 0

    @property
    def auth_header(self) -> str:
        """The ``Authorization`` header value a client must send."""
        return self._auth

    # ------------------------------------------------------------------ scripting

    def script(self, number: str, callee: Callee) -> None:
        """Script the callee at ``number`` (``"*"`` for every unscripted number)."""
        self.callees[number] = callee

    def load_callees(self, path: str | os.PathLike[str]) -> None:
        """Add the scripts of a JSON callee file ``{number: {"behavior": ..., ...}}``."""
        self.callees.update(load_callees(path))

    def hangup(self, call_id: str) -> None:
        """The callee of ``call_id`` hangs up now (``end_reason="hangup"``)."""
        call = self.calls.get(call_id)
        if call is None:
            raise KeyError(call_id)
        self.engine.hangup(call)

    async def place_inbound(
        self,
        *,
        from_: str,
        to: str,
        url: str,
        callee: Callee | None = None,
    ) -> SimCall:
        """Place an inbound call from ``from_`` to ``to``, handled by the SWML at ``url``.

        The simulator POSTs the platform's signed SWML request to ``url`` and runs the
        SWML it answers (``answer``, ``sleep``, ``play``, ``hangup``); the call then takes
        REST commands like any other. The caller behaves as ``callee`` (digits, speech,
        talk, ``hangup_after``; default: the script of ``from_``). Returns once the SWML
        was fetched and started. A failure (unreachable or non-loopback URL, non-2xx
        answer, unreadable or unsupported SWML) does not raise: the call ends
        ``failed`` with the reason in ``SimCall.swml_error``, logged as a warning.
        An inbound call sends no call-state webhooks.
        """
        return await place_inbound(self.engine, from_=from_, to=to, url=url, callee=callee)

    def operation(self, call_id: str, control_id: str, kind: str | None = None) -> Operation:
        """The operation ``control_id`` on ``call_id`` (of ``kind`` when given)."""
        call = self.calls[call_id]
        for (op_kind, cid), op in call.ops.items():
            if cid == control_id and (kind is None or kind == op_kind):
                return op
        raise KeyError(control_id)

    def webhooks_for(
        self,
        *,
        event_type: str | None = None,
        call_id: str | None = None,
        control_id: str | None = None,
        state: str | None = None,
        url: str | None = None,
    ) -> list[WebhookRecord]:
        """The webhooks matching every given filter."""
        return [
            w
            for w in self.webhooks
            if (event_type is None or w.event_type == event_type)
            and (call_id is None or w.call_id == call_id)
            and (control_id is None or w.control_id == control_id)
            and (state is None or w.state == state)
            and (url is None or w.url == url)
        ]

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        if not self._waiters:
            return
        remaining: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        for predicate, fut in self._waiters:
            if fut.done():
                continue
            try:
                value = predicate()
            except Exception as exc:  # a broken predicate fails its waiter, not the sim
                fut.set_exception(exc)
                continue
            if value:
                fut.set_result(value)
            else:
                remaining.append((predicate, fut))
        self._waiters = remaining

    async def wait_for(self, predicate: Callable[[], T | None], *, timeout: float = 5.0) -> T:
        """Wait until ``predicate()`` returns something truthy, and return it.

        The predicate is re-checked on every change of the simulator (a call state, an
        operation state, a command, a webhook outcome). ``timeout`` is real seconds;
        a ``TimeoutError`` says what was awaited.
        """
        value = predicate()
        if value:
            return value
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise TimeoutError(f"simulator: condition not met within {timeout} s") from None
        finally:
            if not fut.done():
                fut.cancel()

    async def wait_for_call(self, *, to: str | None = None, timeout: float = 5.0) -> SimCall:
        """The first call (to ``to`` when given)."""

        def find() -> SimCall | None:
            for call in self.calls.values():
                if to is None or call.to == to:
                    return call
            return None

        return await self.wait_for(find, timeout=timeout)

    async def wait_for_call_state(
        self, call_id: str, state: str, *, timeout: float = 5.0
    ) -> SimCall:
        """Wait until the call's leg status is ``state`` (or has passed through it).

        ``"ended"`` matches every terminal status (ended, failed, canceled, completed).
        """

        def check() -> SimCall | None:
            call = self.calls.get(call_id)
            if call is None:
                return None
            if state == "ended" and call.status in TERMINAL_STATES:
                return call
            return call if state in call.history else None

        return await self.wait_for(check, timeout=timeout)

    async def wait_for_operation(
        self,
        call_id: str,
        control_id: str,
        *,
        state: str | None = None,
        timeout: float = 5.0,
    ) -> Operation:
        """Wait until the operation reached ``state`` (default: until it is done)."""

        def check() -> Operation | None:
            call = self.calls.get(call_id)
            if call is None:
                return None
            for (_, cid), op in call.ops.items():
                if cid == control_id and (op.done if state is None else state in op.history):
                    return op
            return None

        return await self.wait_for(check, timeout=timeout)

    async def wait_for_webhook(
        self,
        event_type: str | None = None,
        *,
        state: str | None = None,
        call_id: str | None = None,
        control_id: str | None = None,
        url: str | None = None,
        count: int = 1,
        settled: bool = True,
        timeout: float = 5.0,
    ) -> WebhookRecord:
        """Wait for the ``count``-th matching webhook; with ``settled`` until it was
        delivered, failed or dropped. Returns that webhook."""

        def check() -> WebhookRecord | None:
            found = self.webhooks_for(
                event_type=event_type, call_id=call_id, control_id=control_id, state=state, url=url
            )
            if len(found) < count:
                return None
            record = found[count - 1]
            if settled and record.outcome == "pending":
                return None
            return record

        return await self.wait_for(check, timeout=timeout)

    async def wait_for_command(
        self, command: str, *, count: int = 1, timeout: float = 5.0
    ) -> ReceivedCommand:
        """Wait for the ``count``-th received command named ``command``."""

        def check() -> ReceivedCommand | None:
            found = [c for c in self.commands if c.command == command]
            return found[count - 1] if len(found) >= count else None

        return await self.wait_for(check, timeout=timeout)

    async def wait_for_webhooks_idle(self, *, timeout: float = 5.0) -> None:
        """Wait until no webhook is queued or in flight."""
        if self._sender is None:
            return
        async with asyncio.timeout(timeout):
            await self._sender.wait_idle()

    # ------------------------------------------------------------------ HTTP

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if header != self._auth:
            ok = False
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(value.strip(), validate=True).decode()
                except (ValueError, UnicodeDecodeError):
                    decoded = ""
                user, _, password = decoded.partition(":")
                ok = hmac.compare_digest(user, self.project) and hmac.compare_digest(
                    password, self.token
                )
            if not ok:
                raise ApiError.plain(401)
        if not self.voice_scope:
            raise ApiError.plain(403)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self._engine is None or self._engine.closed:  # starting up or shutting down
            return self._status_fault(503, None)
        record: ReceivedCommand | None = None
        try:
            self._check_auth(request)
            name, data = peek_command(body)
            fault = self._faults.command_fault(name)
            if fault is not None and not fault.after_processing:
                # recorded too, so tests can see what the client sent and got
                self.commands.append(
                    ReceivedCommand(
                        name,
                        _peek_call_id(data),
                        data.get("params", {}) if isinstance(data, dict) else {},
                        fault.status if fault.action == "status" else 0,
                        time.monotonic(),
                        error="fault",
                    )
                )
                self._notify()
                if fault.action == "reset":
                    return self._reset(request)
                return self._status_fault(fault.status, fault.retry_after)
            record = ReceivedCommand(name, None, {}, 0, time.monotonic())
            self.commands.append(record)
            leg, first = self._dispatch(data, record)
            record.status = 200
            self._notify()
            if fault is not None and fault.action == "reset":
                return self._reset(request)
            if fault is not None:
                return self._status_fault(fault.status, fault.retry_after)
            if first is not None and self._faults.events_before_response:
                with _suppress_timeout():
                    async with asyncio.timeout(5.0):
                        await asyncio.shield(first.wait_future())
            return web.Response(body=_encode(leg), content_type=_JSON)
        except ApiError as err:
            if record is not None:
                record.status = err.status
                record.error = err.body
                self._notify()
            return web.Response(status=err.status, body=_encode(err.body), content_type=_JSON)

    def _status_fault(self, status: int, retry_after: float | None) -> web.Response:
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = _format_seconds(retry_after * self.time_scale)
        reason = {429: "Too Many Requests", 503: "Service Unavailable"}.get(
            status, "Internal Server Error"
        )
        return web.Response(
            status=status,
            body=_encode({"error": reason}),
            content_type=_JSON,
            headers=headers,
        )

    def _reset(self, request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    def _dispatch(
        self, data: Any, record: ReceivedCommand
    ) -> tuple[dict[str, Any], WebhookRecord | None]:
        engine = self.engine
        # Leniency: a sub-command without control_id addresses the only active operation.
        name = data.get("command") if isinstance(data, dict) else None
        if name in SUB_COMMANDS and isinstance(data.get("params"), dict):
            params = data["params"]
            call = self.calls.get(data.get("id", ""))
            if "control_id" not in params and call is not None:
                kind = SUB_COMMANDS[name][0]
                active = [op for op in call.operations(kind) if not op.done]
                if len(active) == 1:
                    params["control_id"] = active[0].control_id
        parsed = parse_command(data, self._commands_map, engine.new_id)
        record.call_id = parsed.call_id
        record.params = parsed.params
        record.lenient = parsed.lenient
        command, params = parsed.command, parsed.params
        if command == "dial":
            call = engine.dial(params, parsed.extra_status_events)
            record.call_id = call.id
            return engine.leg(call), None
        call = self.calls.get(parsed.call_id or "")
        if call is None:
            raise ApiError.plain(404)
        if command == "update":
            engine.update(call, params)
            return engine.leg(call), None
        if call.status in TERMINAL_STATES or call.status == "ending":
            raise ApiError.plain(404)
        if command == "calling.end":
            engine.end(call, str(params.get("reason") or "hangup"))
            return engine.leg(call), None
        if call.status != "answered":
            raise ApiError.unprocessable(
                "invalid_state", f"the call is {call.status}, not answered", None
            )
        first: WebhookRecord | None = None
        route = WIRE_COMMANDS.get(command)
        if route is None:
            self._misc(engine, call, command, params)
        elif route[1] == START:
            first = engine.start_operation(route[0], call, params).first_record
        else:
            engine.operation_action(call, route[0], route[1], params)
        self._notify()
        return engine.leg(call), first

    def _misc(self, engine: Engine, call: SimCall, command: str, params: dict[str, Any]) -> None:
        if command == "calling.transfer":
            call.transfers.append(params.get("dest"))
        elif command == "calling.disconnect":
            pass
        elif command == "calling.denoise":
            call.denoise = True
        elif command == "calling.denoise.stop":
            call.denoise = False
        elif command == "calling.ai_hold":
            call.ai["on_hold"] = True
            call.ai["hold"] = params
        elif command == "calling.ai_unhold":
            call.ai["on_hold"] = False
        elif command == "calling.ai_message":
            call.ai["messages"].append(params)
        elif command == "calling.ai.stop":
            call.ai["stopped"] = True
        elif command in ("calling.live_transcribe", "calling.live_translate"):
            attr = "live_transcribe" if command == "calling.live_transcribe" else "live_translate"
            action = params.get("action")
            if action == "stop":
                setattr(call, attr, None)
            elif isinstance(action, dict):
                session = getattr(call, attr) or {"actions": []}
                session["actions"].append(action)
                if "start" in action:
                    session["start"] = action["start"]
                setattr(call, attr, session)
        elif command in ("calling.send_fax.stop", "calling.receive_fax.stop"):
            call.fax_stops.append(str(params.get("control_id")))
        elif command == "calling.refer":
            engine.refer(call, params)
        elif command == "calling.user_event":
            call.user_events.append(params.get("event"))


def _peek_call_id(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    call_id = data.get("id")
    if call_id is None and isinstance(data.get("params"), dict):
        call_id = data["params"].get("id")
    return call_id if isinstance(call_id, str) else None


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is TimeoutError


def _format_seconds(seconds: float) -> str:
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".") or "0"
