"""Correlation: routes decoded webhooks to handles and calls (DESIGN.md, protocol 4-6).

Keys: ``control_id`` -> handle; ``call_id`` -> Call for call-state and refer events;
``call_id`` -> active transcribe handle for transcript callbacks (they carry no
control_id). An event whose key is not registered yet waits in a bounded, time-limited
early-event buffer and is replayed on registration; what expires is counted. Keys of
recently settled operations and ended calls are remembered (bounded) so that late
duplicates are dropped instead of filling the buffer. Entries are removed as soon as an
operation settles, so memory follows the number of *pending* operations only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from .events import (
    CallStateEvent,
    Event,
    ReferEvent,
    TranscriptCompletedEvent,
    TranscriptFailedEvent,
    UnknownEvent,
)

if TYPE_CHECKING:
    from .call import Call
    from .handles import OperationHandle, TranscribeHandle

__all__ = ["Registry", "RegistryStats"]

logger = logging.getLogger("signalwire_calls.registry")

_OPS = 0
_CALLS = 1
_TRANSCRIPTS = 2


class RegistryStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the correlation registry (a snapshot)."""

    routed: int
    buffered: int
    replayed: int
    expired: int
    duplicates: int
    late: int
    unknown: int
    pending_operations: int
    live_calls: int
    buffered_now: int


