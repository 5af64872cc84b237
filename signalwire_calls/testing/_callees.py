"""Scripted callees: how the party at a dialed number behaves (ring, answer, press, say, hang up).

All durations are simulated seconds; the simulator multiplies them by its ``time_scale``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

__all__ = ["Behavior", "Callee", "load_callees", "parse_callees"]

Behavior = Literal["answer", "busy", "no_answer", "fail", "voicemail", "fax"]
_BEHAVIORS: frozenset[str] = frozenset(("answer", "busy", "no_answer", "fail", "voicemail", "fax"))


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Callee:
    """The script of one destination number.

    Build one with the class methods::

        Callee.answers(after=2, digits="1#")          # answers after 2 s, presses 1 then #
        Callee.answers(speech="yes", hangup_after=30) # says "yes" when asked; hangs up at 30 s
        Callee.busy(); Callee.no_answer(); Callee.fails()
        Callee.voicemail(greeting=4, beep=True); Callee.fax()

    ``digits`` and ``speech`` may be sequences: each collect consumes the next entry and
    the last one repeats. ``input_delay`` is how long the callee takes to start answering
    a prompt; ``talk`` how long it speaks when recorded (0 = silent).
    """

    behavior: Behavior = "answer"
    after: float = 1.0
    hangup_after: float | None = None
    digits: tuple[str, ...] = ()
    speech: tuple[str, ...] = ()
    confidence: float = 0.92
    input_delay: float = 1.0
    digit_interval: float = 0.2
    talk: float = 2.0
    no_match: bool = False
    greeting: float = 5.0
    beep: bool = True
    fax_tone: Literal["CED", "CNG"] = "CED"
    transcript: str | None = None
    transcribe_fails: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.behavior not in _BEHAVIORS:
            raise ValueError(
                f"behavior: must be one of {sorted(_BEHAVIORS)}, not {self.behavior!r}"
            )
        for name in ("after", "input_delay", "digit_interval", "talk", "greeting"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if self.hangup_after is not None and self.hangup_after < 0:
            raise ValueError("hangup_after: must be >= 0")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("confidence: must be within 0..1")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def answers(
        cls,
        after: float = 1.0,
        *,
        digits: str | Sequence[str] | None = None,
        speech: str | Sequence[str] | None = None,
        confidence: float = 0.92,
        hangup_after: float | None = None,
        input_delay: float = 1.0,
        talk: float = 2.0,
        silent: bool = False,
        no_match: bool = False,
        transcript: str | None = None,
        transcribe_fails: bool = False,
    ) -> Callee:
        """A person who answers after ``after`` seconds of ringing.

        ``silent=True`` says nothing at all (record ends with ``no_input``, collect
        with ``no_input``); ``no_match=True`` answers prompts with unrecognisable input.
        """
        return cls(
            behavior="answer",
            after=after,
            hangup_after=hangup_after,
            digits=_as_tuple(digits),
            speech=_as_tuple(speech),
            confidence=confidence,
            input_delay=input_delay,
            talk=0.0 if silent else talk,
            no_match=no_match,
            transcript=transcript,
            transcribe_fails=transcribe_fails,
        )

    @classmethod
    def busy(cls, after: float = 1.0) -> Callee:
        """The line is busy: the call ends with ``end_reason="busy"`` after ``after`` s."""
        return cls(behavior="busy", after=after)

    @classmethod
    def no_answer(cls, after: float | None = None) -> Callee:
        """Rings until the dial's ``timeout`` (or ``after`` s), then ends with ``noAnswer``."""
        return cls(behavior="no_answer", after=30.0 if after is None else after)

    @classmethod
    def fails(cls, after: float = 0.1) -> Callee:
        """The call never reaches the media server: status ``failed``, ``end_reason="error"``."""
        return cls(behavior="fail", after=after)

    @classmethod
    def voicemail(
        cls,
        greeting: float = 5.0,
        beep: bool = True,
        *,
        after: float = 1.0,
        hangup_after: float | None = None,
    ) -> Callee:
        """An answering machine: a ``greeting`` of that many seconds, then a beep if asked."""
        return cls(
            behavior="voicemail",
            after=after,
            greeting=greeting,
            beep=beep,
            hangup_after=hangup_after,
            talk=greeting,
        )

    @classmethod
    def fax(cls, after: float = 1.0, *, tone: Literal["CED", "CNG"] = "CED") -> Callee:
        """A fax machine that answers and sends ``tone``."""
        return cls(behavior="fax", after=after, fax_tone=tone, talk=0.0)

    # ------------------------------------------------------------------ helpers

    def with_(self, **changes: Any) -> Callee:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def input_for(self, kind: Literal["digits", "speech"], index: int) -> str | None:
        """The ``index``-th scripted input of that kind (the last one repeats)."""
        seq = self.digits if kind == "digits" else self.speech
        if not seq:
            return None
        return seq[min(index, len(seq) - 1)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form accepted by :meth:`from_dict` and callee files."""
        data = asdict(self)
        data["digits"] = list(self.digits)
        data["speech"] = list(self.speech)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Callee:
        """Build from a JSON object such as ``{"behavior": "answer", "after": 2, "digits": "1#"}``.

        ``"silent": true`` is accepted as a shorthand for ``"talk": 0``.
        """
        if not isinstance(data, Mapping):
            raise ValueError("callee: must be a JSON object")
        values = dict(data)
        known = set(cls.__dataclass_fields__)
        if values.pop("silent", False):
            values["talk"] = 0.0
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown callee field")
        for key in ("digits", "speech"):
            if key in values:
                values[key] = _as_tuple(values[key])
        return cls(**values)


DEFAULT_CALLEE = Callee.answers(after=1.0)


def parse_callees(data: Any) -> dict[str, Callee]:
    """A ``{number: Callee}`` map from the parsed JSON of a callee file.

    The key ``"*"`` (or ``"default"``) scripts every number not listed.
    """
    if not isinstance(data, Mapping):
        raise ValueError("callees: the file must hold a JSON object {number: script}")
    result: dict[str, Callee] = {}
    for number, spec in data.items():
        try:
            result["*" if number == "default" else str(number)] = Callee.from_dict(spec)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"callees[{number!r}].{exc}") from exc
    return result


def load_callees(path: str | os.PathLike[str]) -> dict[str, Callee]:
    """Read a JSON callee file (see :func:`parse_callees`)."""
    with open(path, encoding="utf-8") as fh:
        return parse_callees(json.load(fh))
