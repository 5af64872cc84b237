"""Cheap field checks used by the command Structs' ``__post_init__``.

Each check raises ``errors.ValidationError(field, message)``; callers pass the dotted
path of the field. They run on every command in the hot path, so they use type
identity, set membership and ``str.strip`` tricks rather than regexes where they can.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from math import isfinite
from typing import Any, Final, NoReturn

from .errors import ValidationError

__all__ = [
    "CODECS",
    "DTMF",
    "SEND_DIGITS",
    "SEND_DIGITS_MAX",
    "check_alphabet",
    "check_bool",
    "check_codecs",
    "check_custom_variables",
    "check_dict",
    "check_enum",
    "check_header",
    "check_int",
    "check_nested",
    "check_number",
    "check_public_ipv4",
    "check_str",
    "check_str_list",
    "check_swml",
    "check_text",
    "check_url",
    "check_voice",
    "fail",
    "is_e164",
]

_NUMBER_TYPES = (int, float)

DTMF = "0123456789ABCDabcd*#"
SEND_DIGITS = "0123456789ABCD*#w,"
SEND_DIGITS_MAX = 98

CODECS = frozenset(
    {
        "OPUS",
        "OPUS@48000H@20I",
        "OPUS@24000H@20I",
        "OPUS@16000H@20I",
        "OPUS@8000H@20I",
        "G722",
        "PCMU",
        "PCMA",
        "G729",
        "VP8",
        "H264",
    }
)

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 7230 token characters: what a header name may contain.
_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VOICE_CHARS = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RESERVED_VARIABLE_PREFIXES = ("signalwire_", "sw_", "rtc_", "internal_")
_RESERVED_HEADERS = frozenset({"identity", "x-projectid"})
_MAX_CUSTOM_VARIABLES = 20
_MAX_VALUE_BYTES = 1024


def fail(field: str, message: str) -> NoReturn:
    """Raise the ``ValidationError`` for ``field``."""
    raise ValidationError(field, message)


def check_nested(prefix: str, validate: Callable[[], None]) -> None:
    """Run a nested object's check, prefixing the field path of any error with ``prefix``."""
    try:
        validate()
    except ValidationError as exc:
        # an empty field means "this object itself"
        field = f"{prefix}.{exc.field}" if exc.field else prefix
        raise ValidationError(field, exc.reason) from None


def check_str(field: str, value: Any) -> None:
    """A string (may be empty)."""
    if not isinstance(value, str):
        fail(field, f"must be a string, got {type(value).__name__}")


def check_text(field: str, value: Any) -> None:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        if isinstance(value, str):
            fail(field, "must not be empty")
        fail(field, f"must be a non-empty string, got {type(value).__name__}")


def check_bool(field: str, value: Any) -> None:
    if type(value) is not bool:
        fail(field, f"must be true or false, got {value!r}")


