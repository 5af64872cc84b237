"""Fixed workloads for counting instructions under callgrind.

    valgrind --tool=callgrind python benchmarks/instructions.py --impl session --port P --count N
    valgrind --tool=callgrind python benchmarks/instructions.py --part build --count N

Wall-clock figures on a shared 2-core VM drift by 20 % or more; instruction counts under
callgrind do not. ``run.py`` runs each workload at two counts (or at N and 0) and takes
the difference, so start-up and imports cancel out.

``--impl``: N commands at concurrency 100 against the fast server, through ``CallSession``
(``call.play``, then the handle settled by ``session.deliver`` of its ``finished`` event,
standing in for the webhook the fast server never sends) or through the bare aiohttp +
msgspec loop: instructions per command of the client process.

``--part``: the pieces of a session command without the network, cumulatively in the
order ``Call.play`` runs them (``PARTS``), and the bare loop's own two pieces, so that
consecutive differences say where the session's instructions go and the remainder of
the whole command is the HTTP request (aiohttp, the event loop, the coroutine frames).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import itertools
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgspec
from _common import CALL_ID, HOST, LEG_BODY, PROJECT, TOKEN

CONCURRENCY = 100
STATUS_URL = "http://127.0.0.1:9/signalwire/events"

#: The session's pieces, each including the ones before it (see ``session_part``).
PARTS = ("control_id", "build", "register", "encode", "admission", "leg_decode", "deliver")
#: The bare loop's pieces (independent).
BARE_PARTS = ("bare_body", "bare_decode")


def _session(port: int) -> Any:
    from signalwire_calls import CallSession

    return CallSession(
        space=f"http://{HOST}:{port}",
        project=PROJECT,
        token=TOKEN,
        serve_receiver=False,
        public_url="http://127.0.0.1:9",
    )


def finished_event(call_id: str, control_id: str) -> Any:
    """The ``finished`` webhook of a play, as the receiver would decode it."""
    from signalwire_calls.events import PlayEvent, PlayParams

    return PlayEvent(params=PlayParams(call_id=call_id, control_id=control_id, state="finished"))


def _settle_heap() -> None:
    """Collect, then move what start-up built (imports, the session) out of the
    collector's sight: otherwise whether a full collection over it falls inside the
    measured commands depends on the run, and moves the count by 3 % or more."""
    gc.collect()
    gc.freeze()


async def session_client(port: int, total: int, concurrency: int = CONCURRENCY) -> None:
    from signalwire_calls import silence

    async with _session(port) as session:
        calls = [session.call(f"call-{w}") for w in range(concurrency)]
        media = silence(1)
        deliver = session.deliver
        _settle_heap()
        n = 0

        async def worker(w: int) -> None:
            nonlocal n
            call = calls[w]
            while n < total:
                n += 1
                handle = await call.play(media)
                deliver(finished_event(call.id, handle.control_id))  # its webhook

        await asyncio.gather(*(worker(w) for w in range(concurrency)))


async def transport_client(port: int, total: int, concurrency: int = CONCURRENCY) -> None:
    """The session's transport alone: ``Transport.post`` of a ready body (FIFO admission,
    the aiohttp request, the leg decode), without ``Call``, the core or the handle."""
    from signalwire_calls import silence
    from signalwire_calls._codec import encode_command
    from signalwire_calls.commands import Play

    async with _session(port) as session:
        post = session._transport.post
        _settle_heap()
        body = encode_command(Play(control_id="t", play=[silence(1)], status_url=STATUS_URL), "c")
        n = 0

        async def worker(w: int) -> None:
            nonlocal n
            while n < total:
                n += 1
                await post(body, "calling.play", has_control_id=True)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))


class _Leg(msgspec.Struct):
    """What the bare loop reads of a call leg."""

    id: str
    status: str | None = None
    type: str | None = None


def bare_body(encoder: msgspec.json.Encoder, call_id: str, control_id: str) -> bytes:
    """The bare loop's command body: a dict literal, encoded."""
    return encoder.encode(
        {
            "command": "calling.play",
            "id": call_id,
            "params": {
                "control_id": control_id,
                "play": [{"type": "silence", "params": {"duration": 1}}],
                "status_url": STATUS_URL,
            },
        }
    )


async def bare_client(port: int, total: int, concurrency: int = CONCURRENCY) -> None:
    import aiohttp

    from signalwire_calls._settings import HTTPSettings
    from signalwire_calls._transport import _user_agent

    s = HTTPSettings()
    auth = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode("ascii")
    headers = {
        "Authorization": f"Basic {auth}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": _user_agent(),
    }
    decoder, encoder, ids = msgspec.json.Decoder(_Leg), msgspec.json.Encoder(), itertools.count(1)
    url = f"http://{HOST}:{port}/api/calling/calls"
    connector = aiohttp.TCPConnector(
        limit=s.limit,
        limit_per_host=0,
        keepalive_timeout=s.keepalive_timeout,
        ttl_dns_cache=s.dns_cache_ttl,
    )
    n = 0
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        _settle_heap()

        async def worker(w: int) -> Any:
            nonlocal n
            call_id = f"call-{w}"
            while n < total:
                n += 1
                body = bare_body(encoder, call_id, f"bare-{next(ids)}")
                async with http.post(url, data=body) as resp:
                    data = await resp.read()
                decoder.decode(data)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))


async def session_part(part: str, count: int) -> None:
    """``count`` times the session's pieces of a command up to ``part`` (in ``PARTS``
    order), without the network: what ``Call.play`` and the core do around the request.
    The handle is settled (``Core.settle``) in every part before ``deliver``, which
    settles it by its ``finished`` event instead."""
    from signalwire_calls import PlayResult, silence
    from signalwire_calls._codec import decode_leg, encode_command
    from signalwire_calls.commands import Play
    from signalwire_calls.handles import PlayHandle

    upto = PARTS.index(part)
    async with _session(9) as session:
        core = session._core
        call = session.call(CALL_ID)
        transport = session._transport
        limiter = transport._limiter
        medias = (silence(1),)
        done = PlayResult()
        kind = PlayHandle.kind
        for _ in range(count):
            control_id = core.new_control_id()
            if upto < 1:
                continue
            # as Call.play(media) builds it
            cmd = Play(control_id=control_id, play=list(medias), status_url=core.status_url)
            if upto < 2:
                continue
            handle = core.register(call, kind, cmd)
            if upto >= 3:
                encode_command(cmd, call.id)
            if upto >= 4 and limiter.try_acquire():
                limiter.release()
            if upto >= 5:
                decode_leg(LEG_BODY)
            if upto >= 6:
                session.deliver(finished_event(call.id, handle.control_id))
            else:
                core.settle(handle, done)


def bare_part(part: str, count: int) -> None:
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_Leg)
    ids = itertools.count(1)
    for _ in range(count):
        if part == "bare_body":
            bare_body(encoder, CALL_ID, f"bare-{next(ids)}")
        else:
            decoder.decode(LEG_BODY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--impl", choices=["session", "transport", "bare"])
    what.add_argument("--part", choices=[*PARTS, *BARE_PARTS])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args()
    if args.part in BARE_PARTS:
        bare_part(args.part, args.count)
        return
    if args.part is not None:
        asyncio.run(session_part(args.part, args.count))
        return
    client = {"session": session_client, "transport": transport_client, "bare": bare_client}
    asyncio.run(client[args.impl](args.port, args.count, args.concurrency))


if __name__ == "__main__":
    main()
