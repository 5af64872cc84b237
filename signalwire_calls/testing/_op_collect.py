"""``calling.collect``: the callee's scripted digits or speech, or silence.

One result ends a plain collect (``digit``, ``speech``, ``no_input``, ``no_match``); a
continuous one reports each result with ``state: "collecting"`` and listens again until
stopped. ``start_of_input`` and interim speech results are sent when asked for.

The initial-timeout clock follows the documented default of ``start_input_timers``
(false): unless the command says ``true``, no ``no_input`` can happen until
``calling.collect.start_input_timers`` arrives. A stopped collect sends ``no_input``;
one cut short by the call ending sends ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._model import Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND"]

SPEECH_WORD_SECONDS = 0.3


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start collecting; the callee's answer is scheduled at once."""
    op = engine.start_op(call, "collect", params)
    op.data.update(
        continuous=bool(params.get("continuous", False)),
        partial=bool(params.get("partial_results", False)),
        soi=bool(params.get("send_start_of_input", False)),
        timers_started=params.get("start_input_timers") is True,
        input_started=False,
        round=0,
    )
    _round(engine, op)
    return op


def _event(
    engine: Engine,
    op: Operation,
    result: dict[str, Any],
    *,
    final: bool | None = None,
    state: str | None = None,
    terminal: bool = False,
) -> None:
    params = {**engine.base(op), "result": result}
    if op.data["partial"] and final is not None:
        params["final"] = final
    if op.data["continuous"]:
        params["state"] = state or ("finished" if terminal else "collecting")
    engine.op_event(op, result["type"] if state is None else state, params, terminal=terminal)


def _round(engine: Engine, op: Operation) -> None:
    """Schedule the callee's answer to one collect round (and the no-input timer)."""
    call, params, callee = op.call, op.params, op.call.callee
    digits_cfg = params.get("digits")
    speech_cfg = params.get("speech")
    initial_timeout = float(params.get("initial_timeout", 5.0))
    op.data.update(initial_timeout=initial_timeout, input_started=False)
    continuous = op.data["continuous"]
    idx_d = call.input_index["digits"]
    idx_s = call.input_index["speech"]
    if continuous:
        d = callee.digits[idx_d] if idx_d < len(callee.digits) else None
        s = callee.speech[idx_s] if idx_s < len(callee.speech) else None
    else:
        d = callee.input_for("digits", idx_d)
        s = callee.input_for("speech", idx_s)
    t0 = callee.input_delay
    # With the clock running from the start, a callee slower than the initial timeout
    # is never heard; with it held, the callee answers whenever it is ready.
    late = op.data["timers_started"] and t0 >= initial_timeout
    if late:
        pass
    elif callee.no_match and (d or s or callee.talk > 0):
        engine.later(op.timers, t0, _start_of_input, engine, op)
        engine.later(op.timers, t0 + 0.5, _result, engine, op, {"type": "no_match"})
    elif digits_cfg is not None and d:
        call.input_index["digits"] += 1
        _schedule_digits(engine, op, digits_cfg, d, t0)
    elif speech_cfg is not None and s:
        call.input_index["speech"] += 1
        _schedule_speech(engine, op, speech_cfg, s, t0)
    elif d or s:
        # The callee answers in a mode this collect does not listen to.
        engine.later(op.timers, t0, _start_of_input, engine, op)
        engine.later(op.timers, t0 + 0.5, _result, engine, op, {"type": "no_match"})
    if op.data["timers_started"]:
        _arm_no_input(engine, op)


def _exhausted(op: Operation) -> bool:
    return bool(op.data["continuous"] and op.data["round"] > 0 and op.data.get("exhausted"))


def _arm_no_input(engine: Engine, op: Operation) -> None:
    if not _exhausted(op):
        engine.later(op.timers, op.data["initial_timeout"], _no_input, engine, op)


