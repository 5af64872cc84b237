"""``calling.detect``: answering machine, fax tone or digit detection from the callee script.

A voicemail callee gives ``MACHINE`` (then ``NOT_READY`` and ``READY`` with the beep
when ``detect_message_end``), a talking person ``HUMAN``, silence ``UNKNOWN``; a fax
callee its tone; digit detection each scripted digit asked for. Every detect ends with
``finished``, at the latest after its ``timeout``.
"""

from __future__ import annotations

from typing import Any

from ._model import Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND"]


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start detecting; every event is scheduled at once from the callee script."""
    op = engine.start_op(call, "detect", params)
    detect = params.get("detect") or {}
    kind = detect.get("type", "machine")
    dp = detect.get("params") or {}
    timeout = float(params.get("timeout", 30.0))
    callee = call.callee
    op.data.update(dtype=kind)
    plan: list[tuple[float, str, bool]] = []  # (at, event, beep)
    finish_at = timeout
    if kind == "machine":
        initial_timeout = float(dp.get("initial_timeout", 4.5))
        if callee.behavior == "voicemail":
            t_machine = min(callee.greeting, float(dp.get("machine_voice_threshold", 1.25)) + 0.75)
            plan.append((t_machine, "MACHINE", False))
            if dp.get("detect_message_end", True) is not False:
                plan.append((t_machine + 0.01, "NOT_READY", False))
                t_ready = max(callee.greeting, t_machine + 0.02)
                plan.append((t_ready, "READY", callee.beep))
                finish_at = t_ready + 0.01
            else:
                finish_at = t_machine + 0.01
        elif callee.behavior == "answer" and callee.talk > 0:
            plan.append((min(1.0, initial_timeout), "HUMAN", False))
            finish_at = min(1.0, initial_timeout) + 0.01
        else:
            plan.append((initial_timeout, "UNKNOWN", False))
            finish_at = initial_timeout + 0.01
    elif kind == "fax":
        tone = dp.get("tone")
        if callee.behavior == "fax" and (tone is None or str(tone).upper() == callee.fax_tone):
            plan.append((1.0, callee.fax_tone, False))
            finish_at = 1.01
    elif kind == "digit":
        wanted = str(dp.get("digits", "")).upper()
        script = callee.input_for("digits", call.input_index["digits"]) or ""
        t = callee.input_delay
        for ch in script:
            if not wanted or ch.upper() in wanted:
                plan.append((t, ch, False))
            t += callee.digit_interval
    for at, event, beep in plan:
        if at < timeout:
            engine.later(op.timers, at, _event, engine, op, event, beep)
    engine.later(op.timers, min(finish_at, timeout), end, engine, op, "done")
    return op


def _params(engine: Engine, op: Operation, event: str, beep: bool = False) -> dict[str, Any]:
    inner: dict[str, Any] = {"event": event}
    if beep:
        inner["beep"] = True
    return {
        **engine.base(op),
        "segment_id": op.call.segment_id,
        "detect": {"type": op.data["dtype"], "params": inner},
    }


def _event(engine: Engine, op: Operation, event: str, beep: bool) -> None:
    if not op.done:
        engine.op_event(op, event, _params(engine, op, event, beep))


def end(engine: Engine, op: Operation, _why: str) -> None:
    """Send ``finished`` (timeout, stop or the call ending)."""
    if not op.done:
        engine.op_event(op, "finished", _params(engine, op, "finished"), terminal=True)


KIND = OpKind("detect", start=start, end=end, actions={"stop": stop_action})
