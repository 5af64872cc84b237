"""What the receiver logs: enough to find a wrong key or URL, never a flood, never a
forged line; plus the last-resort handler and the log throttle it uses."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from signalwire_calls import receiver as receiver_module
from signalwire_calls._logthrottle import LogThrottle
from signalwire_calls._signing import SHA1_HEADER, SHA256_HEADER, sign
from signalwire_calls.events import AnyEvent
from signalwire_calls.receiver import Receiver, ReceiverSettings, ReceiverStats, asgi_app
from tests.test_receiver import (
    BODY_B,
    KEY_B,
    SETTINGS_B,
    FailingSink,
    ListSink,
    call_asgi,
    outcomes,
    post,
    raw_exchange,
    raw_post,
)

LOGGER = "signalwire_calls.receiver"


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level]


# --------------------------------------------------------------------------- the throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_logs_first_then_one_per_interval_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t")
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("t"), logging.INFO, 60.0, clock=clock)
    assert throttle("first %s", "a") is True
    clock.now += 59.9
    assert throttle("second %s", "b") is False
    assert throttle("third %s", "c") is False
    assert throttle.suppressed == 2
    clock.now += 0.1  # exactly the interval after the first
    assert throttle("fourth %s", "d") is True
    assert throttle.suppressed == 0
    clock.now += 1
    assert throttle("fifth") is False
    clock.now += 60
    assert throttle("sixth") is True
    assert [r.getMessage() for r in caplog.records] == [
        "first a",
        "fourth d (2 more like this in the last 60 s not logged)",
        "sixth (1 more like this in the last 61 s not logged)",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    assert {r.funcName for r in caplog.records} == {
        "test_throttle_logs_first_then_one_per_interval_with_the_count"
    }


def test_throttle_passes_exc_info_and_skips_disabled_levels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="t2")
    clock = Clock()
    quiet = LogThrottle(logging.getLogger("t2"), logging.DEBUG, clock=clock)
    assert quiet("not shown") is False
    assert quiet.suppressed == 0  # a disabled level neither logs nor counts
    loud = LogThrottle(logging.getLogger("t2"), logging.ERROR, 0.0, clock=clock)
    assert loud("failed", exc_info=ValueError("boom")) is True
    assert loud("again") is True  # interval 0: every call logs
    assert [r.exc_info is not None for r in caplog.records] == [True, False]
    assert "ValueError: boom" in (caplog.records[0].exc_text or "")
    with pytest.raises(ValueError, match="interval"):
        LogThrottle(logging.getLogger("t2"), interval=-1)


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({SHA256_HEADER: "0" * 64, SHA1_HEADER: "0" * 40}, f"the {SHA256_HEADER} header"),
        ({SHA1_HEADER: "0" * 40}, f"the {SHA1_HEADER} header (SHA-1"),
        ({}, f"no {SHA256_HEADER} or {SHA1_HEADER} header"),
    ],
    ids=["sha256", "sha1", "none"],
)
async def test_signature_refusal_is_one_warning_naming_url_and_header(
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    named: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with Receiver(ListSink(), SETTINGS_B) as receiver:
        for _ in range(5):
            target = f"http://127.0.0.1:{receiver.port}/sw/status?leg=a"
            assert (await post(http, target, BODY_B, headers))[0] == 403
        assert receiver.stats() == ReceiverStats(received=5, rejected_signature=5)
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1  # four more within the minute: held back
    text = warnings[0].getMessage()
    assert named in text
    assert "'https://example.com/sw/status?leg=a'" in text  # public_url + path + query
    assert KEY_B not in text
    assert BODY_B.decode() not in text
    for value in headers.values():
        assert value not in text


async def test_untrusted_text_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """A newline in the URL checked (possible through ASGI) is escaped in the log."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    settings = ReceiverSettings(path="/", signing_key=KEY_B)
    app = asgi_app(ListSink(), settings)
    forged = "\nCRITICAL forged line"
    result = await call_asgi(app, path="/", query=forged.encode(), host="h\nCRITICAL x")
    assert result.status == 403
    [record] = caplog.records
    assert "\n" not in record.getMessage(), record.getMessage()
    assert "'http://h\\nCRITICAL x/?\\nCRITICAL forged line'" in record.getMessage()


# --------------------------------------------------------------------------- HTTP junk


JUNK = [
    raw_post(b"/signalwire/events", b"{}", [(b"X-Long", b"a" * 9000)]),  # LineTooLong
    b"GET /signalwire/events HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",  # BadHttpMessage
    b"POST /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # InvalidURLError
    b"POST http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",  # InvalidURLError
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS on a plain port
]


