"""``calling.tap``: ``tapping`` until stopped or the call ends, then ``finished``.

The events echo the tap and the device with the negotiated values filled in (codec
PCMU, and a 20 ms ptime for RTP).
"""

from __future__ import annotations

from typing import Any

from ._model import Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND"]


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start tapping to ``params["device"]``."""
    op = engine.start_op(call, "tap", params)
    device = params.get("device") or {}
    dparams = dict(device.get("params") or {})
    dparams.setdefault("codec", "PCMU")
    if device.get("type") == "rtp":
        dparams.setdefault("ptime", 20)
    op.data["tap"] = params.get("tap")
    op.data["device"] = {"type": device.get("type"), "params": dparams}
    engine.op_event(op, "tapping", _params(engine, op, "tapping"))
    return op


def _params(engine: Engine, op: Operation, state: str) -> dict[str, Any]:
    return {**engine.base(op), "state": state, "tap": op.data["tap"], "device": op.data["device"]}


def end(engine: Engine, op: Operation, _why: str) -> None:
    """Send ``finished``."""
    if not op.done:
        engine.op_event(op, "finished", _params(engine, op, "finished"), terminal=True)


KIND = OpKind("tap", start=start, end=end, actions={"stop": stop_action})
