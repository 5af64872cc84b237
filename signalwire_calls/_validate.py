"""Field rules of the command Structs, stated in their annotations and compiled per class.

A rule is written once, in the field's annotation: ``Literal[...]`` for an enum,
``Annotated[T, msgspec.Meta(...)]`` for bounds, lengths and patterns (msgspec enforces
these itself when it decodes, and ``msgspec.json.schema`` shows them), and a named checker
object (a ``Check``) in the same ``Annotated[...]`` for what ``Meta`` cannot say: URLs,
E.164 numbers, public IPv4 addresses, ... msgspec ignores metadata that is not a ``Meta``.

msgspec does not check ``Meta`` on a Struct built in code, so ``validator(cls)`` turns
the annotations of ``cls`` into one generated Python function (built on first use, then
cached) that checks a constructed instance: types (a bool is not a number, floats are
finite), ``Literal`` members, ``Meta`` bounds, lengths and patterns, checkers, nested
Structs and tagged unions, and sequences and dicts item by item. The generated code is
straight-line attribute reads and comparisons, with nested option Structs written inline:
commands are built on a hot path. ``source_of(cls)`` shows it.

Errors are ``ValidationError(path, message)`` with the dotted wire path of the value
(``play[0].params.text``, ``custom_variables.sw_x``, ``from``). Inside the machinery a
nested Struct's validator raises paths relative to that Struct, and a checker raises a
suffix (``""``, ``"[1]"`` or ``".key"``); the caller prefixes them.

Containers are frozen as the Struct is built: lists become tuples and dicts whose
contents are checked become a read-only ``FrozenDict`` copy, so nothing reachable from a
validated command can change after the check.
"""

from __future__ import annotations

import ipaddress
import linecache
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from math import isfinite
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

import msgspec

from .errors import ValidationError

__all__ = [
    "VALIDATORS",
    "Check",
    "CodecString",
    "Destination",
    "FrozenDict",
    "HeaderName",
    "HeaderValue",
    "MaxUtf8Bytes",
    "NonEmpty",
    "PublicIPv4",
    "ReservedPrefix",
    "SwmlObject",
    "Url",
    "fail",
    "freeze",
    "source_of",
    "validator",
    "whole",
]


def fail(field: str, message: str) -> NoReturn:
    """Raise the ``ValidationError`` for ``field``."""
    raise ValidationError(field, message)


def whole(body: str) -> str:
    """A ``Meta(pattern=...)`` that matches all of the value.

    msgspec uses ``re.search``, and Python's ``$`` also matches before a final newline;
    the lookahead refuses that newline (JSON Schema readers see the same meaning).
    """
    return rf"^(?:{body})$(?!\n)"


def _show(value: Any) -> str:
    """A value for an error message: a short repr of a scalar, else what it is."""
    if value is None or type(value) in (str, int, float, bool):
        text = repr(value)
        return text if len(text) <= 80 else f"{text[:77]}..."
    if type(value) in (list, tuple):
        return f"a list of {len(value)} items" if value else "[]"
    return type(value).__name__


def _nest(prefix: str, exc: ValidationError) -> ValidationError:
    """A nested Struct's error (path relative to it) seen from its holder."""
    field = f"{prefix}.{exc.field}" if exc.field else prefix
    return ValidationError(field, exc.reason)


def _index(items: Sequence[Any], item: Any) -> int:
    """Where ``item`` (the first bad one, so its first occurrence) is in ``items``."""
    return next(i for i, other in enumerate(items) if other is item)


def _under(prefix: str, exc: ValidationError) -> ValidationError:
    """A checker's error (path suffix ``""``, ``"[i]"`` or ``".key"``) at ``prefix``."""
    return ValidationError(prefix + exc.field, exc.reason)


# --------------------------------------------------------------------------- dicts


class FrozenDict(dict[Any, Any]):
    """A read-only dict: what a command keeps of a dict whose contents were checked.

    A ``dict`` subclass so msgspec encodes it as an object; every mutating method raises
    ``TypeError``.
    """

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is part of a validated command and cannot change")

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


# --------------------------------------------------------------------------- checkers


