"""``calling.play``: runs for the length of its media (times ``loop``), pausable.

States: ``playing`` -> (``paused`` <-> ``playing``)* -> ``finished`` | ``error`` (an
audio URL listed in ``Simulator.unplayable``). A ringtone without a duration plays until
stopped or until the call ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from ._model import Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND", "media_seconds"]

TTS_CHARS_PER_SECOND = 15.0


def media_seconds(engine: Engine, item: Mapping[str, Any]) -> float:
    """How long one media item plays (simulated seconds; ``inf`` = until stopped)."""
    kind = item.get("type")
    p = item.get("params") or {}
    if kind == "tts":
        return max(0.3, len(str(p.get("text", ""))) / TTS_CHARS_PER_SECOND)
    if kind == "silence":
        return float(p.get("duration", 0.0))
    if kind == "audio":
        return float(engine.audio_lengths.get(str(p.get("url")), 3.0))
    if kind == "ringtone":
        d = p.get("duration")
        return float(d) if d is not None else math.inf
    return 1.0


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start playing ``params["play"]``."""
    op = engine.start_op(call, "play", params)
    items = params.get("play") or []
    loop = int(params.get("loop", 1))
    once = sum(media_seconds(engine, i) for i in items)
    total = math.inf if loop == 0 and once > 0 else once * max(loop, 1)
    broken = any(
        i.get("type") == "audio" and (i.get("params") or {}).get("url") in engine.unplayable
        for i in items
    )
    op.data.update(volume=params.get("volume", 0), remaining=total, resumed=time.monotonic())
    engine.op_event(op, "playing", _params(engine, op, "playing"))
    if broken:
        engine.later(op.timers, 0.05, _error, engine, op)
    elif math.isfinite(total):
        engine.later(op.timers, total, end, engine, op, "done")
    return op


def _params(engine: Engine, op: Operation, state: str) -> dict[str, Any]:
    return {**engine.base(op), "state": state}


def _error(engine: Engine, op: Operation) -> None:
    if not op.done:
        engine.op_event(op, "error", _params(engine, op, "error"), terminal=True)


def end(engine: Engine, op: Operation, _why: str) -> None:
    """Finish the play (it ran out, was stopped, or the call ended)."""
    if not op.done:
        engine.op_event(op, "finished", _params(engine, op, "finished"), terminal=True)


def pause(engine: Engine, op: Operation, _params_: dict[str, Any]) -> None:
    """``calling.play.pause``: stop the clock and send ``paused``."""
    if engine.pause_clock(op):
        engine.op_event(op, "paused", _params(engine, op, "paused"))


def resume(engine: Engine, op: Operation, _params_: dict[str, Any]) -> None:
    """``calling.play.resume``: send ``playing`` and run what was left."""
    if engine.resume_clock(op) is None:
        return
    engine.op_event(op, "playing", _params(engine, op, "playing"))
    if math.isfinite(op.data["remaining"]):
        engine.later(op.timers, op.data["remaining"], end, engine, op, "done")


def volume(_engine: Engine, op: Operation, params: dict[str, Any]) -> None:
    """``calling.play.volume``: remember the new volume (no event)."""
    op.data["volume"] = params.get("volume")


KIND = OpKind(
    "play",
    start=start,
    end=end,
    actions={"stop": stop_action, "pause": pause, "resume": resume, "volume": volume},
)
