"""The simulator's request oracle (``calling_schema.json``) against the client's Structs.

Two independent readings of the API: the schema the simulator validates with, written from
the vendor reference, and the client's command Structs (``msgspec.convert`` runs their
``__post_init__`` checks). Every golden body must pass both; every generated boundary or
invalid value must get the same verdict from both, except the disagreements listed in
``KNOWN`` (each says which side the reference proves wrong; the list is strict, so an
entry that stops disagreeing fails the test too).
"""

from __future__ import annotations

import ast
import copy
import ipaddress
import itertools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwire_calls._codec import encode_command
from signalwire_calls.commands import COMMANDS, Command
from signalwire_calls.errors import ValidationError
from signalwire_calls.testing import _schema
from signalwire_calls.testing._engine import ApiError
from signalwire_calls.testing._protocol import parse_command
from signalwire_calls.testing._schema import Node, Rule, SchemaError, command_specs

from .test_commands import CALL, GOLDEN, SPEC_COMMANDS

SPECS = command_specs()
GOLDEN_IDS = [f"{i}-{expected['command']}" for i, (_, expected) in enumerate(GOLDEN)]


def oracle_verdict(command: str, params: dict[str, Any]) -> ApiError | None:
    """The simulator's answer to ``params``: None (accepted) or the ApiError it raises."""
    try:
        SPECS[command].validate(copy.deepcopy(params))
    except ApiError as exc:
        return exc
    return None


def client_verdict(command: str, params: dict[str, Any]) -> msgspec.ValidationError | None:
    """The client's reading: None (its Struct accepts ``params``) or the decode error."""
    try:
        msgspec.convert(copy.deepcopy(params), COMMANDS[command])
    except msgspec.ValidationError as exc:
        return exc
    return None


# --------------------------------------------------------------------------- the schema itself


def test_schema_covers_the_37_commands() -> None:
    assert list(SPECS) == SPEC_COMMANDS
    assert set(SPECS) == set(COMMANDS)
    for name, spec in SPECS.items():
        expected = {"dial": "none", "update": "params"}.get(name, "top")
        assert spec.id_location == expected == COMMANDS[name].id_location


def test_simulator_never_imports_the_client_commands() -> None:
    """Validation must not lean on the client's reading: no module of the simulator
    imports ``signalwire_calls.commands`` or names its ``COMMANDS``."""
    testing = Path(_schema.__file__).parent
    # _chaos drives the client against the simulator: a client of both, not part of the
    # simulator's request handling
    sources = sorted(p for p in testing.glob("*.py") if p.name != "_chaos.py")
    assert len(sources) >= 8
    for source in sources:
        text = source.read_text()
        assert re.search(r"\bCOMMANDS\b|signalwire_calls\.commands", text) is None, source.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                ours = node.level > 0 or module.startswith("signalwire_calls")
                names = {alias.name for alias in node.names}
                assert not (ours and (module.endswith("commands") or "commands" in names)), (
                    f"{source.name} imports {'.' * node.level}{module} {sorted(names)}"
                )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.endswith(".commands"), f"{source.name}: {alias.name}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"defs": {}}', "commands"),
        (b'{"commands": {"x": {"id_location": "top", "params": {"ref": "nope"}}}}', "nope"),
        (
            b'{"commands": {"x": {"id_location": "top", "params": {"type": "object", "x": 1}}}}',
            "unknown field",
        ),
        (b'{"commands": {"x": {"id_location": "top", "params": {"type": "string"}}}}', "object"),
        (
            b'{"commands": {"x": {"id_location": "top", "params": {"type": "object",'
            b' "properties": {"a": {"type": "string", "pattern": "("}}}}}}',
            "pattern",
        ),
        (
            b'{"commands": {"x": {"id_location": "top", "params": {"type": "object",'
            b' "properties": {"a": {"type": "object", "rules": [{"kind": "exactly_one",'
            b' "fields": ["b"], "status": 400}]}}}}}}',
            "400",
        ),
    ],
)
def test_malformed_schema_data_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        _schema.load_schema(data)


TTS = {"type": "tts", "params": {"text": "hi"}}
DIAL = {"from": "+15559870000", "to": "+15551230001", "url": "https://example.com/swml"}