async def test_parser_refusals_are_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Receiver(ListSink()) as receiver:
        for _ in range(3):
            for data in JUNK:  # nothing from aiohttp either: no ERROR traceback each
                assert (await raw_exchange(receiver.port, data))[0] == 400
        # the server still serves
        ok = raw_post(b"/signalwire/events", BODY_B)
        assert (await raw_exchange(receiver.port, ok))[0] == 200
        stats = receiver.stats()
    assert stats == ReceiverStats(received=1, accepted=1, rejected_protocol=3 * len(JUNK))
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].name == LOGGER
    assert loud[0].levelno == logging.WARNING
    assert loud[0].exc_info is None
    assert "refused by the HTTP parser (400): LineTooLong" in loud[0].getMessage()
    assert "\n" not in loud[0].getMessage()


# --------------------------------------------------------------------------- last resort


async def test_unexpected_error_is_400_counted_and_logged_once_a_minute(
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No input makes the receiver fail any more, so a failure is planted: a decoder
    with a bug (the one place a stand-in is needed)."""

    def broken(body: bytes) -> AnyEvent:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(receiver_module, "decode_event", broken)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    sink = ListSink()
    async with Receiver(sink) as receiver:
        for _ in range(3):
            assert await post(http, receiver.url, BODY_B) == (400, b"")
        assert receiver.stats() == ReceiverStats(received=3, rejected_error=3)
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert "unexpected RuntimeError" in errors[0].getMessage()
    assert "decoder bug" in (errors[0].exc_text or "")
    assert sink.events == []


async def test_asgi_last_resort_on_a_broken_scope() -> None:
    """An ASGI server handing over a header value that is not bytes."""
    app = asgi_app(ListSink(), SETTINGS_B)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY_B}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/sw/status",
        "headers": [(b"host", None)],
    }
    async with asyncio.timeout(5):
        await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert app.stats() == ReceiverStats(received=1, rejected_error=1)


async def test_failing_sink_is_logged_once_a_minute(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with Receiver(FailingSink()) as receiver:
        for _ in range(4):
            assert (await post(http, receiver.url, BODY_B))[0] == 200
        assert receiver.stats() == ReceiverStats(received=4, accepted=4, sink_errors=4)
    assert len(records(caplog, logging.ERROR)) == 1


async def test_every_request_ends_in_exactly_one_outcome(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """received == accepted + every rejected_* (but rejected_protocol, which never reaches
    the handler), whatever the mix."""
    settings = ReceiverSettings(signing_key=KEY_B, max_body_size=1024, body_timeout=0.2)
    async with Receiver(ListSink(), settings) as receiver:
        url = receiver.url

        def signed(body: bytes) -> dict[str, str]:
            return sign(KEY_B, url, body)

        unknown = b'{"event_type":"x.y"}'
        assert (await post(http, url, BODY_B, signed(BODY_B)))[0] == 200
        assert (await post(http, url, unknown, signed(unknown)))[0] == 200
        assert (await post(http, url, BODY_B, {SHA256_HEADER: "1"}))[0] == 403
        assert (await post(http, url, b"[]", signed(b"[]")))[0] == 400
        big = b"x" * 2000
        assert (await post(http, url, big, signed(big)))[0] == 413

        partial = raw_post(b"/signalwire/events", b"{}", close=False)[:-1]  # 1 byte short
        assert (await raw_exchange(receiver.port, partial))[0] == 408
        junk = b"POST /\x00 HTTP/1.1\r\n\r\n"
        assert (await raw_exchange(receiver.port, junk))[0] == 400

        def broken(body: bytes) -> AnyEvent:
            raise RuntimeError("bug")

        monkeypatch.setattr(receiver_module, "decode_event", broken)
        assert (await post(http, url, BODY_B, signed(BODY_B)))[0] == 400
        stats = receiver.stats()
    assert stats == ReceiverStats(
        received=7,
        accepted=2,
        rejected_signature=1,
        rejected_malformed=1,
        rejected_too_large=1,
        rejected_timeout=1,
        rejected_error=1,
        rejected_protocol=1,
        unknown_events=1,
    )
    assert outcomes(stats) == stats.received


def test_server_log_counts_parser_refusals_and_throttles_other_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The logger the standalone server hands to aiohttp, driven as aiohttp drives it
    (its other errors cannot be caused from outside with our handler)."""
    from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
    from aiohttp.web_protocol import RequestPayloadError

    from signalwire_calls.receiver import _Core, _ServerLog

    caplog.set_level(logging.DEBUG)
    core = _Core(ListSink(), ReceiverSettings())
    log = _ServerLog(core)
    log.exception("Error handling request from %s", "1.2.3.4", exc_info=LineTooLong("x", 8190))
    log.debug("Error handling request from %s", "1.2.3.4", exc_info=BadHttpMethod("GARBAGE"))
    try:
        raise BadHttpMethod("JUNK")
    except BadHttpMethod:
        log.exception("Error handling request")  # exc_info=True: the one being handled
    assert core.stats() == ReceiverStats(rejected_protocol=3)
    for _ in range(3):
        try:
            raise RuntimeError("aiohttp trouble")
        except RuntimeError:
            log.exception("Unhandled exception")  # exc_info=True: the one being handled
    log.warning("Failed to create request handler %r", {"a": 1})
    log.warning("Failed to create request handler %r", {"a": 2})  # held back
    log.debug("Ignored premature client disconnection %s", 2, exc_info=OSError("gone"))
    payload_error = RequestPayloadError("Can not decode content-encoding: gzip")
    log.exception("Unhandled exception", exc_info=payload_error)  # our 400 counted it
    assert core.stats() == ReceiverStats(rejected_protocol=3)
    by_logger = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert by_logger == [
        (
            LOGGER,
            "WARNING",
            "request refused by the HTTP parser (400): LineTooLong "
            + repr("Got more than 8190 bytes when reading: 'x'."),
        ),
        ("aiohttp.server", "ERROR", "Unhandled exception"),  # then twice held back
        ("aiohttp.server", "WARNING", "Failed to create request handler {'a': 1}"),
        ("aiohttp.server", "DEBUG", "Ignored premature client disconnection 2"),
        ("aiohttp.server", "DEBUG", "Unhandled exception"),
    ]
    assert [r.exc_info is not None for r in caplog.records] == [False, True, False, True, True]
    assert "aiohttp trouble" in (caplog.records[1].exc_text or "")


async def test_log_lines_word_for_word(caplog: pytest.LogCaptureFixture) -> None:
    """Every line the receiver core writes, through the ASGI adapter (no network)."""
    from tests.test_receiver_edges import drive

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    plain = asgi_app(FailingSink(), ReceiverSettings(max_body_size=100, body_timeout=0.2))
    path = {"path": "/signalwire/events", "raw_path": None}
    host = [(b"host", b"h")]
    await drive(plain, scope=path, headers=[*host, (b"content-length", b"101")])
    await drive(plain, scope=path, headers=host, messages=[])  # gone before any body
    await drive(plain, scope=path, headers=host, messages=[{"type": "http.request", "body": b"[]"}])
    await drive(plain, scope=path, headers=host, messages=[], block=True)
    await drive(plain, scope=path, headers=host, messages=[], block=True)
    await drive(plain, scope=path, headers=[(b"host", None)])  # type: ignore[list-item]
    small = b'{"event_type":"calling.call.play","params":{}}'
    await drive(plain, scope=path, headers=host, messages=[{"type": "http.request", "body": small}])
    assert plain.stats() == ReceiverStats(
        received=7,
        accepted=1,
        rejected_malformed=2,
        rejected_too_large=1,
        rejected_timeout=2,
        rejected_error=1,
        sink_errors=1,
    )
    signed = asgi_app(ListSink(), ReceiverSettings(path="/sw/status", signing_key=KEY_B))
    long_query = b"q=" + b"a" * 400
    await drive(signed, scope={"query_string": long_query}, headers=host)
    url = "http://h/sw/status?" + long_query.decode()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "webhook refused (413): body over 100 bytes"),
        (
            "DEBUG",
            "webhook refused (400): body could not be read "
            "(ConnectionResetError('the client disconnected'))",
        ),
        ("DEBUG", "webhook refused (400): 'body: expected a JSON object, got list'"),
        ("WARNING", "webhook refused (408): body not received within body_timeout=0.2 s"),
        ("ERROR", "webhook refused (400): unexpected AttributeError while handling it"),
        ("ERROR", "event sink failed on PlayEvent"),
        (
            "WARNING",
            "webhook refused (403): no X-SignalWire-SHA256-Signature or "
            f"X-SignalWire-Signature header; URL checked: {url[:300] + '...'!r} (is "
            "public_url, with any mount path, the URL the platform calls? is signing_key "
            "this project's key?)",
        ),
    ]


def test_clip_keeps_300_characters() -> None:
    from signalwire_calls.receiver import _clip

    assert _clip("u" * 300) == "u" * 300
    assert _clip("u" * 301) == "u" * 300 + "..."
