"""Webhook signatures: fixed known-answer vectors for both hashes, the header rules of
``Verifier``, and inputs that must be refused without raising."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from signalwire_calls._signing import (
    SHA1_HEADER,
    SHA256_HEADER,
    Verifier,
    sign,
    sign_sha1,
    sign_sha256,
    url_bytes,
)

# published real-platform vector (the signalwire 2.1.1 package's validator tests)
KEY_A = "PSK_7TruNcSNTxp4zNrykMj4EPzF"
URL_A = "https://81f2-2-45-18-191.ngrok-free.app/"
BODY_A = (
    b'{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":"fa3570ae-f8bd-42c2-'
    b'83f4-9950d906c91b@us-west","segment_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_s'
    b'tate":"created","direction":"inbound","type":"phone","from":"+12135877632","to":"+12089'
    b'806814","from_number":"+12135877632","to_number":"+12089806814","project_id":"4b7ae78a-d'
    b'02e-4889-a63b-08b156d5916e","space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}'
)
SHA1_A = "b18500437ebb010220ddd770cbe6fd531ea0ba0d"
SHA256_A = "e6cbf7dcd30152e9034464d4de0f1050893dc482c5f303d73c86d050407b294f"

# computed with openssl and the vendor SDK's validator
KEY_B = "PSK_test_signing_key_123"
URL_B = "https://example.com/sw/status?leg=a"
BODY_B = (
    b'{"event_type":"calling.call.play","params":{"call_id":"3fa85f64-5717-4562-b3fc-'
    b'2c963f66afa6","control_id":"play-1","state":"finished"}}'
)
SHA1_B = "45cd010d5be48d63e0590c1692dc5cac5047e495"
SHA256_B = "4e0077f6f7fa2e09ee9c2717f0c138d2f0c1b15bbe6813c899721225818eed66"
SHA1_B_EMPTY = "917f7bbfef7dd1db90269bf526e3815a81806b3e"


def headers(**values: str) -> dict[str, str]:
    """Signature headers by short name: ``sha256=...``, ``sha1=...``."""
    names = {"sha256": SHA256_HEADER, "sha1": SHA1_HEADER}
    return {names[k]: v for k, v in values.items()}


def test_header_names() -> None:
    assert SHA1_HEADER == "X-SignalWire-Signature"
    assert SHA256_HEADER == "X-SignalWire-SHA256-Signature"


@pytest.mark.parametrize(
    ("key", "url", "body", "sha1", "sha256"),
    [
        (KEY_A, URL_A, BODY_A, SHA1_A, SHA256_A),
        (KEY_B, URL_B, BODY_B, SHA1_B, SHA256_B),
    ],
    ids=["vector-a", "vector-b"],
)
def test_known_answer_vectors(key: str, url: str, body: bytes, sha1: str, sha256: str) -> None:
    assert sign_sha1(key, url, body) == sha1
    assert sign_sha256(key, url, body) == sha256
    assert sign(key, url, body) == {SHA1_HEADER: sha1, SHA256_HEADER: sha256}
    verifier = Verifier(key)
    assert verifier.verify(url, body, headers(sha1=sha1).get)
    assert verifier.verify(url, body, headers(sha256=sha256).get)
    assert verifier.verify(url, body, headers(sha1=sha1, sha256=sha256).get)


def test_empty_body_vector() -> None:
    assert sign_sha1(KEY_B, URL_B, b"") == SHA1_B_EMPTY
    assert Verifier(KEY_B).verify(URL_B, b"", headers(sha1=SHA1_B_EMPTY).get)


@pytest.mark.parametrize(
    ("url", "body", "given"),
    [
        (URL_B + "&", BODY_B, headers(sha256=SHA256_B)),
        (URL_B + "&", BODY_B, headers(sha1=SHA1_B)),
        (URL_B, BODY_B + b" ", headers(sha256=SHA256_B)),
        (URL_B, BODY_B + b" ", headers(sha1=SHA1_B)),
        (URL_B, BODY_B, headers(sha256=SHA256_B.upper())),
        (URL_B, BODY_B, headers(sha1=SHA1_B.upper())),
        (URL_B, BODY_B, headers(sha256=SHA256_B[:-1])),
        (URL_B, BODY_B, headers(sha256=SHA256_B + "0")),
        (URL_B, BODY_B, headers(sha256=" " + SHA256_B)),
        (URL_B, BODY_B, headers(sha1=SHA256_B)),  # the SHA-256 value in the SHA-1 header
        (URL_B, BODY_B, headers(sha256=SHA1_B)),
        (URL_B, BODY_B, headers(sha256="0" * 64, sha1=SHA1_B)),  # not rescued by SHA-1
        (URL_B, BODY_B, headers(sha256=SHA256_B[:-1] + "é")),
        (URL_B, BODY_B, headers(sha1="é" * 40)),
        (URL_B, BODY_B, headers(sha256="\udcff" * 64)),
        (URL_B, BODY_B, headers(sha256="\ud800")),
        (URL_B, BODY_B, headers(sha256="x" * 10_000)),
        (URL_B, BODY_B, {}),
        (URL_B, BODY_B, headers(sha256="", sha1="")),
    ],
    ids=[
        "ampersand-sha256",
        "ampersand-sha1",
        "body-sha256",
        "body-sha1",
        "upper-sha256",
        "upper-sha1",
        "short",
        "long",
        "space",
        "sha256-in-sha1",
        "sha1-in-sha256",
        "not-rescued",
        "non-ascii-last",
        "non-ascii-sha1",
        "escaped-surrogates",
        "lone-surrogate",
        "huge",
        "none",
        "empty",
    ],
)
def test_mismatches_are_false_never_an_exception(
    url: str, body: bytes, given: dict[str, str]
) -> None:
    assert Verifier(KEY_B).verify(url, body, given.get) is False


def test_other_key_does_not_verify() -> None:
    assert not Verifier(KEY_B + "x").verify(URL_B, BODY_B, headers(sha256=SHA256_B).get)
    assert not Verifier(KEY_B + "x").verify(URL_B, BODY_B, headers(sha1=SHA1_B).get)


def test_empty_sha256_header_counts_as_absent() -> None:
    assert Verifier(KEY_B).verify(URL_B, BODY_B, headers(sha256="", sha1=SHA1_B).get)


def test_sha1_header_is_read_only_without_a_sha256_one() -> None:
    asked: list[str] = []
    given = headers(sha256=SHA256_B, sha1="junk")

    def lookup(name: str) -> str | None:
        asked.append(name)
        return given.get(name)

    assert Verifier(KEY_B).verify(URL_B, BODY_B, lookup)
    assert asked == [SHA256_HEADER]


def test_verifier_is_reusable_and_keys_are_utf8() -> None:
    """The keyed states are copied per check, so checks do not leak into each other."""
    verifier = Verifier(KEY_B)
    for _ in range(3):
        assert verifier.verify(URL_B, BODY_B, headers(sha256=SHA256_B).get)
        assert not verifier.verify(URL_B, b"{}", headers(sha256=SHA256_B).get)
    key = "clé-ü"
    digest = hmac.new(key.encode(), URL_B.encode() + BODY_B, hashlib.sha256).hexdigest()
    assert Verifier(key).verify(URL_B, BODY_B, headers(sha256=digest).get)
    assert sign_sha256(key, URL_B, BODY_B) == digest


def test_empty_key_refused() -> None:
    with pytest.raises(ValueError, match=r"^the signing key is empty$"):
        Verifier("")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=c", b"https://example.com/a?b=c"),
        ("http://h\u00e9st/", b"http://h\xc3\xa9st/"),
        # aiohttp decodes undecodable request bytes to lone surrogates: back to the bytes
        ("http://h\udcff\udce9st/", b"http://h\xff\xe9st/"),
        ("http://\u00e9\udcff/", b"http://\xc3\xa9\xff/"),
        # no byte gives these; encoded as-is rather than raising
        ("http://\ud800/", b"http://\xed\xa0\x80/"),
        ("http://\ud800\udcff/", b"http://\xed\xa0\x80\xed\xb3\xbf/"),
    ],
    ids=["ascii", "utf8", "escaped", "mixed", "lone", "lone-and-escaped"],
)
def test_url_bytes(url: str, expected: bytes) -> None:
    assert url_bytes(url) == expected


def test_url_with_undecodable_bytes_signs_and_verifies_over_those_bytes() -> None:
    url = "http://h\udcff/p"
    digest = hmac.new(KEY_B.encode(), b"http://h\xff/p" + BODY_B, hashlib.sha1).hexdigest()
    assert sign_sha1(KEY_B, url, BODY_B) == digest
    assert sign(KEY_B, url, BODY_B)[SHA1_HEADER] == digest
    assert Verifier(KEY_B).verify(url, BODY_B, headers(sha1=digest).get)
    lone = "http://\ud800/"
    assert Verifier(KEY_B).verify(lone, BODY_B, sign(KEY_B, lone, BODY_B).get)
