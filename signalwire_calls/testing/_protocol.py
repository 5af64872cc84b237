"""Request parsing for the simulator: envelope checks, 3.7.5 leniencies, validation.

``params`` are validated against the API schema written from the vendor's reference
(``_schema``, ``calling_schema.json``), not against the client's own command classes:
a client constraint that disagrees with the API then fails the simulator's tests instead
of agreeing with itself. Errors follow the spec's 400/422 bodies, ``attribute`` naming
the field by its dotted wire path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ._engine import CURRENT_STATUS_EVENTS, OLD_STATUS_EVENTS, ApiError
from ._schema import CommandSpec
from ._wire import CONTROL_KINDS

__all__ = ["CONTROL_KINDS", "ParsedCommand", "parse_command"]

_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class ParsedCommand:
    """A command that passed the envelope checks, the leniencies and validation."""

    command: str
    call_id: str | None
    params: dict[str, Any]
    lenient: tuple[str, ...] = ()
    extra_status_events: tuple[str, ...] = ()
    generated_control_id: bool = False


def peek_command(body: bytes) -> tuple[str, Any]:
    """The command name (or "") and the decoded body; raises 400 for non-JSON bodies."""
    try:
        data = _decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise ApiError.plain(400) from None
    if not isinstance(data, dict):
        raise ApiError.plain(400)
    command = data.get("command")
    return (command if isinstance(command, str) else ""), data


def parse_command(
    data: dict[str, Any],
    commands: Mapping[str, CommandSpec],
    new_control_id: Callable[[], str],
) -> ParsedCommand:
    """Check the envelope, apply the leniencies, validate ``params`` against ``commands``."""
    command = data.get("command")
    if not isinstance(command, str) or not command:
        raise ApiError.plain(400)
    params = data.get("params")
    if not isinstance(params, dict):
        raise ApiError.plain(400)
    spec = commands.get(command)
    if spec is None:
        raise ApiError.unprocessable(
            "invalid_command_attempted", f"unknown command {command!r}", "command"
        )
    call_id: str | None = None
    if spec.id_location == "params":
        raw_id = params.get("id")
        call_id = raw_id if isinstance(raw_id, str) else None
    elif spec.id_location == "top":
        raw_id = data.get("id")
        if not isinstance(raw_id, str) or not raw_id:
            raise ApiError.plain(400)
        call_id = raw_id
    parsed = ParsedCommand(command, call_id, params)
    _apply_leniencies(parsed, new_control_id)
    spec.validate(parsed.params)
    return parsed


def _apply_leniencies(parsed: ParsedCommand, new_control_id: Callable[[], str]) -> None:
    """Rewrite older (signalwire-sdk 3.7.5) bodies the current API reference changed."""
    command, params = parsed.command, parsed.params
    notes: list[str] = []
    if command == "calling.record" and "audio" in params and "record" not in params:
        params["record"] = {"audio": params.pop("audio")}
        notes.append("record.audio")
    if command in CONTROL_KINDS and "control_id" not in params:
        params["control_id"] = new_control_id()
        parsed.generated_control_id = True
        notes.append("control_id")
    if command == "dial":
        events = params.get("status_events")
        if isinstance(events, list) and any(e in OLD_STATUS_EVENTS for e in events):
            parsed.extra_status_events = tuple(e for e in events if e in OLD_STATUS_EVENTS)
            params["status_events"] = [e for e in events if e in CURRENT_STATUS_EVENTS]
            if not params["status_events"]:
                del params["status_events"]
            notes.append("status_events")
    elif command == "calling.ai_hold":
        timeout = params.get("timeout")
        if isinstance(timeout, int) and not isinstance(timeout, bool):
            params["timeout"] = str(timeout)
            notes.append("timeout")
    elif command == "calling.ai_unhold" and "prompt" in params:
        params.pop("prompt")
        notes.append("prompt")
    elif command == "calling.refer":
        device = params.get("device")
        if isinstance(device, dict) and "type" not in device and "to" in device:
            params["device"] = {"type": "sip", "params": device}
            notes.append("device")
    parsed.lenient = tuple(notes)