class Check:
    """A rule that ``msgspec.Meta`` cannot state, placed in a field's ``Annotated[...]``.

    Called with a value already known to have the annotated type; raises
    ``ValidationError(suffix, message)`` where ``suffix`` is ``""`` for the value itself
    (or ``"[i]"`` / ``".key"`` for a part of it). ``known`` may hold values already found
    good, which the generated code then skips without a call.
    """

    __slots__ = ()
    known: set[str] | None = None
    failing: str | None = None  # a cheap expression ("{}" = the value), true when bad

    def __call__(self, value: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_KNOWN_MAX: Final = 256


class Url(Check):
    """A URL starting with one of ``schemes`` and naming a host.

    Good URLs are remembered (up to 256): a session sends the same ``status_url`` with
    every command, and checking it again would cost more than building the command.
    """

    __slots__ = ("known", "schemes")

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes
        self.known: set[str] = set()

    def __call__(self, value: str) -> None:
        if value in self.known:
            return
        if not value.startswith(self.schemes):
            fail("", f"must be a URL starting with {' or '.join(self.schemes)}; got {value!r}")
        rest = value.partition("://")[2]
        if not rest or rest[0] in "/?#" or " " in rest or not rest.isprintable():
            fail("", f"is not a valid URL: {value!r}")
        try:
            parts = urlsplit(value)
            host = parts.hostname
            _ = parts.port  # a port that is not digits, or above 65535, raises
        except ValueError:
            fail("", f"is not a valid URL (bad host or port): {_show(value)}")
        if not host:
            fail("", f"is not a valid URL (no host): {_show(value)}")
        if type(value) is str and len(self.known) < _KNOWN_MAX:
            self.known.add(value)

    def __repr__(self) -> str:
        return f"Url{self.schemes!r}"


_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class Destination(Check):
    """``dial.to``: an address (``sip:``, ``sips:``, ``verto:``, ``client:``, or a fabric
    address starting with ``/``), or else a phone number, which must be E.164."""

    __slots__ = ()
    ADDRESS_PREFIXES: Final = ("sip:", "sips:", "verto:", "client:")

    def __call__(self, value: str) -> None:
        if value.startswith(self.ADDRESS_PREFIXES):
            if not value.partition(":")[2]:
                fail("", f"address has nothing after the scheme: {value!r}")
        elif value[:1] == "/":
            if not value[1:]:
                fail("", "a fabric address names a resource after '/', e.g. /public/room")
        elif _E164.fullmatch(value) is None:
            fail("", f"a phone number must be E.164 (e.g. +15551230000), got {value!r}")


_IETF_PROTOCOL_ASSIGNMENTS: Final = ipaddress.IPv4Network("192.0.0.0/24")


class PublicIPv4(Check):
    """A public (globally routable, unicast) IPv4 address literal."""

    __slots__ = ()

    def __call__(self, value: str) -> None:
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            fail("", f"must be an IPv4 address, got {_show(value)}")
        # 192.0.0.0/24 is listed explicitly: Python's tables before 3.11.10/3.12.4 count
        # part of it as global (IANA: not globally reachable)
        if (
            not addr.is_global
            or addr.is_multicast
            or addr.is_reserved
            or addr in _IETF_PROTOCOL_ASSIGNMENTS
        ):
            fail("", f"must be a public IPv4 address (private/reserved ranges refused): {value}")


class ReservedPrefix(Check):
    """A name that does not start (in any case) with one of ``prefixes``."""

    __slots__ = ("prefixes",)

    def __init__(self, *prefixes: str) -> None:
        self.prefixes = prefixes

    def __call__(self, value: str) -> None:
        if value.lower().startswith(self.prefixes):
            names = ", ".join(self.prefixes[:-1]) + f" or {self.prefixes[-1]}"
            fail("", f"names starting with {names} are reserved")

    def __repr__(self) -> str:
        return f"ReservedPrefix{self.prefixes!r}"


class MaxUtf8Bytes(Check):
    """A string of at most ``limit`` bytes once UTF-8 encoded."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, value: str) -> None:
        # 4 bytes per character at most: short strings cannot exceed the limit
        if len(value) * 4 > self.limit and len(value.encode("utf-8", "surrogatepass")) > self.limit:
            fail("", f"must be at most {self.limit} bytes (UTF-8)")

    def __repr__(self) -> str:
        return f"MaxUtf8Bytes({self.limit})"


# RFC 7230 token characters: what a header name may contain.
_TOKEN_CHARS: Final = (
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


class HeaderName(Check):
    """A SIP header name: RFC 7230 token characters, not one of ``reserved`` (any case)."""

    __slots__ = ("reserved",)

    def __init__(self, *reserved: str) -> None:
        self.reserved = frozenset(name.lower() for name in reserved)

    def __call__(self, value: str) -> None:
        if value.strip(_TOKEN_CHARS):
            fail("", f"is not a valid header name: {value!r}")
        if value.lower() in self.reserved:
            fail("", f"{value!r} is reserved")


class HeaderValue(Check):
    """A header value: no CR, LF or NUL (they would end or split the header)."""

    __slots__ = ()

    def __call__(self, value: str) -> None:
        if "\r" in value or "\n" in value or "\0" in value:
            fail("", "must not contain CR, LF or NUL")


class CodecString(Check):
    """The one-string form of a codec list: comma-separated names, each one of ``allowed``."""

    __slots__ = ("allowed", "choices")

    def __init__(self, allowed: Any) -> None:
        names = (
            typing.get_args(allowed) if typing.get_origin(allowed) is typing.Literal else allowed
        )
        self.allowed = frozenset(names)
        self.choices = ", ".join(sorted(repr(name) for name in self.allowed))

    def __call__(self, value: str) -> None:
        for i, part in enumerate(value.split(",")):
            if part.strip() not in self.allowed:
                fail(f"[{i}]", f"must be one of {self.choices}; got {part.strip()!r}")


class SwmlObject(Check):
    """An inline SWML document object: ``{"version"?: str, "sections": {"main": [...],
    ...}}`` -- a ``main`` section, and every section a list of methods."""

    __slots__ = ()

    def __call__(self, value: dict[str, Any]) -> None:
        sections = value.get("sections")
        if not isinstance(sections, dict):
            fail("", 'an SWML object needs "sections" (e.g. {"sections": {"main": [...]}})')
        if "main" not in sections:
            fail(".sections.main", 'an SWML document needs a "main" section')
        for name, section in sections.items():
            if not isinstance(section, list):
                fail(f".sections.{name}", "a section is a list of SWML methods")
        if "version" in value and not isinstance(value["version"], str):
            fail(".version", "must be a string such as '1.0.0'")


class NonEmpty(Check):
    """A non-empty string, checked by the validator rather than by msgspec (so a decode
    error keeps the whole path of the value, e.g. ``play[0].params.text``)."""

    __slots__ = ()
    failing = "not {}"

    def __call__(self, value: str) -> None:
        if not value:
            fail("", "must not be empty")


# --------------------------------------------------------------------------- rule nodes
# One node per annotation; each writes the lines that check a value held in a local
# variable, with the value's path given as an f-string template.


class _Gen:
    """Source being generated, and the constants its globals hold."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "UNSET": msgspec.UNSET,
            "ValidationError": ValidationError,
            "_nest": _nest,
            "_under": _under,
            "_isfinite": isfinite,
            "_set": msgspec.structs.force_setattr,
            "_FrozenDict": FrozenDict,
            "_validator": validator,
            "_index": _index,
        }
        self.indent = 1
        self.inlining: set[type] = set()
        self._names: dict[int, str] = {}

    def const(self, value: Any, hint: str = "c") -> str:
        """A global name of the generated code bound to ``value`` (one per object)."""
        name = self._names.get(id(value))
        if name is None:
            name = self._names[id(value)] = f"_{hint}{len(self.namespace)}"
            self.namespace[name] = value
        return name

    def line(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)

    def block(self, head: str) -> _Indent:
        self.line(head)
        return _Indent(self)


