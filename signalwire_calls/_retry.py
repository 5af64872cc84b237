"""Retry policy as pure functions: which failed attempts may be sent again, and when.

Every calling command is a ``POST``, so a resend is only automatic when it cannot run a
command twice:

* ``429`` and ``503`` are always retried: the server refused before acting.
* A connection that failed before the request was written (``"connect_not_sent"``:
  refused, DNS, TLS, connect timeout) is always retried: nothing reached the server.
* ``502``/``504``, a connection lost after the request may have been written
  (``"connect_maybe_sent"``) and a read timeout (``"timeout"``) are retried only when a
  resend is safe: the command carries a ``control_id`` (the platform dedupes by it), or
  it is ``calling.end`` (ending an ended call is harmless: the retry gets a 404, which
  the caller reads as success). A ``dial`` is never resent there (a second call would
  ring), nor is ``update``/``transfer``/...
* A command that waited for a connection slot until its time budget ran out
  (``"pool_timeout"``) is not retried: the budget is the caller's patience.
* ``500`` and every other status are never retried.

The transport (``_transport``) reads these from the error it built (``request_sent``,
the timeout class, the status) and logs each decision at DEBUG.
"""

from __future__ import annotations

import email.utils
import math
from typing import Literal, Protocol, TypeAlias

import msgspec

from .errors import ConfigurationError

__all__ = [
    "Failure",
    "RetryPolicy",
    "compute_delay",
    "parse_retry_after",
    "should_retry",
]

#: How an attempt failed; see ``should_retry``.
Failure: TypeAlias = Literal[
    "connect_not_sent", "connect_maybe_sent", "timeout", "pool_timeout", "status"
]

#: Statuses the server answers before acting on the command: always safe to resend.
_REFUSED_STATUSES = frozenset({429, 503})
#: Statuses from a gateway: the command may or may not have run.
_GATEWAY_STATUSES = frozenset({502, 504})
#: Commands without a control_id that may run twice without harm.
_IDEMPOTENT_COMMANDS = frozenset({"calling.end"})


class _Random(Protocol):
    def random(self) -> float: ...


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often and how patiently a failed command is retried.

    ``max_attempts`` counts the first attempt (1 = never retry). The delay before attempt
    ``n + 1`` is the server's ``Retry-After`` (at most ``retry_after_cap`` seconds) when
    it sent one, else ``min(backoff_cap, backoff_base * 2 ** (n - 1))`` with jitter:
    ``"equal"`` (or ``True``) waits between half and all of it, ``"full"`` between zero
    and all of it, ``"none"`` (or ``False``) exactly that.

        RetryPolicy(max_attempts=5, backoff_cap=2.0)
    """

    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    jitter: bool | Literal["equal", "full", "none"] = True
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("backoff_base", "backoff_cap", "retry_after_cap"):
            value: float = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {value}")
        if self.jitter not in (True, False, "equal", "full", "none"):
            raise ConfigurationError(
                f"jitter must be True, False, 'equal', 'full' or 'none', got {self.jitter!r}"
            )

    def replace(
        self,
        *,
        max_attempts: int | None = None,
        backoff_base: float | None = None,
        backoff_cap: float | None = None,
        jitter: bool | Literal["equal", "full", "none"] | None = None,
        retry_after_cap: float | None = None,
    ) -> RetryPolicy:
        """A copy with the given fields changed (validated again)."""
        return RetryPolicy(
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
            backoff_base=self.backoff_base if backoff_base is None else backoff_base,
            backoff_cap=self.backoff_cap if backoff_cap is None else backoff_cap,
            jitter=self.jitter if jitter is None else jitter,
            retry_after_cap=self.retry_after_cap if retry_after_cap is None else retry_after_cap,
        )


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds (``"2"``, ``"0.5"``) or
    an HTTP-date (seconds from ``now``, a Unix time). ``None`` when absent or unreadable;
    a date in the past gives ``0.0``."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - now)


def compute_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: _Random
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next.

    ``Retry-After`` wins (capped at ``policy.retry_after_cap``); otherwise capped
    exponential backoff with the policy's jitter, drawing from ``rng.random()``.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), policy.retry_after_cap)
    backoff = min(policy.backoff_cap, policy.backoff_base * 2.0 ** min(attempt - 1, 62))
    jitter = policy.jitter
    if jitter == "full":
        return backoff * rng.random()
    if jitter is False or jitter == "none":
        return backoff
    return backoff / 2.0 + (backoff / 2.0) * rng.random()  # equal jitter


def should_retry(
    *,
    command: str,
    has_control_id: bool,
    status: int | None,
    failure: Failure,
    attempt: int,
    policy: RetryPolicy,
) -> bool:
    """Whether to send ``command`` again after failed attempt number ``attempt`` (1-based).

    ``failure`` says how the attempt failed: ``"connect_not_sent"`` (no connection, so
    the request was certainly not written), ``"connect_maybe_sent"`` (the connection
    dropped after the request may have been written), ``"timeout"`` (connected, but no
    answer in time), ``"pool_timeout"`` (never got a connection slot in time) or
    ``"status"`` (a non-2xx answer; ``status`` holds it).
    """
    if attempt >= policy.max_attempts or failure == "pool_timeout":
        return False
    if failure == "connect_not_sent":
        return True
    resend_safe = command in _IDEMPOTENT_COMMANDS or (has_control_id and command != "dial")
    if failure == "status":
        if status in _REFUSED_STATUSES:
            return True
        return status in _GATEWAY_STATUSES and resend_safe
    # "connect_maybe_sent" or "timeout": the server may have acted on the first request.
    return resend_safe
