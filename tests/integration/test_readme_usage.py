"""The README's "Testing your own call flows" snippet, as a user would write it."""

from __future__ import annotations

from signalwire_calls import CallSession, Digits
from signalwire_calls.testing import Callee, SimulatorThread


async def test_menu(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    sim.script("+15551230001", Callee.answers(after=1.0, digits="2#"))
    async with CallSession(
        space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
    ) as session:
        call = await session.dial(
            to="+15551230001", from_="+15559870000", url="https://example.com/swml"
        )
        await call.answered(timeout=5)
        menu = await call.collect(digits=Digits(max=1, terminators="#"))
        assert (await menu.finished(timeout=5)).digits == "2"
