"""The operation commands on the wire: command name -> (operation kind, action).

This is the one place that names them; the request parser and the dispatcher derive
their tables from it, and the operation registry (``_operations``) must implement
exactly these kinds and actions (a test checks both ways).
"""

from __future__ import annotations

__all__ = ["CONTROL_KINDS", "START", "SUB_COMMANDS", "WIRE_COMMANDS", "wire_commands"]

START = "start"
"""The action of the command that starts an operation (``calling.play`` ...)."""


def wire_commands() -> dict[str, tuple[str, str]]:
    """Every operation command -> ``(kind, action)``; ``action`` is :data:`START` for the
    command that starts the operation, else the sub-command's verb."""
    return {
        "calling.play": ("play", START),
        "calling.play.pause": ("play", "pause"),
        "calling.play.resume": ("play", "resume"),
        "calling.play.stop": ("play", "stop"),
        "calling.play.volume": ("play", "volume"),
        "calling.record": ("record", START),
        "calling.record.pause": ("record", "pause"),
        "calling.record.resume": ("record", "resume"),
        "calling.record.stop": ("record", "stop"),
        "calling.collect": ("collect", START),
        "calling.collect.stop": ("collect", "stop"),
        "calling.collect.start_input_timers": ("collect", "start_input_timers"),
        "calling.detect": ("detect", START),
        "calling.detect.stop": ("detect", "stop"),
        "calling.tap": ("tap", START),
        "calling.tap.stop": ("tap", "stop"),
        "calling.stream": ("stream", START),
        "calling.stream.stop": ("stream", "stop"),
        "calling.transcribe": ("transcribe", START),
        "calling.transcribe.stop": ("transcribe", "stop"),
    }


WIRE_COMMANDS: dict[str, tuple[str, str]] = wire_commands()

# Commands that start an operation -> operation kind.
CONTROL_KINDS: dict[str, str] = {
    name: kind for name, (kind, action) in WIRE_COMMANDS.items() if action == START
}
# Sub-commands -> (operation kind, action).
SUB_COMMANDS: dict[str, tuple[str, str]] = {
    name: route for name, route in WIRE_COMMANDS.items() if route[1] != START
}
