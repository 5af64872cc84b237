"""Distributed campaigns: several worker processes run one campaign together on Redis.

Every key of campaign ``NAME`` lives under ``swc:{NAME}:`` (one hash slot, so the Lua
scripts below also run on a Redis Cluster):

``meta`` (hash)
    version, the campaign's ``cps`` and ``time_scale`` (every worker must agree), whether
    the targets are loaded (``seeded``). Its absence mid-run means Redis lost the
    campaign (restarted without its data): every script refuses to go on.
``targets`` (stream, consumer group ``workers``)
    one entry per target to dial (field ``k``: the target's key). Each worker reads with
    ``XREADGROUP``; an entry stays in the reader's pending list until the target has an
    outcome or waits for a retry. A live worker touches its entries (``XCLAIM`` by
    itself, ``JUSTID``) every ``claim_idle / 4`` seconds; the entries of a worker that
    stopped doing so are taken over by another with ``XAUTOCLAIM`` after ``claim_idle``.
``target`` (hash: key -> the ``Target`` as JSON) and ``state`` (hash: key -> JSON)
    the target's state (``pending``, ``active``: an attempt is dialing, ``waiting`` for
    a retry, ``done``), outcome, attempts, result and its last attempt (number, status,
    worker, call id, end reason...).
``retry`` (sorted set: key by due time)
    retries waiting; due ones go back to the stream (whoever reads next).
``attempts`` (stream)
    the log of every finished attempt (key, number, status, worker, call id...).
``stats`` (hash)
    counters kept by the same scripts: targets per state and per outcome, attempts per
    status, dials, first and last update: the report and the progress view of the
    whole campaign, from any process, in one read.
``pace`` (hash)
    the shared dial rate: GCRA's theoretical arrival time, the rate in force (AIMD),
    the pause after a 429.

The reclaim rule, as for a resume: a taken-over target whose attempt was ``dialing``
may have been dialled: it ends ``unknown`` and is never dialled again; any other is
dialled by its new owner. A worker only dials after the script that takes the pacing
token has checked, atomically, that the entry is still its own and marked the attempt
``dialing``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import msgspec

from ._pacing import DEFAULT_PAUSE, LAG, MIN_RATE, Pacer
from .errors import ConfigurationError, ValidationError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["Claim", "RedisPlace", "RedisWorker", "Snapshot", "Written", "start_worker"]

logger = logging.getLogger("signalwire_calls.campaign")

_T = TypeVar("_T")

#: Version of the key layout; a worker refuses a campaign of another version.
VERSION = "1"
GROUP = "workers"
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
#: Targets per seeding script call.
_SEED_CHUNK = 500
#: Targets a worker reads at a time at most (no more than it has free call slots for).
_PREFETCH = 4
#: Real seconds (never more than half an interval) a worker may ask for its dial slot
#: early (it then waits for it) or late (the schedule keeps its pace): GCRA's tolerance,
#: the time of a round trip and some event-loop lag.
TOLERANCE = 0.02

# ---------------------------------------------------------------------------- Lua

# KEYS of every script, in this order.
_KEY_NAMES = ("meta", "stats", "pace", "targets", "retry", "target", "state", "attempts")

_PRELUDE = """
local META, STATS, PACE, STREAM, RETRY, TARGET, STATE, ATTEMPTS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(x) return string.format('%.0f', x) end
local function num(x) if x == nil then return '' end return string.format('%.17g', x) end
local function get(key)
  local raw = redis.call('HGET', STATE, key)
  if not raw then return nil end
  return cjson.decode(raw)
end
local function put(key, t) redis.call('HSET', STATE, key, cjson.encode(t)) end
local function log(key, t, worker)
  local f = {'k', key, 'n', tostring(t.n), 's', t.s, 'w', worker}
  for _, name in ipairs({'ca', 'er', 'amd', 'err'}) do
    if t[name] ~= nil then f[#f + 1] = name; f[#f + 1] = tostring(t[name]) end
  end
  redis.call('XADD', ATTEMPTS, '*', unpack(f))
end
if redis.call('EXISTS', META) == 0 then
  return redis.error_reply('SWCLOST the campaign is not in Redis (restarted without its data?)')
end
"""

# ARGV: cps ('' none), time scale, now (wall), version. Creates the campaign unless it
# exists; returns {created, cps, scale, version} of the campaign.
_INIT = """
local META, PACE, STREAM = KEYS[1], KEYS[3], KEYS[4]
if redis.call('EXISTS', META) == 0 then
  redis.call('HSET', META, 'version', ARGV[4], 'cps', ARGV[1], 'scale', ARGV[2],
    'created_at', ARGV[3])
  redis.call('DEL', PACE)
  redis.call('HSET', PACE, 'rate', ARGV[1], 'ceiling', ARGV[1], 'tat', '0',
    'paused_until', '0', 'last_change', '0', 'throttles', '0')
  redis.pcall('XGROUP', 'CREATE', STREAM, 'workers', '0', 'MKSTREAM')
  return {1, ARGV[1], ARGV[2], ARGV[4]}
end
local m = redis.call('HMGET', META, 'cps', 'scale', 'version')
return {0, m[1] or '', m[2] or '', m[3] or ''}
"""

# ARGV: worker, now (wall), then key, target JSON pairs. Adds the targets not known yet.
_SEED = (
    _PRELUDE
    + """
local added = 0
for i = 3, #ARGV, 2 do
  local key = ARGV[i]
  if redis.call('HSETNX', TARGET, key, ARGV[i + 1]) == 1 then
    local q = redis.call('HINCRBY', STATS, 'total', 1)
    local id = redis.call('XADD', STREAM, '*', 'k', key)
    put(key, {st = 'pending', n = 0, at = 0, id = id, q = q, u = tonumber(ARGV[2])})
    added = added + 1
  end
end
if added > 0 then redis.call('HINCRBY', STATS, 's:pending', added) end
return added
"""
)

# ARGV: worker, count, now (wall). Moves due retries back to the stream, then reads new
# entries: {complete, id1, key1, target1, attempts1, tries1, ...}.
_CLAIM = (
    _PRELUDE
    + """
local now = now_us()
local due = redis.call('ZRANGEBYSCORE', RETRY, '-inf', int(now), 'LIMIT', 0, 100)
local moved = 0
for _, key in ipairs(due) do
  redis.call('ZREM', RETRY, key)
  local t = get(key)
  if t and t.st == 'waiting' then
    t.id = redis.call('XADD', STREAM, '*', 'k', key)
    t.st = 'pending'; t.na = nil; t.u = tonumber(ARGV[3])
    put(key, t)
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HINCRBY', STATS, 's:waiting', -moved)
  redis.call('HINCRBY', STATS, 's:pending', moved)
end
local out = {0}
local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', ARGV[2],
  'STREAMS', STREAM, '>')