@pytest.mark.parametrize(
    ("command", "params", "code", "attribute"),
    [
        ("dial", {**DIAL, "to": "5551230001"}, "not_e164", "to"),
        ("dial", {**DIAL, "to": "sip:"}, "invalid_sip_destination", "to"),
        ("dial", {"to": DIAL["to"], "url": DIAL["url"]}, "missing_required_parameter", "from"),
        ("dial", {**DIAL, "url": "example.com/swml"}, "not_an_http_url", "url"),
        ("dial", {**DIAL, "url": None}, "not_a_string", "url"),
        (
            "dial",
            {"from": "+1555", "to": DIAL["to"]},
            "inline_swml_or_swml_webhook_required",
            "url",
        ),
        (
            "dial",
            {**DIAL, "swml": {"sections": {"main": []}}},
            "inline_swml_or_swml_webhook_required",
            "swml",
        ),
        ("dial", {"from": "+1555", "url": DIAL["url"]}, "missing_required_parameter", "to"),
        ("dial", {**DIAL, "url_method": "PUT"}, "invalid_http_method", "url_method"),
        ("dial", {**DIAL, "codecs": "PCMU,MP3"}, "invalid_codecs_format", "codecs[1]"),
        ("dial", {**DIAL, "codecs": 5}, "invalid_codecs_format", "codecs"),
        ("dial", {**DIAL, "status_events": "ended"}, "not_an_array_of_strings", "status_events"),
        ("dial", {**DIAL, "custom_variables": []}, "must_be_object", "custom_variables"),
        (
            "dial",
            {**DIAL, "custom_variables": {f"v{i}": "x" for i in range(21)}},
            "too_many_custom_variables",
            "custom_variables",
        ),
        (
            "dial",
            {**DIAL, "custom_variables": {"1a": "x"}},
            "invalid_custom_variable_name",
            "custom_variables.1a",
        ),
        (
            "dial",
            {**DIAL, "custom_variables": {"SW_x": "x"}},
            "reserved_custom_variable_name",
            "custom_variables.SW_x",
        ),
        (
            "dial",
            {**DIAL, "custom_variables": {"a": ""}},
            "invalid_custom_variable_value",
            "custom_variables.a",
        ),
        (
            "dial",
            {**DIAL, "custom_variables": {"a": "x" * 1025}},
            "custom_variable_value_too_long",
            "custom_variables.a",
        ),
        (
            "dial",
            {**DIAL, "headers": [{"name": "X-A", "value": "1"}] * 21},
            "too_many_headers",
            "headers",
        ),
        (
            "dial",
            {**DIAL, "headers": [{"name": "x-projectid", "value": "1"}]},
            "reserved_header_name",
            "headers[0].name",
        ),
        (
            "dial",
            {**DIAL, "headers": [{"name": "X A", "value": "1"}]},
            "invalid_header_name",
            "headers[0].name",
        ),
        (
            "dial",
            {**DIAL, "headers": [{"name": "X-A", "value": "a\nb"}]},
            "invalid_header_value",
            "headers[0].value",
        ),
        (
            "dial",
            {**DIAL, "headers": [{"name": "X-A", "value": "é" * 513}]},
            "header_value_too_long",
            "headers[0].value",
        ),
        ("dial", {**DIAL, "bogus": 1}, "invalid_parameter", "bogus"),
        ("calling.play", {"control_id": "p", "play": [TTS], "gender": 5}, "not_a_string", "gender"),
        (
            "calling.play",
            {"control_id": "p", "play": [{"type": "tts"}]},
            "missing_required_parameter",
            "play[0].params",
        ),
        (
            "calling.play",
            {"control_id": "p", "play": [{"type": "video", "params": {}}]},
            "invalid_parameter",
            "play[0].type",
        ),
        (
            "calling.play",
            {"control_id": "p", "play": [TTS, {"type": "tts", "params": {"text": "x", "y": 1}}]},
            "invalid_parameter",
            "play[1].params.y",
        ),
        (
            "calling.record",
            {"control_id": "r", "record": {"audio": {"beep": "yes"}}},
            "not_a_boolean",
            "record.audio.beep",
        ),
        ("calling.detect", {"control_id": "d", "detect": "machine"}, "not_a_hash", "detect"),
        ("calling.stream", {"control_id": "s", "url": "ws://e.com/x"}, "invalid_parameter", "url"),
        (
            "calling.tap",
            {
                "control_id": "t",
                "tap": {"type": "audio", "params": {"direction": "both"}},
                "device": {"type": "rtp", "params": {"addr": "10.1.2.3", "port": 1}},
            },
            "invalid_parameter",
            "device.params.addr",
        ),
        (
            "calling.transcribe",
            {"control_id": "x", "status_url": "ftp://e.com/x"},
            "not_an_http_url",
            "status_url",
        ),
        ("calling.live_transcribe", {"action": {}}, "invalid_parameter", "action"),
        (
            "calling.live_translate",
            {"action": {"inject": {"message": "m"}}},
            "missing_required_parameter",
            "action.inject.direction",
        ),
        (
            "calling.collect",
            {"control_id": "c", "digits": None, "speech": {}},
            "not_a_hash",
            "digits",
        ),
        ("update", {"id": CALL}, "missing_required_parameter", "url"),
    ],
)
def test_refusals_carry_the_spec_code_and_the_wire_path(
    command: str, params: dict[str, Any], code: str, attribute: str
) -> None:
    refusal = oracle_verdict(command, params)
    assert refusal is not None
    assert refusal.status == 422
    items = refusal.body["errors"]
    assert (items[0]["code"], items[0]["attribute"]) == (code, attribute), items
    for item in items:
        assert set(item) == {"type", "code", "message", "attribute", "url"}
        assert item["type"] == "validation_error"
        assert item["url"] == "https://signalwire.com/docs/apis/error-codes"


@pytest.mark.parametrize(
    "params", [{"control_id": "c"}, {"control_id": "c", "digits": None}, {"control_id": 5}]
)
def test_collect_without_digits_or_speech_is_a_plain_400(params: dict[str, Any]) -> None:
    refusal = oracle_verdict("calling.collect", params)
    assert refusal is not None
    assert (refusal.status, refusal.body) == (400, {"error": "Bad Request"})


def test_every_bad_field_is_named_up_to_a_cap() -> None:
    params = {"control_id": "p", "play": [TTS], "volume": 99, "loop": -1, "direction": "up"}
    refusal = oracle_verdict("calling.play", params)
    assert refusal is not None
    assert [i["attribute"] for i in refusal.body["errors"]] == ["volume", "direction", "loop"]
    many = {"control_id": "p", "play": [TTS], **{f"bogus{i}": i for i in range(50)}}
    refusal = oracle_verdict("calling.play", many)
    assert refusal is not None
    assert len(refusal.body["errors"]) == _schema.MAX_ERRORS