class _Indent:
    """Indents the lines written inside ``with`` by ``step`` levels."""

    def __init__(self, gen: _Gen, step: int = 1) -> None:
        self.gen = gen
        self.step = step

    def __enter__(self) -> None:
        self.gen.indent += self.step

    def __exit__(self, *exc: object) -> None:
        self.gen.indent -= self.step


_NUMBER_RULES: Final = ("ge", "gt", "le", "lt", "multiple_of")
_LENGTH_RULES: Final = ("min_length", "max_length")


def _path_code(template: str) -> str:
    """Source of an expression giving the path: a literal, or an f-string over loop names."""
    return f"f{template!r}" if "{" in template else repr(template)


class _Node:
    """The rules of one annotation."""

    description: str | None = None
    freeze: str | None = None  # "tuple" / "dict": how a field holding it is frozen

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        raise NotImplementedError

    def what(self) -> str:
        raise NotImplementedError

    def message(self, rule: str, value: Any) -> str:
        raise NotImplementedError

    def error(self, path: str, value: Any, rule: str) -> ValidationError:
        """The error for ``value`` breaking ``rule`` (called by generated code)."""
        if self.description is not None:
            return ValidationError(path, f"must be {self.description}; got {_show(value)}")
        return ValidationError(path, self.message(rule, value))

    def raise_(self, gen: _Gen, var: str, path: str, rule: str) -> str:
        return f"raise {gen.const(self, 'n')}.error({_path_code(path)}, {var}, {rule!r})"

    def apply(self, meta: msgspec.Meta) -> None:
        self.refuse(meta, _NUMBER_RULES + _LENGTH_RULES + ("pattern",))

    def refuse(self, meta: msgspec.Meta, names: tuple[str, ...]) -> None:
        """Raise ``TypeError`` if ``meta`` sets one of ``names`` (rules not for this type)."""
        for name in names:
            if getattr(meta, name) is not None:
                raise TypeError(f"Meta({name}=...) does not apply to {self.what()}")


