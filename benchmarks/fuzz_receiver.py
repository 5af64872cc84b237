"""Fuzz the webhook receiver over real HTTP: N generated requests, then the status counts,
the receiver's counters and what it logged.

    python benchmarks/fuzz_receiver.py                 # 100,000 requests, signed
    python benchmarks/fuzz_receiver.py --quick         # 2,000
    python benchmarks/fuzz_receiver.py -n 20000 --unsigned --seed 7 --json

The receiver (a standalone ``Receiver`` on 127.0.0.1, max_body_size 16 KiB, body_timeout
1 s) runs in a child process; this process sends the requests over raw keep-alive
connections (reconnecting whenever the server closes one). Requests: every typed event
with random and wrong-typed fields, unknown events, call documents, truncated JSON,
random bytes, deep nesting, huge ids and numbers, oversized and short bodies, chunked
and compressed (or falsely labelled compressed) bodies, and odd headers (non-ASCII,
huge and repeated signature headers, non-UTF-8 Host, junk request lines). Half of the
signed requests carry a correct signature.

Exits 1 when any request got a 5xx or no answer in time, when the receiver logged an
ERROR or a traceback or counted a ``rejected_error``, or when its counters do not add
up (received == accepted + every rejected_* but rejected_protocol).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import hmac
import json
import logging
import os
import random
import sys
import time
import typing
from collections import Counter
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgspec
from _common import HOST, RESULT, Child, emit, ready

from signalwire_calls.events import AnyEvent, KnownEvent
from signalwire_calls.receiver import Receiver, ReceiverSettings

KEY = "PSK_fuzz_key"
PATH = "/signalwire/events"
MAX_BODY = 16 * 1024
BODY_TIMEOUT = 1.0
OUTCOMES = (
    "accepted",
    "rejected_signature",
    "rejected_malformed",
    "rejected_too_large",
    "rejected_timeout",
    "rejected_error",
)

# --------------------------------------------------------------------------- server side


class _CountingSink:
    def __init__(self) -> None:
        self.events = 0

    def deliver(self, event: AnyEvent) -> None:
        self.events += 1


class _LogCounter(logging.Handler):
    """Counts records by level, and those with a traceback; keeps the first few."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.levels: Counter[str] = Counter()
        self.tracebacks = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        self.tracebacks += record.exc_info is not None
        if len(self.first) < 8:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()[:300]}")


async def serve(signed: bool, lifetime: float) -> None:
    counter = _LogCounter()
    root = logging.getLogger()
    root.addHandler(counter)
    root.setLevel(logging.INFO)
    sink = _CountingSink()
    settings = ReceiverSettings(
        signing_key=KEY if signed else None, max_body_size=MAX_BODY, body_timeout=BODY_TIMEOUT
    )
    async with Receiver(sink, settings, host=HOST) as receiver:
        ready({"port": receiver.port, "pid": os.getpid()})
        stdin = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(lifetime):
                await stdin.read()  # until the parent closes our stdin
        stats = msgspec.structs.asdict(receiver.stats())
    emit(
        {
            "stats": stats,
            "delivered": sink.events,
            "log_levels": dict(counter.levels),
            "log_tracebacks": counter.tracebacks,
            "log_first": counter.first,
        }
    )


# --------------------------------------------------------------------------- generation


def _typed_value(rng: random.Random, t: msgspec.inspect.Type, depth: int = 0) -> Any:
    if isinstance(t, msgspec.inspect.UnionType):
        return _typed_value(rng, rng.choice(t.types), depth)
    if isinstance(t, msgspec.inspect.StrType):
        return rng.choice(_IDS)(rng)
    if isinstance(t, msgspec.inspect.FloatType):
        return rng.choice([rng.random() * 2e9, rng.randint(-5, 5), "1.5"])
    if isinstance(t, msgspec.inspect.IntType):
        return rng.choice([rng.randint(0, 65535), "42"])
    if isinstance(t, msgspec.inspect.BoolType):
        return rng.choice([True, False, "true"])
    if isinstance(t, msgspec.inspect.StructType) and depth < 4:
        return {
            f.encode_name: _field(rng, f.type, depth + 1) for f in t.fields if rng.random() < 0.6
        }
    return None


def _field(rng: random.Random, t: msgspec.inspect.Type, depth: int) -> Any:
    """A field's value: of its type, or (one time in eight) junk of any kind."""
    return _junk(rng) if rng.random() < 0.125 else _typed_value(rng, t, depth)


def _junk(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            rng.randint(-(10**20), 10**20),
            rng.random(),
            "",
            "é\u0000\U0001f600",
            [1, "a", None],
            {"k": {"j": []}},
            msgspec.Raw(b"9" * rng.randint(300, 4400)),
            msgspec.Raw(b"1e999"),
            "nan",
            "x" * rng.randint(100, 300),
        ]
    )


