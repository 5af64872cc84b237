"""The simulator's request oracle: ``params`` checked against ``calling_schema.json``.

The schema is data written from the vendor's REST reference, independent of the client's
command classes (no simulator module may import them; a test checks), so the simulator
can catch a client that sends what the API refuses. ``command_specs()`` loads
and compiles it once; ``CommandSpec.validate(params)`` raises the simulator's ``ApiError``:
a plain 400 where the reference says 400, else 422 with one item per bad field, each
naming the field's dotted wire path (``play[0].params.text``, ``custom_variables.sw_x``).
The file's ``conventions`` key describes the node format.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec

from ._model import ERROR_DOCS_URL, ApiError

__all__ = [
    "MAX_ERRORS",
    "SCHEMA_FILE",
    "CommandSchema",
    "CommandSpec",
    "Node",
    "Rule",
    "SchemaError",
    "command_specs",
    "load_schema",
]

SCHEMA_FILE = "calling_schema.json"
MAX_ERRORS = 10
"""At most this many error items per 422 answer (the rest are dropped)."""


class SchemaError(ValueError):
    """The schema data is malformed (an unknown ref, a keyword on the wrong kind, ...)."""


# --------------------------------------------------------------------------- the data model

Kind: TypeAlias = Literal[
    "string", "integer", "number", "boolean", "object", "array", "tagged", "any"
]


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A cross-field rule on an object: which of ``fields`` must (not) be present together."""

    kind: Literal["exactly_one", "at_least_one", "at_most_one"]
    fields: list[str]
    code: str = "invalid_parameter"
    status: Literal[400, 422] = 422
    attribute: str | None = None
    message: str | None = None
    notes: str | None = None


class Node(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One value's constraints (see the schema file's ``conventions`` for each keyword)."""

    type: Kind | None = None
    one_of: list[Node] | None = None
    required: bool = False
    notes: str | list[str] | None = None
    uncertain: bool = False
    codes: dict[str, str] = msgspec.field(default_factory=dict)
    enum: list[str | int] | None = None
    # strings
    min_length: int | None = None
    max_length: int | None = None
    max_bytes: int | None = None
    alphabet: str | None = None
    pattern: str | None = None
    format: Literal["url", "ipv4_public"] | None = None
    schemes: list[str] | None = None
    excluded_ranges: list[str] | None = None
    forbidden_chars: str | None = None
    reserved_values_ci: list[str] | None = None
    split: str | None = None
    expected: str | None = None
    cases: list[Node] | None = None
    when_prefix: list[str] | None = None
    # numbers
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    multiple_of: int | None = None
    # objects
    properties: dict[str, Node] | None = None
    additional: bool | Node = False
    key_pattern: str | None = None
    reserved_key_prefixes: list[str] | None = None
    max_properties: int | None = None
    rules: list[Rule] | None = None
    # arrays (and split strings)
    items: Node | None = None
    min_items: int | None = None
    max_items: int | None = None
    # tagged objects
    tag: str | None = None
    variants: dict[str, Node] | None = None


class CommandSchema(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One command: where its call id travels and what its ``params`` may hold."""

    id_location: Literal["top", "params", "none"]
    params: Node
    notes: str | list[str] | None = None
    uncertain: list[str] | None = None


# --------------------------------------------------------------------------- loading

_MERGED_KEYS = ("properties", "codes")


