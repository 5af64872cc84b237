"""Request parsing for the simulator: envelope checks, 3.7.5 leniencies, strict validation.

Commands are validated with the library's own command Structs (``commands.COMMANDS``),
so the simulator rejects exactly what the client would refuse to send, and maps
msgspec's errors to the spec's 400/422 bodies with ``attribute`` naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import ValidationError
from ._engine import CURRENT_STATUS_EVENTS, OLD_STATUS_EVENTS, ApiError
from ._wire import CONTROL_KINDS

__all__ = ["CONTROL_KINDS", "ParsedCommand", "parse_command"]

_decode = msgspec.json.Decoder().decode

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]+)`")
_TYPE_CODES = {
    "str": "not_a_string",
    "bool": "not_a_boolean",
    "object": "not_a_hash",
    "array": "invalid_parameter",
}


@dataclass(slots=True)
class ParsedCommand:
    """A command that passed the envelope checks (and, if ``struct`` is set, validation)."""

    command: str
    call_id: str | None
    params: dict[str, Any]
    struct: Any = None
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
    commands: dict[str, type[Any]],
    new_control_id: Any,
) -> ParsedCommand:
    """Check the envelope, apply the leniencies, validate ``params`` with the Structs."""
    command = data.get("command")
    if not isinstance(command, str) or not command:
        raise ApiError.plain(400)
    params = data.get("params")
    if not isinstance(params, dict):
        raise ApiError.plain(400)
    struct_type = commands.get(command)
    if struct_type is None:
        raise ApiError.unprocessable(
            "invalid_command_attempted", f"unknown command {command!r}", "command"
        )
    call_id: str | None = None
    if command == "update":
        raw_id = params.get("id")
        call_id = raw_id if isinstance(raw_id, str) else None
    elif command != "dial":
        raw_id = data.get("id")
        if not isinstance(raw_id, str) or not raw_id:
            raise ApiError.plain(400)
        call_id = raw_id
    if (
        command == "calling.collect"
        and params.get("digits") is None
        and params.get("speech") is None
    ):
        # Spec 2.8: a collect with neither digits nor speech is a plain 400.
        raise ApiError.plain(400)
    parsed = ParsedCommand(command, call_id, params)
    _apply_leniencies(parsed, new_control_id)
    try:
        parsed.struct = msgspec.convert(parsed.params, struct_type)
    except msgspec.ValidationError as exc:
        raise _to_422(exc) from None
    return parsed


def _apply_leniencies(parsed: ParsedCommand, new_control_id: Any) -> None:
    """Rewrite the older (signalwire-sdk 3.7.5) bodies of spec section 0 into current ones."""
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


def _to_422(exc: msgspec.ValidationError) -> ApiError:
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        code = "missing_required_parameter" if "required" in cause.reason else "invalid_parameter"
        return ApiError.unprocessable(code, cause.reason, cause.field)
    text = str(exc)
    path = ""
    match = _AT.search(text)
    if match:
        path = match.group("path").lstrip(".")
        text = text[: match.start()]
    field = _FIELD.search(text)
    if text.startswith("Object missing required field"):
        name = field.group("name") if field else ""
        attribute = f"{path}.{name}" if path else name
        return ApiError.unprocessable(
            "missing_required_parameter", f"{attribute} is required", attribute
        )
    if text.startswith("Object contains unknown field"):
        name = field.group("name") if field else ""
        attribute = f"{path}.{name}" if path else name
        return ApiError.unprocessable(
            "invalid_parameter", f"{attribute} is not a parameter", attribute
        )
    expected = _EXPECTED.match(text)
    code = (
        _TYPE_CODES.get(expected.group("type"), "invalid_parameter")
        if expected
        else "invalid_parameter"
    )
    attribute_or_none = path or None
    message = f"{path}: {text}" if path else text
    return ApiError.unprocessable(code, message, attribute_or_none)
