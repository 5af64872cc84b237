"""The campaign journal: one SQLite file (WAL) with every target, attempt and outcome.

Writes are queued by the campaign and committed in groups: everything queued during
one turn of the event loop goes into one transaction. A write someone waits for (an
attempt about to be dialled) schedules its commit for the next turn; the others ride
along or are committed within ``batch_delay`` seconds. ``synchronous=NORMAL`` in WAL
mode: a committed batch survives the crash of the process (not the loss of power).

Tables (targets are numbered in the order they were first dialled; integer keys keep
each write a cheap append or lookup)::

    targets(id, key, number, data, state, outcome, attempts, next_at, result, error,
            updated_at)
        state: active | pending | waiting | done; outcome set once done
    attempts(target_id, n, status, call_id, started_at, answered_at, ended_at,
             end_reason, amd, error)
        status: dialing (written and committed before the dial is sent), not_sent
        (refused before placing a call), or the attempt's outcome

A target left ``dialing`` by a crash may have been dialled: ``recover()`` turns it
into ``unknown``. One campaign writes a journal at a time: ``open()`` takes an
exclusive lock on the file (readers such as the report are not affected).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["Batch", "Journal", "JournalRow", "TargetState"]

SCHEMA_VERSION = "1"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS targets (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        number TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL,
        outcome TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL,
        result TEXT,
        error TEXT,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS attempts (
        target_id INTEGER NOT NULL,
        n INTEGER NOT NULL,
        status TEXT NOT NULL,
        call_id TEXT,
        started_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        end_reason TEXT,
        amd TEXT,
        error TEXT,
        PRIMARY KEY (target_id, n)
    ) WITHOUT ROWID""",
)

_NEW_TARGET = (
    "INSERT INTO targets (id, key, number, data, state, updated_at) "
    "VALUES (?, ?, ?, ?, 'active', ?)"
)
_RESUME_TARGET = "UPDATE targets SET state = 'active', next_at = NULL, updated_at = ? WHERE id = ?"
_BEGIN_ATTEMPT = (
    "INSERT OR REPLACE INTO attempts (target_id, n, status, started_at) VALUES (?, ?, 'dialing', ?)"
)
_FINISH_ATTEMPT = (
    "UPDATE attempts SET status = ?, call_id = ?, answered_at = ?, ended_at = ?, "
    "end_reason = ?, amd = ?, error = ? WHERE target_id = ? AND n = ?"
)
_SET_TARGET = (
    "UPDATE targets SET state = ?, outcome = ?, attempts = ?, next_at = ?, result = ?, "
    "error = ?, updated_at = ? WHERE id = ?"
)

#: The order in which a batch runs its statements (each kind through one executemany).
#: Within one batch a target is inserted before it is updated and an attempt begun
#: before it is finished; a target that finished one attempt and began the next in the
#: same batch may show its previous state until the next batch, which ``recover`` does
#: not mind: an attempt left ``dialing`` decides.
_ORDER = (_NEW_TARGET, _RESUME_TARGET, _BEGIN_ATTEMPT, _FINISH_ATTEMPT, _SET_TARGET)


@dataclass(slots=True, frozen=True)
class TargetState:
    """What the journal knows of a target from an earlier run."""

    id: int
    state: str
    outcome: str | None
    attempts: int
    tries: int
    next_at: float | None


@dataclass(slots=True, frozen=True)
class JournalRow:
    """One target as the report exports it."""

    key: str
    number: str
    data: str
    state: str
    outcome: str | None
    attempts: int
    result: str | None
    error: str | None
    end_reason: str | None
    amd: str | None
    call_id: str | None
    updated_at: float


class Batch:
    """One group of writes committed together; ``wait()`` returns once it is."""

    __slots__ = ("_future", "count", "ops")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ops: dict[str, list[tuple[Any, ...]]] = {sql: [] for sql in _ORDER}
        self.count = 0
        self._future: asyncio.Future[None] = loop.create_future()

    @property
    def committed(self) -> bool:
        return self._future.done() and self._future.exception() is None

    async def wait(self) -> None:
        """Wait until the batch is committed; raises the database error if it failed."""
        await asyncio.shield(self._future)

    def _settle(self, error: BaseException | None) -> None:
        if self._future.done():
            return
        if error is None:
            self._future.set_result(None)
        else:
            self._future.set_exception(error)
            self._future.exception()  # retrieved: nobody may be waiting