def _resolve(node: Any, defs: Mapping[str, Any], depth: int = 0) -> Any:
    """Replace every ``{"ref": name, ...}`` by the named def extended with the other keys."""
    if depth > 64:
        raise SchemaError("refs nest more than 64 deep (a cycle?)")
    if isinstance(node, list):
        return [_resolve(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    local = {key: _resolve(value, defs, depth) for key, value in node.items()}
    name = local.pop("ref", None)
    if name is None:
        return local
    if name not in defs:
        raise SchemaError(f"unknown ref {name!r}")
    base = dict(_resolve(defs[name], defs, depth + 1))
    for key, value in local.items():
        if key in _MERGED_KEYS and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        elif key == "notes" and "notes" in base:
            base[key] = [*_as_list(base["notes"]), *_as_list(value)]
        else:
            base[key] = value
    return base


def _as_list(notes: Any) -> list[Any]:
    return list(notes) if isinstance(notes, list) else [notes]


def load_schema(data: bytes) -> dict[str, CommandSpec]:
    """Parse and compile schema JSON ``data``: wire command name -> ``CommandSpec``."""
    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict) or not isinstance(raw.get("commands"), dict):
        raise SchemaError('the schema needs a "commands" object')
    defs = raw.get("defs", {})
    try:
        for name in defs:  # every def must stand on its own, even when unused
            msgspec.convert(_resolve(defs[name], defs), Node)
        schemas = msgspec.convert(_resolve(raw["commands"], defs), dict[str, CommandSchema])
    except msgspec.ValidationError as exc:
        raise SchemaError(str(exc)) from None
    return {name: CommandSpec.compile(name, schema) for name, schema in schemas.items()}


@cache
def command_specs() -> Mapping[str, CommandSpec]:
    """The bundled schema, compiled once: wire command name -> ``CommandSpec``."""
    data = resources.files(__package__).joinpath(SCHEMA_FILE).read_bytes()
    return MappingProxyType(load_schema(data))


# --------------------------------------------------------------------------- checking

_Error: TypeAlias = tuple[str, str, str | None]  # code, message, attribute
_Check: TypeAlias = Callable[[Any, str, list[_Error]], None]
_MISSING: Any = object()

_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "tagged": (dict,),
    "array": (list,),
}
_TYPE_CODES = {
    "string": "not_a_string",
    "boolean": "not_a_boolean",
    "object": "not_a_hash",
    "tagged": "not_a_hash",
}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "tagged": "an object",
    "array": "an array",
    "any": "a value",
}
_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command's schema compiled into a checker."""

    name: str
    schema: CommandSchema
    _check: _Check
    _bad_request_rules: tuple[Rule, ...]

    @property
    def id_location(self) -> Literal["top", "params", "none"]:
        return self.schema.id_location

    @classmethod
    def compile(cls, name: str, schema: CommandSchema) -> CommandSpec:
        params = schema.params
        if params.type != "object":
            raise SchemaError(f"{name}: params must be an object node")
        for_400 = tuple(r for r in params.rules or () if r.status == 400)
        return cls(name, schema, _compile(params, name, top=True), for_400)

    def validate(self, params: dict[str, Any]) -> None:
        """Raise ``ApiError`` (400, or 422 naming each bad field) unless ``params`` is valid."""
        for rule in self._bad_request_rules:
            if _rule_failure(rule, params, "") is not None:
                raise ApiError.plain(400)
        errors: list[_Error] = []
        self._check(params, "", errors)
        if errors:
            raise ApiError(
                422,
                {
                    "errors": [
                        {
                            "type": "validation_error",
                            "code": code,
                            "message": message,
                            "attribute": attribute,
                            "url": ERROR_DOCS_URL,
                        }
                        for code, message, attribute in errors[:MAX_ERRORS]
                    ]
                },
            )


def _add(errors: list[_Error], code: str, path: str, reason: str) -> None:
    if len(errors) < MAX_ERRORS:
        errors.append((code, f"{path} {reason}" if path else reason, path))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if type(value) in _KINDS[kind]:
            return kind
    return type(value).__name__


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _compile(node: Node, where: str, *, top: bool = False, tag: str | None = None) -> _Check:
    if node.one_of is not None:
        if node.type is not None:
            raise SchemaError(f"{where}: a node has a type or a one_of, not both")
        return _one_of(node, where)
    kind = node.type
    if kind is None:
        raise SchemaError(f"{where}: a node needs a type, a one_of or a ref")
    if kind == "any":
        return _accept
    if kind == "string":
        return _string(node, where)
    if kind in ("integer", "number"):
        return _number(node, kind, where)
    if kind == "boolean":
        return _boolean(node)
    if kind == "array":
        return _array(node, where)
    if kind == "tagged":
        return _tagged(node, where)
    return _object(node, where, top=top, tag=tag)


def _accept(value: Any, path: str, errors: list[_Error]) -> None:
    return None


def _type_error(node: Node, kind: str) -> Callable[[Any, str, list[_Error]], None]:
    code = node.codes.get("type", _TYPE_CODES.get(kind, "invalid_parameter"))
    word = _TYPE_WORDS[kind]

    def fail(value: Any, path: str, errors: list[_Error]) -> None:
        _add(errors, code, path, f"must be {word}, got {_kind_of(value)}")

    return fail


