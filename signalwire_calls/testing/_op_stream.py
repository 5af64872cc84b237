"""``calling.stream``: ``streaming`` until stopped or the call ends, then ``finished``."""

from __future__ import annotations

from typing import Any

from ._model import Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND"]


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start streaming to ``params["url"]``."""
    op = engine.start_op(call, "stream", params)
    engine.op_event(op, "streaming", _params(engine, op, "streaming"))
    return op


def _params(engine: Engine, op: Operation, state: str) -> dict[str, Any]:
    p = {
        **engine.base(op),
        "segment_id": op.call.segment_id,
        "state": state,
        "url": op.params.get("url"),
    }
    if isinstance(op.params.get("name"), str):
        p["name"] = op.params["name"]
    return p


def end(engine: Engine, op: Operation, _why: str) -> None:
    """Send ``finished``."""
    if not op.done:
        engine.op_event(op, "finished", _params(engine, op, "finished"), terminal=True)


KIND = OpKind("stream", start=start, end=end, actions={"stop": stop_action})
