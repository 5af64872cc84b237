"""Settings of the command transport: credentials, the space's base URL, the HTTP pool.

``HTTPSettings`` is public (``signalwire_calls.HTTPSettings``); the rest is used by the
session and the transport. Everything here is checked when it is built, so a typo in a
setting fails at construction with a ``ConfigurationError`` naming it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from .errors import ConfigurationError

__all__ = [
    "API_PATH",
    "ENV_PROJECT",
    "ENV_SPACE",
    "ENV_TOKEN",
    "HTTPSettings",
    "base_url_for_space",
    "credentials_from_env",
]

API_PATH: Final = "/api/calling/calls"
ENV_PROJECT: Final = "SIGNALWIRE_PROJECT_ID"
ENV_TOKEN: Final = "SIGNALWIRE_API_TOKEN"
ENV_SPACE: Final = "SIGNALWIRE_SPACE"

# What a space name or URL may never hold: whitespace, controls, query and fragment marks.
_BAD_SPACE_CHARS = re.compile(r"[\s\x00-\x1f\x7f?#]")


class HTTPSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Connection pool, timeouts, TLS and proxy of the command transport.

    ``limit`` caps open connections and commands in flight; more commands wait their
    turn first-in-first-out. ``timeout`` bounds each attempt, from joining that queue to
    the last byte of the answer (``None`` = no limit); ``connect_timeout`` bounds opening
    a connection (DNS, TCP with happy eyeballs, TLS, proxy CONNECT). ``keepalive_timeout``
    closes idle connections after that many seconds (keep it below the server's own);
    ``dns_cache_ttl`` caches DNS answers (``None`` forever, 0 not at all). ``ca_file`` is
    a PEM bundle of CA certificates to trust instead of the system store.

    ``proxy`` sends every command through an HTTP proxy (``"http://proxy:3128"``,
    credentials in the URL if it needs them; HTTPS goes through ``CONNECT``). With
    ``trust_env=True`` and no ``proxy``, the standard ``HTTPS_PROXY``/``HTTP_PROXY``/
    ``NO_PROXY`` environment variables (and ``~/.netrc`` for proxy credentials) are read
    once, when the session opens. Neither is used unless asked for.

        HTTPSettings(limit=200, timeout=5.0, proxy="http://egress.corp:3128")
    """

    limit: int = 100
    timeout: float | None = 10.0
    connect_timeout: float | None = 5.0
    keepalive_timeout: float = 15.0
    dns_cache_ttl: int | None = 300
    ca_file: str | None = None
    proxy: str | None = None
    trust_env: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or self.limit < 1:
            raise ConfigurationError(f"limit must be >= 1 connection, got {self.limit!r}")
        if not (self.keepalive_timeout >= 0 and math.isfinite(self.keepalive_timeout)):
            raise ConfigurationError(
                f"keepalive_timeout must be a finite number >= 0, got {self.keepalive_timeout}"
            )
        if self.dns_cache_ttl is not None and self.dns_cache_ttl < 0:
            raise ConfigurationError(
                f"dns_cache_ttl must be >= 0 or None, got {self.dns_cache_ttl}"
            )
        for name in ("timeout", "connect_timeout"):
            value: float | None = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be > 0 seconds or None, got {value}")
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConfigurationError(f"ca_file {self.ca_file!r} is not a file")
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # the value may hold credentials: name the field, never echo it
                raise ConfigurationError(
                    "proxy must be an http:// or https:// URL with a host "
                    "(e.g. 'http://proxy.example.com:3128')"
                )

    def __repr__(self) -> str:
        # the proxy URL may carry credentials
        proxy = None if self.proxy is None else _redact_userinfo(self.proxy)
        return (
            f"HTTPSettings(limit={self.limit}, timeout={self.timeout}, "
            f"connect_timeout={self.connect_timeout}, "
            f"keepalive_timeout={self.keepalive_timeout}, dns_cache_ttl={self.dns_cache_ttl}, "
            f"ca_file={self.ca_file!r}, proxy={proxy!r}, trust_env={self.trust_env})"
        )

    def replace(self, **overrides: Any) -> HTTPSettings:
        """A copy with the given fields changed (validated again)."""
        return msgspec.structs.replace(self, **overrides)


