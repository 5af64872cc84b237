"""Property-based tests: whatever arrives, the receiver answers without a 500, without an
exception logged, and counts each request in exactly one outcome.

Bodies are every typed event of ``events.py`` with any field replaced by junk (wrong
types, huge numbers, huge ids), unknown events, call documents, truncated JSON, random
bytes and deep nesting; headers are odd (non-ASCII, huge, repeated signature headers,
random Host bytes). They go to a real ``Receiver`` on 127.0.0.1 over raw sockets and to
the ASGI app through the ASGI protocol, with and without a signing key. The example
counts are bounded so that each test takes a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import hmac
import logging
import typing
from collections import Counter
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from signalwire_calls._signing import SHA1_HEADER, SHA256_HEADER
from signalwire_calls.events import KnownEvent
from signalwire_calls.receiver import (
    ASGIReceiver,
    Receiver,
    ReceiverSettings,
    ReceiverStats,
    asgi_app,
)
from tests.test_receiver import ListSink, outcomes

KEY = "PSK_property_key"
PATH = "/signalwire/events"
MAX_BODY = 8 * 1024
HTTP_EXAMPLES = 250
ASGI_EXAMPLES = 400
#: What a request may be answered: never a 5xx (0: the client hung up, ASGI only).
ALLOWED = {200, 400, 403, 404, 405, 408, 413}

SETTINGS = settings(
    max_examples=HTTP_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- strategies

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
#: Numbers no float holds, or that only a lax (strict=False) reader takes.
odd_numbers = (
    st.integers(300, 4400).map(lambda n: msgspec.Raw(b"9" * n))
    | st.integers(300, 4400).map(lambda n: msgspec.Raw(b"-" + b"9" * n))
    | st.sampled_from(
        [msgspec.Raw(b"1e999"), msgspec.Raw(b"-1e400"), msgspec.Raw(b"1e-400"), msgspec.Raw(b"-0")]
    )
    | st.sampled_from(["nan", "inf", "-Infinity", "1e999", "12", " 1 ", "0x10"])
)
ids = (
    st.uuids().map(str)
    | st.text(max_size=8)
    | st.integers(120, 140).map(lambda n: "i" * n)
    | st.integers(129, 20_000).map(lambda n: "d" * n)
    | st.text(min_size=120, max_size=140)
)


def for_type(t: msgspec.inspect.Type) -> st.SearchStrategy[Any]:
    """Values of ``t`` as the platform might send them, or odd ones of that kind."""
    if isinstance(t, msgspec.inspect.UnionType):
        return st.one_of([for_type(member) for member in t.types])
    if isinstance(t, msgspec.inspect.NoneType):
        return st.none()
    if isinstance(t, msgspec.inspect.StrType):
        return ids
    if isinstance(t, msgspec.inspect.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers() | odd_numbers
    if isinstance(t, msgspec.inspect.IntType):
        return st.integers() | odd_numbers
    if isinstance(t, msgspec.inspect.BoolType):
        return st.booleans() | st.sampled_from(["true", "false", "1", 0])
    if isinstance(t, msgspec.inspect.StructType):
        return struct_objects(t)
    return json_values


def field_values(t: msgspec.inspect.Type) -> st.SearchStrategy[Any]:
    """A field's value: mostly of its type, sometimes anything at all (a mutation)."""
    return st.deferred(lambda: for_type(t)) | json_values


def struct_objects(t: msgspec.inspect.StructType) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    if t.tag_field is not None:
        tag = st.just(t.tag) | st.sampled_from(EVENT_TYPES) | st.text(max_size=20)
        required[t.tag_field] = tag
    optional = {f.encode_name: field_values(f.type) for f in t.fields}
    return st.fixed_dictionaries(required, optional=optional)


KNOWN_TYPES: tuple[type[msgspec.Struct], ...] = typing.get_args(KnownEvent)
EVENT_TYPES = [str(cls.__struct_config__.tag) for cls in KNOWN_TYPES]
known_events = st.one_of(
    [struct_objects(typing.cast(Any, msgspec.inspect.type_info(cls))) for cls in KNOWN_TYPES]
)
unknown_events = st.fixed_dictionaries(
    {"event_type": st.text(max_size=30)},
    optional={
        "params": st.dictionaries(st.sampled_from(["call_id", "control_id", "x"]), ids)
        | json_values,
        "timestamp": odd_numbers | json_values,
        "project_id": json_values,
    },
)
call_documents = st.fixed_dictionaries(
    {"call": st.fixed_dictionaries({}, optional={"call_id": ids, "project_id": json_values})},
    optional={"vars": json_values},
)
events = st.one_of(known_events, unknown_events, call_documents).map(msgspec.json.encode)


def truncated(body: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(body)).map(lambda cut: body[:cut])