if r then
  for _, e in ipairs(r[1][2]) do
    local id, key = e[1], e[2][2]
    local t = get(key)
    if t and t.id == id and t.st == 'pending' then
      out[#out + 1] = id; out[#out + 1] = key
      out[#out + 1] = redis.call('HGET', TARGET, key)
      out[#out + 1] = t.at; out[#out + 1] = t.n
    else
      redis.call('XACK', STREAM, 'workers', id)
    end
  end
end
if #out == 1 then
  local s = redis.call('HMGET', STATS, 'total', 's:done')
  local seeded = redis.call('HGET', META, 'seeded')
  if seeded == '1' and (tonumber(s[2]) or 0) >= (tonumber(s[1]) or 0) then out[1] = 1 end
end
return out
"""
)

# ARGV: worker, key, entry id, attempt n, now (wall), tolerance (us). Takes the next
# dial slot of the shared schedule (GCRA: slots one interval apart) when it is within
# the tolerance (at most half an interval) of now: early, the worker waits for it;
# late, the schedule keeps its pace (any one second still holds at most cps + 1 slots,
# and a stalled worker never has more than one slot in hand). It also marks the
# attempt 'dialing', in one step, if the entry is still this worker's:
# {1, rate, throttles, us to the slot} (dial then), {2, wait us} (ask again then),
# {0} (no longer ours).
_BEGIN = (
    _PRELUDE
    + """
local worker, key, entry, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = get(key)
if not t then return {0} end
local pace = redis.call('HMGET', PACE, 'tat', 'rate', 'ceiling', 'paused_until',
  'last_change', 'reference', 'sec', 'cnt', 'prev', 'throttles')
if t.n == n and t.w == worker and t.s == 'dialing' then
  return {1, pace[2] or '', pace[10] or '0', 0}  -- a repeat whose first answer was lost
end
if t.st ~= 'pending' or t.id ~= entry then return {0} end
local p = redis.call('XPENDING', STREAM, 'workers', entry, entry, 1)
if #p == 0 or p[1][2] ~= worker then return {0} end
local now = now_us()
local scale = tonumber(redis.call('HGET', META, 'scale'))
local second = 1000000 * scale
local tat = tonumber(pace[1]) or 0
local rate = tonumber(pace[2])
local ceiling = tonumber(pace[3])
local paused = tonumber(pace[4]) or 0
if now < paused then return {2, int(paused - now)} end
local slot = now
if rate then
  local interval = second / rate
  local tolerance = math.min(interval / 2, tonumber(ARGV[6]))
  slot = math.max(tat, now - tolerance)
  if slot - now > tolerance then return {2, int(slot - now - tolerance)} end
  tat = slot + interval
end
local last = tonumber(pace[5]) or 0
if rate and now - last >= second then
  if ceiling then
    if rate < ceiling then rate = math.min(ceiling, rate + ceiling / 10); last = now end
  else
    local ref = tonumber(pace[6]) or rate
    rate = rate + ref / 10
    if rate >= 2 * ref then rate = nil end
    last = now
  end
end
local sec = math.floor(now / second)
local psec, cnt, prev = tonumber(pace[7]) or -1, tonumber(pace[8]) or 0, tonumber(pace[9]) or 0
if sec == psec then cnt = cnt + 1
elseif sec == psec + 1 then prev = cnt; cnt = 1
else prev = 0; cnt = 1 end
redis.call('HSET', PACE, 'tat', int(tat), 'rate', num(rate), 'last_change', int(last),
  'sec', int(sec), 'cnt', cnt, 'prev', prev)
local wall = tonumber(ARGV[5])
t.st = 'active'; t.s = 'dialing'; t.n = n; t.w = worker; t.t0 = wall; t.u = wall
t.ca = nil; t.ar = nil; t.ea = nil; t.er = nil; t.amd = nil; t.rc = nil
put(key, t)
redis.call('HINCRBY', STATS, 's:pending', -1)
redis.call('HINCRBY', STATS, 's:active', 1)
redis.call('HINCRBY', STATS, 'a:dialing', 1)
redis.call('HINCRBY', STATS, 'dials', 1)
redis.call('HSETNX', STATS, 'first_at', ARGV[5])
redis.call('HSET', STATS, 'last_at', ARGV[5])
return {1, num(rate), pace[10] or '0', int(math.max(slot - now, 0))}
"""
)

# ARGV: worker, key, entry id, n, status, state (done|waiting|pending), outcome,
# attempts, now (wall), retry in (seconds), details (JSON). Records how attempt n ended;
# also from a worker whose 'dialing' attempt was taken over as 'unknown' meanwhile (its
# real outcome replaces 'unknown'). Returns 1, or 0 when there was nothing to record.
_FINISH = (
    _PRELUDE
    + """
local worker, key, entry, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local status, state, outcome = ARGV[5], ARGV[6], ARGV[7]
local t = get(key)
if not t or t.n ~= n or t.w ~= worker then return 0 end
local late = false
if t.s == 'dialing' then
  redis.call('HINCRBY', STATS, 's:active', -1)
  redis.call('HINCRBY', STATS, 'a:dialing', -1)
elseif t.s == 'unknown' and t.rc == n then
  late = true
  redis.call('HINCRBY', STATS, 's:done', -1)
  redis.call('HINCRBY', STATS, 'o:unknown', -1)
  redis.call('HINCRBY', STATS, 'a:unknown', -1)
else
  return 0
end
local d = cjson.decode(ARGV[11])
local now = tonumber(ARGV[9])
redis.call('HINCRBY', STATS, 'a:' .. status, 1)
t.s = status; t.at = tonumber(ARGV[8]); t.u = now; t.rc = nil
t.ca = d.ca; t.ar = d.ar; t.ea = d.ea; t.er = d.er; t.amd = d.amd; t.err = d.err
if state == 'done' then
  t.st = 'done'; t.o = outcome; t.res = d.res
  redis.call('HINCRBY', STATS, 's:done', 1)
  redis.call('HINCRBY', STATS, 'o:' .. outcome, 1)
  if not late then redis.call('XACK', STREAM, 'workers', entry) end
elseif state == 'waiting' then
  t.st = 'waiting'; t.na = d.na
  redis.call('HINCRBY', STATS, 's:waiting', 1)
  redis.call('ZADD', RETRY, int(now_us() + tonumber(ARGV[10]) * 1000000), key)
  if not late then redis.call('XACK', STREAM, 'workers', entry) end
else
  t.st = 'pending'
  redis.call('HINCRBY', STATS, 's:pending', 1)
  if late then t.id = redis.call('XADD', STREAM, '*', 'k', key) end
end
log(key, t, worker)
put(key, t)
redis.call('HSET', STATS, 'last_at', ARGV[9])
return 1
"""
)

# The 'dialing' attempt of a worker that stopped answering becomes 'unknown'.
_GIVE_UP = """
local function unknown(key, t, why)
  t.s = 'unknown'; t.st = 'done'; t.o = 'unknown'; t.rc = t.n; t.u = tonumber(ARGV[5])
  t.err = 'may have been dialled: ' .. why
  redis.call('HINCRBY', STATS, 's:active', -1)
  redis.call('HINCRBY', STATS, 'a:dialing', -1)
  redis.call('HINCRBY', STATS, 'a:unknown', 1)
  redis.call('HINCRBY', STATS, 's:done', 1)
  redis.call('HINCRBY', STATS, 'o:unknown', 1)
  log(key, t, t.w)
  put(key, t)
end
"""

# ARGV: worker, min idle (ms), cursor, count, now (wall). Takes over the entries idle
# that long: {next cursor, unknowns, id1, key1, target1, attempts1, tries1, ...}.
_RECLAIM = (
    _PRELUDE
    + _GIVE_UP
    + """
local worker = ARGV[1]
local r = redis.call('XAUTOCLAIM', STREAM, 'workers', worker, ARGV[2], ARGV[3],
  'COUNT', ARGV[4])
local out = {r[1], 0}
for _, e in ipairs(r[2]) do
  local id, f = e[1], e[2]
  if f then
    local key = f[2]
    local t = get(key)
    if not t or t.id ~= id or t.st == 'done' or t.st == 'waiting' then
      redis.call('XACK', STREAM, 'workers', id)
    elseif t.st == 'active' then
      if t.w ~= worker then
        unknown(key, t, 'worker ' .. t.w .. ' stopped answering while dialing')
        redis.call('XACK', STREAM, 'workers', id)
        out[2] = out[2] + 1
      end
    else
      out[#out + 1] = id; out[#out + 1] = key
      out[#out + 1] = redis.call('HGET', TARGET, key)
      out[#out + 1] = t.at; out[#out + 1] = t.n
    end
  end
end
if out[2] > 0 then redis.call('HSET', STATS, 'last_at', ARGV[5]) end
return out
"""
)

# ARGV: worker, entry ids. Resets the idle time of those entries still this worker's.
_HEARTBEAT = (
    _PRELUDE
    + """
local keep = {}
for i = 2, #ARGV do
  local p = redis.call('XPENDING', STREAM, 'workers', ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[1] then keep[#keep + 1] = ARGV[i] end
end
for i = 1, #keep, 500 do
  local args = {'XCLAIM', STREAM, 'workers', ARGV[1], 0}
  for j = i, math.min(i + 499, #keep) do args[#args + 1] = keep[j] end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return #keep
"""
)

# ARGV: worker, (unused), (unused), (unused), now (wall). A worker leaving hands back
# what it holds: targets not dialled go back to the stream for the others; an attempt
# still 'dialing' (its outcome could not be saved) becomes 'unknown'.
_RELEASE = (
    _PRELUDE
    + _GIVE_UP
    + """
local worker = ARGV[1]
local p = redis.call('XPENDING', STREAM, 'workers', '-', '+', 10000, worker)
local released, unknowns = 0, 0
for _, e in ipairs(p) do
  local id = e[1]
  local entry = redis.call('XRANGE', STREAM, id, id)
  redis.call('XACK', STREAM, 'workers', id)
  if #entry > 0 then
    local key = entry[1][2][2]
    local t = get(key)
    if t and t.id == id then
      if t.st == 'active' then
        unknown(key, t, 'worker ' .. worker .. ' left before its outcome was saved')
        unknowns = unknowns + 1
      elseif t.st == 'pending' then
        t.id = redis.call('XADD', STREAM, '*', 'k', key)
        put(key, t)
        released = released + 1
      end
    end
  end
end
if #p < 10000 then redis.call('XGROUP', 'DELCONSUMER', STREAM, 'workers', worker) end
return {released, unknowns}
"""
)

# ARGV: worker, pause (us), decrease, lowest rate. A 429 seen by one worker: every
# worker pauses, and the shared rate is lowered once per pause: {lowered, rate, throttles}.
_THROTTLE = (
    _PRELUDE
    + """
local now = now_us()
local pace = redis.call('HMGET', PACE, 'rate', 'paused_until', 'cnt', 'prev', 'tat',
  'throttles')
local rate = tonumber(pace[1])
local paused = tonumber(pace[2]) or 0
local throttles = tonumber(pace[6]) or 0
local lowered = 0
if now >= paused then
  throttles = throttles + 1
  local current = rate
  if not current then
    current = math.max(tonumber(pace[3]) or 0, tonumber(pace[4]) or 0, 1)
    redis.call('HSET', PACE, 'reference', num(current))
  end
  rate = math.max(tonumber(ARGV[4]), current * tonumber(ARGV[3]))
  lowered = 1
end
paused = math.max(paused, now + tonumber(ARGV[2]))
redis.call('HSET', PACE, 'rate', num(rate), 'paused_until', int(paused),
  'last_change', int(paused), 'tat', int(math.max(tonumber(pace[5]) or 0, paused)),
  'throttles', throttles)
return {lowered, num(rate), throttles}
"""
)


# ---------------------------------------------------------------------------- helpers


def redact(url: str) -> str:
    """``url`` without its password, in the user part or the query (user names are
    kept)."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            user, _, host = parts.netloc.rpartition("@")
            url = url.replace(parts.netloc, f"{user.partition(':')[0]}:***@{host}", 1)
        if "password=" in parts.query.lower():
            query = "&".join(
                f"{k}=***" if k.lower() == "password" else f"{k}{sep}{v}"
                for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
            )
            url = url.replace("?" + parts.query, "?" + query, 1)
    except ValueError:
        return "<unparsable Redis URL>"
    return url


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    if value is None or value == "" or value == b"":
        return None
    return float(value)


def _same_rate(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b))


class StateLostError(OSError):
    """Redis no longer holds the campaign (restarted without its data): the workers
    stop rather than dial anything a second time."""


class NoCampaignError(OSError):
    """No campaign of that name in Redis."""


@dataclass(slots=True, frozen=True)
class Claim:
    """A target this worker now holds: dial it (``attempts``, ``tries`` so far)."""

    handle: int
    key: str
    target: Any  # campaign.Target
    attempts: int
    tries: int


@dataclass(slots=True, frozen=True)
class Snapshot:
    """The whole campaign's counters, as last read from Redis."""

    outcomes: dict[str, int]
    done: int
    total: int | None
    live: int
    waiting: int
    dials: int
    refused: int
    throttles: int
    rate: float | None
    cps: float
    done_rate: float
    attempts: dict[str, int]
    counts: dict[str, int]  # targets per outcome, plus waiting, pending, active
    targets: int
    first_at: float | None
    last_at: float | None


def _snapshot(
    stats: dict[str, str], pace: list[Any], seeded: Any, cps: float, done_rate: float
) -> Snapshot:
    def n(name: str) -> int:
        return int(stats.get(name) or 0)

    outcomes = {k[2:]: int(v) for k, v in stats.items() if k.startswith("o:") and int(v)}
    counts = dict(outcomes)
    for state in ("waiting", "pending", "active"):
        if n(f"s:{state}"):
            counts[state] = n(f"s:{state}")
    return Snapshot(
        outcomes=outcomes,
        done=n("s:done"),
        total=n("total") if _text(seeded or "") == "1" else None,
        live=n("s:active"),
        waiting=n("s:waiting"),
        dials=n("dials"),
        refused=n("a:not_sent"),
        throttles=int(pace[1] or 0),
        rate=_float(pace[0]),
        cps=cps,
        done_rate=done_rate,
        attempts={k[2:]: int(v) for k, v in stats.items() if k.startswith("a:") and int(v)},
        counts=counts,
        targets=n("total"),
        first_at=_float(stats.get("first_at")),
        last_at=_float(stats.get("last_at")),
    )


# ---------------------------------------------------------------------------- place


@dataclass(frozen=True)
class RedisPlace:
    """Where a distributed campaign lives: campaign ``name`` on the Redis at ``url``,
    with its take-over delay (``claim_idle``) and connect timeout, all checked."""

    secret_url: str
    name: str
    claim_idle: float
    connect_timeout: float

    def __post_init__(self) -> None:
        url = self.secret_url
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                f"redis: expected a redis://, rediss:// or unix:// URL, got {redact(str(url))!r}"
            )
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValidationError(
                "name",
                "a campaign name is 1-100 letters, digits, '_', '.', ':' or '-', "
                f"got {self.name!r}",
            )
        for field_name, value in (
            ("claim_idle", self.claim_idle),
            ("connect_timeout", self.connect_timeout),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(
                    f"{field_name}: must be a finite number > 0, got {value!r}"
                )
        require_redis()

    def __repr__(self) -> str:
        return f"RedisPlace({self.url!r}, {self.name!r})"

    @property
    def url(self) -> str:
        """The Redis URL, its password hidden."""
        return redact(self.secret_url)

    @property
    def prefix(self) -> str:
        return f"swc:{{{self.name}}}:"

    @property
    def keys(self) -> list[str]:
        """The campaign's keys, in the order the scripts take them."""
        return [self.prefix + k for k in _KEY_NAMES]

    def hide(self, text: str) -> str:
        """``text`` with the URL's password hidden."""
        return text.replace(self.secret_url, self.url)


def require_redis() -> None:
    """Raise a ``ConfigurationError`` naming the extra when redis-py is missing."""
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "redis: a distributed campaign needs redis-py: pip install 'signalwire_calls[redis]'"
        ) from None


async def connect(place: RedisPlace) -> Redis:
    """A client with a working connection, or an ``OSError`` naming the URL (never its
    password)."""
    from redis.asyncio import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry

    try:
        client = Redis.from_url(
            place.secret_url,
            decode_responses=True,
            socket_connect_timeout=place.connect_timeout,
            socket_timeout=max(place.connect_timeout, 5.0),
            retry=Retry(NoBackoff(), 0),
        )
    except (ValueError, RedisError) as exc:
        raise ConfigurationError(f"redis: bad URL {place.url}: {place.hide(str(exc))}") from None
    try:
        with anyio.fail_after(place.connect_timeout + 1):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        detail = place.hide(str(exc)) or type(exc).__name__
        raise OSError(f"redis: cannot reach {place.url}: {detail}") from None
    return client


async def read_counters(client: Redis, place: RedisPlace) -> tuple[dict[str, str], Any]:
    """The campaign's counters and its time scale, in one round trip."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(place.prefix + "stats")
        pipe.hmget(place.prefix + "pace", ["rate", "throttles"])
        pipe.hmget(place.prefix + "meta", ["seeded", "scale"])
        stats, pace, meta = await pipe.execute()
    if meta[1] is None:
        raise NoCampaignError(f"redis: no campaign {place.name!r} at {place.url}")
    return stats, (pace, meta[0], float(meta[1]))


async def read_snapshot(place: RedisPlace) -> tuple[Snapshot, float]:
    """The campaign's counters (from any process) and its time scale."""
    client = await connect(place)
    try:
        stats, (pace, seeded, scale) = await read_counters(client, place)
    finally:
        await client.aclose()
    return _snapshot(stats, pace, seeded, 0.0, 0.0), scale


async def read_rows(place: RedisPlace) -> list[dict[str, Any]]:
    """One row per target, in the order they were loaded (the export's columns;
    ``result`` and ``data`` as JSON text)."""
    client = await connect(place)
    try:
        await read_counters(client, place)  # the campaign exists
        targets: dict[Any, Any] = await client.hgetall(place.prefix + "target")
        states: dict[Any, Any] = await client.hgetall(place.prefix + "state")
    finally:
        await client.aclose()
    rows = []
    for key, raw in states.items():
        t = msgspec.json.decode(raw)
        target = msgspec.json.decode(targets.get(key, "{}"))
        rows.append(
            (
                int(t.get("q") or 0),
                {
                    "key": key,
                    "number": target.get("number", ""),
                    "state": t.get("st", "pending"),
                    "outcome": t.get("o"),
                    "attempts": int(t.get("at") or 0),
                    "result": t.get("res"),
                    "error": t.get("err"),
                    "end_reason": t.get("er"),
                    "amd": t.get("amd"),
                    "call_id": t.get("ca"),
                    "updated_at": float(t.get("u") or 0.0),
                    "data": msgspec.json.encode(target.get("data") or {}).decode(),
                },
            )
        )
    rows.sort(key=lambda r: r[0])
    return [row for _, row in rows]


async def delete(place: RedisPlace) -> int:
    """Remove every key of the campaign; returns how many there were."""
    client = await connect(place)
    try:
        return int(await client.delete(*place.keys))
    finally:
        await client.aclose()


async def start_worker(
    place: RedisPlace,
    decode_target: Callable[[bytes | str], Any],
    *,
    cps: float | None,
    time_scale: float,
    give_up_after: float,
) -> RedisWorker:
    """Join (or create) the campaign as a new worker."""
    client = await connect(place)
    try:
        worker = RedisWorker(place, client, decode_target, cps, time_scale, give_up_after)
        await worker.init()
    except BaseException:
        await client.aclose()
        raise
    return worker


# ---------------------------------------------------------------------------- worker


class _SharedPacer(Pacer):
    """The campaign's pacer when the rate is shared in Redis: the token is taken by the
    worker's ``begin`` script; here only this worker's view of the pause and the rate."""

    def __init__(self, worker: RedisWorker, rate: float | None, time_scale: float) -> None:
        super().__init__(rate, lag=LAG / time_scale)
        self._worker = worker

    def delay(self, now: float) -> float:
        return self.paused_until - now if self.paused_until > now else 0.0

    def take(self, now: float) -> None:
        """The shared token was taken in Redis."""

    def throttle(self, now: float, retry_after: float | None) -> bool:
        pause = DEFAULT_PAUSE if retry_after is None or retry_after < 0 else retry_after
        lowered = now >= self.paused_until
        self.paused_until = max(self.paused_until, now + pause)
        self._worker.throttle_soon(pause)
        if lowered and self.rate is not None:
            self.rate = max(MIN_RATE, self.rate * self.decrease)
        return lowered


class Written:
    """A write already done (what ``begin_attempt`` hands back: nothing to wait for)."""

    __slots__ = ()

    @property
    def committed(self) -> bool:
        return True

    async def wait(self) -> None:
        """Returns at once."""


_WRITTEN = Written()


@dataclass(slots=True)
class _Held:
    key: str
    entry: str
    done: bool = False
    unsent: int = 0  # journal writes queued for it, not in Redis yet


@dataclass(slots=True)
class _Finish:
    handle: int
    args: list[str]
    final: bool


@dataclass(slots=True)
class _Outage:
    since: float
    error: str
    logged: bool = False


class _RedisJournal:
    """The campaign's journal writes, sent to Redis in pipelined groups."""

    path: str | None

    def __init__(self, worker: RedisWorker) -> None:
        self._worker = worker
        self.path = f"{worker.place.url}#{worker.place.name}"
        self.error: BaseException | None = None
        self.writes = 0
        self.commits = 0
        self._queue: list[_Finish] = []
        self._lock = anyio.Lock()
        self._queued = anyio.Event()

    def new_target(self, key: str, number: str, data: str, now: float) -> int:
        raise RuntimeError("a distributed campaign's targets come from Redis")

    def begin_attempt(self, target_id: int, n: int, now: float, *, resumed: bool) -> Written:
        """Nothing to write yet: the worker's ``begin`` marks the attempt ``dialing``
        when it takes the pacing token, right before the dial."""
        return _WRITTEN

    def finish(
        self,
        target_id: int,
        n: int,
        status: str,
        *,
        state: str,
        outcome: str | None,
        attempts: int,
        now: float,
        call_id: str | None = None,
        answered_at: float | None = None,
        ended_at: float | None = None,
        end_reason: str | None = None,
        amd: str | None = None,
        error: str | None = None,
        next_at: float | None = None,
        result: str | None = None,
    ) -> None:
        held = self._worker.held(target_id)
        if held is None:
            return
        details = {
            "ca": call_id,
            "ar": answered_at,
            "ea": ended_at,
            "er": end_reason,
            "amd": amd,
            "err": error,
            "res": result,
            "na": next_at,
        }
        args = [
            self._worker.id,
            held.key,
            held.entry,
            str(n),
            status,
            state,
            outcome or "",
            str(attempts),
            repr(now),
            repr(max((next_at or now) - now, 0.0)),
            msgspec.json.encode({k: v for k, v in details.items() if v is not None}).decode(),
        ]
        final = state in ("done", "waiting")
        if final:
            held.done = True
        held.unsent += 1
        self._queue.append(_Finish(target_id, args, final))
        self._queued.set()

    async def run(self, delay: float = 0.005) -> None:
        """Send the queued writes, a group at a time."""
        while True:
            if not self._queue:
                self._queued = anyio.Event()
                await self._queued.wait()
            await anyio.sleep(delay)
            await self.flush()

    async def flush(self) -> None:
        """Send every queued write now (through an outage: until Redis is back)."""
        async with self._lock:
            worker = self._worker
            while self._queue:
                group = self._queue[:_SEED_CHUNK]

                async def send(group: list[_Finish] = group) -> list[Any]:
                    async with worker.client.pipeline(transaction=False) as pipe:
                        for item in group:
                            await worker.scripts["finish"](
                                keys=worker.place.keys, args=item.args, client=pipe
                            )
                        return await pipe.execute()

                try:
                    await worker.do(send)
                except BaseException as exc:
                    if not isinstance(exc, anyio.get_cancelled_exc_class()):
                        self.error = exc
                    raise
                del self._queue[: len(group)]
                self.writes += len(group)
                self.commits += 1
                for item in group:
                    held = worker.held(item.handle)
                    if held is not None:
                        held.unsent -= 1
                    if item.final:
                        worker.drop(item.handle)


class RedisWorker:
    """One worker of a distributed campaign: its consumer in the group, the targets it
    holds, its journal writes and its view of the shared pacing."""

    def __init__(
        self,
        place: RedisPlace,
        client: Redis,
        decode_target: Callable[[bytes | str], Any],
        cps: float | None,
        time_scale: float,
        give_up_after: float,
    ) -> None:
        self.place = place
        self.client = client
        self.cps = cps
        self.scale = time_scale
        self.give_up_after = give_up_after
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.scripts: dict[str, AsyncScript] = {
            name: client.register_script(lua)
            for name, lua in (
                ("init", _INIT),
                ("seed", _SEED),
                ("claim", _CLAIM),
                ("begin", _BEGIN),
                ("finish", _FINISH),
                ("reclaim", _RECLAIM),
                ("heartbeat", _HEARTBEAT),
                ("release", _RELEASE),
                ("throttle", _THROTTLE),
            )
        }
        self.journal = _RedisJournal(self)
        self.pacer = _SharedPacer(self, cps, time_scale)
        self._decode_target = decode_target
        self._encode = msgspec.json.Encoder().encode
        self._handles: dict[int, _Held] = {}
        self._by_entry: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._claimed: deque[Claim] = deque()
        self._outage: _Outage | None = None
        self._connected_since = time.monotonic()
        self._throttles: list[float] = []
        self._throttle_wake = anyio.Event()
        self._samples: deque[tuple[float, int, int]] = deque()
        self.snapshot: Snapshot | None = None
        self.seeded = False
        self.unknowns = 0
        self.closed = False

    # -- Redis calls, through outages -------------------------------------------------

    async def do(self, op: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``op``; while Redis cannot be reached, wait and try again (dialing pauses
        meanwhile: no token can be taken), up to ``give_up_after`` seconds."""
        from redis.exceptions import (
            ConnectionError as RedisConnectionError,
        )
        from redis.exceptions import (
            NoScriptError,
            ResponseError,
        )
        from redis.exceptions import (
            TimeoutError as RedisTimeoutError,
        )

        backoff = 0.01
        cap = min(0.25, self.place.claim_idle / 20)
        while True:
            try:
                result = await op()
            except (RedisConnectionError, RedisTimeoutError, NoScriptError, OSError) as exc:
                if isinstance(exc, NoCampaignError):
                    raise self._lost() from None
                if isinstance(exc, StateLostError):
                    raise
                self._went_down(exc)
                outage = self._outage
                assert outage is not None
                if time.monotonic() - outage.since > self.give_up_after:
                    raise OSError(
                        f"redis: {self.place.url} unreachable for "
                        f"{self.give_up_after:g} s: {outage.error}"
                    ) from None
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, cap)
                continue
            except ResponseError as exc:
                if "SWCLOST" in str(exc):
                    raise self._lost() from None
                raise
            if self._outage is not None:
                self._came_back()
            return result

    def _lost(self) -> StateLostError:
        return StateLostError(
            f"redis: campaign {self.place.name!r} is gone from {self.place.url} (was "
            "Redis restarted without its data?); this worker stops: nothing is dialled "
            "a second time"
        )

    def _went_down(self, exc: BaseException) -> None:
        if self._outage is None:
            self._outage = _Outage(time.monotonic(), f"{type(exc).__name__}: {exc}")
        outage = self._outage
        # a pooled connection Redis closed fails once and is replaced at once: only an
        # outage that lasts is worth a line (one when it starts, one when it ends)
        if not outage.logged and time.monotonic() - outage.since >= 0.25:
            outage.logged = True
            logger.warning(
                "redis: %s unreachable (%s): dialing paused until it is back",
                self.place.url,
                self.place.hide(outage.error),
            )

    def _came_back(self) -> None:
        outage, self._outage = self._outage, None
        self._connected_since = time.monotonic()
        if outage is not None and outage.logged:
            logger.warning(
                "redis: %s is back after %.1f s: dialing resumes",
                self.place.url,
                time.monotonic() - outage.since,
            )

    # -- joining ----------------------------------------------------------------------

    async def init(self) -> None:
        cps = "" if self.cps is None else repr(float(self.cps))
        created, their_cps, their_scale, version = await self.scripts["init"](
            keys=self.place.keys, args=[cps, repr(float(self.scale)), repr(time.time()), VERSION]
        )
        name = self.place.name
        if _text(version) != VERSION:
            raise OSError(
                f"redis: campaign {name!r} at {self.place.url} has layout version "
                f"{_text(version)!r}; this version reads {VERSION}"
            )
        theirs = _float(_text(their_cps))
        if not _same_rate(theirs, self.cps):
            raise ConfigurationError(
                f"cps: campaign {name!r} runs at {theirs if theirs is not None else 'no limit'}"
                f", this worker asks {self.cps if self.cps is not None else 'no limit'}"
            )
        scale = _float(_text(their_scale))
        if scale is None or not math.isclose(scale, self.scale):
            raise ConfigurationError(
                f"time_scale: campaign {name!r} runs at {scale}, this worker asks {self.scale}"
            )
        logger.info(
            "redis: worker %s %s campaign %r at %s",
            self.id,
            "created" if int(created) else "joined",
            name,
            self.place.url,
        )

    async def seed(
        self, targets: Iterable[Any] | AsyncIterable[Any], check: Callable[[Any], Any]
    ) -> tuple[int, int]:
        """Add this worker's targets (those already known are left alone); returns
        (added, listed twice in this worker's list)."""
        seen: set[str] = set()
        chunk: list[str] = []
        added = duplicates = 0
        encode = self._encode

        async def send(chunk: list[str]) -> int:
            args = [self.id, repr(time.time()), *chunk]
            return int(await self.do(lambda: self.scripts["seed"](keys=self.place.keys, args=args)))

        def take(target: Any) -> None:
            nonlocal duplicates
            target = check(target)
            key = target.key
            if key in seen:
                duplicates += 1
                if duplicates <= 5:
                    logger.warning("target %r appears more than once: dialled once only", key)
                return
            seen.add(key)
            chunk.extend((key, encode(target).decode()))

        if isinstance(targets, AsyncIterable):
            async for target in targets:
                take(target)
                if len(chunk) >= 2 * _SEED_CHUNK:
                    added += await send(chunk)
                    chunk = []
        else:
            for target in targets:
                take(target)
                if len(chunk) >= 2 * _SEED_CHUNK:
                    added += await send(chunk)
                    chunk = []
                    await anyio.lowlevel.checkpoint()
        if chunk:
            added += await send(chunk)
        if seen:  # a worker joining without targets waits for one that loads them
            await self.do(lambda: self.client.hset(self.place.prefix + "meta", "seeded", "1"))
        self.seeded = True
        return added, duplicates

    # -- targets ----------------------------------------------------------------------

    def held(self, handle: int) -> _Held | None:
        return self._handles.get(handle)

    def drop(self, handle: int) -> None:
        held = self._handles.pop(handle, None)
        if held is not None:
            self._by_entry.pop(held.entry, None)

    def _hold(self, out: list[Any], start: int) -> None:
        for i in range(start, len(out), 5):
            entry, key, raw = _text(out[i]), _text(out[i + 1]), out[i + 2]
            if entry in self._by_entry:
                continue  # already ours (renewed by a reclaim of our own entry)
            handle = next(self._ids)
            self._handles[handle] = _Held(key, entry)
            self._by_entry[entry] = handle
            target = self._decode_target(raw)
            self._claimed.append(Claim(handle, key, target, int(out[i + 3]), int(out[i + 4])))

    async def claim(self, free: int = 1) -> Claim | bool:
        """The next target for this worker (reading up to ``free`` at once: the calls it
        could start now); ``False``: none right now; ``True``: the campaign is complete
        (every target has an outcome)."""
        if self._claimed:
            return self._claimed.popleft()
        count = str(max(1, min(free, _PREFETCH)))
        out = await self.do(
            lambda: self.scripts["claim"](
                keys=self.place.keys, args=[self.id, count, repr(time.time())]
            )
        )
        self._hold(out, 1)
        if self._claimed:
            return self._claimed.popleft()
        return bool(int(out[0])) and self.seeded

    async def begin(self, handle: int, n: int) -> bool:
        """Reserve a slot of the shared schedule and mark attempt ``n`` ``dialing`` (one
        step in Redis), then wait for the slot. ``False``: the target is no longer this worker's
        (taken over while Redis could not be reached): do not dial it."""
        held = self._handles.get(handle)
        if held is None:
            return False
        if held.unsent:
            await self.journal.flush()  # its earlier attempt's outcome goes first
        args = [self.id, held.key, held.entry, str(n), "", str(round(TOLERANCE * 1e6))]
        while True:
            args[4] = repr(time.time())
            reply = await self.do(lambda: self.scripts["begin"](keys=self.place.keys, args=args))
            code = int(reply[0])
            if code == 1:
                self.pacer.rate = _float(_text(reply[1]))
                self.pacer.throttles = int(reply[2])
                slot = int(reply[3]) / 1e6
                if slot > 0:
                    await anyio.sleep(slot)
                return True
            if code == 0:
                logger.warning(
                    "target %r was taken over by another worker: not dialled here", held.key
                )
                self.drop(handle)
                return False
            await anyio.sleep(int(reply[1]) / 1e6)

    def throttle_soon(self, pause: float) -> None:
        """Tell every worker to pause ``pause`` campaign seconds and lower the rate."""
        self._throttles.append(pause)
        self._throttle_wake.set()

    async def _send_throttles(self) -> None:
        while True:
            await self._throttle_wake.wait()
            self._throttle_wake = anyio.Event()
            pauses, self._throttles = self._throttles, []
            if not pauses:
                continue
            pause_us = str(round(max(pauses) * self.scale * 1e6))
            args = [self.id, pause_us, repr(self.pacer.decrease), repr(MIN_RATE)]
            reply = await self.do(
                lambda args=args: self.scripts["throttle"](  # type: ignore[misc]
                    keys=self.place.keys, args=args
                )
            )
            self.pacer.rate = _float(_text(reply[1]))
            self.pacer.throttles = int(reply[2])

    # -- upkeep -----------------------------------------------------------------------

    async def maintain(self) -> None:
        """Renew this worker's entries, take over those of workers gone quiet, read the
        campaign's counters: for as long as the campaign runs."""
        idle = self.place.claim_idle
        beat = idle / 4
        last_beat = last_reclaim = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.journal.run)
            tg.start_soon(self._send_throttles)
            while True:
                await self.refresh()
                now = time.monotonic()
                if now - last_beat >= beat or self._connected_since > last_beat:
                    await self.heartbeat()
                    last_beat = time.monotonic()
                if (
                    now - last_reclaim >= idle / 2
                    and time.monotonic() - self._connected_since >= idle / 2
                ):
                    await self.reclaim()
                    last_reclaim = time.monotonic()
                await anyio.sleep(min(beat, 0.25))

    async def heartbeat(self) -> int:
        entries = [h.entry for h in self._handles.values()]
        if not entries:
            return 0
        return int(
            await self.do(
                lambda: self.scripts["heartbeat"](keys=self.place.keys, args=[self.id, *entries])
            )
        )

    async def reclaim(self) -> int:
        """Take over entries idle for ``claim_idle`` (their worker is gone): returns
        how many of them were mid-dial (now ``unknown``)."""
        cursor = "0-0"
        unknowns = 0
        min_idle = str(round(self.place.claim_idle * 1000))
        for _ in range(1000):
            args = [self.id, min_idle, cursor, "100", repr(time.time())]
            out = await self.do(
                lambda args=args: self.scripts["reclaim"](keys=self.place.keys, args=args)  # type: ignore[misc]
            )
            cursor = _text(out[0])
            unknowns += int(out[1])
            before = len(self._claimed)
            self._hold(out, 2)
            taken = len(self._claimed) - before
            if taken:
                logger.warning("took over %d target(s) of a worker that stopped answering", taken)
            if cursor == "0-0":
                break
        if unknowns:
            self.unknowns += unknowns
            logger.warning(
                "%d target(s) were mid-dial on a worker that stopped answering: "
                "outcome 'unknown' (not dialled again)",
                unknowns,
            )
        return unknowns

    async def refresh(self) -> Snapshot:
        """Read the campaign's counters (the progress view of the whole campaign)."""
        stats, (pace, seeded, _) = await self.do(lambda: read_counters(self.client, self.place))
        now = time.monotonic()
        dials = int(stats.get("dials") or 0)
        done = int(stats.get("s:done") or 0)
        samples = self._samples
        samples.append((now, dials, done))
        while len(samples) > 2 and samples[0][0] < now - 5.0:
            samples.popleft()
        t0, dials0, done0 = samples[0]
        span = (now - t0) / self.scale
        cps = (dials - dials0) / span if span > 0 else 0.0
        done_rate = (done - done0) / span if span > 0 else 0.0
        self.snapshot = _snapshot(stats, pace, seeded, cps, done_rate)
        return self.snapshot

    # -- leaving ----------------------------------------------------------------------

    async def close(self) -> None:
        """Save what is queued, hand back the targets not dialled, leave the group."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.journal.error is None:
                await self.journal.flush()
                released, unknowns = await self.do(
                    lambda: self.scripts["release"](
                        keys=self.place.keys, args=[self.id, "", "", "", repr(time.time())]
                    )
                )
                if int(released):
                    logger.info(
                        "handed back %d target(s) not dialled to the other workers",
                        int(released),
                    )
                if int(unknowns):
                    logger.warning(
                        "%d attempt(s) left without a saved outcome: 'unknown'", int(unknowns)
                    )
                await self.refresh()
        finally:
            await self.client.aclose()
