"""The retry policy's pure functions, table-driven."""

from __future__ import annotations

import email.utils
import random

import pytest

from signalwire_calls._retry import (
    Failure,
    RetryPolicy,
    compute_delay,
    parse_retry_after,
    should_retry,
)
from signalwire_calls.errors import ConfigurationError

NOW = 1_700_000_000.0


class FixedRandom:
    """An rng whose ``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


# --------------------------------------------------------------------------- should_retry

POLICY = RetryPolicy(max_attempts=3)

# (command, has_control_id, status, failure, expected)
CASES: list[tuple[str, bool, int | None, Failure, bool]] = [
    # refused before acting: always
    ("dial", False, 429, "status", True),
    ("dial", False, 503, "status", True),
    ("calling.end", False, 429, "status", True),
    ("calling.play", True, 503, "status", True),
    # gateway errors: only when a resend is safe
    ("dial", False, 502, "status", False),
    ("dial", False, 504, "status", False),
    ("calling.end", False, 502, "status", True),  # ending twice is harmless
    ("update", False, 504, "status", False),
    ("calling.play", True, 502, "status", True),
    ("calling.record.stop", True, 504, "status", True),
    # never: 500 and client errors
    ("calling.play", True, 500, "status", False),
    ("dial", False, 500, "status", False),
    ("calling.play", True, 400, "status", False),
    ("calling.play", True, 404, "status", False),
    ("calling.play", True, 409, "status", False),
    ("calling.play", True, 422, "status", False),
    ("calling.play", True, 501, "status", False),
    # not sent: always
    ("dial", False, None, "connect_not_sent", True),
    ("calling.end", False, None, "connect_not_sent", True),
    ("calling.transfer", False, None, "connect_not_sent", True),
    # maybe sent: only with a control_id, never a dial
    ("dial", False, None, "connect_maybe_sent", False),
    ("dial", True, None, "connect_maybe_sent", False),
    ("calling.end", False, None, "connect_maybe_sent", True),
    ("calling.transfer", False, None, "connect_maybe_sent", False),
    ("update", False, None, "connect_maybe_sent", False),
    ("calling.play", True, None, "connect_maybe_sent", True),
    ("calling.collect", True, None, "connect_maybe_sent", True),
    # timeouts: like maybe sent
    ("dial", False, None, "timeout", False),
    ("calling.end", False, None, "timeout", True),
    ("calling.play", True, None, "timeout", True),
    ("calling.tap.stop", True, None, "timeout", True),
    # waited for a connection slot until the budget ran out: never
    ("dial", False, None, "pool_timeout", False),
    ("calling.end", False, None, "pool_timeout", False),
    ("calling.play", True, None, "pool_timeout", False),
]


@pytest.mark.parametrize(("command", "has_control_id", "status", "failure", "expected"), CASES)
def test_should_retry_table(
    command: str, has_control_id: bool, status: int | None, failure: Failure, expected: bool
) -> None:
    got = should_retry(
        command=command,
        has_control_id=has_control_id,
        status=status,
        failure=failure,
        attempt=1,
        policy=POLICY,
    )
    assert got is expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, True), (2, True), (3, False), (4, False)])
def test_should_retry_stops_at_max_attempts(attempt: int, expected: bool) -> None:
    got = should_retry(
        command="dial",
        has_control_id=False,
        status=None,
        failure="connect_not_sent",
        attempt=attempt,
        policy=POLICY,
    )
    assert got is expected


def test_single_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert not should_retry(
        command="calling.play",
        has_control_id=True,
        status=429,
        failure="status",
        attempt=1,
        policy=policy,
    )


# --------------------------------------------------------------------------- parse_retry_after


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("2", 2.0),
        (" 7 ", 7.0),
        ("0.25", 0.25),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        (_http_date(NOW + 30), 30.0),
        (_http_date(NOW - 30), 0.0),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


# --------------------------------------------------------------------------- compute_delay


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.0, 0.0), (2.0, 2.0), (60.0, 60.0), (3600.0, 60.0), (-5.0, 0.0)],
)
def test_retry_after_wins_and_is_capped(retry_after: float, expected: float) -> None:
    policy = RetryPolicy(retry_after_cap=60.0, backoff_base=100.0)
    assert compute_delay(policy, 1, retry_after, FixedRandom(0.5)) == expected


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (100, 8.0), (10_000, 8.0)],
)
def test_backoff_without_jitter_doubles_to_cap(attempt: int, expected: float) -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=8.0, jitter=False)
    assert compute_delay(policy, attempt, None, FixedRandom(0.9)) == expected
    assert compute_delay(policy.replace(jitter="none"), attempt, None, FixedRandom(0.1)) == expected


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        (True, 0.0, 2.0),
        (True, 0.5, 3.0),
        ("equal", 0.0, 2.0),
        ("equal", 1.0, 4.0),
        ("full", 0.0, 0.0),
        ("full", 0.25, 1.0),
        ("full", 1.0, 4.0),
    ],
)
def test_jitter_modes(jitter: bool | str, draw: float, expected: float) -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=8.0, jitter=jitter)  # type: ignore[arg-type]
    assert compute_delay(policy, 3, None, FixedRandom(draw)) == expected


def test_jitter_stays_within_bounds_with_a_real_rng() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=8.0)
    rng = random.Random(7)
    for attempt in range(1, 10):
        cap = min(8.0, 0.5 * 2 ** (attempt - 1))
        delays = [compute_delay(policy, attempt, None, rng) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(set(delays)) > 1


# --------------------------------------------------------------------------- RetryPolicy


def test_policy_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.backoff_base, policy.backoff_cap) == (3, 0.5, 8.0)
    assert (policy.jitter, policy.retry_after_cap) == (True, 60.0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_base": -1.0}, "backoff_base"),
        ({"backoff_cap": float("inf")}, "backoff_cap"),
        ({"retry_after_cap": float("nan")}, "retry_after_cap"),
        ({"jitter": "gaussian"}, "jitter"),
    ],
)
def test_policy_validation_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RetryPolicy(**overrides)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=field):
        RetryPolicy().replace(**overrides)  # type: ignore[arg-type]


def test_policy_replace_copies_with_overrides() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_cap=2.0)
    copy = policy.replace(max_attempts=1, jitter=False)
    assert copy == RetryPolicy(max_attempts=1, backoff_cap=2.0, jitter=False)
    assert policy.max_attempts == 5
    with pytest.raises(AttributeError):
        policy.max_attempts = 2  # type: ignore[misc]
