"""The operation commands on the wire: command name -> (operation kind, action).

This is the one place the simulator takes them from (the client's table of operation
kinds); the request parser and the dispatcher derive their tables from it, and the
operation registry (``_operations``) must implement exactly these kinds and actions (a
test checks both ways).
"""

from __future__ import annotations

__all__ = ["CONTROL_KINDS", "START", "SUB_COMMANDS", "WIRE_COMMANDS", "wire_commands"]

START = "start"
"""The action of the command that starts an operation (``calling.play`` ...)."""


def wire_commands() -> dict[str, tuple[str, str]]:
    """Every operation command -> ``(kind, action)``; ``action`` is :data:`START` for the
    command that starts the operation, else the sub-command's verb. Derived from the
    client's table of operation kinds (``signalwire_calls.handles.KINDS``); stop-only
    kinds (a fax started by SWML) have no simulated operation and are left out."""
    from ..handles import KINDS

    commands: dict[str, tuple[str, str]] = {}
    for kind in KINDS:
        if kind.start is None:
            continue
        commands[kind.start.command] = (kind.name, START)
        for action, command in kind.sub.items():
            commands[command.command] = (kind.name, action)
    return commands


WIRE_COMMANDS: dict[str, tuple[str, str]] = wire_commands()

# Commands that start an operation -> operation kind.
CONTROL_KINDS: dict[str, str] = {
    name: kind for name, (kind, action) in WIRE_COMMANDS.items() if action == START
}
# Sub-commands -> (operation kind, action).
SUB_COMMANDS: dict[str, tuple[str, str]] = {
    name: route for name, route in WIRE_COMMANDS.items() if route[1] != START
}
