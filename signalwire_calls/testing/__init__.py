"""A faithful local SignalWire space for tests, demos and benchmarks.

::

    from signalwire_calls.testing import Callee, FaultPlan, Simulator

    async with Simulator(time_scale=0.01) as sim:
        sim.script("+15550001", Callee.answers(after=2, digits="1#"))
        sim.faults.drop_webhook(event_type="calling.call.play", state="finished")
        ...  # POST commands to sim.url with Basic auth sim.project:sim.token
        call = await sim.wait_for_call(to="+15550001")
        await sim.wait_for_call_state(call.id, "answered")

The pytest plugin provides the ``signalwire_simulator`` fixture.
"""

from __future__ import annotations

from ._callees import Callee, load_callees, parse_callees
from ._faults import CommandRule, FaultPlan, WebhookRule
from ._model import Operation, SimCall
from ._server import ReceivedCommand, Simulator
from ._webhooks import WebhookRecord

__all__ = [
    "Callee",
    "CommandRule",
    "FaultPlan",
    "Operation",
    "ReceivedCommand",
    "SimCall",
    "Simulator",
    "WebhookRecord",
    "WebhookRule",
    "load_callees",
    "parse_callees",
]
