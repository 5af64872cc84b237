"""Benchmark client processes; each runs for a bounded time and prints one RESULT line.

python benchmarks/clients.py commands --impl session|bare|requests|vendor --port P ...
python benchmarks/clients.py loadgen --port P --prefix X --start S --count N ...
python benchmarks/clients.py flows --url URL --concurrency C --duration D ...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgspec
from _common import (
    CALL_ID,
    EVENT_PATH,
    HOST,
    PROJECT,
    SIGNING_KEY,
    TOKEN,
    emit,
    percentile,
    proc_cpu,
    raw_connect,
    raw_post,
    run_loop,
)

STATUS_URL = "http://127.0.0.1:9/signalwire/events"


def _summary(
    ops: int, elapsed: float, cpu: float, latencies: list[float], server: float | None
) -> dict[str, Any]:
    return {
        "ops": ops,
        "elapsed_s": elapsed,
        "ops_per_s": ops / elapsed if elapsed > 0 else 0.0,
        "cpu_us_per_op": cpu / ops * 1e6 if ops else None,
        "server_cpu_us_per_op": server / ops * 1e6 if ops and server is not None else None,
        "p50_us": _us(percentile(latencies, 50)),
        "p99_us": _us(percentile(latencies, 99)),
        "max_us": _us(max(latencies) if latencies else None),
    }


def _us(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e6


async def _drive(
    op: Callable[[int], Awaitable[Any]],
    concurrency: int,
    duration: float,
    warmup: float,
    server_pid: int | None,
) -> dict[str, Any]:
    """Run ``op`` in ``concurrency`` workers: ``warmup`` s unmeasured, then ``duration``."""
    latencies: list[float] = []
    counter = itertools.count()
    phase = {"measure": False, "stop": False}
    ops = 0
    perf = time.perf_counter

    async def worker(w: int) -> None:
        nonlocal ops
        while not phase["stop"]:
            t = perf()
            await op(w)
            if phase["measure"]:
                latencies.append(perf() - t)
                ops += 1
            next(counter)

    tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
    await asyncio.sleep(warmup)
    phase["measure"] = True
    cpu0, srv0, t0 = time.process_time(), _cpu(server_pid), perf()
    await asyncio.sleep(duration)
    phase["stop"] = True
    elapsed, cpu1, srv1 = perf() - t0, time.process_time(), _cpu(server_pid)
    # requests still in flight complete (bounded by the transport timeout)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    server = srv1 - srv0 if srv0 is not None and srv1 is not None else None
    return _summary(ops, elapsed, cpu1 - cpu0, latencies, server)


def _cpu(pid: int | None) -> float | None:
    return proc_cpu(pid) if pid else None


# --------------------------------------------------------------------------- commands


async def commands(args: argparse.Namespace) -> dict[str, Any]:
    base = f"http://{HOST}:{args.port}"
    if args.impl == "session":
        from signalwire_calls import CallSession, PlayResult, silence

        session = CallSession(
            space=base,
            project=PROJECT,
            token=TOKEN,
            serve_receiver=False,
            public_url="http://127.0.0.1:9",
        )
        async with session:
            calls = [session.call(f"{CALL_ID}-{w}") for w in range(args.concurrency)]
            # Steady state: the fast server sends no webhooks, so each handle is settled
            # and freed as its ``finished`` webhook would settle it; the session then
            # holds ~concurrency pending handles, as a running campaign does. Receiving
            # and routing that webhook is the receiver scenario's cost (measured against
            # a bare handler there); the bare loop here settles nothing. (Private: a
            # benchmark's stand-in for the receiver.)
            settle, done = session._core.settle, PlayResult()
            media = silence(1)

            async def op(w: int) -> Any:
                handle = await calls[w].play(media)
                settle(handle, done)
                return handle

            result = await _drive(op, args.concurrency, args.duration, args.warmup, args.server_pid)
            stats = session.stats()
            result["pending_handles"] = stats.registry.pending_operations
            result["routed"] = stats.registry.routed
            return result
    if args.impl == "bare":
        import aiohttp

        from signalwire_calls._settings import HTTPSettings
        from signalwire_calls._transport import _user_agent

        s = HTTPSettings()  # the same connector settings as the session's transport
        auth = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode("ascii")
        headers = {
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # the transport's headers, byte for byte
            "User-Agent": _user_agent(),
        }

        class Leg(msgspec.Struct):
            id: str
            status: str | None = None
            type: str | None = None

        decoder = msgspec.json.Decoder(Leg)
        encoder = msgspec.json.Encoder()
        ids = itertools.count(1)
        url = base + "/api/calling/calls"
        connector = aiohttp.TCPConnector(
            limit=s.limit,
            limit_per_host=0,
            keepalive_timeout=s.keepalive_timeout,
            ttl_dns_cache=s.dns_cache_ttl,
        )
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

            async def op(w: int) -> Any:
                body = encoder.encode(
                    {
                        "command": "calling.play",
                        "id": f"{CALL_ID}-{w}",
                        "params": {
                            "control_id": f"bare-{next(ids)}",
                            "play": [{"type": "silence", "params": {"duration": 1}}],
                            "status_url": STATUS_URL,
                        },
                    }
                )
                async with http.post(url, data=body) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
                return decoder.decode(data)

            return await _drive(op, args.concurrency, args.duration, args.warmup, args.server_pid)
    if args.impl == "requests":
        return await _threads(args, _requests_post(base))
    return await _vendor(args, args.port)


def _requests_post(base: str) -> Callable[[], Any]:
    import json
    import threading

    import requests

    local = threading.local()
    url = base + "/api/calling/calls"
    ids = itertools.count(1)

    def post() -> Any:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = requests.Session()
            http.auth = (PROJECT, TOKEN)
        body = {
            "command": "calling.play",
            "id": CALL_ID,
            "params": {
                "control_id": f"req-{next(ids)}",
                "play": [{"type": "silence", "params": {"duration": 1}}],
                "status_url": STATUS_URL,
            },
        }
        resp = http.post(url, json=body, timeout=10)
        resp.raise_for_status()
        return json.loads(resp.content)

    return post


async def _threads(args: argparse.Namespace, post: Callable[[], Any]) -> dict[str, Any]:
    """The blocking-SDK pattern: async code awaiting a thread pool of blocking calls."""
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:

        async def op(w: int) -> Any:
            return await loop.run_in_executor(pool, post)

        return await _drive(op, args.threads, args.duration, args.warmup, args.server_pid)


async def _vendor(args: argparse.Namespace, port: int) -> dict[str, Any]:
    """The vendor SDK's REST client (``signalwire-sdk``, the ``bench`` extra) in a thread
    pool; ``available: false`` with the reason when it is missing or its API moved."""
    import importlib.util

    if importlib.util.find_spec("signalwire") is None:
        return {"available": False, "reason": "signalwire-sdk is not installed"}
    try:
        post = _vendor_post(port)
        post()  # one probe request: the API may have moved
    except Exception as exc:
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    result = await _threads(args, post)
    result["available"] = True
    return result


def _vendor_post(port: int) -> Callable[[], Any]:
    """``RestClient.calling.play`` with one client per thread (each client owns one
    ``requests.Session``, as the requests row does: the vendor's best case)."""
    import threading

    from signalwire.rest import RestClient

    local = threading.local()
    # the SDK's own form of a host: a loopback host:port makes it speak plain http
    host = f"{HOST}:{port}"
    ids = itertools.count(1)
    media = [{"type": "silence", "params": {"duration": 1}}]

    def post() -> Any:
        calling = getattr(local, "calling", None)
        if calling is None:
            calling = local.calling = RestClient(project=PROJECT, token=TOKEN, host=host).calling
        return calling.play(
            CALL_ID, play=media, control_id=f"vendor-{next(ids)}", status_url=STATUS_URL
        )

    return post


# --------------------------------------------------------------------------- loadgen


def _event_body(prefix: str, index: int, ncalls: int) -> bytes:
    return msgspec.json.encode(
        {
            "event_type": "calling.call.play",
            "event_channel": "bench",
            "timestamp": time.time(),
            "project_id": PROJECT,
            "space_id": "bench-space",
            "params": {
                "call_id": f"call-{index % ncalls}",
                "node_id": "bench-node",
                "control_id": f"{prefix}-{index + 1}",
                "state": "finished",
            },
        }
    )


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    """POST ``count`` play-finished events for handles ``start..start+count`` over raw
    keep-alive connections, as fast as possible (``--concurrency``) or paced (``--rate``)."""
    from signalwire_calls._signing import SHA256_HEADER, sign_sha256

    path = EVENT_PATH + args.query
    url = f"http://{HOST}:{args.port}{path}"
    requests: list[bytes] = []
    for i in range(args.start, args.start + args.count):
        body = _event_body(args.prefix, i, args.calls)
        headers = {SHA256_HEADER: sign_sha256(SIGNING_KEY, url, body)} if args.signed else {}
        requests.append(raw_post(args.port, path, body, headers))
    statuses: dict[int, int] = {}
    send_ns: list[int] = [0] * args.count
    deadline = time.perf_counter() + args.max_seconds
    srv0 = _cpu(args.server_pid)
    cpu0 = time.process_time()
    if args.rate:
        done = await _paced(args, requests, statuses, send_ns, deadline)
        elapsed = done["elapsed"]
    else:
        next_index = itertools.count()
        conns = [await raw_connect(args.port) for _ in range(args.concurrency)]
        t0 = time.perf_counter()

        async def worker(conn: Any) -> None:
            while time.perf_counter() < deadline:
                i = next(next_index)
                if i >= len(requests):
                    return
                status = await conn.request(requests[i])
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(worker(c) for c in conns))
        elapsed = time.perf_counter() - t0
        for c in conns:
            c.transport.close()
    srv1 = _cpu(args.server_pid)
    sent = sum(statuses.values())
    return {
        "sent": sent,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed_s": elapsed,
        "events_per_s": sent / elapsed if elapsed > 0 else 0.0,
        "loadgen_cpu_us_per_event": (time.process_time() - cpu0) / sent * 1e6 if sent else None,
        "server_cpu_us_per_event": (
            (srv1 - srv0) / sent * 1e6 if sent and srv0 is not None and srv1 is not None else None
        ),
        "send_ns": send_ns if args.rate else [],
    }