def test_huge_bad_input_is_answered_briefly() -> None:
    """A 100,000-item list of bad items, or a megabyte value, yields a short answer: the
    items stop at the cap and messages quote at most 60 characters of a value."""
    bad = {"type": "tts", "params": {"text": ""}}
    refusal = oracle_verdict("calling.play", {"control_id": "p", "play": [bad] * 100_000})
    assert refusal is not None
    assert len(refusal.body["errors"]) == _schema.MAX_ERRORS
    secret = "s" * 1_000_000
    refusal = oracle_verdict("calling.stream", {"control_id": "s", "url": "ws://" + secret})
    assert refusal is not None
    assert len(msgspec.json.encode(refusal.body)) < 1000


def test_type_errors_never_quote_the_value() -> None:
    refusal = oracle_verdict("dial", {**DIAL, "password": ["hunter2"], "username": {"k": "top"}})
    assert refusal is not None
    text = msgspec.json.encode(refusal.body).decode()
    assert "hunter2" not in text
    assert "top" not in text
    assert [i["attribute"] for i in refusal.body["errors"]] == ["username", "password"]


# --------------------------------------------------------------------------- (a) goldens


@pytest.mark.parametrize(("cmd", "expected"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_bodies_pass_the_oracle_and_round_trip(
    cmd: Command, expected: dict[str, Any]
) -> None:
    command, params = expected["command"], expected["params"]
    assert oracle_verdict(command, params) is None
    decoded = msgspec.convert(params, COMMANDS[command])
    assert decoded == cmd
    assert msgspec.json.decode(encode_command(decoded, CALL)) == expected


@pytest.mark.parametrize(("cmd", "expected"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_bodies_pass_the_simulator_parser(cmd: Command, expected: dict[str, Any]) -> None:
    data = copy.deepcopy(expected)
    if "id" not in data and expected["command"] != "dial":
        data["id"] = CALL
    parsed = parse_command(data, SPECS, lambda: "generated")
    assert parsed.params == expected["params"]
    assert parsed.lenient == ()


# --------------------------------------------------------------------------- (b) differential

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>"})()
"""A case value meaning: the field is left out."""

URL_HOSTLESS = "://:443/x"
URL_NAMED_PORT = "://example.com:port/x"
URL_PORT_RANGE = "://example.com:99999/x"
URL_OPEN_BRACKET = "://[::1/x"


def url_probes(schemes: list[str]) -> list[str]:
    first = schemes[0]
    probes = [f"{s}://example.com/x" for s in ("http", "https", "ws", "wss", "ftp")]
    probes += [f"{s}://a" for s in schemes]
    probes += [
        f"{first.upper()}://example.com/x",
        "example.com/x",
        "//example.com/x",
        f"{first}:/example.com",
        f"{first}://",
        f"{first}:///x",
        f"{first}://?q=1",
        f"{first}://#f",
        f"{first}://exa mple.com/x",
        f"{first}://example.com/a b",
        f"{first}://example.com/\n",
        f"{first}://example.com/\t",
        f"{first}://example.com/\u00a0",
        f"{first}://exämple.com/x",
        f"{first}://user:pw@example.com:8443/x?y=1#z",
        f"{first}://[::1]:8080/x",
        first + URL_OPEN_BRACKET,
        first + URL_HOSTLESS,
        first + URL_NAMED_PORT,
        first + URL_PORT_RANGE,
    ]
    return probes


def ipv4_probes(node: Node) -> list[str]:
    probes = ["8.8.8.8", "52.1.2.3", "1.1.1.1", "223.255.255.255"]
    probes += ["1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", " 8.8.8.8", "8.8.8.8 "]
    probes += ["0x08.8.8.8", "::1", "2001:4860::1", "tap.example.com", "8.8.8.8/32"]
    for cidr in node.excluded_ranges or ():
        net = ipaddress.IPv4Network(cidr)
        first, last = int(net.network_address), int(net.broadcast_address)
        for number in (first - 1, first, last, last + 1):
            if 0 <= number < 2**32:
                probes.append(str(ipaddress.IPv4Address(number)))
    return probes


# Probes for every pattern in the schema, the first one valid (a new pattern in the schema
# needs its probes here; the differential fails with a KeyError until it has them).
PATTERN_PROBES: dict[str, list[str]] = {
    "[A-Za-z0-9.-]+": ["Polly.Amy", "gcloud.fr-FR-Neural2-B", "a b", "a_b", "é", "a!", "-"],
    "polite|rude|professional|shakespeare|gen-z|prompt:.+": [
        *("polite", "rude", "professional", "shakespeare", "gen-z"),
        *("prompt:x", "prompt:", "prompt:line1\nline2", "Polite", "angry", " polite", "prompt"),
    ],
    "sips?:(?s:.+)": ["sip:bob@example.com", "sips:b", "sip:", "sips:", "sip:\n", "SIP:bob"],
    "(?:verto:|client:|/)(?s:.+)": [
        *("verto:alice@example.com", "verto:", "client:", "/", "client:alice"),
        *("/public/my-room", "//", "/ "),
    ],
    "\\+[1-9][0-9]{1,14}": [
        *("+15551230001", "+123456789012345", "+1234567890123456", "+1", "+12"),
        *("15551230001", "+0123456", "+1555123000\u0661", "+15551230001\n", "+1 555 123"),
        *("+", "tel:+15551230001", "+1555123000\u0663"),
    ],
    "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+": ["X-A", "X A", "X:A", "X-é", "x_a", "Identity", "X-A\n"],
    "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}": [
        CALL,
        CALL.upper(),
        "not-a-uuid",
        CALL[:-1],
        CALL + "0",
        "{" + CALL + "}",
        CALL.replace("-", ""),
        "c1",
    ],
    "[0-9]+": ["300", "0", "30s", "-5", "1.5", " 300", "\uff13\uff10\uff10", "+1", "0300"],
    "sip:(?s:.+)": ["sip:b@x", "sip:", "sips:b@x", "tel:+15551230001", "SIP:b@x", "sip:\n"],
    "[A-Za-z_][A-Za-z0-9_]*": ["k_1", "_x", "X", "1a", "a-b", "", "é", "a b"],
}
GENERIC: list[Any] = ["", "x", " ", "é", "a\nb", 5, -1, 5.5, True, False, None, [], {}, ["x"]]
ALPHABET_PROBES = "abcdwxyzABCDWXYZ0123456789#*,+-./ é\n"


def string_values(node: Node) -> list[Any]:
    values: list[Any] = list(GENERIC)
    if node.enum is not None:
        members = [str(m) for m in node.enum]
        values += members + ["zzz"] + [m.swapcase() for m in members] + [" " + members[0]]
    if node.pattern is not None:
        values += PATTERN_PROBES[node.pattern]
    for case in node.cases or ():
        if case.pattern is not None:
            values += PATTERN_PROBES[case.pattern]
        for prefix in case.when_prefix or ():
            values += [prefix, prefix + "x", prefix.upper() + "x", " " + prefix + "x"]
    if node.alphabet is not None:
        values += [node.alphabet, node.alphabet + "x", node.alphabet[::-1]]
        values += list(dict.fromkeys(node.alphabet + ALPHABET_PROBES))
    filler = node.alphabet[0] if node.alphabet else "a"
    if node.min_length is not None:
        values += [filler * (node.min_length - 1), filler * node.min_length]
    if node.max_length is not None:
        values += [filler * node.max_length, filler * (node.max_length + 1)]
    if node.max_bytes is not None:
        half = node.max_bytes // 2
        values += ["é" * half, "é" * half + "x", "a" * node.max_bytes, "a" * (node.max_bytes + 1)]
    for char in node.forbidden_chars or "":
        values.append(f"a{char}b")
    for word in node.reserved_values_ci or ():
        values += [word, word.upper(), word.title(), word + "x", "x" + word]
    if node.format == "url":
        values += url_probes(node.schemes or [])
    elif node.format == "ipv4_public":
        values += ipv4_probes(node)
    if node.split is not None and node.items is not None and node.items.enum:
        a, b = (str(m) for m in node.items.enum[:2])
        sep = node.split
        values += [a, f"{a}{sep}{b}", f"{a}{sep} {b}", f"{a}{sep}", sep, f"{a}{sep}{sep}{b}"]
        values += [a.lower(), f"{a};{b}", f" {a} "]
    return values


def number_values(node: Node, kind: str) -> list[Any]:
    values: list[Any] = [0, 1, -1, 2**31 - 1, 2**31, 2**63, 1.5, 2.0, -0.5, True, False, "1"]
    values += [None, [], {}, math.nan, math.inf, -math.inf]
    for bound in (node.minimum, node.maximum, node.exclusive_minimum, node.exclusive_maximum):
        if bound is None:
            continue
        whole = int(bound)
        values += [whole - 1, whole, whole + 1]
        if kind == "number":
            values += [bound - 0.5, float(bound), bound + 0.5, bound - 1e-9, bound + 1e-9]
    if node.multiple_of is not None and node.minimum is not None:
        low = int(node.minimum)
        values += [low + node.multiple_of, low + node.multiple_of // 2, 0, -node.multiple_of]
    values += list(node.enum or ())
    return values


BOOLEAN_VALUES: list[Any] = [True, False, 0, 1, "true", "", None, []]
CONTAINER_WRONG_TYPES: list[Any] = ["x", "", 5, True, None, 1.5]


def example(node: Node) -> Any:
    """A small value ``node`` accepts (used to fill bodies; the oracle re-checks it)."""
    if node.one_of:
        return example(node.one_of[0])
    kind = node.type
    if kind == "string":
        if node.enum:
            return str(node.enum[0])
        if node.format == "url":
            return f"{(node.schemes or ['https'])[0]}://example.com/x"
        if node.format == "ipv4_public":
            return "8.8.8.8"
        if node.pattern is not None:
            return PATTERN_PROBES[node.pattern][0]
        if node.cases:
            return "+15551230001"
        return (node.alphabet or "x")[0]
    if kind in ("integer", "number"):
        if node.minimum is not None:
            return int(node.minimum)
        if node.exclusive_minimum is not None:
            return int(node.exclusive_minimum) + 1
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return [example(node.items)] * max(node.min_items or 1, 1) if node.items else []
    if kind == "tagged":
        name, variant = next(iter((node.variants or {}).items()))
        return {node.tag: name, **example(variant)}
    if kind == "object":
        props = node.properties or {}
        return {name: example(child) for name, child in props.items() if child.required}
    return {}


@dataclass(frozen=True)
class Case:
    """``params`` is the body with ``value`` put at ``field`` (dotted wire path)."""

    field: str
    value: Any
    params: dict[str, Any]
    node: Node | None = None


def display(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def put(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(body)
    target: Any = new
    for part in path[:-1]:
        target = target[part]
    if value is ABSENT:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = copy.deepcopy(value)
    return new


@dataclass
class Generator:
    """Walks golden bodies alongside the schema and yields the cases for each field."""

    command: str
    donors: dict[tuple[str | int, ...], dict[str, Any]]
    visited: set[int] = field(default_factory=set)

    def cases(self, body: dict[str, Any]) -> Iterator[Case]:
        yield Case("(golden body)", "-", copy.deepcopy(body))
        yield from self.object_cases(SPECS[self.command].schema.params, body, body, ())

    def values(self, node: Node) -> list[Any]:
        self.visited.add(id(node))
        if node.one_of:
            out: list[Any] = [5.5, True, None]
            for alt in node.one_of:
                out += self.values(alt)
            return out
        kind = node.type
        if kind == "string":
            return string_values(node)
        if kind in ("integer", "number"):
            return number_values(node, kind)
        if kind == "boolean":
            return BOOLEAN_VALUES
        if kind in ("object", "tagged"):
            return [*CONTAINER_WRONG_TYPES, [], [{}], {}, {"bogus": 1}]
        if kind == "array":
            out = [*CONTAINER_WRONG_TYPES, {}, [], [None], [5], ["x"], [{}], [[]]]
            if node.items is not None:
                item = example(node.items)
                for size in (node.min_items, node.max_items):
                    if size is not None:
                        out += [[item] * (size - 1), [item] * size, [item] * (size + 1)]
            return out
        return []

    def descend(
        self, node: Node, body: dict[str, Any], value: Any, path: tuple[str | int, ...]
    ) -> Iterator[Case]:
        """Cases inside ``value`` (present at ``path``) for container nodes."""
        if node.one_of:
            for alt in node.one_of:
                if isinstance(value, dict if alt.type in ("object", "tagged") else list):
                    yield from self.descend(alt, body, value, path)
            return
        if node.type == "object" and isinstance(value, dict):
            yield from self.object_cases(node, body, value, path)
        elif node.type == "tagged" and isinstance(value, dict):
            tag = node.tag or ""
            tag_path = (*path, tag)
            for wrong in (ABSENT, "zzz", "", 5, None, str(value.get(tag, "")).upper()):
                yield Case(display(tag_path), wrong, put(body, tag_path, wrong))
            variant = (node.variants or {}).get(value.get(tag, ""))
            if variant is not None:
                yield from self.object_cases(variant, body, value, path, skip=tag)
        elif node.type == "array" and isinstance(value, list) and node.items is not None:
            for i, item in enumerate(value):
                item_path = (*path, i)
                for wrong in self.values(node.items):
                    yield Case(display(item_path), wrong, put(body, item_path, wrong), node.items)
                yield from self.descend(node.items, body, item, item_path)

    def object_cases(
        self,
        node: Node,
        body: dict[str, Any],
        value: dict[str, Any],
        path: tuple[str | int, ...],
        skip: str | None = None,
    ) -> Iterator[Case]:
        self.visited.add(id(node))
        donor = self.donors.get(path, {})
        for name, child in (node.properties or {}).items():
            child_path = (*path, name)
            shown = display(child_path)
            self.visited.add(id(child))
            yield Case(shown, ABSENT, put(body, child_path, ABSENT))
            for candidate in self.values(child):
                yield Case(shown, candidate, put(body, child_path, candidate), child)
            if name in value:
                yield from self.descend(child, body, value[name], child_path)
        bogus = (*path, "bogus_field")
        yield Case(display(bogus), 1, put(body, bogus, 1))
        if skip is None and isinstance(node.additional, Node):
            yield from self.map_cases(node, body, path)
        for rule in node.rules or ():
            fields = rule.fields
            for size in range(len(fields) + 1):
                for chosen in itertools.combinations(fields, size):
                    new = dict(value)
                    for name in fields:
                        new.pop(name, None)
                        if name in chosen:
                            new[name] = value.get(name, donor.get(name))
                            if new[name] is None:
                                new[name] = example((node.properties or {})[name])
                    label = "+".join(chosen) or "none"
                    shown = display(path) or "params"
                    params = put(body, path, new) if path else new
                    yield Case(f"{shown} with {label} of {', '.join(fields)}", "-", params)

    def map_cases(
        self, node: Node, body: dict[str, Any], path: tuple[str | int, ...]
    ) -> Iterator[Case]:
        values = node.additional
        assert isinstance(values, Node)
        self.visited.add(id(values))
        good = example(values)
        keys = list(PATTERN_PROBES.get(node.key_pattern or "", ["k"]))
        for prefix in node.reserved_key_prefixes or ():
            keys += [prefix + "x", prefix.upper() + "x", prefix.title() + "x", prefix[:-1] + "x"]
            keys += ["my_" + prefix + "x", prefix]
        shown = display(path)
        for key in keys:
            yield Case(f"{shown} key", key, put(body, path, {key: good}))
        for candidate in self.values(values):
            yield Case(f"{shown}.k", candidate, put(body, path, {"k": candidate}))
        if node.max_properties is not None:
            for size in (node.max_properties, node.max_properties + 1):
                entries = {f"k{i}": good for i in range(size)}
                yield Case(f"{shown} size", size, put(body, path, entries))


def donor_values(command: str) -> dict[tuple[str | int, ...], dict[str, Any]]:
    """Per object path, the first value each field has in any golden body of ``command``."""
    donors: dict[tuple[str | int, ...], dict[str, Any]] = {}

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(value, dict):
            slot = donors.setdefault(path, {})
            for key, item in value.items():
                slot.setdefault(key, item)
                walk(item, (*path, key))

    for _, expected in GOLDEN:
        if expected["command"] == command:
            walk(expected["params"], ())
    return donors


def all_nodes(node: Node) -> Iterator[tuple[str, Node]]:
    """Every node under ``node`` that holds a value of its own, with a readable path."""

    def walk(current: Node, path: str) -> Iterator[tuple[str, Node]]:
        for name, child in (current.properties or {}).items():
            yield f"{path}.{name}".lstrip("."), child
            yield from walk(child, f"{path}.{name}".lstrip("."))
        for alt in current.one_of or ():
            yield from walk(alt, path)
        for name, variant in (current.variants or {}).items():
            yield from walk(variant, f"{path}<{name}>")
        if current.items is not None and current.type == "array":
            yield from walk(current.items, f"{path}[]")

    yield from walk(node, "")


@dataclass(frozen=True)
class Disagreement:
    case: Case
    accepted_by: Literal["client", "oracle"]
    said: str

    def __str__(self) -> str:
        return f"{self.case.field} = {self.case.value!r}: {self.said}"


@dataclass
class Outcome:
    cases: int = 0
    accepted: int = 0
    disagreements: dict[tuple[str, str, str], Disagreement] = field(default_factory=dict)
    accepted_cases: list[Case] = field(default_factory=list)
    refused_by_both: int = 0
    named_apart: list[tuple[Case, str, list[str | None]]] = field(default_factory=list)


@cache
def run_differential(command: str) -> tuple[Outcome, Generator]:
    """Every generated case of ``command`` through both readings."""
    generator = Generator(command, donor_values(command))
    outcome = Outcome()
    for _, expected in GOLDEN:
        if expected["command"] != command:
            continue
        for case in generator.cases(expected["params"]):
            outcome.cases += 1
            oracle = oracle_verdict(command, case.params)
            client = client_verdict(command, case.params)
            if oracle is None:
                outcome.accepted += 1
                outcome.accepted_cases.append(case)
            if oracle is not None and client is not None:
                note_names(outcome, case, oracle, client)
            if (oracle is None) == (client is None):
                continue
            if oracle is None:
                found = Disagreement(case, "oracle", f"oracle accepts, client refuses: {client}")
            else:
                found = Disagreement(
                    case, "client", f"client accepts, oracle refuses: {oracle.body}"
                )
            key = (case.field, value_key(case.value), found.accepted_by)
            outcome.disagreements.setdefault(key, found)
    return outcome, generator


def oracle_accepted_cases(command: str) -> list[Case]:
    """The generated cases of ``command`` the oracle accepts (for the simulator's tests)."""
    return run_differential(command)[0].accepted_cases


def note_names(
    outcome: Outcome, case: Case, oracle: ApiError, client: msgspec.ValidationError
) -> None:
    """Record a case both refuse where the client's field is none of the oracle's attributes."""
    cause = client.__cause__
    if oracle.status != 422 or not isinstance(cause, ValidationError):
        return
    outcome.refused_by_both += 1
    attributes: list[str | None] = [item["attribute"] for item in oracle.body["errors"]]
    for attribute in attributes:
        if attribute is not None and _same_field(attribute, cause.field):
            return
    outcome.named_apart.append((case, str(cause), attributes))


def _same_field(attribute: str, client_field: str) -> bool:
    """The same field, or one inside the other (``digits`` vs ``digits.max``)."""
    if attribute == client_field:
        return True
    shorter, longer = sorted((attribute, client_field), key=len)
    return longer.startswith((shorter + ".", shorter + "["))


def value_key(value: Any) -> str:
    """A stable key for a case value (type-sensitive: 1, 1.0 and True differ)."""
    if isinstance(value, float) and math.isnan(value):
        return "float:nan"
    return f"{type(value).__name__}:{value!r}"


# --------------------------------------------------------------------------- known disagreements

EVERY: Any = type("Every", (), {"__repr__": lambda self: "<every>"})()
"""As ``Known.field`` or ``Known.value``: any, for a root cause that makes many generated
cases disagree the same way (``refusal`` can pin the refusing side's message). A field
ending ``.*`` means any field inside it."""


@dataclass(frozen=True)
class Known:
    """One disagreement, decided from the reference: ``wrong`` is the side it proves wrong,
    ``accepted_by`` the side that accepts the value (the other refuses it)."""

    command: str
    field: str
    value: Any
    accepted_by: Literal["client", "oracle"]
    wrong: Literal["client", "oracle"]
    why: str
    refusal: str | None = None

    def matches(self, key: tuple[str, str, str], found: Disagreement) -> bool:
        """Whether this entry explains ``found`` (``field`` ending ``.*``: anything inside)."""
        if self.field is EVERY:
            field_matches = True
        elif self.field.endswith(".*"):
            field_matches = key[0].startswith(self.field[:-1])
        else:
            field_matches = self.field == key[0]
        return (
            field_matches
            and (self.value is EVERY or value_key(self.value) == key[1])
            and (self.refusal is None or self.refusal in found.said)
        )


def url_scheme_sets(command: str) -> list[tuple[str, ...]]:
    """The scheme lists of ``command``'s URL fields, each once."""
    found = {
        tuple(node.schemes or ())
        for _, node in all_nodes(SPECS[command].schema.params)
        if node.format == "url"
    }
    return sorted(found)


_URL_WHY = (
    "the reference's own example error says a url 'must be a valid http or https url'; "
    "the WHATWG URL Standard (what browsers and most HTTP stacks parse by) fails a URL {}. "
    "The client checks the scheme, a non-empty authority and whitespace, not the host/port."
)
_SWML_WHY = (
    'the reference writes an SWML document as {version?: "1.0.0", sections: {main: [...], '
    "...}}: main is required (no ?), every section is a list, version a string; the "
    "client's check_swml only checks that sections is an object"
)
_STATUS_WHY = (
    "the reference's update variants each require url or swml and both have status "
    "optional, so status with url (or swml) is valid; the client refuses the combination "
    "('send two updates'), which the reference never asks for"
)

KNOWN: list[Known] = [
    # -- tagged objects whose only variant the client decodes without its tag. Decoding
    # only: the client always sends the tag, and the simulator no longer decodes into the
    # client's Structs. (The other disagreements this test found were fixed in the client:
    # URL hosts and ports, SWML sections, update's uuid id and status beside url/swml,
    # play's int32 loop, empty speech hints, the prompt: filter pattern, a bare "/" as a
    # fabric address, 192.0.0.0/24 as a reserved range.)
    *(
        Known(
            command,
            where,
            ABSENT,
            "client",
            "client",
            f"the reference marks {where} required; msgspec decodes a Struct with a tag "
            "that is not in a union without requiring the tag (the client always sends it)",
        )
        for command, where in (("calling.tap", "tap.type"), ("calling.refer", "device.type"))
    ),
]


def known_for(command: str) -> list[Known]:
    return [k for k in KNOWN if k.command == command]


def check_known(command: str, outcome: Outcome) -> list[str]:
    """Problems: disagreements KNOWN does not list, and KNOWN entries that no longer hold."""
    problems = []
    explained: set[tuple[str, str, str]] = set()
    for entry in known_for(command):
        keys = [key for key, found in outcome.disagreements.items() if entry.matches(key, found)]
        wrong_way = [k for k in keys if outcome.disagreements[k].accepted_by != entry.accepted_by]
        if not keys or wrong_way:
            problems.append(
                f"KNOWN {command} {entry.field} = {entry.value!r} (accepted by "
                f"{entry.accepted_by}) no longer disagrees that way: fix or remove the entry"
            )
        explained.update(keys)
    for key, found in outcome.disagreements.items():
        if key not in explained:
            problems.append(f"{command} {found}")
    return problems


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_oracle_and_client_agree(command: str) -> None:
    outcome, _ = run_differential(command)
    assert outcome.cases > 0
    assert 0 < outcome.accepted < outcome.cases, "the cases must include accepted and refused"
    problems = check_known(command, outcome)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_differential_reaches_every_schema_field(command: str) -> None:
    _, generator = run_differential(command)
    missed = [
        path
        for path, node in all_nodes(SPECS[command].schema.params)
        if id(node) not in generator.visited
    ]
    assert not missed, f"{command}: no generated values for {missed}"


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_oracle_names_the_field_the_client_names(command: str) -> None:
    """Where both refuse a value and the client's check names a field, one of the oracle's
    422 attributes names it too (same dotted wire path, or one inside the other)."""
    outcome, _ = run_differential(command)
    refusals = [k.refusal for k in known_for(command) if k.refusal and k.accepted_by == "oracle"]
    apart = [
        f"{case.field} = {case.value!r}: client {said!r}, oracle {attributes}"
        for case, said, attributes in outcome.named_apart
        if not any(refusal in said for refusal in refusals)
    ]
    assert not apart, "\n".join(apart)


def test_known_disagreements_are_well_formed() -> None:
    for entry in KNOWN:
        assert entry.command in SPECS
        assert entry.why
        assert entry.accepted_by in ("client", "oracle")
        assert entry.wrong in ("client", "oracle")


# --------------------------------------------------------------------------- random valid bodies

_JSON_LEAVES = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_HOSTS = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
_PATHS = st.from_regex(
    r"(/[A-Za-z0-9._~%-]{0,8}){0,3}(\?[a-z]{1,5}=[a-z0-9]{0,5})?", fullmatch=True
)


def valid(node: Node) -> st.SearchStrategy[Any]:
    """Values ``node`` accepts, drawn from the schema (the oracle must agree)."""
    if node.one_of:
        return st.one_of([valid(alt) for alt in node.one_of])
    kind = node.type
    if kind == "string":
        return _valid_string(node)
    if kind in ("integer", "number"):
        return _valid_number(node, kind)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        assert node.items is not None
        return st.lists(
            valid(node.items), min_size=node.min_items or 0, max_size=min(node.max_items or 4, 4)
        )
    if kind == "tagged":
        return st.one_of(
            [
                _valid_object(variant).map(_tagged_with(node.tag or "", name))
                for name, variant in (node.variants or {}).items()
            ]
        )
    if kind == "object":
        return _valid_object(node)
    return _JSON


def _tagged_with(tag: str, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda body: {tag: name, **body}


def _valid_number(node: Node, kind: str) -> st.SearchStrategy[Any]:
    if node.exclusive_minimum is not None:
        low = math.floor(node.exclusive_minimum) + 1
    else:
        low = -(2**31) if node.minimum is None else math.ceil(node.minimum)
    high = 2**31 - 1 if node.maximum is None else math.floor(node.maximum)
    integers = st.integers(low, high)
    if node.multiple_of:
        step = node.multiple_of
        integers = st.integers(math.ceil(low / step), high // step).map(lambda n: n * step)
    if kind == "integer":
        return integers
    floats = st.floats(
        min_value=node.exclusive_minimum if node.exclusive_minimum is not None else node.minimum,
        max_value=node.maximum,
        exclude_min=node.exclusive_minimum is not None,
        allow_nan=False,
        allow_infinity=False,
    )
    return floats | integers


def _valid_string(node: Node) -> st.SearchStrategy[str]:
    strategy: st.SearchStrategy[str]
    if node.enum is not None:
        return st.sampled_from([str(v) for v in node.enum])
    if node.cases:
        return st.one_of(
            [st.from_regex(case.pattern or ".*", fullmatch=True) for case in node.cases]
        )
    if node.pattern is not None:
        strategy = st.from_regex(node.pattern, fullmatch=True)
    elif node.format == "url":
        schemes = st.sampled_from(node.schemes or ["https"])
        strategy = st.builds(lambda s, h, p: f"{s}://{h}{p}", schemes, _HOSTS, _PATHS)
    elif node.format == "ipv4_public":
        strategy = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
    elif node.alphabet is not None:
        strategy = st.text(alphabet=node.alphabet, max_size=min(node.max_length or 30, 30))
    elif node.split is not None and node.items is not None and node.items.enum:
        names = st.lists(st.sampled_from([str(v) for v in node.items.enum]), min_size=1, max_size=3)
        strategy = names.map(node.split.join)
    else:
        strategy = st.text(min_size=node.min_length or 0, max_size=40)
    if (
        node.format == "ipv4_public"
        or node.reserved_values_ci
        or node.forbidden_chars
        or node.max_bytes
    ):
        strategy = strategy.filter(lambda v: _string_ok(node, v))
    return strategy


def _string_ok(node: Node, value: str) -> bool:
    if node.max_bytes is not None and len(value.encode()) > node.max_bytes:
        return False
    if node.forbidden_chars and any(c in value for c in node.forbidden_chars):
        return False
    if node.reserved_values_ci and value.lower() in {r.lower() for r in node.reserved_values_ci}:
        return False
    if node.format == "ipv4_public":
        address = ipaddress.IPv4Address(value)
        return not any(address in ipaddress.IPv4Network(r) for r in node.excluded_ranges or ())
    return True


def _valid_object(node: Node) -> st.SearchStrategy[dict[str, Any]]:
    props = node.properties or {}
    rules = node.rules or []
    ruled = sorted({name for rule in rules for name in rule.fields})
    # the sets of rule fields that satisfy every rule, drawn first so no draw is wasted
    allowed = [
        chosen
        for size in range(len(ruled) + 1)
        for chosen in itertools.combinations(ruled, size)
        if all(_rule_holds(rule, set(chosen)) for rule in rules)
    ]
    required = {name: valid(child) for name, child in props.items() if child.required}
    optional = {
        name: valid(child)
        for name, child in props.items()
        if not child.required and name not in ruled
    }
    extra = node.additional
    more: st.SearchStrategy[dict[str, Any]] = st.just({})
    if isinstance(extra, Node) or extra is True:
        keys = st.from_regex(node.key_pattern or "[a-z_]{1,8}", fullmatch=True)
        reserved = tuple(p.lower() for p in node.reserved_key_prefixes or ())
        keys = keys.filter(lambda k: k not in props and not k.lower().startswith(reserved))
        values = valid(extra) if isinstance(extra, Node) else _JSON
        more = st.dictionaries(keys, values, max_size=min(node.max_properties or 3, 3))

    def body(chosen: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
        fields = {**required, **{name: valid(props[name]) for name in chosen}}
        fixed = st.fixed_dictionaries(fields, optional=optional)
        return st.builds(lambda given, added: {**added, **given}, fixed, more)

    return st.sampled_from(allowed).flatmap(body)


def _rule_holds(rule: Rule, present: set[str]) -> bool:
    count = sum(name in present for name in rule.fields)
    if rule.kind == "exactly_one":
        return count == 1
    if rule.kind == "at_least_one":
        return count >= 1
    return count <= 1


def client_refusal_is_known(command: str, refusal: msgspec.ValidationError) -> bool:
    """A client refusal of an oracle-valid body that KNOWN already explains."""
    cause = refusal.__cause__
    said = str(cause if cause is not None else refusal)
    for entry in known_for(command):
        if entry.accepted_by != "oracle":
            continue
        if entry.refusal is not None and entry.refusal in said:
            return True
        if (
            entry.field is not EVERY
            and isinstance(cause, ValidationError)
            and _unindexed(entry.field) == _unindexed(cause.field)
            and entry.value == ""
        ):
            return True
    return False


def _unindexed(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


@pytest.mark.parametrize("command", SPEC_COMMANDS)
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_random_valid_bodies_pass_both_and_round_trip(command: str, data: st.DataObject) -> None:
    params = data.draw(valid(SPECS[command].schema.params), label="params")
    refusal = oracle_verdict(command, params)
    assert refusal is None, refusal.body
    client = client_verdict(command, params)
    if client is not None:
        assert client_refusal_is_known(command, client), f"client refuses a valid body: {client}"
        return
    decoded = msgspec.convert(params, COMMANDS[command])
    body = msgspec.json.decode(encode_command(decoded, CALL))
    assert body["params"] == params