class Journal:
    """The SQLite journal of one campaign (``path`` ``None``: in memory, no resume).

    Use from the event loop's thread only. ``open()`` creates or reopens the file;
    ``close()`` commits what is queued and closes it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        batch_delay: float = 0.05,
        readonly: bool = False,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.batch_delay = batch_delay
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None
        self._batch: Batch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._urgent = False
        self._last_id = 0
        self.writes = 0
        self.commits = 0
        self.error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the journal file and its tables."""
        if self._db is not None:
            return
        if self.readonly:
            self._open_readonly()
            return
        try:
            db = sqlite3.connect(
                self.path or ":memory:", isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise OSError(f"journal: cannot open {self.path!r}: {exc}") from exc
        try:
            if self.path is not None:
                self._take_lock()
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise OSError(f"journal: {self.path!r} cannot use WAL mode ({mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                db.execute("INSERT INTO meta VALUES ('created_at', ?)", (repr(time.time()),))
            elif row[0] != SCHEMA_VERSION:
                raise OSError(
                    f"journal: {self.path!r} has schema version {row[0]}, "
                    f"this version reads {SCHEMA_VERSION}"
                )
            last = db.execute("SELECT COALESCE(MAX(id), 0) FROM targets").fetchone()[0]
            self._last_id = int(last)
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            db.close()
            self._drop_lock()
            raise OSError(f"journal: {self.path!r} is not a campaign journal: {exc}") from exc
        except BaseException:
            db.close()
            self._drop_lock()
            raise
        self._db = db

    def _open_readonly(self) -> None:
        """Open an existing journal for reading only (also while a campaign writes it)."""
        if self.path is None or not os.path.exists(self.path):
            raise FileNotFoundError(f"journal: {self.path!r} does not exist")
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise OSError(f"journal: cannot open {self.path!r}: {exc}") from exc
        try:
            db.execute("PRAGMA busy_timeout=5000")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                raise OSError(f"journal: {self.path!r} is not a campaign journal of this version")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise OSError(f"journal: {self.path!r} is not a campaign journal: {exc}") from exc
        except BaseException:
            db.close()
            raise
        self._db = db

    def _take_lock(self) -> None:
        if fcntl is None or self.path is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OSError(f"journal: {self.path!r} is in use by another running campaign") from None
        self._lock = fd

    def _drop_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("journal: not open")
        return self._db

    def close(self) -> None:
        """Commit what is queued and close the file."""
        if self._db is None:
            return
        try:
            self.flush()
        finally:
            self._db.close()
            self._db = None
            self._drop_lock()

    # -- reading ----------------------------------------------------------------------

    def recover(self) -> int:
        """Targets whose attempt a crash left ``dialing`` become ``unknown`` (they may
        have been dialled); targets left ``active`` without one become ``pending``.
        Returns how many became ``unknown``."""
        db = self.db
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT target_id FROM attempts WHERE status = 'dialing'"
                )
            ]
            db.execute(
                "UPDATE attempts SET status = 'unknown', "
                "error = 'the campaign stopped while this attempt was dialing' "
                "WHERE status = 'dialing'"
            )
            db.executemany(
                "UPDATE targets SET state = 'done', outcome = 'unknown', "
                "error = 'may have been dialled: the campaign stopped while dialing', "
                "updated_at = ? WHERE id = ?",
                [(now, i) for i in ids],
            )
            db.execute(
                "UPDATE targets SET state = 'pending', updated_at = ? WHERE state = 'active'",
                (now,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(ids)

    def states(self) -> dict[str, TargetState]:
        """Every target the journal knows, by key."""
        tries = dict(self.db.execute("SELECT target_id, MAX(n) FROM attempts GROUP BY target_id"))
        return {
            key: TargetState(tid, state, outcome, attempts, int(tries.get(tid) or 0), next_at)
            for tid, key, state, outcome, attempts, next_at in self.db.execute(
                "SELECT id, key, state, outcome, attempts, next_at FROM targets ORDER BY id"
            )
        }

    def outcome_counts(self) -> dict[str, int]:
        """Targets per final outcome, plus ``waiting``, ``pending`` and ``active``."""
        counts: dict[str, int] = {}
        for state, outcome, n in self.db.execute(
            "SELECT state, outcome, COUNT(*) FROM targets GROUP BY state, outcome"
        ):
            name = outcome if state == "done" and outcome else state
            counts[name] = counts.get(name, 0) + int(n)
        return counts

    def attempt_counts(self) -> dict[str, int]:
        """Attempts per status."""
        return {
            str(s): int(n)
            for s, n in self.db.execute("SELECT status, COUNT(*) FROM attempts GROUP BY status")
        }

    def span(self) -> tuple[float | None, float | None]:
        """Wall-clock time of the first attempt and of the last update."""
        first = self.db.execute("SELECT MIN(started_at) FROM attempts").fetchone()[0]
        last = self.db.execute("SELECT MAX(updated_at) FROM targets").fetchone()[0]
        return first, last

    def rows(self) -> Iterator[JournalRow]:
        """Every target with its last attempt, in the order they were first dialled."""
        query = """
            SELECT t.key, t.number, t.data, t.state, t.outcome, t.attempts, t.result,
                   t.error, a.end_reason, a.amd, a.call_id, t.updated_at
            FROM targets t
            LEFT JOIN attempts a ON a.target_id = t.id
                AND a.n = (SELECT MAX(n) FROM attempts WHERE target_id = t.id)
            ORDER BY t.id
        """
        for row in self.db.execute(query):
            yield JournalRow(*row)

    # -- writing ----------------------------------------------------------------------

    def _queue(self, sql: str, params: tuple[Any, ...], urgent: bool) -> Batch:
        batch = self._batch
        loop = self._loop
        if batch is None or loop is None:
            if self.error is not None:
                raise self.error
            loop = self._loop = asyncio.get_running_loop()
            batch = self._batch = Batch(loop)
        batch.ops[sql].append(params)
        batch.count += 1
        if urgent:
            if not self._urgent:
                self._urgent = True
                if self._handle is not None:
                    self._handle.cancel()
                self._handle = loop.call_soon(self._flush_soon)
        elif self._handle is None:
            self._handle = loop.call_later(self.batch_delay, self._flush_soon)
        return batch

    def new_target(self, key: str, number: str, data: str, now: float) -> int:
        """Add a target (written with its first attempt); returns its id."""
        self._last_id += 1
        self._queue(_NEW_TARGET, (self._last_id, key, number, data, now), False)
        return self._last_id

    def begin_attempt(self, target_id: int, n: int, now: float, *, resumed: bool) -> Batch:
        """Mark attempt ``n`` of a target as ``dialing``; the dial may go once the
        returned batch is committed. ``resumed``: the target was known before."""
        if resumed:
            self._queue(_RESUME_TARGET, (now, target_id), False)
        return self._queue(_BEGIN_ATTEMPT, (target_id, n, now), True)

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
        """Record how attempt ``n`` ended (``status``) and the target's state: ``done``
        with its outcome, ``waiting`` for a retry at ``next_at`` (Unix time), or
        ``pending`` (not dialled, e.g. refused)."""
        self._queue(
            _FINISH_ATTEMPT,
            (status, call_id, answered_at, ended_at, end_reason, amd, error, target_id, n),
            False,
        )
        self._queue(
            _SET_TARGET,
            (state, outcome, attempts, next_at, result, error, now, target_id),
            False,
        )

    def _flush_soon(self) -> None:
        self._handle = None
        self._urgent = False
        try:
            self.flush()
        except Exception:  # kept in self.error; the waiters of the batch have it too
            pass

    def flush(self) -> None:
        """Commit every queued write now (one transaction)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._urgent = False
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        db = self.db
        error: BaseException | None = None
        try:
            db.execute("BEGIN")
            try:
                for sql, rows in batch.ops.items():
                    if len(rows) == 1:
                        db.execute(sql, rows[0])
                    elif rows:
                        db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = OSError(f"journal: writing {self.path or ':memory:'} failed: {exc}")
            error.__cause__ = exc
            self.error = error
        else:
            self.writes += batch.count
            self.commits += 1
        batch._settle(error)
        if error is not None:
            raise error
