"""A faithful local SignalWire space for tests, demos and benchmarks.

::

    from signalwire_calls.testing import Callee, FaultPlan, Simulator

    async with Simulator(time_scale=0.01) as sim:
        sim.script("+15550001", Callee.answers(after=2, digits="1#"))
        sim.faults.drop_webhook(event_type="calling.call.play", state="finished")
        ...  # POST commands to sim.url with Basic auth sim.project:sim.token
        call = await sim.wait_for_call(to="+15550001")
        await sim.wait_for_call_state(call.id, "answered")

Dials are paced at ``cps`` calls per simulated second (1, as on the platform; ``cps=None``
lifts the limit), and the simulator can place inbound calls to an application's SWML
URL::

    call = await sim.place_inbound(from_="+15550001", to="+15550002", url=swml_url,
                                   callee=Callee.answers(digits="1#"))

``SimulatorThread`` runs a simulator on an event loop in a thread of its own, usable
from any test runner or loop; the pytest plugin's ``signalwire_simulator`` fixture is
one. The command line ``signalwire-calls simulator --help`` serves one from a shell.
``RoundRobinFront`` stands for a load balancer in front of several webhook receivers.
"""

from __future__ import annotations

from ._callees import Callee, load_callees, parse_callees
from ._faults import CommandRule, FaultPlan, WebhookRule
from ._front import RoundRobinFront
from ._model import Operation, SimCall
from ._server import ReceivedCommand, Simulator
from ._threaded import SimulatorOptions, SimulatorThread
from ._webhooks import WebhookRecord

__all__ = [
    "Callee",
    "CommandRule",
    "FaultPlan",
    "Operation",
    "ReceivedCommand",
    "RoundRobinFront",
    "SimCall",
    "Simulator",
    "SimulatorOptions",
    "SimulatorThread",
    "WebhookRecord",
    "WebhookRule",
    "load_callees",
    "parse_callees",
]