class _Any(_Node):
    """``Any``: nothing to check."""

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        gen.line("pass")

    def what(self) -> str:
        return "anything"


class _Str(_Node):
    """``str`` (subclasses too), with Meta lengths/pattern and checkers."""

    def __init__(self) -> None:
        self.min_length: int | None = None
        self.max_length: int | None = None
        self.pattern: str | None = None
        self.checks: list[Check] = []

    def apply(self, meta: msgspec.Meta) -> None:
        if meta.min_length is not None:
            self.min_length = meta.min_length
        if meta.max_length is not None:
            self.max_length = meta.max_length
        if meta.pattern is not None:
            self.pattern = meta.pattern
        self.refuse(meta, _NUMBER_RULES)

    def what(self) -> str:
        return "a string"

    def message(self, rule: str, value: Any) -> str:
        if rule == "type":
            what = "a non-empty string" if self.min_length else "a string"
            return f"must be {what}, got {type(value).__name__}"
        if rule == "min_length":
            if self.min_length == 1:
                return "must not be empty"
            return f"must be at least {self.min_length} characters, got {len(value)}"
        if rule == "max_length":
            return f"must be at most {self.max_length} characters, got {len(value)}"
        return f"must match {self.pattern}; got {_show(value)}"

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        fast = [c for c in self.checks if c.known is not None]
        if (
            len(self.checks) == 1
            and fast
            and self.pattern is None
            and self.min_length is None
            and self.max_length is None
        ):
            # a value the checker already passed needs nothing more
            known = gen.const(fast[0].known, "k")
            with gen.block(f"if type({var}) is not str or {var} not in {known}:"):
                self._emit_all(gen, var, path)
        else:
            self._emit_all(gen, var, path)

    def _emit_all(self, gen: _Gen, var: str, path: str) -> None:
        # one cheap test on the good path; the exact cause is sorted out on the bad one
        guard = [f"type({var}) is not str"]
        if self.min_length == 1:
            guard.append(f"not {var}")
        elif self.min_length is not None:
            guard.append(f"len({var}) < {self.min_length}")
        if self.max_length is not None:
            guard.append(f"len({var}) > {self.max_length}")
        with gen.block(f"if {' or '.join(guard)}:"):
            with gen.block(f"if not isinstance({var}, str):"):
                gen.line(self.raise_(gen, var, path, "type"))
            if self.min_length is not None:
                with gen.block(f"if len({var}) < {self.min_length}:"):
                    gen.line(self.raise_(gen, var, path, "min_length"))
            if self.max_length is not None:
                with gen.block(f"if len({var}) > {self.max_length}:"):
                    gen.line(self.raise_(gen, var, path, "max_length"))
        if self.pattern is not None:
            search = gen.const(re.compile(self.pattern).search, "re")
            with gen.block(f"if {search}({var}) is None:"):
                gen.line(self.raise_(gen, var, path, "pattern"))
        for check in self.checks:
            _emit_check(gen, check, var, path)