def check_dict(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        fail(field, f"must be an object (dict), got {type(value).__name__}")


def check_number(
    field: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
) -> None:
    """A finite int or float (not bool) within the given bounds."""
    if type(value) not in _NUMBER_TYPES or (type(value) is float and not isfinite(value)):
        fail(field, f"must be a finite number, got {value!r}")
    _check_bounds(field, value, minimum, maximum, exclusive_minimum)


def check_int(
    field: str, value: Any, minimum: int | None = None, maximum: int | None = None
) -> None:
    """An int (not bool) within the given bounds."""
    if type(value) is not int:
        fail(field, f"must be an integer, got {value!r}")
    _check_bounds(field, value, minimum, maximum, False)


def _check_bounds(
    field: str,
    value: float,
    minimum: float | None,
    maximum: float | None,
    exclusive_minimum: bool,
) -> None:
    if minimum is not None:
        if exclusive_minimum and value <= minimum:
            fail(field, f"must be greater than {minimum:g}, got {value!r}")
        if value < minimum:
            if maximum is not None:
                fail(field, f"must be between {minimum:g} and {maximum:g}, got {value!r}")
            fail(field, f"must be at least {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        if minimum is not None:
            fail(field, f"must be between {minimum:g} and {maximum:g}, got {value!r}")
        fail(field, f"must be at most {maximum:g}, got {value!r}")


def check_enum(field: str, value: Any, allowed: frozenset[Any]) -> None:
    """``value`` is one of ``allowed`` (exact, case-sensitive)."""
    try:
        ok = value in allowed and type(value) is not bool
    except TypeError:  # unhashable
        ok = False
    if not ok:
        choices = ", ".join(sorted(repr(a) for a in allowed))
        fail(field, f"must be one of {choices}; got {value!r}")


def check_alphabet(field: str, value: Any, chars: str, what: str) -> None:
    """A string made only of ``chars`` (empty allowed)."""
    if not isinstance(value, str):
        fail(field, f"must be a string, got {type(value).__name__}")
    if value.strip(chars):
        bad = next(c for c in value if c not in chars)
        fail(field, f"may contain only {what}; got {bad!r}")


# http(s) URLs already found valid: a session sends the same status_url with every
# command, and checking it again costs more than building the rest of the command.
_WEB: Final = ("http://", "https://")
_GOOD_WEB_URLS: set[str] = set()
_GOOD_URLS_MAX = 256


def check_url(field: str, value: Any, schemes: tuple[str, ...] = _WEB) -> None:
    """A URL starting with one of ``schemes`` and naming a host."""
    if type(value) is str and schemes is _WEB and value in _GOOD_WEB_URLS:
        return
    if not isinstance(value, str):
        fail(field, f"must be a URL string, got {type(value).__name__}")
    if not value.startswith(schemes):
        fail(field, f"must be a URL starting with {' or '.join(schemes)}; got {value!r}")
    rest = value.partition("://")[2]
    if not rest or rest[0] in "/?#" or " " in rest or not rest.isprintable():
        fail(field, f"is not a valid URL: {value!r}")
    if schemes is _WEB and type(value) is str and len(_GOOD_WEB_URLS) < _GOOD_URLS_MAX:
        _GOOD_WEB_URLS.add(value)


def check_str_list(field: str, value: Any, allowed: frozenset[str] | None = None) -> None:
    """A list of non-empty strings (each one of ``allowed`` when given)."""
    if not isinstance(value, list):
        fail(field, f"must be a list, got {type(value).__name__}")
    for i, item in enumerate(value):
        try:
            if allowed is None:
                check_text("", item)
            else:
                check_enum("", item, allowed)
        except ValidationError as exc:
            raise ValidationError(f"{field}[{i}]", exc.reason) from None


def check_swml(field: str, value: Any) -> None:
    """An SWML document: a non-empty string (JSON/YAML or URL, as the command allows) or
    an object with a ``sections`` object."""
    if isinstance(value, str):
        if not value:
            fail(field, "must not be empty")
        return
    if not isinstance(value, dict):
        fail(field, f"must be an SWML object or string, got {type(value).__name__}")
    if not isinstance(value.get("sections"), dict):
        fail(field, 'an SWML object needs "sections" (e.g. {"sections": {"main": [...]}})')


def check_voice(field: str, value: Any) -> None:
    """A TTS voice name: letters, digits, ``.`` and ``-`` only."""
    check_text(field, value)
    if value.strip(_VOICE_CHARS):
        fail(field, f"may contain only letters, digits, '.' and '-'; got {value!r}")


def is_e164(value: str) -> bool:
    return _E164.fullmatch(value) is not None


def check_public_ipv4(field: str, value: Any) -> None:
    """A public (globally routable, unicast) IPv4 address literal."""
    if not isinstance(value, str):
        fail(field, f"must be an IPv4 address string, got {type(value).__name__}")
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        fail(field, f"must be an IPv4 address, got {value!r}")
    if not addr.is_global or addr.is_multicast or addr.is_reserved:
        fail(field, f"must be a public IPv4 address (private/reserved ranges refused): {value}")


def _utf8_too_long(value: str) -> bool:
    # 4 bytes per character at most: short strings cannot exceed the limit.
    return len(value) * 4 > _MAX_VALUE_BYTES and len(value.encode()) > _MAX_VALUE_BYTES


def check_custom_variables(field: str, value: Any) -> None:
    """dial ``custom_variables``: <= 20 pairs, name rules, reserved prefixes, value size."""
    if not isinstance(value, dict):
        fail(field, f"must be an object of string -> string, got {type(value).__name__}")
    if len(value) > _MAX_CUSTOM_VARIABLES:
        fail(field, f"at most {_MAX_CUSTOM_VARIABLES} variables allowed, got {len(value)}")
    for key, val in value.items():
        path = f"{field}.{key}"
        if not isinstance(key, str) or _VARIABLE_NAME.fullmatch(key) is None:
            fail(path, "name must match ^[A-Za-z_][A-Za-z0-9_]*$")
        if key.lower().startswith(_RESERVED_VARIABLE_PREFIXES):
            fail(path, "names starting with signalwire_, sw_, rtc_ or internal_ are reserved")
        check_text(path, val)
        if _utf8_too_long(val):
            fail(path, f"value must be at most {_MAX_VALUE_BYTES} bytes (UTF-8)")


def check_header(name: Any, value: Any) -> None:
    """One dial header (paths relative to the header): name and value rules."""
    check_text("name", name)
    if name.strip(_TOKEN_CHARS):
        fail("name", f"is not a valid header name: {name!r}")
    if name.lower() in _RESERVED_HEADERS:
        fail("name", f"{name!r} is reserved")
    check_str("value", value)
    if "\r" in value or "\n" in value or "\0" in value:
        fail("value", "must not contain CR, LF or NUL")
    if _utf8_too_long(value):
        fail("value", f"must be at most {_MAX_VALUE_BYTES} bytes (UTF-8)")


def check_codecs(field: str, value: Any) -> None:
    """A non-empty list of codec names, or the same as one comma-separated string."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        items = value
    else:
        fail(field, f"must be a list of codecs or a comma-separated string, got {value!r}")
    if not items:
        fail(field, "must name at least one codec")
    for i, item in enumerate(items):
        check_enum(f"{field}[{i}]", item, CODECS)