def _redact_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()


@dataclass(frozen=True, slots=True)
class _Credentials:
    """Project id, API token and space. The token is left out of the repr."""

    project: str
    token: str = field(repr=False)
    space: str


def credentials_from_env(
    project: str | None = None, token: str | None = None, space: str | None = None
) -> _Credentials:
    """Credentials from the arguments, else from ``SIGNALWIRE_PROJECT_ID``,
    ``SIGNALWIRE_API_TOKEN`` and ``SIGNALWIRE_SPACE``.

    Raises ``ConfigurationError`` naming every missing value and how to provide it.
    """
    values: dict[str, str] = {}
    missing: list[str] = []
    for arg, given, env, what in (
        ("project", project, ENV_PROJECT, "project id"),
        ("token", token, ENV_TOKEN, "API token"),
        ("space", space, ENV_SPACE, "space"),
    ):
        value = given if given is not None else os.environ.get(env)
        value = value.strip() if value is not None else ""
        if not value:
            source = f"{arg}= is empty" if given is not None else f"{env} is not set"
            missing.append(
                f"the {what} is missing ({source}): pass {arg}=... or set the "
                f"environment variable {env}"
            )
        values[arg] = value
    if missing:
        raise ConfigurationError("; ".join(missing))
    return _Credentials(project=values["project"], token=values["token"], space=values["space"])


def _is_loopback(host: str) -> bool:
    """Literal loopback addresses and ``localhost`` itself (not ``*.localhost``, which a
    resolver may send anywhere)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_for_space(space: str) -> str:
    """The base URL for a space name, host or URL (no trailing slash).

    ``"myspace"`` and ``"myspace.signalwire.com"`` give ``https://myspace.signalwire.com``;
    an ``https://`` URL is kept; ``http://`` is allowed only for literal loopback
    addresses and ``localhost`` (the simulator), and a bare loopback host such as
    ``"127.0.0.1:8080"`` gets ``http://``. Whitespace, control characters, ``?`` and
    ``#`` are refused.
    """
    raw = space.strip()
    if not raw:
        raise ConfigurationError(f"space is empty: pass space=... or set {ENV_SPACE}")
    if _BAD_SPACE_CHARS.search(raw):
        raise ConfigurationError(
            f"space {raw!r}: must not contain whitespace, control characters, '?' or '#'"
        )
    if "://" in raw:
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        try:
            host = parts.hostname or ""
            _ = parts.port  # validates the port
        except ValueError:
            raise ConfigurationError(f"space {raw!r}: the URL's port is not a number") from None
        if not host:
            raise ConfigurationError(f"space {raw!r}: the URL has no host")
        if parts.username or parts.password:
            raise ConfigurationError(f"space {raw!r}: the URL must not carry credentials")
        if scheme == "https":
            return raw.rstrip("/")
        if scheme == "http":
            if _is_loopback(host):
                return raw.rstrip("/")
            raise ConfigurationError(
                f"space {raw!r}: plain http:// is allowed only for loopback addresses "
                "(127.0.0.1, ::1, localhost); SignalWire spaces need https://"
            )
        raise ConfigurationError(f"space {raw!r}: the URL scheme must be https (or http)")
    # A bare IPv6 loopback ("::1") has no port; bracket it.
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        pass
    else:
        host = f"[{raw}]" if address.version == 6 else raw
        return f"http://{host}" if address.is_loopback else f"https://{host}"
    parts = urlsplit(f"//{raw}")
    try:
        host = parts.hostname or ""
        _ = parts.port  # validates the port
    except ValueError:
        raise ConfigurationError(f"space {raw!r}: not a space name or host[:port]") from None
    if not host or parts.path or parts.username:
        raise ConfigurationError(f"space {raw!r}: not a space name or host[:port]")
    if _is_loopback(host):
        return f"http://{raw}"
    if "." not in host:
        return f"https://{raw}.signalwire.com"
    return f"https://{raw}"
