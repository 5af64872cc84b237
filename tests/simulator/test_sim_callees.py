"""Callee scripts: constructors, JSON files, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signalwire_calls.testing import Callee, Simulator, load_callees, parse_callees


def test_constructors() -> None:
    assert Callee.answers(after=2, digits="1#").digits == ("1#",)
    assert Callee.answers(speech=["yes", "no"]).input_for("speech", 5) == "no"
    assert Callee.answers(silent=True).talk == 0
    assert Callee.busy().behavior == "busy"
    assert Callee.no_answer().behavior == "no_answer"
    assert Callee.fails().behavior == "fail"
    vm = Callee.voicemail(greeting=3, beep=False)
    assert (vm.behavior, vm.greeting, vm.beep) == ("voicemail", 3, False)
    assert Callee.fax(tone="CNG").fax_tone == "CNG"
    assert Callee.answers().input_for("digits", 0) is None


def test_round_trip_and_file(tmp_path: Path) -> None:
    callee = Callee.answers(after=2, digits=["1", "2#"], hangup_after=9)
    assert Callee.from_dict(callee.to_dict()) == callee
    path = tmp_path / "callees.json"
    path.write_text(
        json.dumps(
            {
                "+15550001": {"behavior": "answer", "after": 2, "digits": "1#"},
                "+15550002": {"behavior": "voicemail", "greeting": 4},
                "default": {"behavior": "busy"},
                "+15550003": {"silent": True},
            }
        )
    )
    callees = load_callees(path)
    assert callees["+15550001"].digits == ("1#",)
    assert callees["+15550002"].behavior == "voicemail"
    assert callees["*"].behavior == "busy"
    assert callees["+15550003"].talk == 0


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "JSON object"),
        ({"+1": {"behavior": "dance"}}, "behavior"),
        ({"+1": {"afterr": 1}}, "afterr"),
        ({"+1": {"after": -1}}, "after"),
        ({"+1": "answer"}, "JSON object"),
        ({"+1": {"confidence": 2}}, "confidence"),
    ],
)
def test_bad_scripts_name_the_field(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_callees(data)


async def test_simulator_load_callees(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"+15550009": {"behavior": "fail"}}))
    async with Simulator(time_scale=0.01) as sim:
        sim.load_callees(path)
        assert sim.callees["+15550009"].behavior == Callee.fails().behavior