def _emit_check(gen: _Gen, check: Check, var: str, path: str) -> None:
    name = gen.const(check, "chk")
    if check.failing is not None:
        # the checker is called only when its cheap test says the value is bad
        with gen.block(f"if {check.failing.format(var)}:"):
            _emit_check_call(gen, name, var, path)
    else:
        _emit_check_call(gen, name, var, path)


def _emit_check_call(gen: _Gen, name: str, var: str, path: str) -> None:
    with gen.block("try:"):
        gen.line(f"{name}({var})")
    with gen.block("except ValidationError as e:"):
        gen.line(f"raise _under({_path_code(path)}, e) from None")


class _Number(_Node):
    """A number with Meta bounds; subclasses say which Python types count."""

    kind = "a number"

    def __init__(self) -> None:
        self.ge: float | None = None
        self.gt: float | None = None
        self.le: float | None = None
        self.lt: float | None = None
        self.multiple_of: float | None = None

    def apply(self, meta: msgspec.Meta) -> None:
        for name in _NUMBER_RULES:
            if getattr(meta, name) is not None:
                setattr(self, name, getattr(meta, name))
        self.refuse(meta, (*_LENGTH_RULES, "pattern"))

    def what(self) -> str:
        return self.kind

    def message(self, rule: str, value: Any) -> str:
        if rule == "type":
            return f"must be {self.kind}, got {_show(value)}"
        if rule == "multiple_of":
            return f"must be a multiple of {self.multiple_of:g}, got {value!r}"
        low = self.ge if self.ge is not None else self.gt
        if self.gt is not None and value <= self.gt:
            return f"must be greater than {self.gt:g}, got {value!r}"
        if self.lt is not None and value >= self.lt:
            return f"must be less than {self.lt:g}, got {value!r}"
        if low is not None and self.le is not None:
            return f"must be between {low:g} and {self.le:g}, got {value!r}"
        if low is not None:
            return f"must be at least {low:g}, got {value!r}"
        return f"must be at most {self.le:g}, got {value!r}"

    def emit_type(self, gen: _Gen, var: str, path: str) -> None:
        raise NotImplementedError

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        self.emit_type(gen, var, path)
        tests = [
            f"{var} {op} {bound!r}"
            for op, bound in (("<", self.ge), ("<=", self.gt), (">", self.le), (">=", self.lt))
            if bound is not None
        ]
        if tests:
            with gen.block(f"if {' or '.join(tests)}:"):
                gen.line(self.raise_(gen, var, path, "bounds"))
        if self.multiple_of is not None:
            with gen.block(f"if {var} % {self.multiple_of!r}:"):
                gen.line(self.raise_(gen, var, path, "multiple_of"))


class _Int(_Number):
    """``int``: not a bool, not a float."""

    kind = "an integer"

    def emit_type(self, gen: _Gen, var: str, path: str) -> None:
        with gen.block(f"if type({var}) is not int:"):  # bool is not an integer here
            gen.line(self.raise_(gen, var, path, "type"))


class _Float(_Number):
    """``float``: a finite float or an int, not a bool."""

    kind = "a finite number"

    def emit_type(self, gen: _Gen, var: str, path: str) -> None:
        with gen.block(f"if type({var}) is float:"), gen.block(f"if not _isfinite({var}):"):
            gen.line(self.raise_(gen, var, path, "type"))
        with gen.block(f"elif type({var}) is not int:"):
            gen.line(self.raise_(gen, var, path, "type"))


class _Bool(_Node):
    """``bool``: ``True`` or ``False`` only (not 0 or 1)."""

    def what(self) -> str:
        return "true or false"

    def message(self, rule: str, value: Any) -> str:
        return f"must be true or false, got {_show(value)}"

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        with gen.block(f"if {var} is not True and {var} is not False:"):
            gen.line(self.raise_(gen, var, path, "type"))


