"""Chaos: a few hundred concurrent full flows, mixed callees, every fault of the fault
plan. Nothing wrong, nothing duplicated, nothing hanging, nothing left behind."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from signalwire_calls import CallSession, RetryPolicy
from signalwire_calls.testing import Simulator
from signalwire_calls.testing._chaos import (
    CALLEES,
    chaos_faults,
    dials_per_number,
    run_flows,
    script_numbers,
)

FLOWS = 300


@pytest.mark.timeout(60)
async def test_chaos_flows_end_right_and_leave_nothing(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    async with Simulator(
        time_scale=0.2, cps=None, faults=chaos_faults(seed=11), webhook_backoff=0.05, seed=3
    ) as sim:
        for number, callee in script_numbers(FLOWS).items():
            sim.script(number, callee)

        def record_url(call_id: str, control_id: str) -> str | None:
            op = sim.operation(call_id, control_id, "record")
            url = op.data.get("url")
            return url if isinstance(url, str) else None

        async with CallSession(
            space=sim.base_url,
            project=sim.project,
            token=sim.token,
            signing_key=sim.signing_key,
            call_end_grace=1.0,
            retry=RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_cap=0.1),
        ) as session:
            with caplog.at_level(logging.WARNING):
                report = await run_flows(session, FLOWS, wait=8.0, record_url=record_url)
            # every flow ended its call; give the grace periods time to run out
            for _ in range(100):
                stats = session.stats().registry
                if (stats.live_calls, stats.pending_operations, stats.buffered_now) == (0, 0, 0):
                    break
                await asyncio.sleep(0.05)
            stats = session.stats().registry
            dials = dials_per_number(sim.commands)
    gc.collect()
    print("\n" + report.render())
    assert len(report.outcomes) == FLOWS
    assert report.wrong == []
    assert {o.kind for o in report.outcomes} <= {"completed", "ended", "error"}
    # every script produced its expected result at least once despite the faults
    by_script = {(o.script, o.kind) for o in report.outcomes}
    assert ("answer", "completed") in by_script
    for script in ("busy", "no_answer", "hangup_mid_collect"):
        assert (script, "ended") in by_script, script
    assert max(dials.values()) == 1, "a dial was carried out twice"
    assert (stats.live_calls, stats.pending_operations, stats.buffered_now) == (0, 0, 0)
    assert unhandled == []
    assert "exception was never retrieved" not in caplog.text
    assert set(CALLEES) == {o.script for o in report.outcomes}
