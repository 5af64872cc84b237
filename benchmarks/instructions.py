"""A fixed number of commands at concurrency 100, for counting instructions.

    valgrind --tool=callgrind python benchmarks/instructions.py --impl session --port P --count N

Wall-clock figures on a shared 2-core VM drift by 20 % or more; instruction counts under
callgrind do not. ``run.py`` runs each implementation at two counts and takes the
difference, so start-up and imports cancel out and what is left is instructions per
command of the client process (aiohttp, the event loop, the library).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgspec
from _common import HOST, PROJECT, TOKEN

CONCURRENCY = 100
STATUS_URL = "http://127.0.0.1:9/signalwire/events"


async def session_client(port: int, total: int) -> None:
    from signalwire_calls import CallSession, PlayResult, silence

    session = CallSession(
        space=f"http://{HOST}:{port}",
        project=PROJECT,
        token=TOKEN,
        serve_receiver=False,
        public_url="http://127.0.0.1:9",
    )
    async with session:
        calls = [session.call(f"call-{w}") for w in range(CONCURRENCY)]
        media, done = silence(1), PlayResult()
        n = 0

        async def worker(w: int) -> None:
            nonlocal n
            while n < total:
                n += 1
                handle = await calls[w].play(media)
                session._core.settle(handle, done)  # as its webhook would: steady state

        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


async def bare_client(port: int, total: int) -> None:
    import aiohttp

    from signalwire_calls._settings import HTTPSettings
    from signalwire_calls._transport import _user_agent

    class Leg(msgspec.Struct):
        id: str
        status: str | None = None
        type: str | None = None

    s = HTTPSettings()
    auth = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode("ascii")
    headers = {
        "Authorization": f"Basic {auth}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": _user_agent(),
    }
    decoder, encoder, ids = msgspec.json.Decoder(Leg), msgspec.json.Encoder(), itertools.count(1)
    url = f"http://{HOST}:{port}/api/calling/calls"
    connector = aiohttp.TCPConnector(
        limit=s.limit,
        limit_per_host=0,
        keepalive_timeout=s.keepalive_timeout,
        ttl_dns_cache=s.dns_cache_ttl,
    )
    n = 0
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, skip_auto_headers=("Accept-Encoding",)
    ) as http:

        async def worker(w: int) -> Any:
            nonlocal n
            while n < total:
                n += 1
                body = encoder.encode(
                    {
                        "command": "calling.play",
                        "id": f"call-{w}",
                        "params": {
                            "control_id": f"bare-{next(ids)}",
                            "play": [{"type": "silence", "params": {"duration": 1}}],
                            "status_url": STATUS_URL,
                        },
                    }
                )
                async with http.post(url, data=body) as resp:
                    data = await resp.read()
                decoder.decode(data)

        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=["session", "bare"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    if args.impl == "bare":
        asyncio.run(bare_client(args.port, args.count))
    else:
        asyncio.run(session_client(args.port, args.count))


if __name__ == "__main__":
    main()