class _Literal(_Node):
    """``Literal[...]`` of strings: one of the values, exactly (case-sensitive)."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        if not all(type(v) is str for v in values):
            raise TypeError(f"only string Literals are supported, got {values!r}")
        self.values = frozenset(values)
        self.choices = ", ".join(sorted(repr(v) for v in values))

    def what(self) -> str:
        return self.choices if len(self.values) == 1 else f"one of {self.choices}"

    def message(self, rule: str, value: Any) -> str:
        return f"must be one of {self.choices}; got {_show(value)}"

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        values = gen.const(self.values, "lit")
        test = f"(type({var}) is not str and not isinstance({var}, str)) or {var} not in {values}"
        with gen.block(f"if {test}:"):
            gen.line(self.raise_(gen, var, path, "type"))


class _Structs(_Node):
    """One Struct class, or a tagged union of them. The checks of an instance of exactly
    a named class are written inline (no call, and the error path is built in place); a
    subclass instance, or a class already being written out (a cycle), gets a call to
    its own validator."""

    def __init__(self, classes: tuple[type[msgspec.Struct], ...]) -> None:
        self.classes = classes

    def what(self) -> str:
        names = [c.__name__ for c in self.classes]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"

    def message(self, rule: str, value: Any) -> str:
        return f"must be {self.what()}, got {type(value).__name__}"

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        t = f"t{depth}"
        gen.line(f"{t} = type({var})")
        keyword = "if"
        for cls in self.classes:
            if cls in gen.inlining:
                continue
            with gen.block(f"{keyword} {t} is {gen.const(cls, 'cls')}:"):
                _emit_fields(gen, cls, var, path, depth + 1)
            keyword = "elif"
        with gen.block("else:") if keyword == "elif" else _Indent(gen, 0):
            classes = gen.const(self.classes, "cls")
            with gen.block(f"if not isinstance({var}, {classes}):"):
                gen.line(self.raise_(gen, var, path, "type"))
            with gen.block("try:"):
                gen.line(f"_validator({t})({var})")
            with gen.block("except ValidationError as e:"):
                gen.line(f"raise _nest({_path_code(path)}, e) from None")


class _Sized(_Node):
    """A container with Meta ``min_length``/``max_length``."""

    noun = "items"

    def __init__(self) -> None:
        self.min_length: int | None = None
        self.max_length: int | None = None

    def apply(self, meta: msgspec.Meta) -> None:
        if meta.min_length is not None:
            self.min_length = meta.min_length
        if meta.max_length is not None:
            self.max_length = meta.max_length
        self.refuse(meta, (*_NUMBER_RULES, "pattern"))

    def message(self, rule: str, value: Any) -> str:
        if rule == "type":
            return f"must be {self.what()}, got {type(value).__name__}"
        if rule == "min_length":
            if self.min_length == 1:
                return "must not be empty"
            return f"must have at least {self.min_length} {self.noun}, got {len(value)}"
        return f"at most {self.max_length} {self.noun} allowed, got {len(value)}"

    def emit_sizes(self, gen: _Gen, var: str, path: str) -> None:
        if self.min_length is not None:
            with gen.block(f"if len({var}) < {self.min_length}:"):
                gen.line(self.raise_(gen, var, path, "min_length"))
        if self.max_length is not None:
            with gen.block(f"if len({var}) > {self.max_length}:"):
                gen.line(self.raise_(gen, var, path, "max_length"))


class _Seq(_Sized):
    """A sequence, stored as a tuple (a list given to a field is frozen into one)."""

    freeze = "tuple"

    def __init__(self, item: _Node) -> None:
        super().__init__()
        if item.freeze is not None:
            raise TypeError(
                "a container inside a container is not supported (it would stay mutable)"
            )
        self.item = item

    def what(self) -> str:
        return "a list"

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        with gen.block(f"if type({var}) is not tuple:"):
            gen.line(self.raise_(gen, var, path, "type"))
        self.emit_sizes(gen, var, path)
        if isinstance(self.item, _Any):
            return
        # no enumerate() on the good path: an error finds the index of the bad item
        x = f"x{depth}"
        with gen.block(f"for {x} in {var}:"):
            self.item.emit(gen, x, f"{path}[{{_index({var}, {x})}}]", depth + 1)


class _Dict(_Sized):
    """A dict; when its keys or values are checked it is stored as a ``FrozenDict`` copy.
    A plain JSON payload (``dict[str, Any]``) is only type-checked and sent as it is."""

    noun = "entries"

    def __init__(self, key: _Node, value: _Node) -> None:
        super().__init__()
        if key.freeze is not None or value.freeze is not None:
            raise TypeError(
                "a container inside a container is not supported (it would stay mutable)"
            )
        self.key = key
        self.value = value
        self.checked = not isinstance(value, _Any)
        self.freeze = "dict" if self.checked else None
        self.checks: list[Check] = []

    def what(self) -> str:
        return "an object (dict)"

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        with gen.block(f"if not isinstance({var}, dict):"):
            gen.line(self.raise_(gen, var, path, "type"))
        self.emit_sizes(gen, var, path)
        for check in self.checks:
            _emit_check(gen, check, var, path)
        if not self.checked:
            return
        k, x = f"k{depth}", f"x{depth}"
        with gen.block(f"for {k}, {x} in {var}.items():"):
            self.key.emit(gen, k, f"{path}.{{{k}}}", depth + 1)
            self.value.emit(gen, x, f"{path}.{{{k}}}", depth + 1)


class _Union(_Node):
    """Members told apart by their Python type: string, tuple, dict or Struct."""

    def __init__(self, members: list[_Node]) -> None:
        self.members = members
        freezes = {m.freeze for m in members} - {None}
        if len(freezes) > 1:
            raise TypeError("a union may hold one kind of container only")
        self.freeze = freezes.pop() if freezes else None

    def what(self) -> str:
        return " or ".join(m.what() for m in self.members)

    def message(self, rule: str, value: Any) -> str:
        return f"must be {self.what()}, got {_show(value)}"

    def set_description(self, description: str) -> None:
        self.description = description
        for member in self.members:
            if member.description is None and not isinstance(member, _Structs):
                member.description = description

    def emit(self, gen: _Gen, var: str, path: str, depth: int) -> None:
        keyword = "if"
        for member in self.members:
            if isinstance(member, (_Str, _Literal)):
                test = f"isinstance({var}, str)"
            elif isinstance(member, _Seq):
                test = f"type({var}) is tuple"
            elif isinstance(member, _Dict):
                test = f"isinstance({var}, dict)"
            elif isinstance(member, _Structs):
                test = f"isinstance({var}, {gen.const(member.classes, 'cls')})"
            else:
                raise TypeError(f"unsupported union member: {member.what()}")
            with gen.block(f"{keyword} {test}:"):
                member.emit(gen, var, path, depth)
            keyword = "elif"
        with gen.block("else:"):
            gen.line(self.raise_(gen, var, path, "type"))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _node(tp: Any) -> _Node:
    """The rules stated by annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        node = _node(tp.__origin__)
        for extra in tp.__metadata__:
            if isinstance(extra, msgspec.Meta):
                node.apply(extra)
                if extra.description is not None:
                    if isinstance(node, _Union):
                        node.set_description(extra.description)
                    else:
                        node.description = extra.description
            elif isinstance(extra, Check):
                if not isinstance(node, (_Str, _Dict)):
                    raise TypeError(f"{extra!r} needs a str or dict annotation")
                node.checks.append(extra)
            else:
                raise TypeError(f"unsupported annotation metadata: {extra!r}")
        return node
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not msgspec.UnsetType]
        if len(args) == 1:
            return _node(args[0])
        if all(isinstance(a, type) and issubclass(a, msgspec.Struct) for a in args):
            return _Structs(tuple(args))
        return _Union([_node(a) for a in args])
    if origin is typing.Literal:
        return _Literal(typing.get_args(tp))
    if origin in (list, tuple, Sequence):
        items = typing.get_args(tp)
        if origin is tuple and (len(items) != 2 or items[1] is not Ellipsis):
            raise TypeError(f"only tuple[X, ...] is supported, got {tp!r}")
        return _Seq(_node(items[0]))
    if origin in (dict, Mapping):
        key, value = typing.get_args(tp)
        return _Dict(_node(key), _node(value))
    if tp is Any or tp is object:
        return _Any()
    if tp is str:
        return _Str()
    if tp is bool:
        return _Bool()
    if tp is int:
        return _Int()
    if tp is float:
        return _Float()
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _Structs((tp,))
    raise TypeError(f"unsupported annotation for a command field: {tp!r}")