_IDS = [
    lambda rng: f"{rng.getrandbits(128):032x}",
    lambda rng: "ctl-" + str(rng.randint(0, 10**6)),
    lambda rng: "c" * rng.randint(120, 140),
    lambda rng: "d" * rng.randint(129, 20_000),
    lambda rng: rng.choice(["finished", "playing", "ended", ""]),
]
_KNOWN = [
    typing.cast(msgspec.inspect.StructType, msgspec.inspect.type_info(cls))
    for cls in typing.get_args(KnownEvent)
]


def _event(rng: random.Random) -> Any:
    info = rng.choice(_KNOWN)
    doc = _typed_value(rng, info)
    doc["event_type"] = info.tag if rng.random() < 0.9 else rng.choice(["x.y", "", "calling"])
    return doc


def _unknown(rng: random.Random) -> Any:
    if rng.random() < 0.3:
        return {"call": {"call_id": rng.choice(_IDS)(rng), "project_id": _junk(rng)}, "vars": {}}
    return {
        "event_type": rng.choice(["calling.call.hold", "calling.error", "x"]),
        "timestamp": _junk(rng),
        "params": rng.choice([{"control_id": rng.choice(_IDS)(rng)}, _junk(rng)]),
    }


def _body(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choices(
        ["event", "unknown", "truncated", "bytes", "deep", "huge", "oversize"],
        weights=[45, 12, 12, 10, 6, 10, 5],
    )[0]
    if kind == "event":
        return kind, msgspec.json.encode(_event(rng))
    if kind == "unknown":
        return kind, msgspec.json.encode(_unknown(rng))
    if kind == "truncated":
        body = msgspec.json.encode(_event(rng))
        return kind, body[: rng.randrange(len(body))]
    if kind == "bytes":
        return kind, rng.randbytes(rng.randint(0, 300))
    if kind == "deep":
        n = rng.randint(100, 8000)
        return kind, rng.choice([b"[" * n, b'{"event_type":"x","params":' + b'{"a":' * n])
    if kind == "huge":
        doc = _event(rng)
        doc.setdefault("params", {})
        if isinstance(doc["params"], dict):
            doc["params"]["control_id"] = "i" * rng.randint(100, 5000)
        doc["timestamp"] = msgspec.Raw(b"9" * rng.randint(300, 4400))
        return kind, msgspec.json.encode(doc)
    return kind, b" " * rng.randint(MAX_BODY + 1, MAX_BODY * 2)


def _sign(url: bytes, body: bytes, sha1: bool) -> bytes:
    digest = hashlib.sha1 if sha1 else hashlib.sha256
    return hmac.new(KEY.encode(), url + body, digest).hexdigest().encode()


def requests(rng: random.Random, port: int, count: int, signed: bool) -> Iterator[bytes]:
    """``count`` raw HTTP/1.1 requests; each one is framed so that keep-alive holds."""
    good_host = f"{HOST}:{port}".encode()
    for _ in range(count):
        roll = rng.random()
        if roll < 0.01:  # junk the HTTP parser refuses
            yield rng.choice(
                [
                    b"GARBAGE\r\n\r\n",
                    b"POST /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
                    b"POST " + PATH.encode() + b" HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
                ]
            )
            continue
        _, body = _body(rng)
        host = good_host
        if rng.random() < 0.05:
            host = rng.choice([b"h\xff\xe9st", "h\u00e9st".encode(), b"\xed\xa0\x80", b""])
        query = rng.choice([b"", b"", b"?tag=a", b"?x=%ff&y"])
        target = PATH.encode() + query
        if rng.random() < 0.01:
            target = rng.choice([b"/elsewhere", b"/"])
        headers = [b"Host: " + host]
        if signed and rng.random() < 0.5:
            sha1 = rng.random() < 0.3
            name = b"X-SignalWire-Signature" if sha1 else b"X-SignalWire-SHA256-Signature"
            headers.append(name + b": " + _sign(b"http://" + host + target, body, sha1))
        if rng.random() < 0.1:  # odd signature headers
            value = rng.choice(
                [
                    "é".encode() * 20,
                    b"\xff" * 64,
                    b"0" * 64,
                    b"A" * rng.randint(1, 200),
                    b"a" * rng.randint(8_000, 9_000),
                ]
            )
            names = [b"X-SignalWire-SHA256-Signature", b"x-signalwire-signature"]
            for _ in range(rng.randint(1, 3)):
                headers.append(rng.choice(names) + b": " + value)
        if rng.random() < 0.03:  # aiohttp inflates these; junk fails the body read
            encoding = rng.choice([b"gzip", b"deflate", b"br"])
            if rng.random() < 0.5:
                body = gzip.compress(body)
                encoding = b"gzip"
            headers.append(b"Content-Encoding: " + encoding)
        method = b"POST" if rng.random() < 0.99 else rng.choice([b"GET", b"PUT"])
        if method != b"POST":
            body = b""
        if rng.random() < 0.05:
            headers.append(b"Transfer-Encoding: chunked")
            payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        elif rng.random() < 0.0005:  # a body shorter than announced: 408 after body_timeout
            headers.append(b"Content-Length: %d" % (len(body) + 10))
            payload = body
        else:
            headers.append(b"Content-Length: %d" % len(body))
            payload = body
        head = method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(headers)
        yield head + b"\r\n\r\n" + payload


# --------------------------------------------------------------------------- client side


async def _worker(port: int, source: Iterator[bytes], statuses: Counter[str]) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    for data in source:
        if writer is None:
            reader, writer = await asyncio.open_connection(HOST, port)
        assert reader is not None
        close = True
        try:
            async with asyncio.timeout(30):
                writer.write(data)
                try:
                    await writer.drain()
                except ConnectionError:
                    pass  # the server may answer (413, 400) before reading everything
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = lines[0].split(b" ", 2)[1].decode()
                length = 0
                close = lines[0].startswith(b"HTTP/1.0")
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
        except TimeoutError:
            status = "no answer in 30 s"
        except (asyncio.IncompleteReadError, ConnectionError):
            status = "closed unanswered"
        statuses[status] += 1
        if close:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
            reader = writer = None
    if writer is not None:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def load(port: int, count: int, concurrency: int, seed: int, signed: bool) -> Counter[str]:
    statuses: Counter[str] = Counter()
    source = requests(random.Random(seed), port, count, signed)
    await asyncio.gather(*(_worker(port, source, statuses) for _ in range(concurrency)))
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="2,000 requests")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--unsigned", action="store_true", help="no signing key")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=1800.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    signed = not args.unsigned
    if args.serve:
        asyncio.run(serve(signed, args.lifetime))
        return 0
    count = 2_000 if args.quick else args.count
    child_args = ["--serve", "--lifetime", str(args.lifetime)]
    server = Child(
        "fuzz_receiver.py", child_args + (["--unsigned"] if not signed else []), stdin=True
    )
    try:
        port = int(server.wait_ready()["port"])
        started = time.perf_counter()
        statuses = asyncio.run(load(port, count, args.concurrency, args.seed, signed))
        elapsed = time.perf_counter() - started
        result = server.result(timeout=60)  # closes the child's stdin: it reports, exits
    finally:
        server.kill()
    stats: dict[str, int] = result["stats"]
    problems = []
    bad = {s: n for s, n in statuses.items() if not s.isdigit() or s.startswith("5")}
    if bad:
        problems.append(f"answers that are 5xx or missing: {bad}")
    levels: dict[str, int] = result["log_levels"]
    if levels.get("ERROR") or levels.get("CRITICAL") or result["log_tracebacks"]:
        problems.append(f"the receiver logged errors: {result['log_first']}")
    if stats["rejected_error"]:
        problems.append(f"{stats['rejected_error']} requests met an unexpected error")
    if sum(stats[name] for name in OUTCOMES) != stats["received"]:
        problems.append("received != accepted + rejected_* (but protocol)")
    mode = "signed" if signed else "unsigned"
    print(
        f"fuzz_receiver: {count:,} requests in {elapsed:.1f} s ({count / elapsed:,.0f}/s), "
        f"{mode}, seed {args.seed}, concurrency {args.concurrency}"
    )
    print("statuses: " + " | ".join(f"{s} {n:,}" for s, n in sorted(statuses.items())))
    print("receiver: " + " ".join(f"{k}={v:,}" for k, v in stats.items()))
    print(
        "logs: "
        + (" ".join(f"{k} {v}" for k, v in sorted(levels.items())) or "none")
        + f", with a traceback {result['log_tracebacks']}"
    )
    for line in result["log_first"]:
        print("  " + line)
    print("problems: " + ("; ".join(problems) if problems else "none"))
    if args.json:
        print(
            RESULT
            + json.dumps(
                {
                    "count": count,
                    "signed": signed,
                    "seed": args.seed,
                    "seconds": round(elapsed, 2),
                    "statuses": dict(statuses),
                    "stats": stats,
                    "delivered": result["delivered"],
                    "log_levels": levels,
                    "log_tracebacks": result["log_tracebacks"],
                    "problems": problems,
                }
            )
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
