"""An IVR for inbound calls: greet, ask for a digit inline, branch, record a message, hang up.

The session serves the SWML webhook a number's incoming calls are routed to
(``session.inbound_url``), answers each call with ``answer`` + ``sleep``, and runs
``ivr(call, request)`` for it. Here the bundled simulator places three calls to that
URL: callers who press 1, 2 and 9.

Against a real space: set ``SIGNALWIRE_*``, ``SIGNALWIRE_PUBLIC_URL`` (where the
platform reaches this program, e.g. a tunnel to port 8080) and ``SIGNALWIRE_SIGNING_KEY``,
route a number's incoming calls to the printed inbound URL, and leave this running.
"""

from __future__ import annotations

import asyncio
import os
import sys

from signalwire_calls import (
    Call,
    CallEndedError,
    CallSession,
    Digits,
    InboundRequest,
    RecordAudio,
    WaitTimeout,
    tts,
)
from signalwire_calls.testing import Callee, Simulator

BOT = "+15550000100"
CALLERS = {
    "+15553000001": Callee.answers(digits="1", input_delay=0.5),
    "+15553000002": Callee.answers(digits="2", input_delay=0.5, talk=3.0),
    "+15553000009": Callee.answers(digits="9", input_delay=0.5),
}


async def ivr(call: Call, request: InboundRequest) -> None:
    """One caller's path through the menu; returning hangs up."""
    who = request.from_
    try:
        menu = await call.prompt(
            tts("Thanks for calling. Press 1 for opening hours, 2 to leave a message."),
            digits=Digits(max=1),
            initial_timeout=5,
        )
        choice = await menu.finished(timeout=30)
        print(f"   {who} pressed {choice.digits!r} ({choice.kind})")
        if choice.digits == "1":
            hours = await call.play(tts("We are open from nine to five, Monday to Friday."))
            await hours.finished(timeout=30)
        elif choice.digits == "2":
            beep = await call.play(tts("Please leave your message after the tone."))
            await beep.finished(timeout=30)
            message = await call.record(RecordAudio(beep=True, end_silence_timeout=1.0))
            recording = await message.finished(timeout=60)
            print(f"   {who} left a message: {recording.url} ({recording.duration} s)")
        else:
            sorry = await call.play(tts("Sorry, that is not an option. Goodbye."))
            await sorry.finished(timeout=30)
    except CallEndedError:
        print(f"   {who} hung up")
    except WaitTimeout as exc:
        print(f"   {who}: {exc}")


async def main() -> int:
    if os.environ.get("SIGNALWIRE_SPACE") and os.environ.get("SIGNALWIRE_PUBLIC_URL"):
        session = CallSession.from_env(receiver_host="0.0.0.0", receiver_port=8080)
        session.on_inbound(ivr)
        async with session:
            print(f"route your number's incoming calls to {session.inbound_url}")
            await asyncio.Event().wait()  # serve until interrupted
        return 0
    async with Simulator(time_scale=0.05) as sim:
        session = CallSession(
            space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
        )
        session.on_inbound(ivr)
        async with session:
            print(f"inbound calls are answered at {session.inbound_url}\n")
            placed = [
                await sim.place_inbound(
                    from_=number, to=BOT, url=session.inbound_url, callee=callee
                )
                for number, callee in CALLERS.items()
            ]
            for call in placed:
                await sim.wait_for_call_state(call.id, "ended", timeout=30)
            stats = session.stats()
            assert stats.inbound is not None
            print(
                f"\n{stats.inbound.handled} calls handled, {stats.inbound.failed} failed, "
                f"{stats.registry.live_calls} still live"
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