def _one_of(node: Node, where: str) -> _Check:
    alternatives: list[tuple[tuple[type, ...] | None, _Check]] = []
    words = []
    for alt in node.one_of or ():
        kind = alt.type if alt.one_of is None else None
        if kind is None:
            raise SchemaError(f"{where}: one_of alternatives need a type")
        alternatives.append((_KINDS.get(kind), _compile(alt, where)))
        words.append(_TYPE_WORDS[kind])
    code = node.codes.get("type", "invalid_parameter")
    expected = " or ".join(words)

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        kind = type(value)
        for types, sub in alternatives:
            if types is None or kind in types:
                sub(value, path, errors)
                return
        _add(errors, code, path, f"must be {expected}, got {_kind_of(value)}")

    return check


# -- strings

# (keyword, problem): problem(value) is the reason the value fails, or None
_Test: TypeAlias = tuple[str, Callable[[str], str | None]]


def _string_tests(node: Node, where: str) -> list[_Test]:
    """One test per string constraint of ``node``, in the order they are checked."""
    tests: list[_Test] = []
    if node.enum is not None:
        allowed = frozenset(str(v) for v in node.enum)
        choices = ", ".join(repr(v) for v in node.enum)
        if len(choices) > 200:
            choices = f"one of {len(node.enum)} names ({choices[:80]}...)"

        def enum(v: str) -> str | None:
            return None if v in allowed else f"must be one of {choices}; got {_show(v)}"

        tests.append(("enum", enum))
    if node.min_length is not None:
        low = node.min_length

        def min_length(v: str) -> str | None:
            if len(v) >= low:
                return None
            return "must not be empty" if low == 1 else f"must be at least {low} characters"

        tests.append(("min_length", min_length))
    if node.max_length is not None:
        high = node.max_length

        def max_length(v: str) -> str | None:
            return None if len(v) <= high else f"must be at most {high} characters, got {len(v)}"

        tests.append(("max_length", max_length))
    if node.max_bytes is not None:
        most = node.max_bytes

        def max_bytes(v: str) -> str | None:
            # 4 bytes per character at most: short strings need no encoding
            if len(v) * 4 <= most or len(v.encode()) <= most:
                return None
            return f"must be at most {most} bytes (UTF-8), got {len(v.encode())}"

        tests.append(("max_bytes", max_bytes))
    if node.alphabet is not None:
        chars = node.alphabet

        def alphabet(v: str) -> str | None:
            if not v.strip(chars):  # any character outside the set survives the strip
                return None
            return f"may contain only {chars!r}; got {next(c for c in v if c not in chars)!r}"

        tests.append(("alphabet", alphabet))
    if node.forbidden_chars is not None:
        banned = node.forbidden_chars

        def forbidden_chars(v: str) -> str | None:
            return f"must not contain any of {banned!r}" if any(c in v for c in banned) else None

        tests.append(("forbidden_chars", forbidden_chars))
    if node.pattern is not None:
        try:
            regex = re.compile(node.pattern)
        except re.error as exc:
            raise SchemaError(f"{where}: bad pattern {node.pattern!r}: {exc}") from None

        wanted = node.expected or f"match {regex.pattern}"

        def pattern(v: str) -> str | None:
            return None if regex.fullmatch(v) else f"must {wanted}; got {_show(v)}"

        tests.append(("pattern", pattern))
    if node.reserved_values_ci is not None:
        reserved = frozenset(r.lower() for r in node.reserved_values_ci)

        def reserved_values(v: str) -> str | None:
            return f"{_show(v)} is reserved" if v.lower() in reserved else None

        tests.append(("reserved_values_ci", reserved_values))
    if node.format == "url":
        if not node.schemes:
            raise SchemaError(f"{where}: format url needs schemes")
        schemes = tuple(node.schemes)
        tests.append(("format", lambda v: _url_reason(v, schemes)))
    elif node.format == "ipv4_public":
        excluded = tuple(ipaddress.IPv4Network(r) for r in node.excluded_ranges or ())
        tests.append(("format", lambda v: _ipv4_reason(v, excluded)))
    return tests


@lru_cache(maxsize=512)
def _url_reason_cached(value: str, schemes: tuple[str, ...]) -> str | None:
    return _url_problem(value, schemes)


def _url_reason(value: str, schemes: tuple[str, ...]) -> str | None:
    # the cache holds short strings only, so its memory stays bounded
    if len(value) <= 256:
        return _url_reason_cached(value, schemes)
    return _url_problem(value, schemes)


