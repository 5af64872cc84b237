"""Scale out on one machine: 3 worker processes and 2 stateless receivers behind a
round-robin front, webhooks routed between them through Redis.

    simulator ──webhooks──► front (round robin) ──► receiver 1 ─┐
                                                └─► receiver 2 ─┤ forward to the owner
                                                                ▼
     worker 1, 2, 3  ◄── XREAD swc:inbox:<owner> ── Redis (streams)

Each worker is a ``CallSession`` with ``bus=RedisBus(REDIS_URL)``: its owner id is in the
``status_url`` of every command it sends (``?swc_owner=...``), the webhooks come to the
front, which hands each to either receiver; the receiver checks the signature and
forwards the webhook to the worker that owns it. Every worker runs its calls (dial,
play, collect, hang up) and reports what it got back.

It starts its own ``redis-server`` on a free port unless ``REDIS_URL`` is set, and runs
against the bundled simulator. The same layout in production is:

    signalwire-calls receiver --redis redis://redis:6379/0 --signing-key $KEY \\
        --public-url https://hooks.example.com --host 0.0.0.0 --port 8080   # x2, behind the LB
    # workers: CallSession(..., public_url="https://hooks.example.com",
    #                      serve_receiver=False, bus=RedisBus("redis://redis:6379/0"))
    signalwire-calls dlq --redis redis://redis:6379/0     # webhooks whose owner was gone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from signalwire_calls import CallSession, Digits, RedisBus, tts
from signalwire_calls.testing import Callee, RoundRobinFront, Simulator

CALLER = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
TIME_SCALE = 0.02  # 50 simulated seconds take 1 real second
WORKERS = 3
RECEIVERS = 2
CALLS_PER_WORKER = 10


# --------------------------------------------------------------------------- a worker


async def worker(name: str, space: str, front: str, redis_url: str, key: str) -> int:
    """One worker process: its calls, their webhooks routed back to it through Redis."""
    bus = RedisBus(redis_url)
    session = CallSession(
        space=space,
        project="test-project",
        token="test-token",
        signing_key=key,
        public_url=front,
        serve_receiver=False,  # the receivers are elsewhere; the bus brings the webhooks
        bus=bus,
    )
    right = 0
    async with session:

        async def one(i: int) -> bool:
            call = await session.dial(to=f"+1555100{i:04d}", from_=CALLER, swml=SWML)
            await call.answered(timeout=30)
            play = await call.play(tts("Press 1 to confirm."))
            await play.finished(timeout=30)
            menu = await call.collect(digits=Digits(max=1))
            result = await menu.finished(timeout=30)
            await call.end()
            await call.ended(timeout=30)
            return result.digits == "1"

        results = await asyncio.gather(*(one(i) for i in range(CALLS_PER_WORKER)))
        right = sum(results)
        stats = session.stats()
        assert stats.bus is not None
        print(
            f"{name} (owner {bus.owner_id}): {len(results)} calls, {right} pressed 1; "
            f"{stats.bus.received} webhooks came through Redis, "
            f"{stats.registry.expired} expired, {stats.registry.live_calls} still live",
            flush=True,
        )
    return 0 if right == CALLS_PER_WORKER else 1


# --------------------------------------------------------------------------- the demo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """``REDIS_URL`` if set, else a ``redis-server`` of our own on a free port."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: install it or set REDIS_URL")
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        sys.exit("redis-server did not start")
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait()


async def demo(redis_url: str) -> int:
    cli = [sys.executable, "-m", "signalwire_calls"]
    async with (
        Simulator(time_scale=TIME_SCALE, cps=None) as sim,
        RoundRobinFront([]) as front,
    ):
        sim.script("*", Callee.answers(after=2, digits="1"))
        key = sim.signing_key or ""
        receivers = [
            await asyncio.create_subprocess_exec(
                *cli,
                "receiver",
                "--redis",
                redis_url,
                "--signing-key",
                key,
                "--public-url",
                front.url,
                "--port",
                "0",
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(RECEIVERS)
        ]
        try:
            for proc in receivers:
                assert proc.stdout is not None
                line = (await proc.stdout.readline()).decode().strip()
                print(line)
                front.targets.append(line.rsplit(" ", 1)[1].removesuffix("/signalwire/events"))
            print(f"front (round robin) at {front.url}, Redis at {redis_url}\n")
            workers = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "worker",
                    f"worker {n + 1}",
                    sim.base_url,
                    front.url,
                    redis_url,
                    key,
                )
                for n in range(WORKERS)
            ]
            codes = [await proc.wait() for proc in workers]
        finally:
            for proc in receivers:
                if proc.returncode is None:
                    proc.terminate()
            for proc in receivers:
                assert proc.stdout is not None
                rest = (await proc.stdout.read()).decode().strip()
                await proc.wait()
                if rest:
                    print(rest)
        print(f"\nfront: {front.forwarded} webhooks passed on, {front.retried} retried")
    dlq = await asyncio.create_subprocess_exec(*cli, "dlq", "--redis", redis_url)
    await dlq.wait()
    return max(codes)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        parser = argparse.ArgumentParser()
        for name in ("role", "name", "space", "front", "redis", "key"):
            parser.add_argument(name)
        args = parser.parse_args()
        return asyncio.run(worker(args.name, args.space, args.front, args.redis, args.key))
    with redis_server() as url:
        return asyncio.run(demo(url))


if __name__ == "__main__":
    sys.exit(main())
