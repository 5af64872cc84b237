"""Fixtures for end-to-end tests: our session -> the simulator -> our receiver, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from signalwire_calls import CallSession, RetryPolicy
from signalwire_calls.testing import Simulator

SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
CALLER = "+15559870000"
HUMAN = "+15551230001"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # No calls-per-second pacing: these tests dial up to hundreds of calls at once and
    # test the client, not the platform's queue.
    async with Simulator(time_scale=0.01, webhook_backoff=0.02, cps=None) as simulator:
        yield simulator


def make_session(sim: Simulator, **options: object) -> CallSession:
    options.setdefault("call_end_grace", 0.05)
    options.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_cap=0.05))
    return CallSession(
        space=sim.base_url,
        project=sim.project,
        token=sim.token,
        signing_key=sim.signing_key,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def session(sim: Simulator) -> AsyncIterator[CallSession]:
    async with make_session(sim) as s:
        yield s
