"""``calling.record``: records while the callee talks, then stops on trailing silence.

States: ``recording`` -> (``paused`` <-> ``recording``)* -> ``finished`` | ``no_input``.
The length follows the callee script: ``input_delay`` + ``talk`` + ``end_silence_timeout``
(plus a beep), cut by ``max_length``; a silent callee gives ``no_input`` after
``initial_timeout``. A pause with ``behavior="skip"`` leaves the paused time out of the
reported duration.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ._model import Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND"]


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start recording with ``params["record"]["audio"]``."""
    op = engine.start_op(call, "record", params)
    audio = dict((params.get("record") or {}).get("audio") or {})
    callee = call.callee
    initial_timeout = float(audio.get("initial_timeout", 4.0))
    end_silence = float(audio.get("end_silence_timeout", 0.5))
    max_length = float(audio.get("max_length", 0) or 0)
    rec_id = engine.new_id()
    op.data.update(
        audio=audio,
        recording_id=rec_id,
        url=f"https://{engine.space}.signalwire.com/api/v1/recordings/{rec_id}/download",
        start_time=time.time(),
        resumed=time.monotonic(),
        heard=False,
    )
    beep = 0.5 if audio.get("beep") else 0.0
    talk = callee.talk
    if talk <= 0 or (initial_timeout > 0 and callee.input_delay > initial_timeout):
        length = initial_timeout + beep if initial_timeout > 0 else math.inf
        outcome = "no_input" if initial_timeout > 0 else "done"
    else:
        op.data["heard"] = True
        length = beep + callee.input_delay + talk + end_silence if end_silence > 0 else math.inf
        outcome = "done"
    if max_length > 0 and max_length < length:
        length, outcome = max_length, "done"
        op.data["heard"] = talk > 0
    op.data["remaining"] = length
    engine.op_event(op, "recording", _params(engine, op, "recording"))
    if math.isfinite(length):
        engine.later(op.timers, length, end, engine, op, outcome)
    return op


def _params(engine: Engine, op: Operation, state: str) -> dict[str, Any]:
    audio = op.data["audio"]
    return {
        **engine.base(op),
        "state": state,
        "url": op.data["url"],
        "recording_id": op.data["recording_id"],
        "record": {
            "audio": {
                "format": audio.get("format", "mp3"),
                "direction": audio.get("direction", "speak"),
                "stereo": bool(audio.get("stereo", False)),
            }
        },
    }


def end(engine: Engine, op: Operation, why: str) -> None:
    """Finish the recording: ``finished`` if anything was heard, else ``no_input``."""
    if op.done:
        return
    if op.data.get("paused"):
        _skip_paused(engine, op)
    elapsed = (time.monotonic() - op.started_at) / engine.time_scale
    duration = max(0.0, elapsed - op.data.get("skipped", 0.0))
    heard = op.data["heard"] or (why in ("stop", "hangup") and op.call.callee.talk > 0)
    state = "no_input" if why == "no_input" or not heard else "finished"
    audio = op.data["audio"]
    rate = 16000 * (2 if audio.get("stereo") else 1)
    params = _params(engine, op, state)
    params.update(
        duration=round(duration, 3),
        size=int(duration * rate) if state == "finished" else 0,
        start_time=op.data["start_time"],
        end_time=op.data["start_time"] + duration,
    )
    engine.op_event(op, state, params, terminal=True)


def _skip_paused(engine: Engine, op: Operation) -> None:
    paused_at = op.data.pop("paused")
    if op.data.get("behavior", "skip") == "skip":
        op.data["skipped"] = (
            op.data.get("skipped", 0.0) + (time.monotonic() - paused_at) / engine.time_scale
        )


def pause(engine: Engine, op: Operation, params: dict[str, Any]) -> None:
    """``calling.record.pause``: ``paused`` with its ``pause_behavior`` (default skip)."""
    if not engine.pause_clock(op):
        return
    op.data["behavior"] = params.get("behavior") or "skip"
    event = _params(engine, op, "paused")
    event["pause_behavior"] = op.data["behavior"]
    engine.op_event(op, "paused", event)


def resume(engine: Engine, op: Operation, _params_: dict[str, Any]) -> None:
    """``calling.record.resume``: back to ``recording`` for what was left."""
    paused_for = engine.resume_clock(op)
    if paused_for is None:
        return
    if op.data.get("behavior", "skip") == "skip":
        op.data["skipped"] = op.data.get("skipped", 0.0) + paused_for
    engine.op_event(op, "recording", _params(engine, op, "recording"))
    if math.isfinite(op.data["remaining"]):
        engine.later(op.timers, op.data["remaining"], end, engine, op, "done")


KIND = OpKind(
    "record",
    start=start,
    end=end,
    actions={"stop": stop_action, "pause": pause, "resume": resume},
)