def _url_problem(value: str, schemes: tuple[str, ...]) -> str | None:
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in schemes:
        starts = " or ".join(f"{s}://" for s in schemes)
        return f"must be a URL starting with {starts}; got {_show(value)}"
    if not value.isprintable() or _WHITESPACE.search(value):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:
        return f"is not a valid URL: {_show(value)}"
    if not host:
        return f"must name a host; got {_show(value)}"
    return None


def _ipv4_reason(value: str, excluded: tuple[ipaddress.IPv4Network, ...]) -> str | None:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return f"must be an IPv4 address (dotted quad); got {_show(value)}"
    for network in excluded:
        if address in network:
            return f"must be a public IPv4 address; {value} is in the non-public range {network}"
    return None


def _string(node: Node, where: str) -> _Check:
    fail_type = _type_error(node, "string")
    tests = _string_tests(node, where)
    codes = node.codes
    cases: list[tuple[tuple[str, ...], list[_Test], dict[str, str]]] = [
        (tuple(case.when_prefix or ()), _string_tests(case, where), {**codes, **case.codes})
        for case in node.cases or ()
    ]
    split = node.split
    part_check = _compile(node.items, where) if split is not None and node.items else None
    if split is not None and part_check is None:
        raise SchemaError(f"{where}: split needs items")

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        if type(value) is not str:
            fail_type(value, path, errors)
            return
        for keyword, problem in tests:
            reason = problem(value)
            if reason is not None:
                _add(errors, codes.get(keyword, "invalid_parameter"), path, reason)
                return
        for prefixes, case_tests, case_codes in cases:
            if not prefixes or value.startswith(prefixes):
                for keyword, problem in case_tests:
                    reason = problem(value)
                    if reason is not None:
                        _add(errors, case_codes.get(keyword, "invalid_parameter"), path, reason)
                        return
                break
        if part_check is not None:
            for i, part in enumerate(value.split(split)):
                part_check(part.strip(" "), f"{path}[{i}]", errors)

    return check


# -- numbers and booleans


def _number(node: Node, kind: str, where: str) -> _Check:
    fail_type = _type_error(node, kind)
    codes = node.codes
    integer = kind == "integer"
    tests: list[tuple[str, Callable[[float], bool], str]] = []
    if node.enum is not None:
        allowed = frozenset(node.enum)
        tests.append(("enum", allowed.__contains__, f"must be one of {sorted(allowed)}"))
    if node.minimum is not None:
        low = node.minimum
        tests.append(("minimum", lambda v: v >= low, f"must be at least {low:g}"))
    if node.exclusive_minimum is not None:
        above = node.exclusive_minimum
        tests.append(("exclusive_minimum", lambda v: v > above, f"must be greater than {above:g}"))
    if node.maximum is not None:
        high = node.maximum
        tests.append(("maximum", lambda v: v <= high, f"must be at most {high:g}"))
    if node.exclusive_maximum is not None:
        below = node.exclusive_maximum
        tests.append(("exclusive_maximum", lambda v: v < below, f"must be less than {below:g}"))
    if node.multiple_of is not None:
        step = node.multiple_of
        if not integer:
            raise SchemaError(f"{where}: multiple_of is for integers")
        tests.append(("multiple_of", lambda v: v % step == 0, f"must be a multiple of {step}"))

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        kind_of = type(value)
        if not (kind_of is int or (kind_of is float and not integer and math.isfinite(value))):
            fail_type(value, path, errors)
            return
        for keyword, passes, reason in tests:
            if not passes(value):
                code = codes.get(keyword, "invalid_parameter")
                _add(errors, code, path, f"{reason}, got {_show(value)}")
                return

    return check


def _boolean(node: Node) -> _Check:
    fail_type = _type_error(node, "boolean")

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        if type(value) is not bool:
            fail_type(value, path, errors)

    return check


# -- arrays


def _array(node: Node, where: str) -> _Check:
    fail_type = _type_error(node, "array")
    codes = node.codes
    item_check = _compile(node.items, f"{where}[]") if node.items is not None else _accept
    low, high = node.min_items, node.max_items

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        if type(value) is not list:
            fail_type(value, path, errors)
            return
        if low is not None and len(value) < low:
            reason = "must not be empty" if low == 1 else f"must hold at least {low} items"
            _add(errors, codes.get("min_items", "invalid_parameter"), path, reason)
            return
        if high is not None and len(value) > high:
            reason = f"must hold at most {high} items, got {len(value)}"
            _add(errors, codes.get("max_items", "invalid_parameter"), path, reason)
            return
        for i, item in enumerate(value):
            if len(errors) >= MAX_ERRORS:
                return
            item_check(item, f"{path}[{i}]", errors)

    return check


