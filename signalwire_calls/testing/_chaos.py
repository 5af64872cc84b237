"""A chaos run: many concurrent full call flows against a simulator that misbehaves.

Each flow dials, waits for the answer, plays, collects a digit, records and hangs up,
with every wait bounded as a user would write it. Callees answer, are busy, do not
answer, or hang up mid-play, mid-collect or mid-record; the fault plan drops,
duplicates, delays and reorders webhooks and answers commands with 429, 503 or a reset
connection. Every flow must end in a result or a typed error, and no result may be
wrong: each is checked against its callee's script (and, in-process, against the
simulator's own record of the operation). Used by the test suite (a few hundred flows)
and by ``benchmarks/soak.py`` (thousands, for minutes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..call import Call
from ..commands import Digits, RecordAudio, silence
from ..errors import (
    CallEndedError,
    OperationFailed,
    RequestError,
    SessionClosedError,
    WaitTimeout,
)
from ..session import CallSession
from ._callees import Callee
from ._faults import FaultPlan

__all__ = [
    "CALLEES",
    "ChaosReport",
    "FlowOutcome",
    "chaos_faults",
    "dials_per_number",
    "run_flows",
    "script_numbers",
]

DIGIT = "5"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}

#: The callee mix: name -> script. Durations are simulated seconds after the answer.
#: The flow plays 2 s of silence, collects one digit (the callee presses it 0.3 s after
#: the collect starts), then records (2 s of talk, 0.5 s of trailing silence).
CALLEES: dict[str, Callee] = {
    "answer": Callee.answers(after=0.5, digits=DIGIT, input_delay=0.3, talk=2.0),
    "busy": Callee.busy(after=0.5),
    "no_answer": Callee.no_answer(after=1.5),
    "hangup_mid_play": Callee.answers(after=0.5, digits=DIGIT, hangup_after=1.0),
    "hangup_mid_collect": Callee.answers(
        after=0.5, digits=DIGIT, input_delay=30.0, hangup_after=3.0
    ),
    "hangup_mid_record": Callee.answers(
        after=0.5, digits=DIGIT, input_delay=0.3, talk=60.0, hangup_after=4.5
    ),
}


def chaos_faults(seed: int) -> FaultPlan:
    """Every fault of the fault plan, mixed."""
    return FaultPlan(
        seed=seed,
        drop_rate=0.03,
        duplicate_rate=0.05,
        reorder_rate=0.05,
        terminal_first_rate=0.05,
        webhook_delay=0.05,
        webhook_jitter=0.2,
        rate_limit_rate=0.03,
        retry_after=0.2,
        server_error_rate=0.03,
        server_error_status=503,
        reset_rate=0.02,
    )


@dataclass
class FlowOutcome:
    """How one flow ended. ``kind`` is ``completed`` (every step gave its result),
    ``ended`` (the call ended: busy, no answer, a hang-up; ``detail`` has the reason and
    the step) or ``error`` (a typed error: ``detail`` names it)."""

    number: str
    script: str
    kind: str
    detail: str = ""
    call_id: str | None = None
    digits: str | None = None
    record_control_id: str | None = None
    record_url: str | None = None
    wrong: str | None = None


@dataclass
class ChaosReport:
    """What a chaos run produced."""

    outcomes: list[FlowOutcome] = field(default_factory=list)

    def table(self) -> dict[tuple[str, str, str], int]:
        """(script, kind, detail) -> count."""
        counts: collections.Counter[tuple[str, str, str]] = collections.Counter(
            (o.script, o.kind, o.detail) for o in self.outcomes
        )
        return dict(sorted(counts.items()))

    @property
    def wrong(self) -> list[FlowOutcome]:
        return [o for o in self.outcomes if o.wrong is not None]

    def render(self) -> str:
        width = max((len(s) for s in CALLEES), default=10)
        lines = [f"{'callee':<{width}}  {'outcome':<10} {'detail':<34} {'flows':>6}"]
        for (script, kind, detail), n in self.table().items():
            lines.append(f"{script:<{width}}  {kind:<10} {detail:<34} {n:>6}")
        lines.append(f"{'total':<{width}}  {'':<10} {'':<34} {len(self.outcomes):>6}")
        lines.append(f"wrong results: {len(self.wrong)}")
        return "\n".join(lines)


def _step_error(exc: BaseException, step: str) -> tuple[str, str]:
    if isinstance(exc, CallEndedError):  # a 404 on a call command is one too
        return "ended", f"{exc.end_reason} at {step}"
    return "error", f"{type(exc).__name__} at {step}"


async def _flow(session: CallSession, number: str, script: str, wait: float) -> FlowOutcome:
    outcome = FlowOutcome(number=number, script=script, kind="completed")
    step = "dial"
    call: Call | None = None
    try:
        call = await session.dial(to=number, from_="+15559870000", swml=SWML)
        outcome.call_id = call.id
        step = "answered"
        await call.answered(timeout=wait)
        step = "play"
        play = await call.play(silence(2))
        await play.finished(timeout=wait)
        step = "collect"
        collect = await call.collect(digits=Digits(max=1), initial_timeout=5)
        result = await collect.finished(timeout=wait)
        outcome.digits = result.digits
        step = "record"
        record = await call.record(RecordAudio(end_silence_timeout=0.5))
        outcome.record_control_id = record.control_id
        recording = await record.finished(timeout=wait)
        outcome.record_url = recording.url
        step = "end"
        await call.end()
    except (CallEndedError, WaitTimeout, RequestError, OperationFailed) as exc:
        outcome.kind, outcome.detail = _step_error(exc, step)
    finally:
        if call is not None and not call.is_ended:
            # as a user would: whatever happened, hang up (ending twice is harmless)
            with contextlib.suppress(RequestError, CallEndedError, SessionClosedError):
                await call.end()
    return outcome


def _check(outcome: FlowOutcome, record_url: Callable[[str, str], str | None] | None) -> None:
    """Mark ``outcome.wrong`` when it contradicts the callee's script or the simulator."""
    script = outcome.script
    if outcome.digits is not None and outcome.digits != DIGIT:
        outcome.wrong = f"collected {outcome.digits!r}, the callee pressed {DIGIT!r}"
    if outcome.kind == "completed" and script in ("busy", "no_answer", "hangup_mid_play"):
        outcome.wrong = f"a {script} callee cannot complete the flow"
    if outcome.kind == "completed" and script == "hangup_mid_collect":
        outcome.wrong = "the callee hung up before pressing a digit"
    reason = outcome.detail.split(" at ")[0] if outcome.kind == "ended" else None
    if script == "busy" and reason not in (None, "busy", "not_found"):
        outcome.wrong = f"a busy callee ended with {reason!r}"
    if script == "no_answer" and reason not in (None, "noAnswer", "not_found"):
        outcome.wrong = f"an unanswered call ended with {reason!r}"
    if (
        outcome.record_url is not None
        and record_url is not None
        and outcome.call_id is not None
        and outcome.record_control_id is not None
    ):
        expected = record_url(outcome.call_id, outcome.record_control_id)
        if expected != outcome.record_url:
            outcome.wrong = f"recording {outcome.record_url!r}, the simulator made {expected!r}"