# --------------------------------------------------------------------------- compiling


class _Validators(dict[type, Callable[[Any], None]]):
    """Class -> its compiled validator, built on first lookup."""

    def __missing__(self, cls: type) -> Callable[[Any], None]:
        return _compile(cls)


VALIDATORS: Final = _Validators()
"""Class -> its compiled validator (``validator(cls)``), built on first lookup."""
_FREEZERS: dict[type, Callable[[Any], None]] = {}
_SOURCES: dict[type, str] = {}


def validator(cls: type) -> Callable[[Any], None]:
    """The compiled check of ``cls`` instances (built once per class).

    It raises ``ValidationError`` with paths relative to the instance, after freezing
    the instance's list and checked-dict fields.
    """
    return VALIDATORS[cls]


def freeze(obj: msgspec.Struct) -> None:
    """Store ``obj``'s list fields as tuples and its checked dicts as ``FrozenDict``
    copies; an option Struct holding a container calls this from ``__post_init__``."""
    cls = type(obj)
    if cls not in _FREEZERS:
        _compile(cls)
    _FREEZERS[cls](obj)


def source_of(cls: type) -> str:
    """The generated source of ``cls``'s validator (for reading and debugging)."""
    validator(cls)
    return _SOURCES[cls]


_FIELDS: dict[type, list[tuple[str, str, _Node, bool]]] = {}


