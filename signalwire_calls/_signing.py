"""Webhook signatures: lowercase hex HMAC of ``url + raw body``.

``X-SignalWire-Signature`` carries HMAC-SHA1, ``X-SignalWire-SHA256-Signature`` HMAC-SHA256,
both keyed with the project's signing key (UTF-8). Verification is kept apart from parsing
and compares in constant time. Nothing a request holds can make it raise: a header that is
not ASCII simply does not match, and the URL is encoded back to the bytes the request
carried (aiohttp decodes undecodable bytes to lone surrogates), whatever they are.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

__all__ = [
    "SHA1_HEADER",
    "SHA256_HEADER",
    "Verifier",
    "sign",
    "sign_sha1",
    "sign_sha256",
    "url_bytes",
]

SHA1_HEADER = "X-SignalWire-Signature"
SHA256_HEADER = "X-SignalWire-SHA256-Signature"


def url_bytes(url: str) -> bytes:
    """``url`` as the UTF-8 bytes that are signed; never raises.

    Undecodable request bytes that aiohttp (or our ASGI adapter) turned into lone
    surrogates become those bytes again; any other lone surrogate is encoded as-is
    (such a URL matches no signature, but must not crash the check).
    """
    try:
        return url.encode()
    except UnicodeEncodeError:
        try:
            return url.encode(errors="surrogateescape")
        except UnicodeEncodeError:
            return url.encode(errors="surrogatepass")


def _message(url: str, body: bytes) -> bytes:
    return url_bytes(url) + body


def sign_sha1(key: str, url: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA1 of ``url + body``."""
    return hmac.new(key.encode(), _message(url, body), hashlib.sha1).hexdigest()


def sign_sha256(key: str, url: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``url + body``."""
    return hmac.new(key.encode(), _message(url, body), hashlib.sha256).hexdigest()


def sign(key: str, url: str, body: bytes) -> dict[str, str]:
    """Both signature headers for a webhook POSTed to ``url`` with ``body``."""
    msg = _message(url, body)
    k = key.encode()
    return {
        SHA1_HEADER: hmac.new(k, msg, hashlib.sha1).hexdigest(),
        SHA256_HEADER: hmac.new(k, msg, hashlib.sha256).hexdigest(),
    }


class Verifier:
    """Checks webhook signatures made with one key.

    The SHA-256 signature is preferred; the SHA-1 one counts only when the SHA-256
    header is absent: the platform sends both on call webhooks, so a mismatch in the
    stronger one is a forgery and is not rescued by the weaker one. Comparison is in
    constant time. The keyed HMAC states are built once and copied per webhook, which
    skips the two key-pad blocks ``hmac.new`` hashes: about 0.6 of the ~2 us a check costs.
    """

    __slots__ = ("_sha1", "_sha256")

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the signing key is empty")
        k = key.encode()
        self._sha256 = hmac.new(k, digestmod=hashlib.sha256)
        self._sha1 = hmac.new(k, digestmod=hashlib.sha1)

    def verify(self, url: str, body: bytes, header: Callable[[str], str | None]) -> bool:
        """True when ``url + body`` carries a valid signature; ``header`` looks a
        signature header up by name (the SHA-1 one only when the SHA-256 one is absent)."""
        given = header(SHA256_HEADER)
        if given:
            mac = self._sha256.copy()
        else:
            given = header(SHA1_HEADER)
            if not given:
                return False
            mac = self._sha1.copy()
        try:
            mac.update(url.encode())
        except UnicodeEncodeError:  # undecodable request bytes in the URL: see url_bytes
            mac.update(url_bytes(url))
        mac.update(body)
        # as bytes: compare_digest refuses a str holding non-ASCII characters; such a
        # header (like any that is not lowercase hex) is simply a mismatch
        return hmac.compare_digest(mac.hexdigest().encode(), given.encode(errors="replace"))