async def run_flows(
    session: CallSession,
    flows: int,
    *,
    wait: float = 5.0,
    start: int = 0,
    record_url: Callable[[str, str], str | None] | None = None,
) -> ChaosReport:
    """Run ``flows`` concurrent flows, callee scripts in turn, each to its own number
    ``+1555{start + i:07d}`` (script the simulator with ``script_numbers`` first).
    ``record_url(call_id, control_id)`` returns the simulator's own recording URL when
    the simulator runs in this process."""
    names = list(CALLEES)
    tasks = [
        _flow(session, _number(start + i), names[(start + i) % len(names)], wait)
        for i in range(flows)
    ]
    outcomes = list(await asyncio.gather(*tasks))
    for outcome in outcomes:
        _check(outcome, record_url)
    return ChaosReport(outcomes)


def _number(i: int) -> str:
    return f"+1555{i:07d}"


def script_numbers(flows: int, *, start: int = 0) -> dict[str, Callee]:
    """The callee of each number ``run_flows`` dials."""
    names = list(CALLEES)
    return {_number(start + i): CALLEES[names[(start + i) % len(names)]] for i in range(flows)}


def dials_per_number(commands: Any) -> collections.Counter[str]:
    """How many dials reached the simulator for each number (from ``sim.commands``)."""
    return collections.Counter(
        str(c.params.get("to")) for c in commands if c.command == "dial" and c.status == 200
    )
