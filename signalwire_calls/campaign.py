"""Outbound campaigns: dial a list of numbers under a concurrency cap and a calls-per-second
limit, run a flow on each answered call, journal every attempt, resume after a stop.

::

    async def remind(call: Call, target: Target) -> str:
        play = await call.play(tts(f"Hello {target.data['name']}, see you tomorrow."))
        await play.finished()
        return "reminded"

    async with CallSession.from_env() as session:
        campaign = Campaign(
            session, "targets.csv", remind,
            from_="+15559870000", url="https://example.com/swml.json",
            concurrency=50, cps=10, journal="reminders.db",
            retry={"busy": RetryRule(2, after=300), "no_answer": RetryRule(3, after=1800)},
        )
        report = await campaign.run()    # Ctrl-C: stop dialing, let live calls finish
        print(report.outcomes)           # {"completed": 180, "busy": 12, ...}

Every target ends with exactly one outcome (see ``Outcome``). Running the same campaign
again on the same journal resumes it: targets with a final outcome are skipped, pending
retries keep their schedule, and a target a crash left mid-dial is ``unknown`` (it may
have been dialled) unless ``redial_unknown=True``.

Several processes run one campaign together with ``backend=RedisBackend(url, name)``:
the targets, the journal and the calls-per-second limit are then shared in Redis (see
``RedisBackend``).
"""

from __future__ import annotations

import csv
import heapq
import itertools
import json
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field
from typing import IO, Any, Literal, Protocol, TypeAlias, get_args

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec

from . import _campaign_redis, _progress
from ._campaign_redis import Claim, RedisPlace, RedisWorker
from ._journal import Journal, TargetState
from ._logthrottle import LogThrottle
from ._pacing import LAG, Pacer
from .call import Call
from .commands import Header, MachineDetector, machine_detector
from .errors import (
    APIStatusError,
    AuthenticationError,
    CallEndedError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SessionClosedError,
    SignalWireError,
    ValidationError,
)
from .session import CallSession

__all__ = [
    "OUTCOMES",
    "CSVTargets",
    "Campaign",
    "CampaignReport",
    "CampaignStats",
    "DialOptions",
    "Flow",
    "MachineDetection",
    "Outcome",
    "RedisBackend",
    "RetryRule",
    "Target",
    "TargetSource",
    "export_report",
    "read_report",
    "read_targets_csv",
]

logger = logging.getLogger("signalwire_calls.campaign")