async def _paced(
    args: argparse.Namespace,
    requests: list[bytes],
    statuses: dict[int, int],
    send_ns: list[int],
    deadline: float,
) -> dict[str, float]:
    idle = [await raw_connect(args.port) for _ in range(8)]
    inflight: set[asyncio.Task[None]] = set()
    interval = 1.0 / args.rate

    async def one(conn: Any, i: int) -> None:
        status = await conn.request(requests[i])
        statuses[status] = statuses.get(status, 0) + 1
        idle.append(conn)

    t0 = time.perf_counter()
    i = 0
    while i < len(requests) and time.perf_counter() < deadline:
        due = min(len(requests), int((time.perf_counter() - t0) / interval) + 1)
        while i < due:
            conn = idle.pop() if idle else await raw_connect(args.port)
            send_ns[i] = time.time_ns()
            task = asyncio.ensure_future(one(conn, i))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            i += 1
        await asyncio.sleep(interval)
    if inflight:
        await asyncio.wait(inflight, timeout=10)
    elapsed = time.perf_counter() - t0
    for conn in idle:
        conn.transport.close()
    return {"elapsed": elapsed}


# --------------------------------------------------------------------------- flows


async def flows(args: argparse.Namespace) -> dict[str, Any]:
    """dial -> answered -> play -> finished -> collect -> finished -> end, repeated."""
    from signalwire_calls import CallSession, Digits, RetryPolicy, tts

    swml = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
    failures: dict[str, int] = {}
    async with CallSession(
        space=args.url,
        project=PROJECT,
        token=TOKEN,
        signing_key=SIGNING_KEY,
        receiver_host=HOST,
        call_end_grace=0.5,
        retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.1),
    ) as session:
        digits = Digits(max=1, terminators="#")

        async def op(w: int) -> None:
            try:
                call = await session.dial(to="+15551230001", from_="+15559870000", swml=swml)
                await call.answered(timeout=30)
                play = await call.play(tts("Hello"))
                await play.finished(timeout=30)
                menu = await call.collect(digits=digits, initial_timeout=5)
                await menu.finished(timeout=30)
                await call.end()
            except Exception as exc:  # counted, not fatal: the benchmark reports them
                name = type(exc).__name__
                failures[name] = failures.get(name, 0) + 1
                await asyncio.sleep(0.01)

        result = await _drive(op, args.concurrency, args.duration, args.warmup, args.server_pid)
        result["failures"] = failures
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("commands")
    c.add_argument("--impl", choices=["session", "bare", "requests", "vendor"], required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--concurrency", type=int, default=100)
    c.add_argument("--threads", type=int, default=32)
    l_ = sub.add_parser("loadgen")
    l_.add_argument("--port", type=int, required=True)
    l_.add_argument("--prefix", required=True)
    l_.add_argument("--start", type=int, default=0)
    l_.add_argument("--count", type=int, required=True)
    l_.add_argument("--calls", type=int, default=1000)
    l_.add_argument("--concurrency", type=int, default=32)
    l_.add_argument("--rate", type=float, default=0.0)
    l_.add_argument("--signed", action="store_true")
    l_.add_argument("--max-seconds", type=float, default=30.0)
    l_.add_argument("--query", default="", help="appended to the path: '?swc_owner=...'")
    f = sub.add_parser("flows")
    f.add_argument("--url", required=True)
    f.add_argument("--concurrency", type=int, default=100)
    for p in (c, f):
        p.add_argument("--duration", type=float, default=2.0)
        p.add_argument("--warmup", type=float, default=0.3)
    for p in (c, l_, f):
        p.add_argument("--server-pid", type=int, default=0)
        p.add_argument("--loop", default="asyncio")
    args = parser.parse_args()
    fn = {"commands": commands, "loadgen": loadgen, "flows": flows}[args.what]
    emit(run_loop(lambda: fn(args), args.loop))


if __name__ == "__main__":
    main()
