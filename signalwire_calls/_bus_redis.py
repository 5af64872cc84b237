"""Cross-process webhook routing on Redis: ``RedisBus``.

Each session that has a bus is an *owner* with an id, carried in every ``status_url``
it sets (query parameter ``swc_owner``, covered by the signature). A receiver that
verified a webhook for another owner forwards its body through Redis to that owner
(docs/architecture.md, "Scaling out"). The keys:

``swc:owner:<owner>`` (string, with a TTL)
    the owner's liveness: set by the owner, refreshed every third of ``liveness_ttl``,
    deleted when it closes.
``swc:inbox:<owner>`` (stream, field ``b``: the webhook body)
    events forwarded to the owner. The owner reads it with ``XREAD`` from the last id it
    consumed and trims what it has consumed (``XTRIM MINID``) with its next read; the
    stream is capped (``MAXLEN ~``) and expires if its owner dies without closing.
``swc:dlq`` (stream: owner, reason, received, receiver, body)
    events whose owner is gone (``owner_gone``), or that name no owner (``no_owner``)
    or an impossible one (``bad_owner``). Capped (``MAXLEN ~``).
``swc:routing`` (hash)
    ``dead_lettered``: the count of events ever dead-lettered.

A forward is one Lua script, atomic: the owner's key alive -> ``XADD`` to its inbox,
else ``XADD`` to the dead-letter stream and count it. Forwards waiting at the same time
go in one script call (one round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ._campaign_redis import redact
from ._codec import decode_event
from ._logthrottle import LogThrottle
from .errors import ConfigurationError, MalformedWebhookError, SessionStateError
from .events import AnyEvent
from .receiver import OWNER_PARAM, Receiver, ReceiverSettings, create_app

if TYPE_CHECKING:
    from aiohttp import web
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DLQ_KEY",
    "OWNER_PARAM",
    "BusStats",
    "DeadLetter",
    "RedisBus",
    "owner_url",
    "read_dead_letters",
]

logger = logging.getLogger("signalwire_calls.bus")

#: Owner ids: characters that need no escaping in a URL or a key, 1-64 of them.
_OWNER = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_OWNER_KEY = "swc:owner:"
_INBOX_KEY = "swc:inbox:"
DLQ_KEY = "swc:dlq"
_STATS_KEY = "swc:routing"
#: Forwards per script call at most, and their bytes at most.
_BATCH = 256
_BATCH_BYTES = 4 * 1024 * 1024
#: Entries the owner reads at a time, and how long one read blocks (ms).
_READ_COUNT = 500
_BLOCK_MS = 1000
#: How often ``aclose`` cancels again a task that has not ended (seconds).
_RECANCEL_INTERVAL = 0.05
_BACKOFF_CAP = 1.0
#: An inbox expires this long (ms) after its owner last refreshed its liveness (at least).
_INBOX_TTL_MS = 60_000

# KEYS: dlq, stats, then per event its owner's liveness key and inbox (the dlq key twice
# for an event that names no valid owner).
# ARGV: now (wall, s), inbox maxlen, dlq maxlen, receiver id, inbox TTL (ms; for an
# inbox that has none: its owner may die before setting one), then per event: owner,
# reason ('' when it names a valid owner), body.
# Returns one number per event: 1 forwarded, 0 dead-lettered.
_FORWARD = """
local dlq, stats = KEYS[1], KEYS[2]
local out = {}
local dead = 0
local n = (#ARGV - 5) / 3
for i = 1, n do
  local a = 5 + 3 * (i - 1)
  local owner, reason, body = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if reason == '' then
    if redis.call('EXISTS', KEYS[1 + 2 * i]) == 1 then
      local inbox = KEYS[2 + 2 * i]
      redis.call('XADD', inbox, 'MAXLEN', '~', ARGV[2], '*', 'b', body)
      if redis.call('PTTL', inbox) < 0 then redis.call('PEXPIRE', inbox, ARGV[5]) end
      out[i] = 1
    else
      reason = 'owner_gone'
    end
  end
  if reason ~= '' then
    redis.call('XADD', dlq, 'MAXLEN', '~', ARGV[3], '*', 'owner', owner, 'reason', reason,
      'received', ARGV[1], 'receiver', ARGV[4], 'body', body)
    out[i] = 0
    dead = dead + 1
  end
end
if dead > 0 then redis.call('HINCRBY', stats, 'dead_lettered', dead) end
return out
"""


def owner_url(status_url: str, owner_id: str) -> str:
    """``status_url`` naming ``owner_id`` (its query parameter ``swc_owner``)."""
    sep = "&" if "?" in status_url else "?"
    return f"{status_url}{sep}{OWNER_PARAM}={owner_id}"


class BusStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a ``RedisBus`` (a snapshot).

    ``forwarded`` events this bus put in another owner's inbox; ``dead_lettered`` it put
    in the dead-letter stream (owner gone, no or bad owner); ``forward_failed`` Redis
    could not take (the receiver answered 503, so the platform sends them again);
    ``received`` events read from this owner's inbox and delivered to its session,
    ``malformed`` read there but unreadable (dropped). ``outages`` counts the times
    Redis was lost; ``connected`` is whether the last Redis call succeeded.
    """

    owner_id: str
    connected: bool
    forwarded: int
    dead_lettered: int
    forward_failed: int
    received: int
    malformed: int
    outages: int


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One dead-lettered event: its stream ``id``, the ``owner`` it named, why
    (``owner_gone``, ``no_owner``, ``bad_owner``), when it was received (Unix time),
    by which receiver, and the webhook ``body``."""

    id: str
    owner: str
    reason: str
    received: float
    receiver: str
    body: bytes


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"url: expected a redis://, rediss:// or unix:// URL, got {redact(str(url))!r}"
        )
    return url


def _check_seconds(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > 0 and math.isfinite(value))
    ):
        raise ConfigurationError(f"{name}: must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _require_redis() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "redis: RedisBus needs redis-py: pip install 'signalwire_calls[redis]'"
        ) from None


async def _connect(secret_url: str, connect_timeout: float) -> Redis:
    """A client with a working connection; an ``OSError`` naming the URL (never its
    password) when Redis cannot be reached."""
    from redis.asyncio import Redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    url = redact(secret_url)
    try:
        client = Redis.from_url(
            secret_url,
            socket_connect_timeout=connect_timeout,
            # above the blocking read's 1 s; bounds a forward when Redis hangs
            socket_timeout=max(connect_timeout, 5.0),
            # a pooled connection Redis closed (a restart) is replaced and the command
            # sent again; Redis down: a few quick tries, then the caller's own backoff
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
        )
    except (ValueError, RedisError) as exc:
        detail = str(exc).replace(secret_url, url)
        raise ConfigurationError(f"url: bad Redis URL {url}: {detail}") from None
    try:
        async with asyncio.timeout(connect_timeout + 1):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        detail = str(exc).replace(secret_url, url) or type(exc).__name__
        raise OSError(f"redis: cannot reach {url}: {detail}") from None
    except BaseException:  # cancelled: close what was opened
        await client.aclose()
        raise
    return client


class _Pending:
    __slots__ = ("body", "future", "owner", "reason")

    def __init__(self, owner: str, reason: str, body: bytes, future: asyncio.Future[bool]) -> None:
        self.owner = owner
        self.reason = reason
        self.body = body
        self.future = future


class RedisBus:
    """Routes webhooks between processes through Redis.

    Give one to a session (``CallSession(..., bus=RedisBus(url))``): its id (the
    *owner id*, ``owner_id``, random unless given) goes into every ``status_url`` the
    session sets; the session's receiver forwards webhooks naming another owner to it
    through Redis, and the session reads the webhooks forwarded to it. Webhooks naming
    no owner or this one are delivered in-process, as without a bus. A bus serves one
    session; the session opens and closes it.

    Without a session, a bus forwards every webhook to its owner: that is the stateless
    receiver (``bus.receiver(...)``, or ``signalwire-calls receiver``).

    ``liveness_ttl``: the owner's liveness key lives that long unless refreshed (every
    third of it); a webhook for an owner whose key is gone is dead-lettered.
    ``connect_timeout`` bounds connecting to Redis. ``inbox_maxlen`` and ``dlq_maxlen``
    cap the streams (approximately).

        async with CallSession(..., public_url=FRONT, bus=RedisBus("redis://r:6379/0")):
            ...
    """

    def __init__(
        self,
        url: str,
        *,
        owner_id: str | None = None,
        liveness_ttl: float = 10.0,
        connect_timeout: float = 5.0,
        inbox_maxlen: int = 100_000,
        dlq_maxlen: int = 100_000,
    ) -> None:
        self._secret_url = _check_url(url)
        if owner_id is None:
            owner_id = secrets.token_hex(8)
        elif not isinstance(owner_id, str) or not _OWNER.fullmatch(owner_id):
            raise ConfigurationError(
                f"owner_id: 1-64 letters, digits, '_', '.' or '-', got {owner_id!r}"
            )
        self._owner_id = owner_id
        self._ttl = _check_seconds("liveness_ttl", liveness_ttl)
        self._connect_timeout = _check_seconds("connect_timeout", connect_timeout)
        for name, value in (("inbox_maxlen", inbox_maxlen), ("dlq_maxlen", dlq_maxlen)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name}: must be an integer >= 1, got {value!r}")
        self._inbox_maxlen = inbox_maxlen
        self._dlq_maxlen = dlq_maxlen
        _require_redis()
        self._name = f"{socket.gethostname()}:{os.getpid()}:{owner_id}"
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._sink: Callable[[AnyEvent], None] | None = None
        self._session: object | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._alive = asyncio.Event()
        self._closed = False
        self._connected = False
        self._down_since: float | None = None
        self._down_logged = False
        self._forwarded = 0
        self._dead_lettered = 0
        self._forward_failed = 0
        self._received = 0
        self._malformed = 0
        self._outages = 0
        self._fail_log = LogThrottle(logger)

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"<RedisBus {state} {self.url} owner_id={self._owner_id!r}>"

    @property
    def url(self) -> str:
        """The Redis URL, its password hidden."""
        return redact(self._secret_url)

    @property
    def owner_id(self) -> str:
        """This bus's owner id (the value of ``swc_owner`` in its session's URLs)."""
        return self._owner_id

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to Redis (an ``OSError`` naming the URL if it cannot be reached). The
        session calls it; call it yourself for a bus used without a session."""
        if self._closed:
            raise SessionStateError("this RedisBus was closed; create a new one")
        if self._client is not None:
            return
        client = await _connect(self._secret_url, self._connect_timeout)
        self._client = client
        self._script = client.register_script(_FORWARD)
        self._connected = True

    async def aclose(self) -> None:
        """Stop reading, delete the owner's liveness key and inbox (when serving a
        session), close the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # redis-py can swallow a cancellation that lands while a command is being sent
        # (redis/redis-py#2028): cancel again until each task has ended; the loops also
        # stop on ``_closed`` after their current read (at most ``_BLOCK_MS``)
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_RECANCEL_INTERVAL)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.debug("bus task %s ended with %r", task.get_name(), task.exception())
        self._tasks = []
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for item in self._queue:
            if not item.future.done():
                item.future.set_result(False)
        self._queue = []
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._sink is not None:
                from redis.exceptions import RedisError

                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(self._connect_timeout):
                        await client.delete(
                            _OWNER_KEY + self._owner_id, _INBOX_KEY + self._owner_id
                        )
        finally:
            await client.aclose()
            self._sink = None

    async def __aenter__(self) -> RedisBus:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def claim(self, session: object) -> None:
        """Reserve the bus for ``session`` (a bus serves one session)."""
        if self._session is not None and self._session is not session:
            raise ConfigurationError(
                "bus: this RedisBus already serves another CallSession; give each "
                "session its own RedisBus"
            )
        if self._closed:
            raise ConfigurationError("bus: this RedisBus was closed; create a new one")
        self._session = session

    async def serve(self, sink: Callable[[AnyEvent], None]) -> None:
        """Open, mark this owner alive and feed ``sink`` with the events forwarded to it
        (the session calls this when it opens)."""
        if self._sink is not None:
            raise SessionStateError("bus: already serving a session")
        from redis.exceptions import RedisError

        await self.open()
        assert self._client is not None
        try:
            await self._refresh(self._client)
        except (RedisError, OSError, TimeoutError) as exc:
            detail = str(exc).replace(self._secret_url, self.url) or type(exc).__name__
            raise OSError(f"redis: cannot reach {self.url}: {detail}") from None
        self._sink = sink
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(), name=f"signalwire_calls bus {self._owner_id}"),
            loop.create_task(self._liveness(), name=f"signalwire_calls bus alive {self._owner_id}"),
        ]

    # -- the router (the receiver's side) ---------------------------------------------------

    def is_local(self, owner: str | None) -> bool:
        """Whether a webhook naming ``owner`` is this process's to deliver."""
        return self._sink is not None and (owner is None or owner == self._owner_id)

    def deliver(self, event: AnyEvent) -> None:
        """The receiver's sink: the session's registry, when serving one."""
        sink = self._sink
        if sink is not None:
            sink(event)

    async def forward(self, owner: str | None, body: bytes) -> bool:
        """Hand a verified webhook ``body`` to ``owner`` through Redis (or to the
        dead-letter stream when that owner is gone); ``False`` when Redis could not take
        it (answer 503: the platform sends it again)."""
        client = self._client
        if client is None:
            self._forward_failed += 1
            return False
        if owner is None:
            owner, reason = "", "no_owner"
        elif _OWNER.fullmatch(owner):
            reason = ""
        else:
            owner, reason = owner[:100], "bad_owner"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(owner, reason, body, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Send the waiting forwards, a batch per script call, one call at a time: forwards
        that come while one is in flight go together in the next."""
        from redis.exceptions import RedisError

        try:
            while self._queue and self._client is not None:
                queue = self._queue
                size = 0
                cut = 0
                for item in queue:
                    if cut >= _BATCH or (cut and size + len(item.body) > _BATCH_BYTES):
                        break
                    size += len(item.body)
                    cut += 1
                batch, self._queue = queue[:cut], queue[cut:]
                keys = [DLQ_KEY, _STATS_KEY]
                args: list[str | bytes] = [
                    repr(time.time()),
                    str(self._inbox_maxlen),
                    str(self._dlq_maxlen),
                    self._name,
                    str(_INBOX_TTL_MS),
                ]
                for item in batch:
                    if item.reason:
                        keys += (DLQ_KEY, DLQ_KEY)
                    else:
                        keys += (_OWNER_KEY + item.owner, _INBOX_KEY + item.owner)
                    args += (item.owner, item.reason, item.body)
                assert self._script is not None
                try:
                    result: list[int] = await self._script(keys=keys, args=args)
                except (RedisError, OSError, TimeoutError) as exc:
                    self._went_down(exc)
                    self._forward_failed += len(batch)
                    self._fail_log(
                        "redis: %d webhook(s) not forwarded (%s); answered 503 so the "
                        "platform sends them again",
                        len(batch),
                        type(exc).__name__,
                    )
                    for item in batch:
                        if not item.future.done():
                            item.future.set_result(False)
                    continue
                self._came_back()
                for item, sent in zip(batch, result, strict=True):
                    if sent:
                        self._forwarded += 1
                    else:
                        self._dead_lettered += 1
                    if not item.future.done():
                        item.future.set_result(True)
        finally:
            self._flusher = None

    # -- the owner's side -------------------------------------------------------------------

    async def _refresh(self, client: Redis) -> None:
        ttl_ms = int(self._ttl * 1000)
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(_OWNER_KEY + self._owner_id, self._name, px=ttl_ms)
            pipe.pexpire(_INBOX_KEY + self._owner_id, max(ttl_ms * 10, _INBOX_TTL_MS))
            await pipe.execute()

    async def _liveness(self) -> None:
        """Refresh the liveness key every third of its TTL (sooner after an outage)."""
        from redis.exceptions import RedisError

        client = self._client
        assert client is not None
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ttl / 3):
                    await self._alive.wait()
            self._alive.clear()
            try:
                await self._refresh(client)
            except (RedisError, OSError, TimeoutError) as exc:
                self._went_down(exc)
                await asyncio.sleep(min(self._ttl / 10, _BACKOFF_CAP))
                self._alive.set()  # try again soon
            else:
                self._came_back()

    async def _consume(self) -> None:
        """Read this owner's inbox and feed the session; trim what was consumed."""
        from redis.exceptions import RedisError

        client = self._client
        assert client is not None
        inbox = _INBOX_KEY + self._owner_id
        last = "0-0"
        consumed: str | None = None  # the id after the last consumed, to trim before
        backoff = 0.01
        while not self._closed:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    if consumed is not None:
                        pipe.xtrim(inbox, minid=consumed, approximate=False)
                    pipe.xread({inbox: last}, count=_READ_COUNT, block=_BLOCK_MS)
                    replies = await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                self._went_down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_CAP)
                continue
            if backoff > 0.01 or self._down_since is not None:
                backoff = 0.01
                self._came_back()
                self._alive.set()  # Redis may have come back empty: say we live at once
            consumed = None
            streams = replies[-1]
            if not streams:
                continue
            entries = streams[0][1]
            sink = self._sink
            for _entry_id, fields in entries:
                body = fields.get(b"b")
                try:
                    if body is None:
                        raise MalformedWebhookError("no body")
                    event = decode_event(body)
                except MalformedWebhookError:
                    self._malformed += 1
                else:
                    self._received += 1
                    if sink is not None:
                        sink(event)
            last_id = entries[-1][0]
            last = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
            ms, _, seq = last.partition("-")
            consumed = f"{ms}-{int(seq) + 1}"

    # -- Redis lost and back ----------------------------------------------------------------

    def _went_down(self, exc: BaseException) -> None:
        self._connected = False
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._outages += 1
        if not self._down_logged and now - self._down_since >= 0.25:
            self._down_logged = True
            detail = str(exc).replace(self._secret_url, self.url) or type(exc).__name__
            logger.warning(
                "redis: %s unreachable (%s): webhooks for other processes get 503 until it is back",
                self.url,
                detail,
            )

    def _came_back(self) -> None:
        self._connected = True
        since, self._down_since = self._down_since, None
        if since is not None and self._down_logged:
            logger.warning(
                "redis: %s is back after %.1f s: routing resumes",
                self.url,
                time.monotonic() - since,
            )
        self._down_logged = False

    # -- reading ----------------------------------------------------------------------------

    def stats(self) -> BusStats:
        """This bus's counters."""
        return BusStats(
            owner_id=self._owner_id,
            connected=self._client is not None and self._connected,
            forwarded=self._forwarded,
            dead_lettered=self._dead_lettered,
            forward_failed=self._forward_failed,
            received=self._received,
            malformed=self._malformed,
            outages=self._outages,
        )

    async def dead_letters(self, limit: int = 100) -> tuple[int, list[DeadLetter]]:
        """The count of events ever dead-lettered and the newest ``limit`` of those
        still in the dead-letter stream, oldest first."""
        if self._client is None:
            raise SessionStateError("bus: not open: await bus.open() first")
        return await read_dead_letters(self._client, limit)

    # -- receivers --------------------------------------------------------------------------

    def receiver(
        self,
        settings: ReceiverSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> Receiver:
        """A standalone receiver forwarding every webhook through this bus (a bus that
        serves no session: the stateless receiver)."""
        return Receiver(self, settings, host=host, port=port, router=self)

    def webhook_app(self, settings: ReceiverSettings | None = None) -> web.Application:
        """An aiohttp app forwarding every webhook through this bus, to mount."""
        return create_app(self, settings, router=self)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def read_dead_letters(client: Redis, limit: int) -> tuple[int, list[DeadLetter]]:
    """The dead-letter count and the newest ``limit`` entries, oldest first."""
    if isinstance(limit, bool) or limit < 0:
        raise ConfigurationError(f"limit: must be >= 0, got {limit!r}")
    async with client.pipeline(transaction=False) as pipe:
        pipe.hget(_STATS_KEY, "dead_lettered")
        pipe.xrevrange(DLQ_KEY, count=limit) if limit else pipe.ping()
        total, entries = await pipe.execute()
    letters: list[DeadLetter] = []
    if limit:
        for entry_id, fields in reversed(entries):
            fields = {_text(k): v for k, v in fields.items()}
            try:
                received = float(_text(fields.get("received", b"0")))
            except ValueError:
                received = 0.0
            body = fields.get("body", b"")
            letters.append(
                DeadLetter(
                    id=_text(entry_id),
                    owner=_text(fields.get("owner", b"")),
                    reason=_text(fields.get("reason", b"")),
                    received=received,
                    receiver=_text(fields.get("receiver", b"")),
                    body=body if isinstance(body, bytes) else str(body).encode(),
                )
            )
    return int(_text(total)) if total is not None else 0, letters
