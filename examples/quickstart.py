"""End-to-end call flow: dial, play, collect, record, answering-machine detection, hang up.

With no SignalWire credentials in the environment it starts the bundled simulator (a
local SignalWire space) and runs against it. With ``SIGNALWIRE_SPACE``,
``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` and ``SIGNALWIRE_PUBLIC_URL`` (where
the platform can reach this program's webhook receiver, e.g. a tunnel to port 8080) set,
plus ``DEMO_TO``/``DEMO_FROM`` numbers, the same flow runs against a real space.

Run it with ``make demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from signalwire_calls import (
    CallSession,
    Digits,
    RecordAudio,
    TraceRecord,
    tts,
)
from signalwire_calls.testing import Callee, Simulator

HUMAN = "+15551230001"
VOICEMAIL = "+15551230002"
CALLER = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


def print_trace(record: TraceRecord) -> None:
    """One timeline line per command sent and event received."""
    arrow = "->" if record.kind == "command" else "<-"
    who = (record.call_id or "")[:8]
    op = f" op={record.control_id[-6:]}" if record.control_id else ""
    detail = f" {record.detail}" if record.detail else ""
    print(f"{record.at * 1000:9.1f} ms {arrow} {record.name:<28} call={who}{op}{detail}")


@contextlib.asynccontextmanager
async def environment() -> AsyncIterator[tuple[CallSession, str, str]]:
    """A session against a real space when configured, else the embedded simulator."""
    if os.environ.get("SIGNALWIRE_SPACE") and os.environ.get("SIGNALWIRE_PUBLIC_URL"):
        session = CallSession.from_env(trace=print_trace, receiver_port=8080)
        async with session:
            yield session, os.environ["DEMO_TO"], os.environ["DEMO_FROM"]
        return
    # The simulator scales every simulated duration: 0.05 turns a 20 s flow into 1 s.
    async with Simulator(time_scale=0.05) as sim:
        sim.script(HUMAN, Callee.answers(after=2.0, digits="1#"))
        sim.script(VOICEMAIL, Callee.voicemail(greeting=6.0, beep=True))
        print(f"simulator listening at {sim.base_url}")
        session = CallSession(
            space=sim.base_url,
            project=sim.project,
            token=sim.token,
            signing_key=sim.signing_key,
            trace=print_trace,
        )
        async with session:
            yield session, HUMAN, CALLER


async def main() -> int:
    async with environment() as (session, to, from_):
        print(f"webhooks arrive at {session.status_url}\n")
        call = await session.dial(to=to, from_=from_, swml=SWML)
        await call.answered(timeout=60)

        play = await call.play(tts("Welcome. Press 1 for sales, 2 for support."))
        await play.finished(timeout=60)

        menu = await call.collect(digits=Digits(max=1, terminators="#"), initial_timeout=5)
        choice = await menu.finished(timeout=60)
        print(f"\n   caller chose: {choice.kind} {choice.digits!r}\n")

        prompt = await call.play(tts("Please leave a short message after the tone."))
        await prompt.finished(timeout=60)
        # the recording ends by itself after 1 s of silence (or at 30 s)
        recording = await call.record(
            RecordAudio(format="wav", beep=True, end_silence_timeout=1.0, max_length=30)
        )
        rec = await recording.finished(timeout=60)
        print(f"\n   recording: {rec.url} ({rec.duration} s, {rec.size} bytes)\n")

        await call.end()
        print(f"\n   call ended: {await call.ended(timeout=60)}\n")

        if to == HUMAN:  # the second call reaches voicemail (simulator only)
            second = await session.dial(to=VOICEMAIL, from_=from_, swml=SWML)
            await second.answered(timeout=60)
            amd = await second.detect_answering_machine(timeout=30)
            outcome = await amd.outcome(timeout=60)
            print(f"\n   detection: {outcome.kind} ({outcome.value})\n")
            result = await amd.finished(timeout=60)
            print(f"\n   detector done: {result.kind}, beep={result.beep}\n")
            await second.play(tts("Hi, this is a reminder of your appointment tomorrow."))
            await second.end()
            await second.ended(timeout=60)
        stats = session.stats()
        print(
            f"\n{stats.commands_sent} commands sent, "
            f"{stats.registry.routed} events routed, "
            f"{stats.registry.duplicates} duplicates, {stats.registry.expired} expired"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