class _Recent:
    """A bounded set of recently retired keys: the newest ``maximum // 2`` at least,
    ``maximum`` at most.

    Two generations of plain sets: a key goes into the young one; when that is full it
    becomes the old one and the previous old one is dropped whole. That is a set
    insert per key (an ordered dict with per-key eviction costs ~3x more on the
    settle path, which runs once per command).
    """

    __slots__ = ("_half", "_old", "_young")

    def __init__(self, maximum: int) -> None:
        self._half = max(maximum // 2, 1)
        self._young: set[str] = set()
        self._old: set[str] = set()

    def add(self, key: str) -> None:
        young = self._young
        young.add(key)
        if len(young) >= self._half:
            self._old = young
            self._young = set()

    def __contains__(self, key: object) -> bool:
        return key in self._young or key in self._old


class Registry:
    """The session's event sink: ``deliver(event)`` never raises."""

    def __init__(
        self,
        *,
        buffer_ttl: float = 30.0,
        buffer_max: int = 10_000,
        recent_max: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if buffer_ttl <= 0:
            raise ValueError("buffer_ttl must be > 0")
        if buffer_max < 0:
            raise ValueError("buffer_max must be >= 0")
        self.operations: dict[str, OperationHandle[Any]] = {}
        self.calls: dict[str, Call] = {}
        self.transcribes: dict[str, TranscribeHandle] = {}
        self._buffer_ttl = buffer_ttl
        self._buffer_max = buffer_max
        self._clock = clock
        # early buffer: one dict per key space, plus one expiry queue for all of them
        self._early: tuple[dict[str, list[Event]], ...] = ({}, {}, {})
        self._expiry: deque[tuple[float, int, str]] = deque()
        self._buffered_now = 0
        self._recent_ops = _Recent(recent_max)
        self._recent_calls = _Recent(recent_max)
        self.routed = 0
        self.buffered = 0
        self.replayed = 0
        self.expired = 0
        self.duplicates = 0
        self.late = 0
        self.unknown = 0

    # -- the sink --------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Route one decoded webhook. Never raises into the receiver."""
        try:
            self._route(event)
        except Exception:  # a bug here must not become a 500 for the platform
            logger.exception("failed to route %s", type(event).__name__)

    def _route(self, event: Event) -> None:
        cls = type(event)
        if cls is CallStateEvent or cls is ReferEvent:
            call_id = event.call_id
            if call_id is None:
                self.unknown += 1
                return
            call = self.calls.get(call_id)
            if call is not None:
                self._count(call._feed(event))
            elif call_id in self._recent_calls:
                self.late += 1
            else:
                self._buffer(_CALLS, call_id, event)
            return
        if cls is TranscriptCompletedEvent or cls is TranscriptFailedEvent:
            call_id = event.call_id
            if call_id is None:
                self.unknown += 1
                return
            handle = self.transcribes.get(call_id)
            if handle is not None:
                self._count(handle._feed(event))
            elif call_id in self._recent_ops:
                self.late += 1
            else:
                self._buffer(_TRANSCRIPTS, call_id, event)
            return
        if cls is UnknownEvent:
            self.unknown += 1
            return
        control_id = event.control_id
        if control_id is None:
            self.unknown += 1
            return
        op = self.operations.get(control_id)
        if op is not None:
            if op._feed(event):
                self.routed += 1
            else:
                self.duplicates += 1
        elif control_id in self._recent_ops:
            self.late += 1
        else:
            self._buffer(_OPS, control_id, event)

    def _count(self, applied: bool) -> None:
        if applied:
            self.routed += 1
        else:
            self.duplicates += 1

    # -- early buffer ----------------------------------------------------------------

    def _buffer(self, space: int, key: str, event: Event) -> None:
        now = self._clock()
        self._expire(now)
        if self._buffered_now >= self._buffer_max:
            self.expired += 1
            logger.warning(
                "early-event buffer full (%d); dropped %s for %s",
                self._buffer_max,
                type(event).__name__,
                key,
            )
            return
        bucket = self._early[space].get(key)
        if bucket is None:
            self._early[space][key] = [event]
            self._expiry.append((now + self._buffer_ttl, space, key))
        else:
            bucket.append(event)
        self._buffered_now += 1
        self.buffered += 1

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, space, key = expiry.popleft()
            bucket = self._early[space].pop(key, None)
            if bucket:
                self._buffered_now -= len(bucket)
                self.expired += len(bucket)
                logger.info(
                    "expired %d unmatched event(s) for %s after %.1fs",
                    len(bucket),
                    key,
                    self._buffer_ttl,
                )

    def _take(self, space: int, key: str) -> list[Event] | None:
        if self._buffered_now == 0:
            return None
        bucket = self._early[space].pop(key, None)
        if bucket is not None:
            self._buffered_now -= len(bucket)
            self.replayed += len(bucket)
        return bucket

    def sweep(self) -> None:
        """Drop buffered events older than the buffer's time limit."""
        self._expire(self._clock())

    # -- registration ----------------------------------------------------------------

    def add_operation(self, handle: OperationHandle[Any]) -> None:
        """Register a handle (before its command is sent) and replay early events."""
        self.operations[handle.control_id] = handle
        early = self._take(_OPS, handle.control_id)
        if early is not None:
            for event in early:
                self._count(handle._feed(event))

    def add_transcribe(self, call_id: str, handle: TranscribeHandle) -> None:
        """Register the call's active transcribe (transcripts carry no control_id)."""
        # a second transcribe on the call is refused by the platform (409); it must not
        # displace the active one
        if self.transcribes.setdefault(call_id, handle) is not handle:
            self.add_operation(handle)
            return
        self.add_operation(handle)
        early = self._take(_TRANSCRIPTS, call_id)
        if early is not None:
            for event in early:
                self._count(handle._feed(event))

    def remove_operation(self, handle: OperationHandle[Any], *, settled: bool = True) -> None:
        """Forget a handle; ``settled`` remembers its key so late events are dropped."""
        control_id = handle.control_id
        operations = self.operations
        if operations.get(control_id) is handle:
            del operations[control_id]
        transcribes = self.transcribes
        if transcribes:
            call_id = handle.call.id
            if transcribes.get(call_id) is handle:
                del transcribes[call_id]
                if settled:
                    self._recent_ops.add(call_id)
        if settled:
            self._recent_ops.add(control_id)

    def add_call(self, call: Call) -> None:
        """Register a call and replay its early call-state events."""
        self.calls[call.id] = call
        early = self._take(_CALLS, call.id)
        if early is not None:
            for event in early:
                self._count(call._feed(event))

    def remove_call(self, call: Call) -> None:
        """Forget an ended call; late events for it are then dropped and counted."""
        if self.calls.get(call.id) is call:
            del self.calls[call.id]
        self._recent_calls.add(call.id)

    # -- introspection -----------------------------------------------------------------

    def stats(self) -> RegistryStats:
        """A snapshot of the counters (expired entries are swept first)."""
        self.sweep()
        return RegistryStats(
            routed=self.routed,
            buffered=self.buffered,
            replayed=self.replayed,
            expired=self.expired,
            duplicates=self.duplicates,
            late=self.late,
            unknown=self.unknown,
            pending_operations=len(self.operations),
            live_calls=len(self.calls),
            buffered_now=self._buffered_now,
        )
