"""Webhook signatures (spec section 6.1, scheme A): lowercase hex HMAC of ``url + raw body``.

``X-SignalWire-Signature`` carries HMAC-SHA1, ``X-SignalWire-SHA256-Signature`` HMAC-SHA256,
both keyed with the project's signing key. Verification is kept apart from parsing and
compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "SHA1_HEADER",
    "SHA256_HEADER",
    "sign",
    "sign_sha1",
    "sign_sha256",
    "verify",
]

SHA1_HEADER = "X-SignalWire-Signature"
SHA256_HEADER = "X-SignalWire-SHA256-Signature"


def _message(url: str, body: bytes) -> bytes:
    return url.encode() + body


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


def verify(
    key: str,
    url: str,
    body: bytes,
    *,
    sha256_signature: str | None,
    sha1_signature: str | None,
) -> bool:
    """True when the SHA-256 signature matches, or (absent that header) the SHA-1 one.

    A present but wrong SHA-256 header is not rescued by a SHA-1 header: the platform
    sends both on call webhooks, so a mismatch in the stronger one is a forgery.
    """
    if not key:
        return False
    if sha256_signature:
        return hmac.compare_digest(sign_sha256(key, url, body), sha256_signature)
    if sha1_signature:
        return hmac.compare_digest(sign_sha1(key, url, body), sha1_signature)
    return False
