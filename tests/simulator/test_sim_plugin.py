"""The pytest plugin's ``signalwire_simulator`` fixture (loaded through the entry point)."""

from __future__ import annotations

import aiohttp

from signalwire_calls.testing import Callee, Simulator

from .helpers import Client


async def test_fixture_is_a_started_fast_simulator(signalwire_simulator: Simulator) -> None:
    sim = signalwire_simulator
    assert sim.time_scale <= 0.01
    assert sim.cps == 1.0  # the platform's default pace
    sim.script("+15550007", Callee.busy())
    async with aiohttp.ClientSession() as session:
        call_id = await Client(sim, session).dial("+15550007")
    call = await sim.wait_for_call_state(call_id, "ended", timeout=5)
    assert call.end_reason == "busy"