# -- objects


def _present(params: dict[str, Any], name: str) -> bool:
    return params.get(name) is not None


def _rule_failure(rule: Rule, value: dict[str, Any], path: str) -> _Error | None:
    present = [name for name in rule.fields if _present(value, name)]
    names = ", ".join(rule.fields)
    if rule.kind != "at_most_one" and not present:
        attribute = rule.fields[0]
        message = rule.message or f"one of {names} is required"
    elif rule.kind != "at_least_one" and len(present) > 1:
        attribute = present[1]
        message = rule.message or f"give only one of {names}"
    else:
        return None
    if rule.attribute is not None:
        attribute = rule.attribute
    return rule.code, message, _join(path, attribute) if attribute else path


def _object(node: Node, where: str, *, top: bool, tag: str | None) -> _Check:
    fail_type = _type_error(node, "object")
    codes = node.codes
    props = [
        (name, _compile(child, f"{where}.{name}"), child.required)
        for name, child in (node.properties or {}).items()
    ]
    known = frozenset(name for name, _, _ in props) | ({tag} if tag else frozenset())
    rules = [r for r in node.rules or () if r.status == 422]
    if not top and any(r.status == 400 for r in node.rules or ()):
        raise SchemaError(f"{where}: status 400 rules belong on a command's params")
    extra = node.additional
    value_check: _Check | None = None
    if isinstance(extra, Node):
        value_check = _compile(extra, f"{where}.*")
    elif node.key_pattern or node.reserved_key_prefixes:
        raise SchemaError(f"{where}: key rules need additional: <node>")
    key_regex = re.compile(node.key_pattern) if node.key_pattern else None
    reserved = tuple(p.lower() for p in node.reserved_key_prefixes or ())
    most = node.max_properties

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        if type(value) is not dict:
            fail_type(value, path, errors)
            return
        if most is not None and len(value) > most:
            reason = f"must hold at most {most} entries, got {len(value)}"
            _add(errors, codes.get("max_properties", "invalid_parameter"), path, reason)
            return
        seen = 1 if tag is not None and tag in value else 0
        for name, sub, required in props:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                if required:
                    _add(errors, "missing_required_parameter", _join(path, name), "is required")
                continue
            seen += 1
            sub(item, _join(path, name), errors)
        if seen < len(value):
            for key in value:
                if key in known:
                    continue
                where_key = _join(path, key)
                if extra is True:
                    continue
                if value_check is None:
                    _add(errors, "invalid_parameter", where_key, "is not a parameter")
                elif key_regex is not None and key_regex.fullmatch(key) is None:
                    reason = f"name must match {key_regex.pattern}"
                    _add(errors, codes.get("key_pattern", "invalid_parameter"), where_key, reason)
                elif reserved and key.lower().startswith(reserved):
                    reason = f"names starting with {', '.join(reserved)} are reserved"
                    code = codes.get("reserved_key_prefixes", "invalid_parameter")
                    _add(errors, code, where_key, reason)
                else:
                    value_check(value[key], where_key, errors)
                if len(errors) >= MAX_ERRORS:
                    return
        for rule in rules:
            failure = _rule_failure(rule, value, path)
            if failure is not None and len(errors) < MAX_ERRORS:
                errors.append(failure)

    return check


def _tagged(node: Node, where: str) -> _Check:
    fail_type = _type_error(node, "tagged")
    tag = node.tag
    if not tag or not node.variants:
        raise SchemaError(f"{where}: a tagged node needs tag and variants")
    variants = {
        name: _compile(variant, f"{where}<{name}>", tag=tag)
        for name, variant in node.variants.items()
    }
    choices = ", ".join(repr(name) for name in variants)
    code = node.codes.get("enum", "invalid_parameter")

    def check(value: Any, path: str, errors: list[_Error]) -> None:
        if type(value) is not dict:
            fail_type(value, path, errors)
            return
        which = value.get(tag, _MISSING)
        where_tag = _join(path, tag)
        if which is _MISSING:
            _add(errors, "missing_required_parameter", where_tag, "is required")
        elif type(which) is not str or which not in variants:
            _add(errors, code, where_tag, f"must be one of {choices}; got {_show(which)}")
        else:
            variants[which](value, path, errors)

    return check
