"""Benchmark server processes (127.0.0.1 only, each with a hard lifetime).

    python benchmarks/servers.py fast --lifetime 600
        a minimal aiohttp server answering every POST with a fixed call leg
    python benchmarks/servers.py receiver --impl session|bare --pending 100000 [--signed]
        a webhook receiver holding N pending handles (ours: CallSession's receiver and
        registry; bare: an aiohttp handler doing decode + dict lookup + future
        resolution), plus a control server to arm finished() waiters and read their
        wake-up times. With ``--bus REDIS_URL`` the session has a RedisBus (owner id
        ``--owner``): webhooks forwarded to it through Redis reach the same handles.
    python benchmarks/servers.py forwarder --redis URL [--signed]
        a stateless receiver (RedisBus.receiver) forwarding every webhook to its owner.

Each prints ``BENCH-READY {json}`` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import os
import sys
import time
from hashlib import sha256
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgspec
from _common import (
    EVENT_PATH,
    HOST,
    LEG_BODY,
    PROJECT,
    SIGNING_KEY,
    TOKEN,
    proc_cpu,
    ready,
    rss_bytes,
    run_loop,
)
from aiohttp import web

# --------------------------------------------------------------------------- fast server


async def fast_server(lifetime: float) -> None:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=LEG_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/calling/calls", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=4096)
    await site.start()
    port = runner.addresses[0][1]
    ready({"url": f"http://{HOST}:{port}", "port": port, "pid": os.getpid()})
    try:
        await asyncio.sleep(lifetime)
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- receivers


class _BareParams(msgspec.Struct):
    control_id: str | None = None
    call_id: str | None = None
    state: str | None = None


class _BareEvent(msgspec.Struct):
    event_type: str
    params: _BareParams


class _Host:
    """What both receivers share: the pending set, the waiters, the control routes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.wake: dict[int, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.prefix = ""

    def make(self, n: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def waiter(self, index: int) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def pending(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    async def arm(self, request: web.Request) -> web.Response:
        start = int(request.query["start"])
        count = int(request.query["count"])
        for i in range(start, start + count):
            task = asyncio.ensure_future(self.waiter(i))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await asyncio.sleep(0)  # let the waiters park
        return web.json_response({"armed": count})

    async def collect(self, request: web.Request) -> web.Response:
        wake, self.wake = self.wake, {}
        return web.json_response(
            {
                "wake": {str(k): v for k, v in wake.items()},
                "pending": self.pending(),
                "rss": rss_bytes(),
                "cpu": proc_cpu(os.getpid()),
                "gc_counts": gc.get_count(),
            }
        )

    async def control_app(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/arm", self.arm)
        app.router.add_get("/collect", self.collect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        return runner


class _SessionHost(_Host):
    """Our stack: CallSession's receiver -> registry -> PlayHandle, registered the way
    ``Call._start`` registers them (before the POST)."""

    async def start(self) -> tuple[str, Any]:
        from signalwire_calls import CallSession, RedisBus

        bus = RedisBus(self.args.bus, owner_id=self.args.owner) if self.args.bus else None
        self.session = CallSession(
            space="http://127.0.0.1:9",  # never contacted: no command is sent
            project=PROJECT,
            token=TOKEN,
            signing_key=SIGNING_KEY if self.args.signed else None,
            receiver_host=HOST,
            bus=bus,
        )
        await self.session.open()
        self.prefix = "session"
        return self.session.status_url, self.session

    def make(self, n: int) -> None:
        from signalwire_calls import silence
        from signalwire_calls.commands import Play
        from signalwire_calls.handles import PlayHandle

        session = self.session
        # 100,000+ pending handles without 100,000 HTTP requests: Core.register indexes
        # a handle exactly as call.play() does before it POSTs (the one step of a
        # command that a webhook's routing depends on). The ids are chosen, as
        # call.play(control_id=...) allows, so that the load generator can name them
        # (the session's own ids are unpredictable). Only the core holds the handles,
        # as in an application that awaits some of them: settled handles are freed.
        core = session._core
        ncalls = self.args.calls
        calls = [session.call(f"call-{j}") for j in range(ncalls)]
        media = [silence(1)]
        for i in range(n):
            cmd = Play(control_id=f"session-{i + 1}", play=media)
            core.register(calls[i % ncalls], PlayHandle.kind, cmd)

    async def waiter(self, index: int) -> None:
        # the core's index by control_id: the handles have no other owner here
        handle = self.session._core.ops[f"{self.prefix}-{index + 1}"]
        await handle.finished()
        self.wake[index] = time.time_ns()

    def pending(self) -> int:
        return self.session.stats().registry.pending_operations


class _BareHost(_Host):
    """The baseline: aiohttp handler, msgspec decode, dict of futures."""

    async def start(self) -> tuple[str, Any]:
        futures: dict[str, asyncio.Future[str | None]] = {}
        self.futures = futures
        decoder = msgspec.json.Decoder(_BareEvent)
        key = SIGNING_KEY.encode() if self.args.signed else None

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if key is not None:
                url = f"{request.scheme}://{request.host}{request.raw_path}"
                expected = hmac.new(key, url.encode() + body, sha256).hexdigest()
                given = request.headers.get("X-SignalWire-SHA256-Signature", "")
                if not hmac.compare_digest(expected, given):
                    return web.Response(status=403)
            event = decoder.decode(body)
            control_id = event.params.control_id
            fut = futures.pop(control_id, None) if control_id is not None else None
            if fut is not None and not fut.done():
                fut.set_result(event.params.state)
            return web.Response()

        app = web.Application()
        app.router.add_post(EVENT_PATH, handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, HOST, 0).start()
        port = self.runner.addresses[0][1]
        self.prefix = "bare"
        return f"http://{HOST}:{port}{EVENT_PATH}", self.runner

    def make(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        for i in range(n):
            self.futures[f"bare-{i + 1}"] = loop.create_future()

    async def waiter(self, index: int) -> None:
        await self.futures[f"bare-{index + 1}"]
        self.wake[index] = time.time_ns()

    def pending(self) -> int:
        return len(self.futures)


async def receiver_server(args: argparse.Namespace) -> None:
    host: _Host = _SessionHost(args) if args.impl == "session" else _BareHost(args)
    url, owner = await host.start()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    host.make(args.pending)
    build_s = time.perf_counter() - t0
    gc.collect()
    if args.gc_freeze:
        gc.freeze()
    control = await host.control_app()
    cport = control.addresses[0][1]
    ready(
        {
            "url": url,
            "control": f"http://{HOST}:{cport}",
            "prefix": host.prefix,
            "calls": args.calls,
            "pid": os.getpid(),
            "build_s": build_s,
            "rss": rss_bytes(),
        }
    )
    try:
        if args.exit_after:  # for instruction counts: a normal exit once N events landed
            target = args.pending - args.exit_after
            deadline = time.monotonic() + args.lifetime
            while host.pending() > target and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(args.lifetime)
    finally:
        for task in list(host.tasks):
            task.cancel()
        await control.cleanup()
        if args.impl == "session":
            await owner.aclose()
        else:
            await owner.cleanup()


async def forwarder_server(args: argparse.Namespace) -> None:
    from signalwire_calls import ReceiverSettings, RedisBus

    async with RedisBus(args.redis) as bus:
        settings = ReceiverSettings(signing_key=SIGNING_KEY if args.signed else None)
        async with bus.receiver(settings, host=HOST) as receiver:
            ready({"url": receiver.url, "pid": os.getpid()})
            await asyncio.sleep(args.lifetime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    fast = sub.add_parser("fast")
    fast.add_argument("--lifetime", type=float, default=900.0)
    fast.add_argument("--loop", default="asyncio")
    rec = sub.add_parser("receiver")
    rec.add_argument("--impl", choices=["session", "bare"], required=True)
    rec.add_argument("--pending", type=int, default=100_000)
    rec.add_argument("--calls", type=int, default=1000)
    rec.add_argument("--signed", action="store_true")
    rec.add_argument("--gc-freeze", action="store_true")
    rec.add_argument("--lifetime", type=float, default=900.0)
    rec.add_argument("--exit-after", type=int, default=0, help="exit once N events settled")
    rec.add_argument("--loop", default="asyncio")
    rec.add_argument("--bus", default=None, help="a Redis URL: give the session a RedisBus")
    rec.add_argument("--owner", default="bench-owner")
    fwd = sub.add_parser("forwarder")
    fwd.add_argument("--redis", required=True)
    fwd.add_argument("--signed", action="store_true")
    fwd.add_argument("--lifetime", type=float, default=900.0)
    fwd.add_argument("--loop", default="asyncio")
    args = parser.parse_args()
    if args.what == "fast":
        run_loop(lambda: fast_server(args.lifetime), args.loop)
    elif args.what == "forwarder":
        run_loop(lambda: forwarder_server(args), args.loop)
    else:
        run_loop(lambda: receiver_server(args), args.loop)


if __name__ == "__main__":
    main()
