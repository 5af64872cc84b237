"""The operation registry and the wire table describe the same kinds and sub-commands."""

from __future__ import annotations

from signalwire_calls.testing._operations import OP_KINDS
from signalwire_calls.testing._protocol import CONTROL_KINDS
from signalwire_calls.testing._wire import START, SUB_COMMANDS, WIRE_COMMANDS, wire_commands


def test_every_wire_route_has_a_handler_and_back() -> None:
    routed = {(kind, action) for kind, action in WIRE_COMMANDS.values()}
    registered = {(name, START) for name in OP_KINDS} | {
        (name, action) for name, kind in OP_KINDS.items() for action in kind.actions
    }
    assert routed == registered
    for name, kind in OP_KINDS.items():
        assert kind.name == name
        assert "stop" in kind.actions, name


def test_derived_tables() -> None:
    assert wire_commands() == WIRE_COMMANDS
    assert {n: k for n, (k, a) in WIRE_COMMANDS.items() if a == START} == CONTROL_KINDS
    assert set(SUB_COMMANDS) == {n for n, (_, a) in WIRE_COMMANDS.items() if a != START}
    assert CONTROL_KINDS["calling.transcribe"] == "transcribe"
    assert SUB_COMMANDS["calling.collect.start_input_timers"] == (
        "collect",
        "start_input_timers",
    )
    assert len(CONTROL_KINDS) == 7
    assert len(SUB_COMMANDS) == 13
