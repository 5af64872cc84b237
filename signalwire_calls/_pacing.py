"""Dial pacing for campaigns: a one-token bucket with a pause, driven by an AIMD rate.

Pure logic on a caller-given clock (campaign seconds), so it is tested without sleeping.
The campaign's dispatcher is its only user: it asks ``delay(now)``, sleeps that long,
then calls ``take(now)`` just before handing the dial over.

* The bucket holds one token (no bursts): two dials are never sent back to back. When
  the event loop lets a dial through late, the next one may follow early by as much
  (at most ``LAG`` seconds, at most half an interval), so loop lag does not lower the
  achieved rate; in any window of one second there are at most ``rate + 1`` dials (for
  an integer rate). After a wait of an interval or more (no free slot, nothing to
  dial) the schedule starts afresh: nothing is made up.
* ``throttle(now, retry_after)`` (a 429, or a 503 that refused the dial) pauses every
  dial until ``now + retry_after`` and halves the rate, at most once per pause
  (several dials in flight often come back 429 together: that is one signal, not many).
* Every ``increase_every`` seconds without a throttle, the rate grows by a tenth of the
  configured one, back up to it (additive increase, multiplicative decrease). With no
  configured rate, the rate seen when throttled stands in for it, and the limit is
  lifted again once twice that rate is reached.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Pacer"]

#: Seconds of pause when a throttle carries no Retry-After.
DEFAULT_PAUSE = 1.0
#: At most this share of an interval may be made up when a dial went out late: in any
#: one-second window at most ``floor(rate + TOLERANCE) + 1`` dials, i.e. ``rate + 1``
#: for an integer rate.
TOLERANCE = 0.5
#: Real seconds of event-loop lag made up at most (a fraction of an interval at high
#: rates, nothing that matters at low ones).
LAG = 0.002
#: Lowest rate AIMD goes down to (dials per second).
MIN_RATE = 0.1


class Pacer:
    """Dial pacing: a one-token bucket at ``rate`` dials per second (``None``: no limit),
    with a pause and an AIMD-controlled rate."""

    __slots__ = (
        "_last_change",
        "_next",
        "_recent",
        "_reference",
        "ceiling",
        "decrease",
        "increase_every",
        "lag",
        "paused_until",
        "rate",
        "throttles",
    )

    def __init__(
        self,
        rate: float | None,
        *,
        decrease: float = 0.5,
        increase_every: float = 1.0,
        lag: float = LAG,
    ) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"cps: must be a finite number > 0 or None, got {rate!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease: must be within (0, 1), got {decrease!r}")
        self.ceiling = rate
        self.rate = rate
        self.lag = lag
        self.decrease = decrease
        self.increase_every = increase_every
        self.paused_until = -math.inf
        self.throttles = 0
        self._next = -math.inf
        self._last_change = -math.inf
        self._reference: float | None = None  # the rate that drew a throttle (no ceiling)
        self._recent: deque[float] = deque()  # dial times of the last second

    def delay(self, now: float) -> float:
        """Seconds to wait before the next dial may go (0.0: now)."""
        ready = self.paused_until
        if self.rate is not None and self._next > ready:
            ready = self._next
        return ready - now if ready > now else 0.0

    def take(self, now: float) -> None:
        """Record a dial sent at ``now`` (after ``delay(now)`` returned 0)."""
        recent = self._recent
        recent.append(now)
        while recent[0] <= now - 1.0:
            recent.popleft()
        rate = self.rate
        if rate is None:
            return
        interval = 1.0 / rate
        if now - self._next >= interval:
            # idle (no target, no free slot) or stalled: the bucket's one token is all
            self._next = now + interval
        else:
            # late by less than an interval: keep the schedule, so that loop lag does not
            # lower the rate, but never come closer than interval - slack
            slack = min(interval * TOLERANCE, self.lag)
            self._next = max(self._next + interval, now + interval - slack)
        self._grow(now)

    def observed(self, now: float) -> float:
        """Dials in the last second."""
        recent = self._recent
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        return float(len(recent))

    def throttle(self, now: float, retry_after: float | None) -> bool:
        """The platform refused a dial for its rate: pause, and lower the rate once per
        pause. Returns whether the rate was lowered."""
        pause = DEFAULT_PAUSE if retry_after is None or retry_after < 0 else retry_after
        lowered = False
        if now >= self.paused_until:
            self.throttles += 1
            current = self.rate
            if current is None:
                current = max(self.observed(now), 1.0)
                self._reference = current
            self.rate = max(MIN_RATE, current * self.decrease)
            lowered = True
        self.paused_until = max(self.paused_until, now + pause)
        self._last_change = self.paused_until
        self._next = max(self._next, self.paused_until)
        return lowered

    def _grow(self, now: float) -> None:
        rate = self.rate
        if rate is None or now - self._last_change < self.increase_every:
            return
        ceiling = self.ceiling
        if ceiling is not None:
            if rate >= ceiling:
                return
            self.rate = min(ceiling, rate + ceiling / 10)
        else:
            reference = self._reference or rate
            rate += reference / 10
            self.rate = None if rate >= 2 * reference else rate
        self._last_change = now