_BODY_KINDS: dict[str, st.SearchStrategy[bytes]] = {
    "event": events,
    "truncated": events.flatmap(truncated),
    "bytes": st.binary(max_size=300),
    "deep-list": st.integers(1, 5000).map(lambda n: b"[" * n),
    "deep-object": st.integers(1, 3000).map(
        lambda n: b'{"event_type":"x","params":' + b'{"a":' * n
    ),
    "near-limit": st.integers(MAX_BODY - 10, MAX_BODY + 10).map(lambda n: b" " * n),
}
# sampled_from picks a kind about uniformly (one_of favours its first branches)
bodies = st.sampled_from(["event", "event", "event", "near-limit", *_BODY_KINDS]).flatmap(
    lambda kind: _BODY_KINDS[kind]
)

#: Header values: mostly printable; else any bytes but CR/LF (aiohttp refuses control
#: bytes with a parser 400, so these are kept to about one in four).
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_any_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
header_bytes = st.sampled_from([0, 1, 2, 3]).flatmap(
    lambda n: _any_bytes if n == 0 else _printable.map(str.encode)
)
#: A signature header value: correct (computed per request), hex junk, any bytes, huge.
signature_values = st.one_of(
    st.just(b"VALID"),
    st.just(b"VALID"),
    st.text("0123456789abcdefABCDEF ", max_size=70).map(str.encode),
    header_bytes,
    st.integers(8_000, 9_000).map(lambda n: b"a" * n),  # over aiohttp's 8,190-byte line
)
signature_names = st.sampled_from(
    [SHA256_HEADER, SHA1_HEADER, SHA256_HEADER.lower(), SHA1_HEADER.upper()]
).map(str.encode)
signature_headers = st.lists(st.tuples(signature_names, signature_values), max_size=3)
hosts = st.sampled_from([b"127.0.0.1", b"127.0.0.1:80", "h\u00e9st".encode(), b""]) | header_bytes
queries = st.just(b"") | st.binary(max_size=30).map(
    lambda b: b"?" + bytes(c for c in b if 0x21 <= c < 0x7F and c != ord("#"))
)


def signature(url: bytes, body: bytes, name: bytes) -> bytes:
    digest = hashlib.sha1 if name.lower() == SHA1_HEADER.lower().encode() else hashlib.sha256
    return hmac.new(KEY.encode(), url + body, digest).hexdigest().encode()


def signed_headers(
    pairs: list[tuple[bytes, bytes]], url: bytes, body: bytes
) -> list[tuple[bytes, bytes]]:
    return [(n, signature(url, body, n) if v == b"VALID" else v) for n, v in pairs]


#: A request of each outcome the checks expect to see (200, 400, 413 and, signed, 403),
#: so that they hold whatever the random examples turn out to be.
VALID_SHA256 = [(SHA256_HEADER.encode(), b"VALID")]
GOOD_EVENT = b'{"event_type":"calling.call.hologram","params":{"call_id":"c1"}}'
SURE_CASES: list[tuple[bytes, list[tuple[bytes, bytes]]]] = [
    (GOOD_EVENT, VALID_SHA256),  # 200
    (b"[", VALID_SHA256),  # 400
    (b" " * (MAX_BODY + 1), VALID_SHA256),  # 413
    (GOOD_EVENT, []),  # 403 when signed (200 when not)
]


def sure_examples(test: Any) -> Any:
    """``test`` with ``SURE_CASES`` as explicit hypothesis examples (HTTP test)."""
    for body, sigs in SURE_CASES:
        test = example(
            body=body, sigs=sigs, host=b"127.0.0.1", query=b"", chunked=False, encoding="", extra=[]
        )(test)
    return test


# --------------------------------------------------------------------------- checks


def check_logs(caplog: pytest.LogCaptureFixture) -> None:
    """No error and no traceback was logged (the last resort never fired)."""
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad[:5]]


def check_stats(stats: ReceiverStats, seen: Counter[int], signed: bool) -> None:
    assert stats.rejected_error == 0
    assert outcomes(stats) == stats.received
    assert set(seen) <= ALLOWED | {0}, seen
    # the generators reach the interesting outcomes (else the test proves little)
    assert {200, 400, 413} <= set(seen), seen
    if signed:
        assert 403 in seen, seen


# --------------------------------------------------------------------------- HTTP