#: How a target ended. ``completed``: the flow returned. ``busy``, ``no_answer``,
#: ``failed`` (rejected, unreachable, error before answer), ``canceled`` (ended before
#: answer by a cancel, or hung up by a hard stop): the call-end reason. ``machine``: an
#: answering machine answered (see ``MachineDetection``). ``flow_error``: the flow
#: raised. ``error``: a library error (the journal keeps its type and message).
#: ``unknown``: the dial may have been placed but its result never came back (a crash
#: mid-dial, a connection lost after sending): not dialled again unless asked.
Outcome: TypeAlias = Literal[
    "completed",
    "busy",
    "no_answer",
    "failed",
    "canceled",
    "machine",
    "flow_error",
    "error",
    "unknown",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
_RETRYABLE = frozenset(("busy", "no_answer", "failed", "machine", "flow_error", "error"))

#: The user's call flow: runs once the call is answered; its return value is the
#: target's result (stored as JSON, or as its ``repr`` when not JSON-serialisable).
Flow: TypeAlias = Callable[[Call, "Target"], Awaitable[Any]]


#: Seconds over which ``CampaignStats.cps`` is measured.
_RATE_WINDOW = 5.0
#: Real seconds between two looks for a target when a distributed campaign has none for
#: this worker right now.
_POLL = 0.05

#: Call-end reasons (both vocabularies the platform uses) to outcomes, before answer.
_END_REASONS: dict[str, Outcome] = {
    "busy": "busy",
    "decline": "busy",
    "noAnswer": "no_answer",
    "no_answer": "no_answer",
    "timeout": "no_answer",
    "error": "failed",
    "failed": "failed",
    "not_found": "failed",
    "cancel": "canceled",
    "canceled": "canceled",
    "cancelled": "canceled",
}


# ---------------------------------------------------------------------------- config


class DialOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What to dial with: the campaign's defaults, overridable per target.

    ``None`` leaves a field to the campaign's value (or the platform's default).
    ``ring_timeout`` is how many seconds the call may ring before it ends as
    ``no_answer`` (the dial's ``timeout``); ``headers`` are SIP headers (name to value);
    the other fields are the dial command's own.

        DialOptions(caller_id="+15559870000", ring_timeout=25)
    """

    from_: str | None = None
    url: str | None = None
    swml: dict[str, Any] | str | None = None
    caller_id: str | None = None
    ring_timeout: int | None = None
    codecs: list[str] | str | None = None
    send_digits: str | None = None
    custom_variables: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    fallback_url: str | None = None
    max_price_per_minute: float | None = None
    region: str | list[str] | None = None

    def merged(self, override: DialOptions | None) -> DialOptions:
        """A copy with the fields ``override`` sets (not ``None``) replaced."""
        if override is None:
            return self
        changes = {
            name: value
            for name in override.__struct_fields__
            if (value := getattr(override, name)) is not None
        }
        return msgspec.structs.replace(self, **changes) if changes else self


class Target(msgspec.Struct, frozen=True):
    """One number to call. ``data`` is handed to the flow and kept in the journal;
    ``options`` override the campaign's dial options for this target; ``id`` names the
    target in the journal (default: the number), so one number may appear under
    several ids.

        Target("+15551230001", {"name": "Ada"})
    """

    number: str
    data: dict[str, Any] = {}
    options: DialOptions | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.number, str) or not self.number.strip():
            raise ValidationError("number", f"a target needs a number, got {self.number!r}")
        if not isinstance(self.data, dict):
            raise ValidationError("data", f"must be a dict, got {type(self.data).__name__}")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValidationError("id", f"must be a non-empty string, got {self.id!r}")

    @property
    def key(self) -> str:
        """The target's identity in the journal: ``id``, else the number."""
        return self.id if self.id is not None else self.number


class RetryRule(msgspec.Struct, frozen=True):
    """Retry a target ``times`` more times, ``after`` seconds apart (attempts of any
    outcome count toward ``times``).

        retry={"busy": RetryRule(2, after=300), "no_answer": RetryRule(3, after=1800)}
    """

    times: int
    after: float

    def __post_init__(self) -> None:
        if not isinstance(self.times, int) or self.times < 0:
            raise ValidationError("times", f"must be an int >= 0, got {self.times!r}")
        if not (self.after >= 0 and math.isfinite(self.after)):
            raise ValidationError("after", f"must be a finite number >= 0, got {self.after!r}")


class MachineDetection(msgspec.Struct, frozen=True, kw_only=True):
    """Answering-machine detection before the flow.

    ``on_machine``: ``"hangup"`` (outcome ``machine``), ``"flow"`` (run the flow
    anyway), ``"voicemail"`` (run ``voicemail``, after the greeting's end or beep when
    ``wait_for_beep``; outcome ``machine`` with its result). ``timeout`` bounds the
    detector (seconds); ``detector`` tunes it (``machine_detector(...)``).

        MachineDetection(on_machine="voicemail", voicemail=leave_message)
    """

    on_machine: Literal["hangup", "flow", "voicemail"] = "hangup"
    voicemail: Flow | None = None
    wait_for_beep: bool = True
    timeout: float = 30.0
    detector: MachineDetector | None = None

    def __post_init__(self) -> None:
        if self.on_machine not in ("hangup", "flow", "voicemail"):
            raise ValidationError(
                "on_machine", f"must be 'hangup', 'flow' or 'voicemail', got {self.on_machine!r}"
            )
        if self.on_machine == "voicemail" and self.voicemail is None:
            raise ValidationError("voicemail", "on_machine='voicemail' needs a voicemail flow")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValidationError("timeout", f"must be a finite number > 0, got {self.timeout!r}")


# ---------------------------------------------------------------------------- reports


class CampaignStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a running campaign (``Campaign.stats()``).

    ``outcomes`` counts final outcomes and ``done`` the targets that have one, both
    including those a resumed journal already had (``skipped``: not dialled again);
    ``live`` the attempts under way; ``waiting`` the targets waiting for a retry or for
    a refused dial to be sent again; ``dials`` the dials sent this run (refused ones
    included), ``refused`` those refused before placing a call and ``throttles`` the
    pauses that caused; ``duplicates`` targets listed twice (dialled once). ``cps`` is
    the dials per second of the last five seconds (after the run, its average);
    ``cps_limit`` the rate in force (lowered after a 429, ``None``: no limit); ``eta``
    seconds, when the number of targets is known. Times are campaign seconds (real
    seconds unless ``time_scale`` is set).
    """

    outcomes: dict[str, int]
    done: int
    total: int | None
    live: int
    waiting: int
    dials: int
    refused: int
    throttles: int
    skipped: int
    duplicates: int
    cps: float
    cps_limit: float | None
    elapsed: float
    eta: float | None
    stopping: bool


class CampaignReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a journal holds: targets per outcome (``waiting`` for a scheduled retry,
    ``pending`` when not dialled yet), attempts per status, wall-clock span. From
    ``Campaign.run()`` also this run's dials, duration and whether it was stopped."""

    journal: str | None
    targets: int
    outcomes: dict[str, int]
    attempts: dict[str, int]
    first_attempt_at: float | None
    last_update_at: float | None
    dials: int | None = None
    elapsed: float | None = None
    stopped: bool = False

    def summary(self) -> str:
        """The report as a small plain-text table."""
        return _progress.render_report(self, use_rich=False)


# ---------------------------------------------------------------------------- CSV targets


class CSVTargets:
    """Targets read from a CSV file: a ``number`` column, every other column goes to
    ``data`` (as strings). The file is checked when created (header, one number per
    row, the line of the first bad one named) and read again lazily when iterated."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        number_column: str = "number",
        id_column: str | None = None,
        encoding: str = "utf-8-sig",
    ) -> None:
        self.path = os.fspath(path)
        self.number_column = number_column
        self.id_column = id_column
        self.encoding = encoding
        self._count = 0
        for _ in self._rows():
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Target]:
        for _, number, tid, data in self._rows():
            yield Target(number, data, None, tid)

    def _rows(self) -> Iterator[tuple[int, str, str | None, dict[str, Any]]]:
        try:
            fh = open(self.path, newline="", encoding=self.encoding)  # noqa: SIM115
        except OSError as exc:
            raise ValidationError("targets", f"cannot read {self.path!r}: {exc}") from exc
        with fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            for needed in (self.number_column, self.id_column):
                if needed is not None and needed not in columns:
                    raise ValidationError(
                        needed,
                        f"{self.path}: no {needed!r} column (columns: {', '.join(columns)})",
                    )
            for row in reader:
                line = reader.line_num
                number = (row.get(self.number_column) or "").strip()
                if not number:
                    raise ValidationError(
                        self.number_column, f"{self.path}, line {line}: empty number"
                    )
                tid = None
                if self.id_column is not None:
                    tid = (row.get(self.id_column) or "").strip()
                    if not tid:
                        raise ValidationError(self.id_column, f"{self.path}, line {line}: empty id")
                data = {
                    k: v
                    for k, v in row.items()
                    if k is not None and k != self.number_column and k != self.id_column
                }
                yield line, number, tid, data


def read_targets_csv(
    path: str | os.PathLike[str],
    *,
    number_column: str = "number",
    id_column: str | None = None,
) -> CSVTargets:
    """Targets from a CSV file (see ``CSVTargets``)."""
    return CSVTargets(path, number_column=number_column, id_column=id_column)


#: What ``Campaign`` dials: ``Target`` objects (an iterable or async iterable) or the path
#: of a CSV file.
TargetSource: TypeAlias = "Iterable[Target] | AsyncIterable[Target] | str | os.PathLike[str]"


# ---------------------------------------------------------------------------- the dial


def _dial_keywords(options: DialOptions) -> dict[str, Any]:
    """``DialOptions`` as ``CallSession.dial`` keywords (worked out once per options)."""
    kwargs: dict[str, Any] = {"from_": options.from_, "url": options.url, "swml": options.swml}
    if options.caller_id is not None:
        kwargs["caller_id"] = options.caller_id
    if options.ring_timeout is not None:
        kwargs["timeout"] = options.ring_timeout
    if options.codecs is not None:
        kwargs["codecs"] = options.codecs
    if options.send_digits is not None:
        kwargs["send_digits"] = options.send_digits
    if options.custom_variables is not None:
        kwargs["custom_variables"] = options.custom_variables
    if options.headers is not None:
        kwargs["headers"] = [Header(name=k, value=v) for k, v in options.headers.items()]
    if options.fallback_url is not None:
        kwargs["fallback_url"] = options.fallback_url
    if options.max_price_per_minute is not None:
        kwargs["max_price_per_minute"] = options.max_price_per_minute
    if options.region is not None:
        kwargs["region"] = options.region
    return kwargs


def _dial(session: CallSession, to: str, keywords: dict[str, Any]) -> Coroutine[Any, Any, Call]:
    """The one place a campaign calls ``CallSession.dial`` (keywords from
    ``_dial_keywords``). A plain function handing back the coroutine: no frame of its
    own for every resumption of the request."""
    return session.dial(to, **keywords)


def _not_sent(exc: BaseException) -> bool:
    """Whether a failed dial certainly placed no call (nothing sent, or refused)."""
    if isinstance(exc, APIStatusError):
        return exc.status in (429, 503) or 400 <= exc.status < 500
    if type(exc).__name__ == "PoolTimeout":
        return True
    return not getattr(exc, "request_sent", True)


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return exc.retry_after
    headers = getattr(exc, "headers", None)
    if isinstance(headers, dict):
        try:
            value = float(headers.get("retry-after", ""))
        except ValueError:
            return None
        return value if value >= 0 and math.isfinite(value) else None
    return None


def _summary(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


_encode = msgspec.json.Encoder(enc_hook=repr).encode


def _json(value: Any) -> str:
    try:
        return _encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        return _encode(repr(value)).decode()


async def _wait_until_ended(call: Call, target: Target) -> None:
    """The default flow: the SWML does the talking; wait for the call to end."""
    await call.ended()


# ---------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _Result:
    outcome: Outcome | Literal["refused", "not_sent", "lost"]
    call_id: str | None = None
    answered_at: float | None = None
    end_reason: str | None = None
    amd: str | None = None
    error: str | None = None
    result: str | None = None
    fatal: BaseException | None = None


class _Commit(Protocol):
    """A journal write the dial may wait for (SQLite's batch; nothing in Redis)."""

    async def wait(self) -> None: ...


class _Writes(Protocol):
    """What the campaign writes to its journal (SQLite, or Redis when distributed)."""

    path: str | None
    error: BaseException | None
    writes: int
    commits: int

    def new_target(self, key: str, number: str, data: str, now: float) -> int: ...

    def begin_attempt(self, target_id: int, n: int, now: float, *, resumed: bool) -> _Commit: ...

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
    ) -> None: ...


@dataclass(slots=True, eq=False)
class _Worker:
    """An idle attempt task: ``wake`` is set when ``job`` is given (``None``: no more)."""

    wake: anyio.Event = field(default_factory=anyio.Event)
    job: tuple[_Job, _Commit, object] | None = None


@dataclass(slots=True, eq=False)
class _Job:
    target: Target
    key: str
    keywords: dict[str, Any]  # for CallSession.dial
    data: str
    tid: int = 0  # the target's id in the journal (0: not written yet)
    attempts: int = 0  # attempts that placed a call (or may have)
    tries: int = 0  # attempt rows, refused ones included
    call: Call | None = None
    taken: anyio.Event | None = None  # set once the attempt took its pacing token


class RedisBackend:
    """Where a distributed campaign keeps its targets, journal and pacing: campaign
    ``name`` on the Redis server at ``url``. Give one to each worker's ``Campaign``
    (``backend=``); every worker may load the same targets (each is added once), and a
    worker may also join with no targets.

    ``claim_idle``: seconds after which the targets of a worker that stopped answering
    (killed, cut off) are taken over by another; a live worker renews its own four
    times as often. ``connect_timeout``: seconds to reach Redis at the start (an
    ``OSError`` naming the URL, never its password, if it cannot be reached). The
    campaign's ``give_up_after`` bounds how long a worker waits for a lost Redis.

        backend = RedisBackend("redis://redis.internal:6379/0", "reminders")
        await Campaign(session, "targets.csv", remind, backend=backend, cps=10, ...).run()
        print((await backend.report()).outcomes)   # any process, also while it runs

    Needs the ``redis`` extra: ``pip install 'signalwire_calls[redis]'``. Run Redis with
    persistence (AOF, ``appendfsync always`` for the strictest guarantee): a Redis that
    comes back without its data makes every worker stop rather than dial anything twice.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        claim_idle: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._place = RedisPlace(url, name, float(claim_idle), float(connect_timeout))

    @property
    def url(self) -> str:
        """The Redis URL, its password hidden."""
        return self._place.url

    @property
    def name(self) -> str:
        return self._place.name

    @property
    def claim_idle(self) -> float:
        return self._place.claim_idle

    def __repr__(self) -> str:
        return f"<RedisBackend {self.url} campaign={self.name!r}>"

    async def report(self) -> CampaignReport:
        """The whole campaign's report (from any process, also while it runs)."""
        snap, _ = await _campaign_redis.read_snapshot(self._place)
        return CampaignReport(
            journal=f"{self.url}#{self.name}",
            targets=snap.targets,
            outcomes=dict(snap.counts),
            attempts=dict(snap.attempts),
            first_attempt_at=snap.first_at,
            last_update_at=snap.last_at,
        )

    async def stats(self) -> CampaignStats:
        """The whole campaign's progress, from any process (rates: averages since its
        first dial, in campaign seconds)."""
        snap, scale = await _campaign_redis.read_snapshot(self._place)
        elapsed = 0.0
        if snap.first_at is not None:
            complete = snap.total is not None and snap.done >= snap.total
            end = (snap.last_at or snap.first_at) if complete else time.time()
            elapsed = max(end - snap.first_at, 0.0) / scale
        eta = None
        if snap.total is not None and snap.done and elapsed > 0:
            eta = max(snap.total - snap.done, 0) / (snap.done / elapsed)
        return CampaignStats(
            outcomes=dict(snap.outcomes),
            done=snap.done,
            total=snap.total,
            live=snap.live,
            waiting=snap.waiting,
            dials=snap.dials,
            refused=snap.refused,
            throttles=snap.throttles,
            skipped=0,
            duplicates=0,
            cps=snap.dials / elapsed if elapsed > 0 else 0.0,
            cps_limit=snap.rate,
            elapsed=elapsed,
            eta=eta,
            stopping=False,
        )

    async def export(self, out: IO[str], *, format: Literal["csv", "json"] = "csv") -> int:
        """Write one row per target to ``out``, as ``export_report`` does for a journal
        file; returns the number of targets written."""
        if format not in ("csv", "json"):
            raise ValueError(f"format: must be 'csv' or 'json', got {format!r}")
        rows = await _campaign_redis.read_rows(self._place)
        return write_export(rows, await self.report(), out, format)

    async def delete(self) -> int:
        """Remove the campaign from Redis (every key of it); returns how many keys."""
        return await _campaign_redis.delete(self._place)

    async def _start(
        self, *, cps: float | None, time_scale: float, give_up_after: float
    ) -> RedisWorker:
        """Join (or create) the campaign as a new worker."""
        return await _campaign_redis.start_worker(
            self._place,
            _decode_target,
            cps=cps,
            time_scale=time_scale,
            give_up_after=give_up_after,
        )


_decode_target = msgspec.json.Decoder(Target).decode


class Campaign:
    """An outbound campaign on ``session``.

    ``targets``: ``Target`` objects (any iterable or async iterable) or the path of a
    CSV file (see ``CSVTargets``). ``flow`` runs on each answered call (default: wait
    for the call to end, leaving the talking to the SWML); when it returns the campaign
    hangs up. ``from_``, ``url``/``swml`` and ``options`` say what to dial; a target's
    ``options`` override them.

    Limits: ``concurrency`` live calls at most (from the dial until the call has ended);
    ``cps`` dials per second, one at a time, never in bursts (``None``: no limit). A
    SignalWire space places 1 call per second by default and queues the excess, so
    raise ``cps`` only as far as your space's limit. A 429 (or a 503) refusing a dial
    pauses all dialing for its Retry-After and halves the rate, which then grows back
    (by a tenth of ``cps`` each second); the refused target is dialled again later, and
    never twice. A dial that failed before anything was sent (no connection) slows the
    campaign down the same way. When every dial is refused for ``give_up_after``
    seconds, ``run()`` stops and raises; the targets not dialled stay pending for a
    resume. The session's transport already retries a 429 a few times before the
    campaign sees it: a session with ``RetryPolicy(max_attempts=1)`` lets the campaign
    react to the first one.

    ``journal``: an SQLite file (``None``: in memory, no resume) recording every target
    and attempt; an attempt is committed as ``dialing`` before its dial is sent. Running
    again on the same file resumes (see the module docstring).

    Stopping: ``stop()``, or the first SIGINT/SIGTERM while ``run()`` runs
    (``handle_signals``), stops dialing and lets live calls finish for up to
    ``drain_timeout`` seconds; ``stop(hang_up=True)``, a second signal or the deadline
    hangs up every live call (outcome ``canceled``). ``run()`` never returns or raises
    with a call of its own still live, even when cancelled.

    ``retry`` maps outcomes (``busy``, ``no_answer``, ``failed``, ``machine``,
    ``flow_error``, ``error``) to ``RetryRule`` rules. ``machine_detection`` runs
    answering-machine detection before the flow. ``answer_timeout`` (seconds to wait
    for the answer or end of a dialled call), ``flow_timeout`` and ``hangup_timeout``
    guard against lost webhooks and stuck flows. ``progress``: ``"auto"`` shows a live
    view with ``rich`` on a terminal (the ``cli`` extra) and logs a line every
    ``progress_interval`` seconds otherwise; ``"off"`` shows nothing.

    ``time_scale`` multiplies the campaign's schedule (the pacing interval, retry
    delays, the drain deadline, progress interval) for dry runs against a time-scaled
    ``Simulator``: ``cps`` and ``RetryRule.after`` are then in simulated seconds. The safety
    timeouts stay in real seconds.

    ``backend``: a ``RedisBackend`` makes this campaign one worker of a distributed
    campaign (no ``journal``): the targets (every worker may pass the same ones: each
    is added once), the journal and the ``cps`` limit (with its slow-down after a 429)
    are shared in Redis, so that every worker must pass the same ``cps`` and
    ``time_scale``. The targets of a worker that dies are taken over after
    ``RedisBackend.claim_idle`` seconds, under the resume's rule: one that may have
    been dialled ends ``unknown``. While Redis cannot be reached, the worker stops
    dialing (live calls go on) and resumes when it is back (for up to
    ``give_up_after`` seconds). ``stats()`` and the report are the whole campaign's;
    ``stop()`` and signals stop this worker only (the targets it has not dialled go
    to the others). ``run()`` returns once every target of the campaign has an outcome.
    """

    def __init__(
        self,
        session: CallSession,
        targets: TargetSource,
        flow: Flow | None = None,
        *,
        from_: str | None = None,
        url: str | None = None,
        swml: dict[str, Any] | str | None = None,
        options: DialOptions | None = None,
        concurrency: int = 10,
        cps: float | None = 1.0,
        journal: str | os.PathLike[str] | None = None,
        retry: dict[str, RetryRule] | None = None,
        machine_detection: MachineDetection | None = None,
        redial_unknown: bool = False,
        answer_timeout: float = 120.0,
        flow_timeout: float | None = None,
        hangup_timeout: float = 10.0,
        drain_timeout: float = 30.0,
        give_up_after: float = 600.0,
        handle_signals: bool = True,
        progress: Literal["auto", "rich", "log", "off"] = "auto",
        progress_interval: float = 10.0,
        time_scale: float = 1.0,
        backend: RedisBackend | None = None,
    ) -> None:
        if backend is not None:
            if not isinstance(backend, RedisBackend):
                raise ConfigurationError(
                    f"backend: expected a RedisBackend, got {type(backend).__name__}"
                )
            if journal is not None:
                raise ConfigurationError(
                    "journal: a distributed campaign keeps its journal in Redis; "
                    "leave journal unset with backend="
                )
            if redial_unknown:
                raise ConfigurationError(
                    "redial_unknown: not available with backend= (a target another "
                    "worker may still be dialing could be dialled twice)"
                )
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency: must be an int >= 1, got {concurrency!r}")
        if cps is not None and not (cps > 0 and math.isfinite(cps)):
            raise ConfigurationError(f"cps: must be a finite number > 0 or None, got {cps!r}")
        for name, value in (
            ("answer_timeout", answer_timeout),
            ("hangup_timeout", hangup_timeout),
            ("drain_timeout", drain_timeout),
            ("give_up_after", give_up_after),
            ("progress_interval", progress_interval),
            ("time_scale", time_scale),
            ("flow_timeout", 1.0 if flow_timeout is None else flow_timeout),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name}: must be a finite number > 0, got {value!r}")
        if progress not in ("auto", "rich", "log", "off"):
            raise ConfigurationError(
                f"progress: must be 'auto', 'rich', 'log' or 'off', got {progress!r}"
            )
        if progress == "rich" and not _progress.rich_available():
            raise ConfigurationError(
                "progress='rich' needs rich: pip install 'signalwire_calls[cli]'"
            )
        for outcome in retry or {}:
            if outcome not in _RETRYABLE:
                raise ConfigurationError(
                    f"retry: {outcome!r} cannot be retried; use one of {sorted(_RETRYABLE)}"
                )
        base = DialOptions(from_=from_, url=url, swml=swml).merged(options)
        if base.from_ is None:
            raise ConfigurationError("from_: the campaign needs a caller number (from_=...)")
        if base.url is None and base.swml is None:
            raise ConfigurationError(
                "url: the campaign needs the SWML its calls run (url=... or swml=...)"
            )
        self._session = session
        self._targets: Iterable[Target] | AsyncIterable[Target] = (
            CSVTargets(targets) if isinstance(targets, str | os.PathLike) else targets
        )
        self._flow: Flow = flow if flow is not None else _wait_until_ended
        self._options = base
        self._keywords = _dial_keywords(base)
        self._concurrency = concurrency
        self._cps = cps
        self._sqlite = Journal(journal)
        self._journal: _Writes = self._sqlite
        self._backend = backend
        self._redis: RedisWorker | None = None  # this worker, while run() runs
        self._retry = dict(retry or {})
        self._detection = machine_detection
        self._redial_unknown = redial_unknown
        self._answer_timeout = answer_timeout
        self._flow_timeout = flow_timeout
        self._hangup_timeout = hangup_timeout
        self._drain_timeout = drain_timeout
        self._give_up_after = give_up_after
        self._handle_signals = handle_signals
        self._progress_mode = progress
        self._progress_interval = progress_interval
        self._scale = time_scale

        self._pacer = Pacer(cps, lag=LAG / time_scale)
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._started = False
        self._t0 = time.monotonic()
        self._finished_at: float | None = None
        self._stopping = False
        self._hard = False
        self._fatal: BaseException | None = None
        self._wake = anyio.Event()
        self._dispatch_scope: anyio.CancelScope | None = None
        self._calls_scope: anyio.CancelScope | None = None
        self._jobs: dict[_Job, object] = {}  # live attempts and their limiter borrower
        self._idle: list[_Worker] = []  # attempt tasks waiting for their next attempt
        self._dispatched = False
        self._ready: list[_Job] = []  # refused dials, dialled again first
        self._heap: list[tuple[float, int, _Job]] = []  # retries: (due, seq, job)
        self._seq = itertools.count()
        self._prior: dict[str, TargetState] = {}
        self._seen: set[str] = set()
        self._outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._done = 0
        self._dials = 0
        self._dial_times: deque[float] = deque()  # the last _RATE_WINDOW seconds
        self._refused = 0
        self._refusing_since: float | None = None
        self._skipped = 0
        self._duplicates = 0
        self._flow_errors_logged = 0
        self._hangup_failed_log = LogThrottle(logger)
        self._hangup_silent_log = LogThrottle(logger)

    # -- public ----------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "running" if self._started else "new"
        return (
            f"<Campaign {state} journal={self._journal.path!r} "
            f"concurrency={self._concurrency} cps={self._cps} live={len(self._jobs)}>"
        )

    def stats(self) -> CampaignStats:
        """Counts so far: outcomes, live calls, dials, the achieved and allowed rate."""
        now = self._now()
        if not self._started:
            elapsed = 0.0
        elif self._finished_at is not None:
            elapsed = self._finished_at
        else:
            elapsed = now
        redis = self._redis
        if redis is not None and redis.snapshot is not None:
            return self._shared_stats(redis, elapsed)
        total = self._total()
        eta: float | None = None
        finished = self._done - self._skipped
        if total is not None and finished > 0 and elapsed > 0 and not self._stopping:
            remaining = max(total - self._done - self._duplicates, 0)
            eta = remaining / (finished / elapsed)
        return CampaignStats(
            outcomes={k: v for k, v in self._outcomes.items() if v},
            done=self._done,
            total=total,
            live=len(self._jobs),
            waiting=len(self._heap) + len(self._ready),
            dials=self._dials,
            refused=self._refused,
            throttles=self._pacer.throttles,
            skipped=self._skipped,
            duplicates=self._duplicates,
            cps=self._achieved(now)
            if self._finished_at is None
            else (self._dials / elapsed if elapsed > 0 else 0.0),
            cps_limit=self._pacer.rate,
            elapsed=elapsed,
            eta=eta,
            stopping=self._stopping,
        )

    def _shared_stats(self, redis: RedisWorker, elapsed: float) -> CampaignStats:
        """The whole distributed campaign's counters (as last read from Redis)."""
        snap = redis.snapshot
        assert snap is not None
        eta: float | None = None
        if snap.total is not None and snap.done_rate > 0 and not self._stopping:
            eta = max(snap.total - snap.done, 0) / snap.done_rate
        cps = snap.cps
        if self._finished_at is not None and snap.first_at is not None:
            span = ((snap.last_at or snap.first_at) - snap.first_at) / self._scale
            cps = snap.dials / span if span > 0 else 0.0
        return CampaignStats(
            outcomes=dict(snap.outcomes),
            done=snap.done,
            total=snap.total,
            live=snap.live,
            waiting=snap.waiting,
            dials=snap.dials,
            refused=snap.refused,
            throttles=snap.throttles,
            skipped=0,
            duplicates=self._duplicates,
            cps=cps,
            cps_limit=snap.rate,
            elapsed=elapsed,
            eta=eta,
            stopping=self._stopping,
        )

    def stop(self, *, hang_up: bool = False) -> None:
        """Stop dialing; live calls finish (up to ``drain_timeout``), or are hung up now
        with ``hang_up=True``. What is not dialled stays in the journal for a resume."""
        if not self._stopping:
            self._stopping = True
            self._wake.set()
            if self._dispatch_scope is not None:
                self._dispatch_scope.cancel()
        if hang_up and not self._hard:
            self._hard = True
            if self._calls_scope is not None:
                self._calls_scope.cancel()

    async def run(self) -> CampaignReport:
        """Run the campaign until every target has an outcome, or until stopped; returns
        the report. A second ``run()`` on the same object is refused (create another
        ``Campaign`` on the same journal to resume)."""
        if self._started:
            raise RuntimeError("Campaign.run() runs once; create a new Campaign to resume")
        self._started = True
        self._t0 = time.monotonic()
        if self._backend is not None:
            return await self._run_shared(self._backend)
        journal = self._sqlite
        journal.open()
        try:
            unknown = journal.recover()
            if unknown:
                logger.warning(
                    "journal: %d target(s) were mid-dial when the last run stopped: "
                    "outcome 'unknown'%s",
                    unknown,
                    " (dialled again: redial_unknown=True)" if self._redial_unknown else "",
                )
            self._prior = journal.states()
            await self._run_tasks([])
            return self._report(journal)
        finally:
            journal.close()

    async def _run_tasks(self, helper_tasks: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        """Dispatch until every target has an outcome (or a stop), with the signal
        watcher, the progress view and ``helper_tasks`` alongside."""
        try:
            async with anyio.create_task_group() as helpers:
                if self._handle_signals:
                    helpers.start_soon(self._watch_signals)
                for task in helper_tasks:
                    helpers.start_soon(task)
                reporter = _progress.make_reporter(
                    self._progress_mode, self.stats, self._progress_interval * self._scale
                )
                if reporter is not None:
                    helpers.start_soon(reporter.run)
                try:
                    async with anyio.create_task_group() as calls:
                        # a hard stop cancels every attempt at once: each hangs up
                        # its call (shielded) and records it
                        self._calls_scope = calls.cancel_scope
                        if self._hard:
                            calls.cancel_scope.cancel()
                        try:
                            await self._dispatch(calls)
                        finally:
                            self._release_workers()
                        if self._jobs:
                            helpers.start_soon(self._drain_deadline)
                finally:
                    # attempts cancelled before they ever ran were not dialled
                    for job, borrower in list(self._jobs.items()):
                        self._settle(job, borrower, None)
                    self._finished_at = self._now()
                    helpers.cancel_scope.cancel()
                if reporter is not None:
                    reporter.finish()
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        if self._fatal is not None:
            raise self._fatal

    async def _run_shared(self, backend: RedisBackend) -> CampaignReport:
        """``run()`` as one worker of a campaign shared in Redis."""
        redis = await backend._start(
            cps=self._cps, time_scale=self._scale, give_up_after=self._give_up_after
        )
        self._redis = redis
        self._journal = redis.journal
        self._pacer = redis.pacer
        targets = self._targets

        async def seed() -> None:
            _, self._duplicates = await redis.seed(targets, _check_target)

        try:
            await redis.refresh()
            await self._run_tasks([seed, redis.maintain])
        except BaseException:
            with anyio.move_on_after(min(self._give_up_after, 30.0), shield=True):
                try:
                    await redis.close()
                except Exception as exc:
                    logger.warning("redis: leaving the campaign failed: %s", _summary(exc))
            raise
        with anyio.move_on_after(self._give_up_after, shield=True):
            await redis.close()
        snap = redis.snapshot
        assert snap is not None
        return CampaignReport(
            journal=redis.journal.path,
            targets=snap.targets,
            outcomes=dict(snap.counts),
            attempts=dict(snap.attempts),
            first_attempt_at=snap.first_at,
            last_update_at=snap.last_at,
            dials=self._dials,
            elapsed=self._finished_at,
            stopped=self._stopping,
        )

    # -- time ------------------------------------------------------------------------

    def _now(self) -> float:
        return (time.monotonic() - self._t0) / self._scale

    def _achieved(self, now: float) -> float:
        """Dials per second over the last few seconds."""
        times = self._dial_times
        while times and times[0] < now - _RATE_WINDOW:
            times.popleft()
        span = min(now, _RATE_WINDOW)
        return len(times) / span if span > 0 else 0.0

    def _total(self) -> int | None:
        targets = self._targets
        try:
            return len(targets)  # type: ignore[arg-type]
        except TypeError:
            return None

    # -- dispatch --------------------------------------------------------------------

    async def _dispatch(self, calls: anyio.abc.TaskGroup) -> None:
        """Admit targets one by one: a free slot, the next target, the pacer, the journal
        (``dialing``), then a task for the attempt."""
        targets = self._targets
        sync_source: Iterator[Target] | None = None
        async_source: AsyncIterator[Target] | None = None
        if isinstance(targets, AsyncIterable):
            async_source = aiter(targets)
        else:
            sync_source = iter(targets)
        exhausted = False
        limiter = self._limiter
        pacer = self._pacer
        journal = self._journal
        redis = self._redis
        waiting: anyio.Event | None = None  # set when the previous paced dial went out
        with anyio.CancelScope() as scope:
            self._dispatch_scope = scope
            if self._stopping:
                scope.cancel()
            while True:
                borrower = object()
                try:
                    limiter.acquire_on_behalf_of_nowait(borrower)
                except anyio.WouldBlock:
                    await limiter.acquire_on_behalf_of(borrower)
                handed_over = False
                batch: _Commit | None = None
                job: _Job | None = None
                try:
                    while job is None:
                        job = self._next_job()
                        if job is not None:
                            break
                        if redis is not None:
                            # distributed: the next target from Redis, or nothing yet
                            claim = await redis.claim(1 + int(limiter.available_tokens))
                            if isinstance(claim, Claim):
                                job = self._from_claim(claim)
                                continue
                            if claim and not self._jobs:
                                return  # every target of the campaign has an outcome
                            self._wake = anyio.Event()
                            with anyio.move_on_after(_POLL):
                                await self._wake.wait()
                            continue
                        if not exhausted:
                            if sync_source is not None:
                                target = next(sync_source, None)
                            else:
                                assert async_source is not None
                                target = await anext(async_source, None)
                            if target is None:
                                exhausted = True
                            else:
                                job = self._admit(target)
                            continue
                        if not self._heap and not self._jobs:
                            return  # every target has an outcome
                        # wait for a retry to fall due or an attempt to finish
                        self._wake = anyio.Event()
                        due = self._heap[0][0] - self._now() if self._heap else math.inf
                        with anyio.move_on_after(max(due, 0.0) * self._scale):
                            await self._wake.wait()
                    now_wall = time.time()
                    resumed = job.tid != 0
                    if not resumed:
                        job.tid = journal.new_target(job.key, job.target.number, job.data, now_wall)
                    job.tries += 1
                    batch = journal.begin_attempt(job.tid, job.tries, now_wall, resumed=resumed)
                    if pacer.rate is not None or pacer.delay(self._now()) > 0:
                        # Paced: the attempt's task waits for its token and dials the
                        # moment it has it. The dispatcher keeps one attempt ready behind
                        # the one waiting, so that at most two targets are journalled as
                        # dialing without having been sent.
                        await batch.wait()
                        job.taken = anyio.Event()
                    self._jobs[job] = borrower
                    self._hand_over(calls, job, batch, borrower)
                    handed_over = True
                    if waiting is not None:
                        await waiting.wait()
                    waiting = job.taken
                finally:
                    if not handed_over:
                        limiter.release_on_behalf_of(borrower)
                        if batch is not None and job is not None and self._journal.error is None:
                            self._record(job, _Result("not_sent", error="stopped before dialing"))

    def _next_job(self) -> _Job | None:
        if self._ready:
            return self._ready.pop(0)
        heap = self._heap
        if heap and heap[0][0] <= self._now():
            return heapq.heappop(heap)[2]
        return None

    def _from_claim(self, claim: Claim) -> _Job:
        """A job for a target this worker took from Redis."""
        target = claim.target
        if target.options is None:
            keywords = self._keywords
        else:
            keywords = _dial_keywords(self._options.merged(target.options))
        job = _Job(target, claim.key, keywords, "")
        job.tid = claim.handle
        job.attempts = claim.attempts
        job.tries = claim.tries
        return job

    def _admit(self, target: Target) -> _Job | None:
        """A job for ``target``, or None when it is a duplicate, already has an
        outcome, or waits for a retry (then it goes on the retry heap)."""
        _check_target(target)
        key = target.key
        if key in self._seen:
            self._duplicates += 1
            if self._duplicates <= 5:
                logger.warning("target %r appears more than once: dialled once only", key)
            return None
        self._seen.add(key)
        if target.options is None:
            keywords = self._keywords
        else:
            keywords = _dial_keywords(self._options.merged(target.options))
        job = _Job(target, key, keywords, _json(target.data))
        prior = self._prior.get(key)
        if prior is None:
            return job
        job.tid = prior.id
        job.attempts = prior.attempts
        job.tries = prior.tries
        if prior.state == "done":
            if prior.outcome == "unknown" and self._redial_unknown:
                return job
            self._skipped += 1
            self._done += 1
            outcome = prior.outcome or "unknown"
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            return None
        if prior.state == "waiting" and prior.next_at is not None:
            wait = max(prior.next_at - time.time(), 0.0) / self._scale
            heapq.heappush(self._heap, (self._now() + wait, next(self._seq), job))
            return None
        return job

    # -- one attempt -----------------------------------------------------------------

    def _hand_over(
        self, calls: anyio.abc.TaskGroup, job: _Job, batch: _Commit, borrower: object
    ) -> None:
        """Give the attempt to an idle worker of the task group, or start one (there are
        never more workers than live attempts: an attempt task is reused rather than a
        task started per call)."""
        if self._idle:
            worker = self._idle.pop()
            worker.job = (job, batch, borrower)
            worker.wake.set()
        else:
            calls.start_soon(self._worker, job, batch, borrower, name="campaign worker")

    async def _worker(self, job: _Job, batch: _Commit, borrower: object) -> None:
        """Run attempts one after the other until the dispatcher has no more. (The
        attempt is inlined here: every coroutine frame between an await and the event
        loop is paid again each time the call's HTTP answers and events resume it.)"""
        me = _Worker()
        while True:
            result: _Result | None = None
            try:
                await batch.wait()
                result = await self._call(job)
            finally:
                if job.taken is not None:
                    job.taken.set()
                    job.taken = None
                try:
                    call = job.call
                    if call is not None and not call.is_ended:
                        if result is None:  # cancelled: hang up all the same
                            with anyio.move_on_after(2 * self._hangup_timeout, shield=True):
                                await self._hang_up(call)
                        else:
                            await self._hang_up(call)
                finally:
                    self._settle(job, borrower, result)
            if self._dispatched:
                return
            me.wake = anyio.Event()
            self._idle.append(me)
            await me.wake.wait()
            if me.job is None:
                return
            (job, batch, borrower), me.job = me.job, None

    def _release_workers(self) -> None:
        """The dispatcher is done: idle workers end."""
        self._dispatched = True
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.wake.set()

    def _settle(self, job: _Job, borrower: object, result: _Result | None) -> None:
        """Free the attempt's slot and record how it ended (``None``: cancelled)."""
        if self._jobs.pop(job, None) is None:
            return
        self._limiter.release_on_behalf_of(borrower)
        call = job.call
        if result is None:
            if call is None:  # stopped before its dial was sent
                result = _Result("not_sent", error="the campaign stopped before dialing")
            else:
                result = _Result(
                    "canceled",
                    call_id=call.id,
                    end_reason=call.end_reason,
                    error="hung up: the campaign was " + ("stopped" if self._hard else "cancelled"),
                )
        if self._journal.error is None:
            self._record(job, result)
        self._wake.set()

    async def _call(self, job: _Job) -> _Result:
        """Dial, wait for the answer, detect a machine, run the flow."""
        target = job.target
        pacer = self._pacer
        while (delay := pacer.delay(self._now())) > 0:  # a pause may have begun
            await anyio.sleep(delay * self._scale)
        if self._hard:  # hard-stopped before the dial
            return _Result("not_sent", error="the campaign stopped before dialing")
        redis = self._redis
        if redis is not None and not await redis.begin(job.tid, job.tries):
            # distributed: the shared token taken and the attempt marked dialing in one
            # step in Redis, unless another worker took the target over meanwhile
            return _Result("lost")
        # the token is taken here, with nothing between it and the dial's write
        now = self._now()
        pacer.take(now)
        self._dials += 1
        self._dial_times.append(now)
        if job.taken is not None:
            job.taken.set()
        try:
            # shielded: a dial that may have placed a call must give us its Call, so
            # that it can be hung up
            with anyio.CancelScope(shield=True):
                call = await _dial(self._session, target.number, job.keywords)
        except Exception as exc:
            return self._dial_failed(exc)
        job.call = call
        try:
            await call.answered(timeout=self._answer_timeout)
        except CallEndedError as exc:
            reason = exc.end_reason
            return _Result(
                _END_REASONS.get(reason or "", "failed"), call_id=call.id, end_reason=reason
            )
        except TimeoutError:
            return _Result(
                "error",
                call_id=call.id,
                error=f"TimeoutError: no answer or end event within {self._answer_timeout} s "
                "(does the platform reach the webhook receiver?)",
            )
        except SessionClosedError as exc:
            return _Result("error", call_id=call.id, error=_summary(exc), fatal=exc)
        answered_at = time.time()
        flow = self._flow
        outcome: Outcome = "completed"
        amd: str | None = None
        detection = self._detection
        if detection is not None:
            try:
                handle = await call.detect(
                    detection.detector or machine_detector(), timeout=detection.timeout
                )
                with anyio.fail_after(detection.timeout + self._answer_timeout):
                    decision = await handle.outcome()
                amd = decision.kind
                if amd == "machine":
                    if detection.on_machine == "hangup":
                        return _Result("machine", call.id, answered_at, amd=amd)
                    if detection.on_machine == "voicemail":
                        if detection.wait_for_beep and not handle.done:
                            with anyio.fail_after(detection.timeout + self._answer_timeout):
                                await handle.finished()
                        assert detection.voicemail is not None
                        flow = detection.voicemail
                        outcome = "machine"
                elif not handle.done:
                    try:
                        await handle.stop()
                    except SignalWireError:
                        pass
            except (SignalWireError, TimeoutError) as exc:
                if call.is_ended:
                    return _Result(
                        "error",
                        call.id,
                        answered_at,
                        end_reason=call.end_reason,
                        amd=amd,
                        error=_summary(exc),
                    )
                amd = amd or "error"
        try:
            if self._flow_timeout is not None:
                with anyio.fail_after(self._flow_timeout):
                    value = await flow(call, target)
            else:
                value = await flow(call, target)
        except Exception as exc:
            self._log_flow_error(target, exc)
            return _Result(
                "flow_error",
                call.id,
                answered_at,
                end_reason=call.end_reason,
                amd=amd,
                error=_summary(exc),
            )
        return _Result(outcome, call.id, answered_at, amd=amd, result=_json(value))

    def _dial_failed(self, exc: Exception) -> _Result:
        summary = _summary(exc)
        if isinstance(exc, AuthenticationError | PermissionDeniedError | SessionClosedError):
            return _Result("refused", error=summary, fatal=exc)
        if isinstance(exc, ValidationError | ConfigurationError):
            return _Result("error", error=summary)  # refused before sending: bad options
        if _not_sent(exc):
            if isinstance(exc, APIStatusError) and exc.status not in (429, 503):
                return _Result("error", error=summary)  # 4xx: the platform refused it
            # 429, 503, nothing sent (no connection, a full pool): slow down, dial later
            retry_after = _retry_after(exc)
            lowered = self._pacer.throttle(
                self._now(), None if retry_after is None else retry_after / self._scale
            )
            if lowered:
                logger.info(
                    "dial refused (%s): pausing %s, rate now %.2f/s",
                    summary,
                    "1 s" if retry_after is None else f"{retry_after:g} s",
                    self._pacer.rate or 0.0,
                )
            return _Result("refused", error=summary)
        return _Result("unknown", error=f"may have been dialled: {summary}")

    async def _hang_up(self, call: Call) -> None:
        """Hang up a call that is still up and wait for its end (bounded)."""
        try:
            await call.end()
        except NotFoundError:
            return  # the platform has ended it already
        except SignalWireError as exc:
            self._hangup_failed_log("hanging up call %s failed: %s", call.id, _summary(exc))
        try:
            await call.ended(timeout=self._hangup_timeout)
        except TimeoutError:
            self._hangup_silent_log(
                "call %s: no end event within %s s after hanging up", call.id, self._hangup_timeout
            )
        except SignalWireError:
            pass

    def _log_flow_error(self, target: Target, exc: Exception) -> None:
        self._flow_errors_logged += 1
        if self._flow_errors_logged <= 3:
            logger.warning("flow raised for target %r", target.key, exc_info=exc)
        elif self._flow_errors_logged == 4:
            logger.warning("flow raised again; further flow errors are logged at DEBUG")
        else:
            logger.debug("flow raised for target %r: %s", target.key, _summary(exc))

    # -- outcomes --------------------------------------------------------------------

    def _record(self, job: _Job, res: _Result) -> None:
        """Write the attempt's outcome and the target's state; schedule a retry."""
        journal = self._journal
        now_wall = time.time()
        key, n = job.tid, job.tries
        outcome = res.outcome
        if outcome == "lost":  # another worker has the target: nothing of ours to record
            return
        if outcome == "not_sent" or outcome == "refused":
            if outcome == "refused":
                self._refused += 1
                now = self._now()
                if self._refusing_since is None:
                    self._refusing_since = now
                limit = self._give_up_after
                if res.fatal is None and now - self._refusing_since > limit:
                    res = _Result(
                        "refused",
                        error=f"no dial placed for {limit:g} s; last: {res.error}",
                        fatal=TimeoutError(f"every dial refused for {limit:g} s: {res.error}"),
                    )
                if res.fatal is not None:
                    if self._fatal is None:
                        self._fatal = res.fatal
                        logger.error("campaign stopped: %s", res.error)
                    self.stop()
                else:
                    job.call = None
                    self._ready.append(job)
            journal.finish(
                key,
                n,
                "not_sent",
                state="pending",
                outcome=None,
                attempts=job.attempts,
                now=now_wall,
                error=res.error,
            )
            return
        self._refusing_since = None
        job.attempts += 1
        if res.fatal is not None and self._fatal is None:
            self._fatal = res.fatal
            self.stop()
        call = job.call
        ended_at = now_wall if call is not None and call.is_ended else None
        rule = self._retry.get(outcome)
        retry = rule is not None and job.attempts <= rule.times and not self._hard
        journal.finish(
            key,
            n,
            outcome,
            state="waiting" if retry else "done",
            outcome=None if retry else outcome,
            attempts=job.attempts,
            now=now_wall,
            call_id=res.call_id,
            answered_at=res.answered_at,
            ended_at=ended_at,
            end_reason=res.end_reason,
            amd=res.amd,
            error=res.error,
            next_at=now_wall + rule.after * self._scale if retry and rule else None,
            result=None if retry else res.result,
        )
        if retry and rule is not None:
            job.call = None
            if self._redis is None:  # distributed: the retry waits in Redis
                heapq.heappush(self._heap, (self._now() + rule.after, next(self._seq), job))
        else:
            self._count(outcome)

    def _count(self, outcome: str) -> None:
        self._done += 1
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1

    def _report(self, journal: Journal) -> CampaignReport:
        journal.flush()
        base = _report_from(journal)
        return msgspec.structs.replace(
            base,
            dials=self._dials,
            elapsed=self._finished_at,
            stopped=self._stopping,
        )

    # -- stopping --------------------------------------------------------------------

    async def _drain_deadline(self) -> None:
        """After a stop, give live calls ``drain_timeout`` seconds, then hang up."""
        if not self._stopping:
            return
        await anyio.sleep(self._drain_timeout * self._scale)
        if self._jobs:
            logger.warning(
                "drain deadline (%g s) reached: hanging up %d live call(s)",
                self._drain_timeout,
                len(self._jobs),
            )
            self.stop(hang_up=True)

    async def _watch_signals(self) -> None:
        """First SIGINT/SIGTERM: stop dialing; second: hang up. The handlers in place
        before (e.g. ``asyncio.run``'s for Ctrl-C) are put back afterwards."""
        if threading.current_thread() is not threading.main_thread():
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.getsignal(sig) for sig in signals}
        try:
            with anyio.open_signal_receiver(*signals) as received:
                async for signum in received:
                    name = signal.Signals(signum).name
                    if not self._stopping:
                        logger.warning(
                            "%s: no new dials; %d live call(s) may finish within %g s "
                            "(again to hang up now)",
                            name,
                            len(self._jobs),
                            self._drain_timeout,
                        )
                        self.stop()
                    else:
                        logger.warning(
                            "%s again: hanging up %d live call(s)", name, len(self._jobs)
                        )
                        self.stop(hang_up=True)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals here
            return
        finally:
            for sig, handler in before.items():
                if handler is not None:
                    try:
                        signal.signal(sig, handler)
                    except (ValueError, OSError):
                        pass


def _check_target(target: Any) -> Target:
    if not isinstance(target, Target):
        raise ValidationError("targets", f"expected Target objects, got {type(target).__name__}")
    return target


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception of a task group's group (the campaign's own failure)."""
    flat: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            flat.append(exc)

    walk(group)
    for exc in flat:
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return flat[0] if flat else group


# ---------------------------------------------------------------------------- reading


def _report_from(journal: Journal) -> CampaignReport:
    counts = journal.outcome_counts()
    first, last = journal.span()
    return CampaignReport(
        journal=journal.path,
        targets=sum(counts.values()),
        outcomes=counts,
        attempts=journal.attempt_counts(),
        first_attempt_at=first,
        last_update_at=last,
    )


def _open_existing(path: str | os.PathLike[str]) -> Journal:
    journal = Journal(path, readonly=True)
    journal.open()
    return journal


def read_report(journal: str | os.PathLike[str]) -> CampaignReport:
    """The report of a campaign journal (also while the campaign runs)."""
    j = _open_existing(journal)
    try:
        return _report_from(j)
    finally:
        j.close()


_EXPORT_COLUMNS = (
    "key",
    "number",
    "outcome",
    "attempts",
    "result",
    "error",
    "end_reason",
    "amd",
    "call_id",
    "updated_at",
)


def export_report(
    journal: str | os.PathLike[str],
    out: IO[str],
    *,
    format: Literal["csv", "json"] = "csv",
) -> int:
    """Write one row per target of ``journal`` to ``out``: CSV (the target's ``data``
    as extra columns) or JSON (``{"summary": ..., "targets": [...]}``). Returns the
    number of targets written."""
    if format not in ("csv", "json"):
        raise ValueError(f"format: must be 'csv' or 'json', got {format!r}")
    j = _open_existing(journal)
    try:
        rows = [
            {
                "key": r.key,
                "number": r.number,
                "state": r.state,
                "outcome": r.outcome,
                "attempts": r.attempts,
                "result": r.result,
                "error": r.error,
                "end_reason": r.end_reason,
                "amd": r.amd,
                "call_id": r.call_id,
                "updated_at": r.updated_at,
                "data": r.data,
            }
            for r in j.rows()
        ]
        return write_export(rows, _report_from(j), out, format)
    finally:
        j.close()


def write_export(
    rows: list[dict[str, Any]], summary: CampaignReport, out: IO[str], format: str
) -> int:
    """Write the export of ``rows`` (one per target: the journal's columns, ``result``
    and ``data`` as JSON text) to ``out``; the same for a journal file and for Redis."""
    if format == "json":
        targets = [
            {
                "key": r["key"],
                "number": r["number"],
                "outcome": r["outcome"] if r["state"] == "done" else r["state"],
                "attempts": r["attempts"],
                "result": None if r["result"] is None else json.loads(r["result"]),
                "error": r["error"],
                "end_reason": r["end_reason"],
                "amd": r["amd"],
                "call_id": r["call_id"],
                "updated_at": r["updated_at"],
                "data": json.loads(r["data"]),
            }
            for r in rows
        ]
        json.dump({"summary": msgspec.to_builtins(summary), "targets": targets}, out, indent=2)
        out.write("\n")
        return len(rows)
    datas = [json.loads(r["data"]) for r in rows]
    extra: dict[str, None] = {}
    for d in datas:
        if isinstance(d, dict):
            for k in d:
                if k not in _EXPORT_COLUMNS:
                    extra.setdefault(str(k), None)
    writer = csv.writer(out)
    writer.writerow([*_EXPORT_COLUMNS, *extra])
    for r, d in zip(rows, datas, strict=True):
        d = d if isinstance(d, dict) else {}
        writer.writerow(
            [
                r["key"],
                r["number"],
                r["outcome"] if r["state"] == "done" else r["state"],
                r["attempts"],
                "" if r["result"] is None else r["result"],
                r["error"] or "",
                r["end_reason"] or "",
                r["amd"] or "",
                r["call_id"] or "",
                f"{r['updated_at']:.3f}",
                *("" if d.get(k) is None else d.get(k) for k in extra),
            ]
        )
    return len(rows)