def _no_input(engine: Engine, op: Operation) -> None:
    if op.done or op.data["input_started"]:
        return
    _result(engine, op, {"type": "no_input"})


def _start_of_input(engine: Engine, op: Operation) -> None:
    if op.done or op.data["input_started"]:
        return
    op.data["input_started"] = True
    if op.data["soi"]:
        _event(engine, op, {"type": "start_of_input"})


def _schedule_digits(
    engine: Engine, op: Operation, cfg: Mapping[str, Any], script: str, t0: float
) -> None:
    maximum = int(cfg.get("max", 1))
    terminators = str(cfg.get("terminators", "#"))
    digit_timeout = float(cfg.get("digit_timeout", 5.0))
    interval = op.call.callee.digit_interval
    pressed = ""
    t = t0
    engine.later(op.timers, t0, _start_of_input, engine, op)
    for ch in script:
        if terminators and ch in terminators:
            result = {"type": "digit", "params": {"digits": pressed, "terminator": ch}}
            engine.later(op.timers, t, _result, engine, op, result)
            return
        pressed += ch
        if len(pressed) >= maximum:
            result = {"type": "digit", "params": {"digits": pressed, "terminator": ""}}
            engine.later(op.timers, t, _result, engine, op, result)
            return
        t += interval
    final: dict[str, Any] = (
        {"type": "digit", "params": {"digits": pressed, "terminator": ""}}
        if pressed
        else {"type": "no_input"}
    )
    engine.later(op.timers, t - interval + digit_timeout, _result, engine, op, final)


def _schedule_speech(
    engine: Engine, op: Operation, cfg: Mapping[str, Any], text: str, t0: float
) -> None:
    words = text.split() or [text]
    end_silence = float(cfg.get("end_silence_timeout", 1.0))
    confidence = op.call.callee.confidence
    engine.later(op.timers, t0, _start_of_input, engine, op)
    t = t0
    if op.data["partial"]:
        for i in range(1, len(words)):
            t = t0 + i * SPEECH_WORD_SECONDS
            partial = {
                "type": "speech",
                "params": {"text": " ".join(words[:i]), "confidence": round(confidence * 0.8, 3)},
            }
            engine.later(op.timers, t, _partial, engine, op, partial)
    t = t0 + len(words) * SPEECH_WORD_SECONDS + end_silence
    result = {"type": "speech", "params": {"text": text, "confidence": confidence}}
    engine.later(op.timers, t, _result, engine, op, result)


def _partial(engine: Engine, op: Operation, result: dict[str, Any]) -> None:
    if not op.done:
        _event(engine, op, result, final=False)


def _result(engine: Engine, op: Operation, result: dict[str, Any]) -> None:
    if op.done:
        return
    if op.data["continuous"]:
        if result["type"] == "no_input":
            # Continuous collects keep listening; silence is not reported.
            op.data["exhausted"] = True
            return
        _event(engine, op, result, final=True)
        op.cancel_timers()
        op.data["round"] += 1
        _round(engine, op)
        return
    _event(engine, op, result, final=True, terminal=True)


def start_input_timers(engine: Engine, op: Operation, _params: dict[str, Any]) -> None:
    """``calling.collect.start_input_timers``: arm the initial timeout now (once)."""
    if op.done or op.data["timers_started"]:
        return
    op.data["timers_started"] = True
    _arm_no_input(engine, op)


def end(engine: Engine, op: Operation, why: str) -> None:
    """A stop gives ``no_input``; the call ending gives ``error``."""
    if op.done:
        return
    continuous = op.data["continuous"]
    if why == "hangup":
        state = "error" if continuous else None
        _event(engine, op, {"type": "error"}, final=True, terminal=True, state=state)
    else:
        state = "finished" if continuous else None
        _event(engine, op, {"type": "no_input"}, final=True, terminal=True, state=state)


KIND = OpKind(
    "collect",
    start=start,
    end=end,
    actions={"stop": stop_action, "start_input_timers": start_input_timers},
)
