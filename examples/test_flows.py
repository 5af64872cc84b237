"""Testing call flows against the simulator: a pytest file to copy into your project.

The ``signalwire_simulator`` fixture comes with signalwire_calls (a pytest plugin, no
set-up): a local SignalWire space serving on 127.0.0.1 from a thread of its own, running
100 times faster than real time (``time_scale=0.01``), stopped after each test. Options
per test, class or module go in the ``signalwire_simulator`` marker.

The tests are marked ``@pytest.mark.asyncio`` (pytest-asyncio, strict or auto mode); with
anyio's plugin mark them ``@pytest.mark.anyio`` instead. Run them with ``pytest
test_flows.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from signalwire_calls import (
    Call,
    CallEndedError,
    CallSession,
    Digits,
    InboundRequest,
    WaitTimeout,
    tts,
)
from signalwire_calls.testing import Callee, FaultPlan, SimulatorThread, WebhookRule

CUSTOMER = "+15551230001"
SHOP = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


def session_for(sim: SimulatorThread) -> CallSession:
    """A session talking to the simulator (its receiver on 127.0.0.1, webhooks signed)."""
    return CallSession(
        space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
    )


# -- the code under test: your flows ------------------------------------------------------


async def confirm_order(call: Call) -> bool:
    """Ask the customer to confirm: True for 1, False for anything else."""
    await call.answered(timeout=30)
    ask = await call.prompt(
        tts("Press 1 to confirm your order, 2 to cancel it."),
        digits=Digits(max=1),
        initial_timeout=5,
    )
    answer = await ask.finished(timeout=30)
    return answer.digits == "1"


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_customer_confirms(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    sim.script(CUSTOMER, Callee.answers(after=2, digits="1"))
    async with session_for(sim) as session:
        call = await session.dial(to=CUSTOMER, from_=SHOP, swml=SWML)
        assert await confirm_order(call) is True
        await call.end()
        assert await call.ended(timeout=5) == "hangup"
    # what the platform received, in order
    assert [c.command for c in sim.commands] == [
        "dial",
        "calling.collect",
        "calling.play",
        "calling.play.stop",  # the customer pressed 1 during the prompt (barge-in)
        "calling.end",
    ]


@pytest.mark.asyncio
async def test_busy_line_ends_the_call(signalwire_simulator: SimulatorThread) -> None:
    signalwire_simulator.script(CUSTOMER, Callee.busy())
    async with session_for(signalwire_simulator) as session:
        call = await session.dial(to=CUSTOMER, from_=SHOP, swml=SWML)
        with pytest.raises(CallEndedError) as ended:
            await confirm_order(call)
        assert ended.value.end_reason == "busy"


@pytest.mark.asyncio
@pytest.mark.signalwire_simulator(callees={CUSTOMER: Callee.voicemail(greeting=4, beep=True)})
async def test_answering_machine_is_detected(signalwire_simulator: SimulatorThread) -> None:
    async with session_for(signalwire_simulator) as session:
        call = await session.dial(to=CUSTOMER, from_=SHOP, swml=SWML)
        await call.answered(timeout=5)
        detector = await call.detect_answering_machine(timeout=30)
        first = await detector.outcome(timeout=5)  # as soon as it is known
        assert first.kind == "machine"
        final = await detector.finished(timeout=5)  # after the greeting's beep
        assert final.beep


@pytest.mark.asyncio
@pytest.mark.signalwire_simulator(
    faults=FaultPlan(
        webhook_rules=[WebhookRule("drop", event_type="calling.call.play", state="finished")]
    )
)
async def test_lost_webhook_times_out(signalwire_simulator: SimulatorThread) -> None:
    """The play's ``finished`` webhook is lost: the wait ends with WaitTimeout, naming
    the last event seen, instead of hanging."""
    async with session_for(signalwire_simulator) as session:
        call = await session.dial(to=CUSTOMER, from_=SHOP, swml=SWML)
        await call.answered(timeout=5)
        play = await call.play(tts("Your order has shipped."))
        with pytest.raises(WaitTimeout) as timed_out:
            await play.finished(timeout=0.5)
        assert "(last event: calling.call.play playing)" in str(timed_out.value)
        assert not play.done  # the handle is intact: it may be awaited again


@pytest.mark.asyncio
async def test_inbound_caller_is_greeted(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    answers: asyncio.Queue[str | None] = asyncio.Queue()
    session = session_for(sim)

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        ask = await call.prompt(tts("Press a digit."), digits=Digits(max=1), initial_timeout=5)
        answers.put_nowait((await ask.finished(timeout=30)).digits)

    async with session:
        caller = Callee.answers(digits="7", input_delay=0.5)
        placed = await sim.place_inbound(
            from_=CUSTOMER, to=SHOP, url=session.inbound_url, callee=caller
        )
        assert await asyncio.wait_for(answers.get(), timeout=5) == "7"
        ended = await sim.wait_for_call_state(placed.id, "ended")  # the bot hung up
        assert ended.end_reason == "hangup"
