"""An outbound campaign: 200 numbers, at most 20 live calls, 20 dials per second,
answering-machine detection (a message is left on machines), busy and no-answer retries,
a journal, a live progress view and a summary.

It runs against the bundled simulator (a local SignalWire space) 100 times faster than
real time, with a mix of people, busy lines, unanswered phones, failures and answering
machines, so it costs nothing and needs no account. Against a real space, the same
campaign is one command (credentials from the SIGNALWIRE_* environment variables)::

    signalwire-calls campaign run targets.csv --from +15559870000 --url https://... \\
        --flow campaign_flow:remind --amd --cps 1 --concurrency 20 --journal reminders.db

Run it again on the same journal (``--resume``) and it picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

from campaign_flow import leave_message, remind

from signalwire_calls import CallSession
from signalwire_calls.campaign import Campaign, MachineDetection, RetryRule, Target
from signalwire_calls.testing import Callee, Simulator

CALLER = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
TIME_SCALE = 0.01  # 100 simulated seconds take 1 real second


def callee_for(i: int) -> Callee:
    """Who answers number ``i``: mostly people, some busy, absent, broken or machines."""
    kind = i % 10
    if kind == 7:
        return Callee.busy()
    if kind == 8:
        return Callee.no_answer(after=20)
    if kind == 9:
        return Callee.voicemail(greeting=4, beep=True)
    if i % 50 == 3:
        return Callee.fails()
    return Callee.answers(after=1 + i % 4)


async def main() -> int:
    targets = [Target(f"+1555010{i:04d}", {"name": f"customer {i}"}) for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        journal = os.path.join(tmp, "reminders.db")
        async with Simulator(time_scale=TIME_SCALE, cps=None) as sim:
            for i, target in enumerate(targets):
                sim.script(target.number, callee_for(i))
            session = CallSession(
                space=sim.base_url,
                project=sim.project,
                token=sim.token,
                signing_key=sim.signing_key,
            )
            async with session:
                campaign = Campaign(
                    session,
                    targets,
                    remind,
                    from_=CALLER,
                    swml=SWML,
                    concurrency=20,
                    cps=20,
                    journal=journal,
                    machine_detection=MachineDetection(
                        on_machine="voicemail", voicemail=leave_message
                    ),
                    retry={
                        "busy": RetryRule(times=1, after=60),
                        "no_answer": RetryRule(times=1, after=120),
                    },
                    progress="auto",
                    time_scale=TIME_SCALE,
                )
                report = await campaign.run()
        print(report.summary(), end="")
        stats = campaign.stats()
        print(f"{stats.cps:.1f} dials per simulated second on average, {stats.dials} dials")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