def _fields(cls: type[msgspec.Struct]) -> list[tuple[str, str, _Node, bool]]:
    """(attribute, wire name, rules, optional) for each field of ``cls``."""
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = _FIELDS[cls] = [
            (f.name, f.encode_name, _node(hints[f.name]), f.default is msgspec.UNSET)
            for f in msgspec.structs.fields(cls)
        ]
        if any(node.freeze for _, _, node, _ in fields) and "__post_init__" not in dir(cls):
            raise TypeError(
                f"{cls.__qualname__} holds a container: it needs a __post_init__ that freezes it"
            )
    return fields


def _emit_fields(gen: _Gen, cls: type, obj: str, prefix: str, depth: int) -> None:
    """The checks of every field of ``cls`` instance ``obj`` (paths under ``prefix``)."""
    gen.inlining.add(cls)
    v = f"v{depth}"
    for attr, wire, node, optional in _fields(cls):
        gen.line(f"{v} = {obj}.{attr}")
        if node.freeze is not None and depth == 0:
            _emit_freeze(gen, v, attr, node.freeze)
        path = f"{prefix}.{wire}" if prefix else wire
        with gen.block(f"if {v} is not UNSET:") if optional else _Indent(gen, 0):
            node.emit(gen, v, path, depth)
    if callable(getattr(cls, "_check", None)):  # rules spanning several fields
        if prefix:
            with gen.block("try:"):
                gen.line(f"{obj}._check()")
            with gen.block("except ValidationError as e:"):
                gen.line(f"raise _nest({_path_code(prefix)}, e) from None")
        else:
            gen.line(f"{obj}._check()")
    gen.line("pass")
    gen.inlining.discard(cls)


def _compile(cls: type) -> Callable[[Any], None]:
    if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        raise TypeError(f"not a msgspec Struct class: {cls!r}")
    fields = _fields(cls)
    name = f"validate_{cls.__name__}"
    gen = _Gen()
    gen.lines.append(f"def {name}(self):")
    _emit_fields(gen, cls, "self", "", 0)
    source = "\n".join(gen.lines) + "\n"
    filename = f"<validator of {cls.__module__}.{cls.__qualname__}>"
    exec(compile(source, filename, "exec"), gen.namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    freezer = _Gen()
    freezer.lines.append("def freeze(self):")
    for attr, _, node, _ in fields:
        if node.freeze is not None:
            freezer.line(f"v0 = self.{attr}")
            _emit_freeze(freezer, "v0", attr, node.freeze)
    freezer.line("pass")
    freezer_source = "\n".join(freezer.lines) + "\n"
    exec(compile(freezer_source, f"<freezer of {cls.__qualname__}>", "exec"), freezer.namespace)
    fn: Callable[[Any], None] = gen.namespace[name]
    VALIDATORS[cls] = fn
    _FREEZERS[cls] = freezer.namespace["freeze"]
    _SOURCES[cls] = source
    return fn


def _emit_freeze(gen: _Gen, var: str, attr: str, kind: str) -> None:
    if kind == "tuple":
        with gen.block(f"if type({var}) is list:"):
            gen.line(f"{var} = tuple({var})")
            gen.line(f"_set(self, {attr!r}, {var})")
    else:
        with gen.block(f"if type({var}) is dict:"):
            gen.line(f"{var} = _FrozenDict({var})")
            gen.line(f"_set(self, {attr!r}, {var})")
