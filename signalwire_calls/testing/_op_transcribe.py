"""``calling.transcribe``: one per call (a second one is a 409); no events while it runs.

When stopped, or when the call ends, the transcript callback follows a moment later
(``calling.transcript.completed`` with the callee's words, or ``.failed`` when the
script says so), in its own envelope without ``event_channel``.
"""

from __future__ import annotations

from typing import Any

from ._model import ApiError, Engine, Operation, OpKind, SimCall, stop_action

__all__ = ["KIND"]

READY_AFTER = 0.2  # simulated seconds between the end of the recording and the transcript


def start(engine: Engine, call: SimCall, params: dict[str, Any]) -> Operation:
    """Start transcribing (409 while another transcription runs on the call)."""
    if call.transcribe is not None and not call.transcribe.done:
        raise ApiError.plain(409)
    op = engine.start_op(call, "transcribe", params)
    op.state = "transcribing"
    op.history.append("transcribing")
    call.transcribe = op
    engine.notify()
    return op


def end(engine: Engine, op: Operation, _why: str) -> None:
    """Stop transcribing; the transcript is sent shortly after."""
    if op.done:
        return
    op.done = True
    op.state = "finished"
    op.history.append("finished")
    call = op.call
    if call.transcribe is op:
        call.transcribe = None
    engine.notify()
    # Not on the call's or the operation's timers: the transcript outlives both.
    engine.call_later(READY_AFTER, _ready, engine, op)


def _ready(engine: Engine, op: Operation) -> None:
    callee = op.call.callee
    params: dict[str, Any] = {
        "id": engine.new_id(),
        "call_id": op.call.id,
        "segment_id": op.call.segment_id,
    }
    if callee.transcribe_fails:
        event_type, state = "calling.transcript.failed", "failed"
    else:
        event_type, state = "calling.transcript.completed", "completed"
        text = callee.transcript
        if text is None and callee.speech:
            text = " ".join(callee.speech)
        if text is None and callee.digits == () and callee.talk > 0:
            text = "hello"
        if text:
            params["text"] = text
    op.history.append(state)
    engine.emit(
        op.status_url,
        event_type,
        params,
        call_id=op.call.id,
        control_id=op.control_id,
        state=state,
    )


KIND = OpKind("transcribe", start=start, end=end, actions={"stop": stop_action})
