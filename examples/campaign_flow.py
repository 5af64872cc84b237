"""The call flows of the campaign example (also usable with the CLI's ``--flow``).

    signalwire-calls campaign run targets.csv --from +15559870000 --simulate \\
        --flow campaign_flow:remind --amd --cps 20 --concurrency 50
"""

from __future__ import annotations

from signalwire_calls import Call, tts
from signalwire_calls.campaign import Target


async def remind(call: Call, target: Target) -> str:
    """Read the reminder to a person; the campaign hangs up when this returns."""
    name = target.data.get("name") or "there"
    play = await call.play(tts(f"Hello {name}, this is a reminder of your appointment."))
    await play.finished(timeout=60)
    return "reminded"


async def leave_message(call: Call, target: Target) -> str:
    """Leave a short message on an answering machine, after its beep."""
    play = await call.play(tts("Hello, this is a reminder of your appointment tomorrow."))
    await play.finished(timeout=60)
    return "voicemail left"