async def exchange(port: int, data: bytes) -> int:
    """One request on its own connection; the response status (0: closed unanswered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_real_receiver_never_answers_500(caplog: pytest.LogCaptureFixture, signed: bool) -> None:
    caplog.set_level(logging.WARNING)
    receiver_settings = ReceiverSettings(
        signing_key=KEY if signed else None, max_body_size=MAX_BODY, body_timeout=5.0
    )
    seen: Counter[int] = Counter()
    with asyncio.Runner() as runner:
        receiver = Receiver(ListSink(), receiver_settings)
        runner.run(receiver.start())
        try:

            @SETTINGS
            @sure_examples
            @given(
                body=bodies,
                sigs=signature_headers,
                host=hosts,
                query=queries,
                chunked=st.booleans(),
                encoding=st.sampled_from(["", "", "", "gzip", "gzip-valid", "deflate", "br"]),
                extra=st.lists(
                    st.tuples(st.sampled_from([b"X-A", b"Accept"]), header_bytes), max_size=2
                ),
            )
            def one(
                body: bytes,
                sigs: list[tuple[bytes, bytes]],
                host: bytes,
                query: bytes,
                chunked: bool,
                encoding: str,
                extra: list[tuple[bytes, bytes]],
            ) -> None:
                target = PATH.encode() + query
                headers = signed_headers(sigs, b"http://" + host + target, body)
                if encoding:  # aiohttp inflates these; junk in them fails the body read
                    if encoding == "gzip-valid":
                        encoding, body = "gzip", gzip.compress(body)
                    extra = [*extra, (b"Content-Encoding", encoding.encode())]
                lines = [b"POST " + target + b" HTTP/1.1", b"Host: " + host, b"Connection: close"]
                lines += [n + b": " + v for n, v in headers + extra]
                if chunked:
                    lines.append(b"Transfer-Encoding: chunked")
                    payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
                else:
                    lines.append(b"Content-Length: %d" % len(body))
                    payload = body
                status = runner.run(
                    exchange(receiver.port, b"\r\n".join(lines) + b"\r\n\r\n" + payload)
                )
                seen[status] += 1
                event(f"status {status}")  # shown by --hypothesis-show-statistics
                assert status in ALLOWED, status  # a real server always answers

            one()
            stats = receiver.stats()
        finally:
            runner.run(receiver.aclose())
    check_logs(caplog)
    check_stats(stats, seen, signed)


# --------------------------------------------------------------------------- ASGI


async def drive(
    app: ASGIReceiver,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    query: bytes,
    disconnect: bool,
) -> int:
    """One POST through the ASGI protocol; the status sent (0: none, the client left)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
    }
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    if disconnect:
        messages = [{**m, "more_body": True} for m in messages[:-1]] + [{"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async with asyncio.timeout(5):
        await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) <= 1
    return int(starts[0]["status"]) if starts else 0


def split(body: bytes) -> st.SearchStrategy[list[bytes]]:
    cuts = st.lists(st.integers(0, len(body)), max_size=4).map(sorted)
    return cuts.map(lambda c: [body[a:b] for a, b in zip([0, *c], [*c, len(body)], strict=True)])


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_asgi_app_never_answers_500(caplog: pytest.LogCaptureFixture, signed: bool) -> None:
    caplog.set_level(logging.WARNING)
    app = asgi_app(
        ListSink(),
        ReceiverSettings(signing_key=KEY if signed else None, max_body_size=MAX_BODY),
    )
    seen: Counter[int] = Counter()
    with asyncio.Runner() as runner:

        @settings(SETTINGS, max_examples=ASGI_EXAMPLES)
        @given(
            data=st.data(),
            body=bodies,
            sigs=signature_headers,
            host=hosts,
            query=queries.map(lambda q: q[1:]),
            length=st.sampled_from(["right", "none", "wrong", "junk"]),
            disconnect=st.sampled_from(range(10)).map(lambda n: n == 3),  # 1 in 10
        )
        def one(
            data: st.DataObject,
            body: bytes,
            sigs: list[tuple[bytes, bytes]],
            host: bytes,
            query: bytes,
            length: str,
            disconnect: bool,
        ) -> None:
            url = b"http://" + host + PATH.encode() + (b"?" + query if query else b"")
            headers = [(b"host", host), *signed_headers(sigs, url, body)]
            headers = [(name.lower(), value) for name, value in headers]
            if length == "right":
                headers.append((b"content-length", b"%d" % len(body)))
            elif length == "wrong":
                headers.append((b"content-length", b"%d" % data.draw(st.integers(-5, 10**6))))
            elif length == "junk":
                headers.append((b"content-length", data.draw(header_bytes | st.just(b"9" * 5000))))
            chunks = data.draw(split(body))
            status = runner.run(drive(app, headers, chunks, query, disconnect))
            seen[status] += 1
            event(f"status {status}")
            assert status in ALLOWED | {0}, status
            assert status != 0 or disconnect

        one()
        for body, sigs in SURE_CASES:  # st.data() rules out @example here
            url = b"http://127.0.0.1" + PATH.encode()
            headers = [(b"host", b"127.0.0.1"), *signed_headers(sigs, url, body)]
            headers = [(name.lower(), value) for name, value in headers]
            headers.append((b"content-length", b"%d" % len(body)))
            seen[runner.run(drive(app, headers, [body], b"", False))] += 1
    check_logs(caplog)
    check_stats(app.stats(), seen, signed)
