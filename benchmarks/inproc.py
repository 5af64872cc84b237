"""In-process benchmarks, each in a fresh process: memory of pending handles, RSS of
live calls, codec ns/op.

    python benchmarks/inproc.py memory --handles 100000 [--rss]
    python benchmarks/inproc.py growth --handles 20000 --cycles 8
    python benchmarks/inproc.py livecalls --calls 10000
    python benchmarks/inproc.py codec --seconds 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PROJECT, TOKEN, emit, rss_bytes

CALLS_PER_SESSION_SPREAD = 100  # handles per call in the memory runs


async def _session() -> Any:
    from signalwire_calls import CallSession

    session = CallSession(
        space="http://127.0.0.1:9",
        project=PROJECT,
        token=TOKEN,
        serve_receiver=False,
        public_url="http://127.0.0.1:9",
    )
    await session.open()
    return session


def _pending(session: Any, calls: list[Any], n: int) -> list[Any]:
    """n pending play handles, each with the future one ``finished()`` waiter adds.

    ``Core.register`` indexes each handle exactly as ``call.play()`` does before it
    POSTs: 100,000 handles without 100,000 HTTP requests (the memory measured is the
    handle's and the core's indexes, not the HTTP client's)."""
    from signalwire_calls import silence
    from signalwire_calls.commands import Play
    from signalwire_calls.handles import PlayHandle

    loop = asyncio.get_running_loop()
    core = session._core
    handles = []
    ncalls = len(calls)
    media = [silence(1)]
    for i in range(n):
        cmd = Play(control_id=core.new_control_id(), play=media)
        handle = core.register(calls[i % ncalls], PlayHandle.kind, cmd)
        handle._waiter = loop.create_future()  # what one `await handle.finished()` adds
        handles.append(handle)
    return handles


def _settle(session: Any, handles: list[Any]) -> None:
    from signalwire_calls.events import PlayEvent, PlayParams

    for h in handles:
        session.deliver(
            PlayEvent(
                params=PlayParams(call_id=h.call.id, control_id=h.control_id, state="finished")
            )
        )


class _Bare:
    """The reference object of the issue: a future, a control_id and a call_id."""

    __slots__ = ("call_id", "control_id", "future")

    def __init__(self, future: Any, control_id: str, call_id: str) -> None:
        self.future = future
        self.control_id = control_id
        self.call_id = call_id


async def memory(args: argparse.Namespace) -> dict[str, Any]:
    n = args.handles
    session = await _session()
    calls = [session.call(f"call-{j}") for j in range(max(1, n // CALLS_PER_SESSION_SPREAD))]
    gc.collect()
    if args.rss:
        before = rss_bytes() or 0
        handles = _pending(session, calls, n)
        gc.collect()
        per = ((rss_bytes() or 0) - before) / n
        result: dict[str, Any] = {"handles": n, "rss_bytes_per_handle": per}
    else:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        handles = _pending(session, calls, n)
        gc.collect()
        per = (tracemalloc.get_traced_memory()[0] - base) / n
        # the reference: a bare object holding a future, a control_id, a call_id, in a dict
        loop = asyncio.get_running_loop()
        base2 = tracemalloc.get_traced_memory()[0]
        bare = {}
        for i in range(n):
            cid = session._core.new_control_id()
            bare[cid] = _Bare(loop.create_future(), cid, calls[i % len(calls)].id)
        gc.collect()
        bare_per = (tracemalloc.get_traced_memory()[0] - base2) / n
        del bare
        tracemalloc.stop()
        result = {"handles": n, "bytes_per_handle": per, "bare_bytes_per_handle": bare_per}
    for h in handles:
        h._waiter.cancel()
    await session.aclose()
    return result


async def growth(args: argparse.Namespace) -> dict[str, Any]:
    """Create and settle ``handles`` pending handles ``cycles`` times; memory after each
    settle. The registry remembers between 50,000 and 100,000 recently settled keys (to
    drop late duplicates), so memory rises until that bound and then saws under it:
    growth is the peak over the second half of the cycles minus the peak over the first
    (with enough cycles that the first half already passes 100,000 keys)."""
    session = await _session()
    calls = [session.call(f"call-{j}") for j in range(max(1, args.handles // 100))]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    after: list[int] = []
    peak_pending = 0
    for _ in range(args.cycles):
        handles = _pending(session, calls, args.handles)
        peak_pending = max(peak_pending, session.stats().registry.pending_operations)
        _settle(session, handles)
        del handles
        gc.collect()
        after.append(tracemalloc.get_traced_memory()[0] - base)
    tracemalloc.stop()
    half = len(after) // 2
    left = session.stats().registry.pending_operations
    await session.aclose()
    return {
        "handles_per_cycle": args.handles,
        "cycles": args.cycles,
        "retained_bytes_after_each_cycle": after,
        "growth_bytes": max(after[half:]) - max(after[:half]) if half else None,
        "pending_left": left,
        "peak_pending": peak_pending,
    }


async def livecalls(args: argparse.Namespace) -> dict[str, Any]:
    """RSS of a process holding N live calls, each with a pending play."""
    gc.collect()
    start = rss_bytes() or 0
    session = await _session()
    calls = [session.call(f"call-{j}") for j in range(args.calls)]
    handles = _pending(session, calls, args.calls)
    gc.collect()
    end = rss_bytes() or 0
    for h in handles:
        h._waiter.cancel()
    await session.aclose()
    return {"calls": args.calls, "rss_bytes": end, "rss_delta_bytes": end - start}


# --------------------------------------------------------------------------- codec


def _time_ns(fn: Callable[[], Any], seconds: float, reps: int) -> dict[str, float]:
    """ns per call: median, min, max of ``reps`` timed batches."""
    n = 1
    while True:  # calibrate a batch to ~seconds/reps
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t > seconds / reps / 4 or n > 1_000_000:
            break
        n *= 4
    per: list[float] = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        per.append((time.perf_counter_ns() - t) / n)
    per.sort()
    return {"median": per[len(per) // 2], "min": per[0], "max": per[-1]}


def codec(args: argparse.Namespace) -> dict[str, Any]:
    from signalwire_calls import Digits, RecordAudio, silence, tts
    from signalwire_calls import commands as c
    from signalwire_calls._codec import decode_event, encode_command

    url = "https://hooks.example.com/signalwire/events"
    call_id = "c0ffee00-0000-4000-8000-000000000001"
    cmds: dict[str, Any] = {
        "dial": c.Dial(
            from_="+15559870000",
            to="+15551230001",
            url="https://example.com/swml",
            status_url=url,
            status_events=["created", "ringing", "answered", "ended"],
        ),
        "play": c.Play(
            control_id="ab12-1", play=[tts("Press 1 for sales"), silence(1)], status_url=url
        ),
        "collect": c.Collect(
            control_id="ab12-2",
            digits=Digits(max=1, terminators="#"),
            initial_timeout=5,
            status_url=url,
        ),
        "record": c.Record(
            control_id="ab12-3", record=c.RecordOptions(audio=RecordAudio()), status_url=url
        ),
        "play.stop": c.PlayStop(control_id="ab12-1"),
        "end": c.End(reason="hangup"),
    }
    base = {"call_id": call_id, "node_id": "node-1", "control_id": "ab12-1"}
    env = {"timestamp": 1735689600.123, "project_id": PROJECT, "space_id": "space"}
    events = {
        "call.state": {
            "event_type": "calling.call.state",
            **env,
            "params": {
                "call_id": call_id,
                "node_id": "node-1",
                "call_state": "answered",
                "direction": "outbound",
                "device": {
                    "type": "phone",
                    "params": {"from_number": "+1555", "to_number": "+1556"},
                },
            },
        },
        "play": {"event_type": "calling.call.play", **env, "params": {**base, "state": "finished"}},
        "collect": {
            "event_type": "calling.call.collect",
            **env,
            "params": {
                **base,
                "result": {"type": "digit", "params": {"digits": "1", "terminator": "#"}},
            },
        },
        "record": {
            "event_type": "calling.call.record",
            **env,
            "params": {
                **base,
                "state": "finished",
                "url": "https://files.example.com/rec.mp3",
                "duration": 4,
                "size": 1234,
                "record": {"audio": {"format": "mp3"}},
            },
        },
    }
    out: dict[str, Any] = {"encode": {}, "decode": {}}
    for name, cmd in cmds.items():
        cid = None if cmd.id_location != "top" else call_id
        wire = json.loads(encode_command(cmd, cid))
        ours = _time_ns(lambda cmd=cmd, cid=cid: encode_command(cmd, cid), args.seconds, args.reps)
        std = _time_ns(lambda wire=wire: json.dumps(wire).encode(), args.seconds, args.reps)
        out["encode"][name] = {"ns": ours, "json_ns": std, "ratio": std["median"] / ours["median"]}
    for name, doc in events.items():
        body = json.dumps(doc).encode()
        decode_event(body)
        ours = _time_ns(lambda body=body: decode_event(body), args.seconds, args.reps)
        std = _time_ns(lambda body=body: json.loads(body), args.seconds, args.reps)
        out["decode"][name] = {"ns": ours, "json_ns": std, "ratio": std["median"] / ours["median"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--handles", type=int, default=100_000)
    m.add_argument("--rss", action="store_true")
    g = sub.add_parser("growth")
    g.add_argument("--handles", type=int, default=20_000)
    g.add_argument("--cycles", type=int, default=8)
    lc = sub.add_parser("livecalls")
    lc.add_argument("--calls", type=int, default=10_000)
    cd = sub.add_parser("codec")
    cd.add_argument("--seconds", type=float, default=0.2)
    cd.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if args.what == "codec":
        emit(codec(args))
        return
    fn = {"memory": memory, "growth": growth, "livecalls": livecalls}[args.what]
    emit(asyncio.run(fn(args)))


if __name__ == "__main__":
    main()
