"""A :class:`Simulator` on an event loop of its own, in a thread, usable from any test.

An async fixture runs in the event loop of whichever plugin claims it (pytest-asyncio,
anyio, ...), and a simulator started in one loop is dead while another loop runs the
test. A simulator in a thread of its own serves the same whatever runs the test: a
pytest-asyncio test, an anyio test, or a plain function that calls ``asyncio.run``.

Everything the simulator owns is touched only on its own loop: calls from the test's
thread are carried over (and wait a round trip, a fraction of a millisecond when the
simulator is idle), introspection returns snapshots taken there, and the ``wait_for_*``
helpers are coroutines that can be awaited from any running asyncio loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import os
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, TypedDict, TypeVar, Unpack, cast

from ._callees import Callee, load_callees
from ._faults import FaultPlan
from ._model import Operation, SimCall
from ._server import ReceivedCommand, Simulator
from ._webhooks import WebhookRecord

__all__ = ["SimulatorOptions", "SimulatorThread"]

T = TypeVar("T")

#: How long starting, stopping or one call into the simulator's loop may take (seconds).
_LOOP_TIMEOUT: Final = 30.0


class SimulatorOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Simulator` (see its docstring for each)."""

    project: str
    token: str
    signing_key: str | None
    time_scale: float
    host: str
    port: int
    seed: int
    callees: Mapping[str, Callee] | None
    faults: FaultPlan | None
    default_callee: Callee | None
    max_call_length: float
    space: str
    voice_scope: bool
    audio_lengths: Mapping[str, float] | None
    webhook_concurrency: int
    webhook_attempts: int
    webhook_backoff: float
    webhook_timeout: float
    history_limit: int | None
    allow_external_webhooks: bool
    cps: float | None
    max_queued_calls: int


OPTION_NAMES: Final = frozenset(SimulatorOptions.__annotations__)


class SimulatorThread:
    """A :class:`Simulator` serving from a thread of its own, with its surface.

    ::

        with SimulatorThread(time_scale=0.01) as sim:
            sim.script("+15550001", Callee.answers(digits="1#"))
            asyncio.run(my_flow(sim.base_url, sim.project, sim.token))

    ``options`` are the :class:`Simulator`'s. Introspection (``calls``, ``commands``,
    ``webhooks``, ...) returns copies taken on the simulator's loop: they do not change
    afterwards, so read them again (or await a ``wait_for_*`` helper) to see progress.
    ``faults`` forwards reads, changes and rule builders to the plan on that loop.
    :meth:`call_in_loop` runs anything else there. Leaving the ``with`` block (or
    :meth:`close`) stops the simulator and ends the thread.
    """

    def __init__(self, **options: Unpack[SimulatorOptions]) -> None:
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise TypeError(f"{unknown[0]}: not a Simulator option")
        # built here so bad options raise in the caller's thread, before any thread starts
        self._sim = Simulator(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the thread and its loop, and return once the simulator is serving.

        A failure to start (say the port is in use) is raised here, with the thread ended.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("SimulatorThread: already started (or closed); use a new one")
        self._thread = threading.Thread(
            target=self._run, name=f"signalwire-simulator-{id(self):x}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_LOOP_TIMEOUT):
            raise RuntimeError(f"SimulatorThread: not serving within {_LOOP_TIMEOUT} s")
        if self._error is not None:
            self._thread.join(_LOOP_TIMEOUT)
            self._closed = True
            raise self._error

    def close(self) -> None:
        """Stop the simulator (timers, webhooks, server) and end its thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop already ended
                pass
        thread.join(_LOOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"SimulatorThread: thread still running after {_LOOP_TIMEOUT} s")

    @property
    def running(self) -> bool:
        """True while the simulator's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ident = threading.get_ident()
        self._stop = asyncio.Event()
        try:
            await self._sim.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._sim.aclose()

    # ------------------------------------------------------------------ carrying calls over

    def call_in_loop(self, fn: Callable[[Simulator], T]) -> T:
        """Run ``fn(simulator)`` on the simulator's loop and return what it returns.

        For what this class does not carry over itself. The result is not copied: read
        live objects inside ``fn``.
        """
        return self._call(lambda: fn(self._sim))

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._live_loop()
        if threading.get_ident() == self._ident:  # already on the simulator's loop
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:
            raise RuntimeError("SimulatorThread: the simulator is closed") from None
        return done.result(_LOOP_TIMEOUT)

    def _snap(self, fn: Callable[[], Any]) -> Any:
        return self._call(lambda: _snapshot(fn(), {}))

    async def _await(self, make: Callable[[], Awaitable[T]]) -> T:
        async def job() -> T:
            return cast(T, _snapshot(await make(), {}))

        loop = self._live_loop()
        if threading.get_ident() == self._ident:
            return await job()
        coro = job()
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:
            coro.close()
            raise RuntimeError("SimulatorThread: the simulator is closed") from None
        return await asyncio.wrap_future(future)

    def _live_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or not self._ready.is_set() or self._error is not None:
            raise RuntimeError("SimulatorThread: not started; use `with SimulatorThread(...)`")
        if self._closed or loop.is_closed():
            raise RuntimeError("SimulatorThread: the simulator is closed")
        return loop

    # ------------------------------------------------------------------ settings

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return self._sim.base_url

    @property
    def url(self) -> str:
        """The full command endpoint URL."""
        return self._sim.url

    @property
    def project(self) -> str:
        """The project id a client must authenticate with."""
        return self._sim.project

    @property
    def token(self) -> str:
        """The API token a client must authenticate with."""
        return self._sim.token

    @property
    def signing_key(self) -> str | None:
        """The key webhooks are signed with (None: unsigned)."""
        return self._sim.signing_key

    @property
    def auth_header(self) -> str:
        """The ``Authorization`` header value a client must send."""
        return self._sim.auth_header

    @property
    def time_scale(self) -> float:
        """Real seconds per simulated second."""
        return self._sim.time_scale

    @property
    def host(self) -> str:
        """The address the simulator listens on."""
        return self._sim.host

    @property
    def port(self) -> int:
        """The port the simulator listens on (chosen at start when 0 was asked)."""
        return self._sim.port

    @property
    def seed(self) -> int:
        """The seed of the simulator's ids and random choices."""
        return self._sim.seed

    @property
    def space(self) -> str:
        """The space name reported in call legs."""
        return self._sim.space

    @property
    def cps(self) -> float | None:
        """Calls per simulated second that may leave ``queued`` (None: no limit)."""
        return self._sim.cps

    @cps.setter
    def cps(self, value: float | None) -> None:
        def set_cps() -> None:
            self._sim.cps = value

        self._call(set_cps)

    @property
    def voice_scope(self) -> bool:
        """False answers every command 403, as a token without the voice scope is."""
        return self._sim.voice_scope

    @voice_scope.setter
    def voice_scope(self, value: bool) -> None:
        def set_scope() -> None:
            self._sim.voice_scope = value

        self._call(set_scope)

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force, as a view: reads, changes and rule builders
        (``sim.faults.drop_webhook(...)``, ``sim.faults.drop_rate = 0.1``) are carried
        out on the simulator's loop; the rules the builders return are the live ones,
        ``webhook_rules`` and ``command_rules`` read as lists of copies that refuse
        changes (add rules with the builders)."""
        return cast(FaultPlan, _FaultsView(self))

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        def set_plan() -> None:
            self._sim.faults = plan

        self._call(set_plan)

    # ------------------------------------------------------------------ scripting

    def script(self, number: str, callee: Callee) -> None:
        """Script the callee at ``number`` (``"*"`` for every unscripted number)."""
        self._call(lambda: self._sim.script(number, callee))

    def load_callees(self, path: str | os.PathLike[str]) -> None:
        """Add the scripts of a JSON callee file ``{number: {"behavior": ..., ...}}``."""
        callees = load_callees(path)  # read and checked here, so errors raise here
        self._call(lambda: self._sim.callees.update(callees))

    def hangup(self, call_id: str) -> None:
        """The callee of ``call_id`` hangs up now (``end_reason="hangup"``)."""
        self._call(lambda: self._sim.hangup(call_id))

    async def place_inbound(
        self,
        *,
        from_: str,
        to: str,
        url: str,
        callee: Callee | None = None,
    ) -> SimCall:
        """Place an inbound call handled by the SWML at ``url`` (see
        :meth:`Simulator.place_inbound`); returns a snapshot of the call."""
        return await self._await(
            lambda: self._sim.place_inbound(from_=from_, to=to, url=url, callee=callee)
        )

    # ------------------------------------------------------------------ introspection

    @property
    def callees(self) -> dict[str, Callee]:
        """The scripted callees by number (a copy; change them with :meth:`script`)."""
        return self._call(lambda: dict(self._sim.callees))

    @property
    def calls(self) -> dict[str, SimCall]:
        """Every call created, by call id (a snapshot)."""
        return cast("dict[str, SimCall]", self._snap(lambda: self._sim.calls))

    @property
    def commands(self) -> list[ReceivedCommand]:
        """Every command received, in arrival order (a snapshot)."""
        return cast("list[ReceivedCommand]", self._snap(lambda: list(self._sim.commands)))

    @property
    def webhooks(self) -> list[WebhookRecord]:
        """Every webhook sent (or dropped), in the order produced (a snapshot)."""
        return cast("list[WebhookRecord]", self._snap(lambda: list(self._sim.webhooks)))

    def webhooks_for(
        self,
        *,
        event_type: str | None = None,
        call_id: str | None = None,
        control_id: str | None = None,
        state: str | None = None,
        url: str | None = None,
    ) -> list[WebhookRecord]:
        """The webhooks matching every given filter (a snapshot)."""
        return cast(
            "list[WebhookRecord]",
            self._snap(
                lambda: self._sim.webhooks_for(
                    event_type=event_type,
                    call_id=call_id,
                    control_id=control_id,
                    state=state,
                    url=url,
                )
            ),
        )

    def operation(self, call_id: str, control_id: str, kind: str | None = None) -> Operation:
        """The operation ``control_id`` on ``call_id`` (a snapshot)."""
        return cast(Operation, self._snap(lambda: self._sim.operation(call_id, control_id, kind)))

    @property
    def dial_times(self) -> list[float]:
        """``time.monotonic()`` of each accepted dial, in arrival order."""
        return self._call(lambda: list(self._sim.dial_times))

    @property
    def start_times(self) -> list[float]:
        """``time.monotonic()`` of each dialled call leaving ``queued``, in that order."""
        return self._call(lambda: list(self._sim.start_times))

    @property
    def live_calls(self) -> int:
        """Calls (dialled or inbound) not yet in a terminal state."""
        return self._call(lambda: self._sim.live_calls)

    @property
    def peak_live_calls(self) -> int:
        """The most calls that were live at the same time."""
        return self._call(lambda: self._sim.peak_live_calls)

    @property
    def queued_calls(self) -> int:
        """Dials waiting for their turn under the ``cps`` limit."""
        return self._call(lambda: self._sim.queued_calls)

    # ------------------------------------------------------------------ waiting

    async def wait_for(self, predicate: Callable[[], T | None], *, timeout: float = 5.0) -> T:
        """Wait until ``predicate()`` returns something truthy, and return a snapshot of it.

        The predicate runs on the simulator's loop, after every change there; it may use
        this object's introspection (``sim.calls`` ...), which is then read directly.
        """
        return await self._await(lambda: self._sim.wait_for(predicate, timeout=timeout))

    async def wait_for_call(self, *, to: str | None = None, timeout: float = 5.0) -> SimCall:
        """The first call (to ``to`` when given), as a snapshot."""
        return await self._await(lambda: self._sim.wait_for_call(to=to, timeout=timeout))

    async def wait_for_call_state(
        self, call_id: str, state: str, *, timeout: float = 5.0
    ) -> SimCall:
        """Wait until the call's status is ``state`` (or has passed through it);
        ``"ended"`` matches every terminal status. Returns a snapshot of the call."""
        return await self._await(
            lambda: self._sim.wait_for_call_state(call_id, state, timeout=timeout)
        )

    async def wait_for_operation(
        self,
        call_id: str,
        control_id: str,
        *,
        state: str | None = None,
        timeout: float = 5.0,
    ) -> Operation:
        """Wait until the operation reached ``state`` (default: until it is done)."""
        return await self._await(
            lambda: self._sim.wait_for_operation(call_id, control_id, state=state, timeout=timeout)
        )

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
        """Wait for the ``count``-th matching webhook (with ``settled``, until it was
        delivered, failed or dropped)."""
        return await self._await(
            lambda: self._sim.wait_for_webhook(
                event_type,
                state=state,
                call_id=call_id,
                control_id=control_id,
                url=url,
                count=count,
                settled=settled,
                timeout=timeout,
            )
        )

    async def wait_for_command(
        self, command: str, *, count: int = 1, timeout: float = 5.0
    ) -> ReceivedCommand:
        """Wait for the ``count``-th received command named ``command``."""
        return await self._await(
            lambda: self._sim.wait_for_command(command, count=count, timeout=timeout)
        )

    async def wait_for_webhooks_idle(self, *, timeout: float = 5.0) -> None:
        """Wait until no webhook is queued or in flight."""
        await self._await(lambda: self._sim.wait_for_webhooks_idle(timeout=timeout))

    def __repr__(self) -> str:
        state = "running" if self.running else ("closed" if self._closed else "not started")
        where = self._sim.base_url if self._ready.is_set() and self._error is None else "-"
        return f"<SimulatorThread {state} {where}>"


class _FaultsView:
    """Forwards reads, writes and method calls to the simulator's current fault plan,
    on the simulator's loop."""

    __slots__ = ("_owner",)

    def __init__(self, owner: SimulatorThread) -> None:
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        owner: SimulatorThread = object.__getattribute__(self, "_owner")
        value = owner.call_in_loop(lambda sim: _snapshot(getattr(sim.faults, name), {}))
        if isinstance(value, list):  # the rule lists: a copy, so changing it is refused
            return _ReadOnlyList(value)
        if not callable(value):
            return value

        def method(*args: Any, **kwargs: Any) -> Any:
            return owner.call_in_loop(lambda sim: getattr(sim.faults, name)(*args, **kwargs))

        method.__name__ = name
        method.__doc__ = getattr(FaultPlan, name, None).__doc__
        return method

    def __setattr__(self, name: str, value: Any) -> None:
        owner: SimulatorThread = object.__getattribute__(self, "_owner")
        owner.call_in_loop(lambda sim: setattr(sim.faults, name, value))

    def __repr__(self) -> str:
        owner: SimulatorThread = object.__getattribute__(self, "_owner")
        return owner.call_in_loop(lambda sim: repr(sim.faults))


class _ReadOnlyList(list[Any]):
    """A copied list whose changes would be lost: changing it raises instead."""

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise TypeError(
            "a copy of the simulator's fault plan list: add rules with the builders "
            "(sim.faults.drop_webhook(...), ...) or replace the plan (sim.faults = ...)"
        )

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


# ---------------------------------------------------------------------------- snapshots

_DROP: Final = object()
_ATOMIC: Final = (str, bytes, int, float, bool, type(None))
_LOOP_BOUND: Final = (asyncio.Handle, asyncio.Future, concurrent.futures.Future)


def _snapshot(value: Any, memo: dict[int, Any]) -> Any:
    """A copy of ``value`` safe to read from another thread.

    Containers and (non-frozen) dataclasses are copied all the way down, keeping shared
    references shared (an operation's ``call`` is the copied call); timers and futures,
    which belong to the simulator's loop, are left out (``None`` in a field); frozen
    dataclasses and other objects are kept as they are.
    """
    if isinstance(value, _ATOMIC):
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, _LOOP_BOUND):
        return _DROP
    out: Any
    if isinstance(value, dict):
        out = memo[key] = {}
        for k, v in value.items():
            item = _snapshot(v, memo)
            if item is not _DROP:
                out[_snapshot(k, memo)] = item
        return out
    if isinstance(value, list | deque):
        out = memo[key] = [] if isinstance(value, list) else deque(maxlen=value.maxlen)
        out.extend(i for i in (_snapshot(v, memo) for v in value) if i is not _DROP)
        return out
    if isinstance(value, tuple | set | frozenset):
        if hasattr(value, "_fields"):  # a named tuple: kept as it is
            return value
        items = [i for i in (_snapshot(v, memo) for v in value) if i is not _DROP]
        out = memo[key] = type(value)(items)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = getattr(type(value), "__dataclass_params__", None)
        if params is not None and params.frozen:
            return value
        out = memo[key] = copy.copy(value)
        for f in dataclasses.fields(value):
            item = _snapshot(getattr(value, f.name), memo)
            object.__setattr__(out, f.name, None if item is _DROP else item)
        return out
    return value
