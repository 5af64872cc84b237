"""Inbound calls: the platform's SWML request -> our receiver -> the ``on_inbound`` handler
starting, against a bare aiohttp handler doing the same work. Same-run ratios.

    python benchmarks/inbound_bench.py               # 5 repetitions of 20,000 calls, + callgrind
    python benchmarks/inbound_bench.py --quick       # 3 repetitions of 5,000 calls
    python benchmarks/inbound_bench.py --quick --json

Both servers run in their own process (127.0.0.1, one idle while the other is loaded):

* ours: ``CallSession`` with a signing key and an ``on_inbound`` handler (defaults: the
  standalone receiver, ``answer`` then ``sleep: -1``, ``max_concurrent=100``); the
  handler records when it starts and keeps the call (``request.keep_call()``), so no
  hang-up command is sent;
* bare: an aiohttp ``web.Application`` handler that checks the HMAC-SHA256 signature of
  ``url + body`` (the same scheme), decodes the body with msgspec into a struct of the
  same fields, starts an asyncio task for the handler (which records its start) and
  answers the same SWML bytes.

The load generator (another process) POSTs the request the simulator's
``place_inbound`` builds, signed with both headers as the platform signs it, over 32
keep-alive connections (raw HTTP/1.1: an aiohttp client costs the sending side about
five times the CPU, which on 2 cores would make the load generator the bottleneck;
``--client aiohttp`` uses one with a pooled connector instead). Figures per repetition,
the two servers alternating, medians reported:

* calls/s from webhook to handler start: calls / (last handler start - first send);
* webhook-to-handler-start latency (p50, p99) of those calls under that load;
* the server's CPU time per call (``/proc``), read around the load.

Under callgrind (full run, or ``--instructions``) each server also counts instructions
per inbound call at two call counts (start-up cancels out), the load generator running
outside valgrind: a ratio the machine's load does not move.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hmac
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgspec
from _common import (
    HOST,
    PROJECT,
    SIGNING_KEY,
    TOKEN,
    Child,
    emit,
    percentile,
    proc_cpu,
    raw_connect,
    raw_post,
    ready,
    rss_bytes,
    run_loop,
)

INBOUND_PATH = "/signalwire/inbound"
CALLER = "+15559870000"
CALLED = "+15551230001"
NODE_ID = "fa3570ae-f8bd-42c2-83f4-9950d906c91b@us-west"
SPACE_ID = "62615f44-2a34-4235-b38b-76b5a1de6ef8"

PROFILES: dict[str, dict[str, Any]] = {
    "full": {"calls": 20_000, "warmup": 2_000, "reps": 5, "instr_counts": (300, 1300)},
    "quick": {"calls": 5_000, "warmup": 1_000, "reps": 3, "instr_counts": None},
    # only keeps the script from rotting (tests/test_benchmarks_smoke.py): no figures
    "smoke": {"calls": 200, "warmup": 20, "reps": 1, "instr_counts": None},
}
CONCURRENCY = 32
#: Under callgrind: a fixed hash seed, so that dict and set layouts repeat run to run.
CALLGRIND_ENV = {"PYTHONHASHSEED": "0"}


def call_id(index: int) -> str:
    return f"c0ffee00-0000-4000-8000-{index:012d}"


def request_body(index: int) -> bytes:
    """The platform's SWML request for inbound call ``index``, as the simulator builds it."""
    from signalwire_calls.testing._inbound import inbound_request_body

    cid = call_id(index)
    return inbound_request_body(
        call_id=cid,
        node_id=NODE_ID,
        segment_id=cid,
        from_=CALLER,
        to=CALLED,
        project_id=PROJECT,
        space_id=SPACE_ID,
    )


# --------------------------------------------------------------------------- servers


def ended_event(cid: str) -> Any:
    """The ``calling.call.state`` ``ended`` webhook of call ``cid``, decoded."""
    from signalwire_calls.events import CallStateEvent, CallStateParams

    return CallStateEvent(params=CallStateParams(call_id=cid, call_state="ended"))


class _BareCall(msgspec.Struct, kw_only=True):
    """The bare handler's view of the request's ``call``: the same fields as ours."""

    call_id: str | None = None
    node_id: str | None = None
    segment_id: str | None = None
    call_state: str | None = None
    direction: str | None = None
    type: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    headers: Any = None
    project_id: str | None = None
    space_id: str | None = None


class _BareRequest(msgspec.Struct, kw_only=True):
    call: _BareCall
    vars: dict[str, Any] = msgspec.field(default_factory=dict)
    envs: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


async def _serve_ours(starts: dict[str, int]) -> tuple[str, Any]:
    from signalwire_calls import Call, CallSession, InboundRequest

    session = CallSession(
        space="http://127.0.0.1:9",  # never contacted: the handler keeps its call
        project=PROJECT,
        token=TOKEN,
        signing_key=SIGNING_KEY,
        receiver_host=HOST,
    )

    @session.on_inbound
    async def bot(call: Call, request: InboundRequest) -> None:
        starts[request.call_id] = time.time_ns()
        request.keep_call()

    await session.open()
    return session.inbound_url, session


async def _serve_bare(starts: dict[str, int]) -> tuple[str, Any]:
    from aiohttp import web

    from signalwire_calls._signing import SHA256_HEADER
    from signalwire_calls.inbound import DEFAULT_SWML

    key = SIGNING_KEY.encode()
    decode = msgspec.json.Decoder(_BareRequest).decode
    reply = msgspec.json.encode(DEFAULT_SWML)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def bot(request: _BareRequest) -> None:
        starts[request.call.call_id or ""] = time.time_ns()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        expected = hmac.new(key, url.encode() + body, sha256).hexdigest()
        given = request.headers.get(SHA256_HEADER, "")
        if not hmac.compare_digest(expected, given):
            return web.Response(status=403)
        try:
            inbound = decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return web.Response(status=400)
        task = loop.create_task(bot(inbound))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(body=reply, content_type="application/json")

    app = web.Application()
    app.router.add_post(INBOUND_PATH, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    port = runner.addresses[0][1]
    return f"http://{HOST}:{port}{INBOUND_PATH}", runner


async def server(args: argparse.Namespace) -> None:
    from aiohttp import web

    starts: dict[str, int] = {}
    collected = {"n": 0}
    url, owner = await (_serve_ours if args.impl == "ours" else _serve_bare)(starts)

    async def collect(request: web.Request) -> web.Response:
        taken = dict(starts)
        starts.clear()
        collected["n"] += len(taken)
        stats = None
        if args.impl == "ours":
            # the calls end as their ended webhook would end them (outside the measured
            # load): a kept call stays in the session until it ends, and a real call ends
            for cid in taken:
                owner.deliver(ended_event(cid))
            s = owner.stats()
            stats = {
                "inbound": msgspec.to_builtins(s.inbound),
                "live_calls": len(owner._core.calls),
            }
        return web.json_response({"starts": taken, "stats": stats, "rss": rss_bytes()})

    app = web.Application()
    app.router.add_get("/collect", collect)
    control = web.AppRunner(app, access_log=None)
    await control.setup()
    await web.TCPSite(control, HOST, 0).start()
    ready(
        {
            "url": url,
            "port": int(url.split(":")[2].split("/")[0]),
            "control": f"http://{HOST}:{control.addresses[0][1]}",
            "pid": os.getpid(),
        }
    )
    try:
        if args.exit_after:  # for instruction counts: a normal exit once N handlers started
            deadline = time.monotonic() + args.lifetime
            while len(starts) + collected["n"] < args.exit_after:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(args.lifetime)
    finally:
        await control.cleanup()
        if args.impl == "ours":
            await owner.aclose()
        else:
            await owner.cleanup()


# --------------------------------------------------------------------------- load


def _requests(port: int, start: int, count: int) -> list[tuple[bytes, dict[str, str]]]:
    from signalwire_calls._signing import sign

    url = f"http://{HOST}:{port}{INBOUND_PATH}"
    out = []
    for i in range(start, start + count):
        body = request_body(i)
        out.append((body, sign(SIGNING_KEY, url, body)))  # both headers, as the platform
    return out


async def load(args: argparse.Namespace) -> dict[str, Any]:
    """POST ``count`` signed SWML requests over ``concurrency`` keep-alive connections."""
    prepared = _requests(args.port, args.start, args.count)
    send_ns = [0] * args.count
    statuses: dict[int, int] = {}
    next_index = itertools.count()
    deadline = time.perf_counter() + args.max_seconds
    time_ns = time.time_ns

    if args.client == "aiohttp":
        import aiohttp

        url = f"http://{HOST}:{args.port}{INBOUND_PATH}"
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        http = aiohttp.ClientSession(connector=connector)

        async def post(w: int, i: int) -> int:
            body, headers = prepared[i]
            async with http.post(
                url, data=body, headers={"Content-Type": "application/json", **headers}
            ) as resp:
                await resp.read()
                return resp.status
    else:
        raws = [raw_post(args.port, INBOUND_PATH, body, headers) for body, headers in prepared]
        conns = [await raw_connect(args.port) for _ in range(args.concurrency)]

        async def post(w: int, i: int) -> int:
            return await conns[w].request(raws[i])

    async def worker(w: int) -> None:
        while time.perf_counter() < deadline:
            i = next(next_index)
            if i >= args.count:
                return
            send_ns[i] = time_ns()
            status = await post(w, i)
            statuses[status] = statuses.get(status, 0) + 1

    srv0, cpu0 = proc_cpu(args.server_pid), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.05)  # the last handlers start (the server is otherwise idle)
    srv1, cpu1 = proc_cpu(args.server_pid), time.process_time()
    if args.client == "aiohttp":
        await http.close()
    else:
        for c in conns:
            assert c.transport is not None
            c.transport.close()
    sent = sum(statuses.values())
    return {
        "sent": sent,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed_s": elapsed,
        "loadgen_cpu_us_per_call": (cpu1 - cpu0) / sent * 1e6 if sent else None,
        "server_cpu_s": srv1 - srv0 if srv0 is not None and srv1 is not None else None,
        "send_ns": send_ns,
    }


# --------------------------------------------------------------------------- runner

_children: list[Child] = []


def _spawn(
    args: list[str], env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> Child:
    child = Child("inbound_bench.py", args, env=env, prefix=prefix or ())
    _children.append(child)
    return child


def _release(child: Child) -> None:
    child.kill()
    if child in _children:
        _children.remove(child)


def _log(msg: str) -> None:
    print(f"[inbound-bench] {msg}", file=sys.stderr, flush=True)


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


class _Server:
    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.child = _spawn(["server", "--impl", impl, "--lifetime", "900"])
        self.next_index = 0

    def ready(self) -> None:
        self.info = self.child.wait_ready(60)

    def run(self, count: int, client: str, timeout: float = 120.0) -> dict[str, Any]:
        start, self.next_index = self.next_index, self.next_index + count
        args = ["load", "--port", str(self.info["port"]), "--start", str(start)]
        args += ["--count", str(count), "--concurrency", str(CONCURRENCY)]
        args += ["--server-pid", str(self.child.pid), "--client", client]
        args += ["--max-seconds", str(timeout / 2)]
        worker = _spawn(args)
        try:
            r = worker.result(timeout)
        finally:
            _release(worker)
        with urllib.request.urlopen(f"{self.info['control']}/collect", timeout=30) as resp:
            col = json.loads(resp.read())
        send = r.pop("send_ns")
        starts = col["starts"]
        lat: list[float] = []
        last = 0
        for i, sent_at in enumerate(send):
            began = starts.get(call_id(start + i))
            if began is not None and sent_at:
                lat.append((began - sent_at) / 1000)
                last = max(last, began)
        first = min((s for s in send if s), default=0)
        span = (last - first) / 1e9 if last and first else 0.0
        handled = len(lat)
        cpu = r["server_cpu_s"]
        r.update(
            {
                "handled": handled,
                "calls_per_s": handled / span if span > 0 else None,
                "server_cpu_us_per_call": cpu / handled * 1e6
                if cpu is not None and handled
                else None,
                "p50_us": percentile(lat, 50),
                "p99_us": percentile(lat, 99),
                "server_stats": col["stats"],
                "rss": col["rss"],
            }
        )
        return r


def _agg(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("calls_per_s", "server_cpu_us_per_call", "p50_us", "p99_us", "loadgen_cpu_us_per_call")
    return {k: _stats([r.get(k) for r in runs]) for k in keys}


def _ratio(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    """Per-repetition ratios a/b (the pair ran back to back), summarized."""
    return _stats(
        [x[key] / y[key] if x.get(key) and y.get(key) else None for x, y in zip(a, b, strict=True)]
    )


def bench_inbound(
    p: dict[str, Any], client: str = "raw", instructions: bool | None = None
) -> dict[str, Any]:
    """Ours against bare: throughput, latency and server CPU per call, interleaved; with
    ``instructions`` (default: the profile's ``instr_counts``) callgrind counts too."""
    servers = {impl: _Server(impl) for impl in ("bare", "ours")}
    out: dict[str, Any] = {"client": client, "concurrency": CONCURRENCY, "calls": p["calls"]}
    try:
        for s in servers.values():
            s.ready()
        for s in servers.values():  # warm-up: imports, first connections, allocator
            s.run(p["warmup"], client)
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "ours": []}
        order = ["bare", "ours"]
        for rep in range(p["reps"]):
            for impl in order if rep % 2 == 0 else order[::-1]:
                r = servers[impl].run(p["calls"], client)
                runs[impl].append(r)
                _log(
                    f"rep {rep} {impl}: {r['calls_per_s'] or 0:,.0f} calls/s, server "
                    f"{r['server_cpu_us_per_call'] or 0:.0f} us/call, "
                    f"p99 {r['p99_us'] or 0:,.0f} us, "
                    f"statuses {r['statuses']}"
                )
        for impl, rs in runs.items():
            out[impl] = _agg(rs)
            out[impl]["statuses"] = [r["statuses"] for r in rs]
            out[impl]["handled"] = [r["handled"] for r in rs]
        out["ours"]["server_stats"] = runs["ours"][-1]["server_stats"]
        out["ratio"] = _ratio(runs["ours"], runs["bare"], "calls_per_s")
        out["cpu_ratio"] = _ratio(runs["bare"], runs["ours"], "server_cpu_us_per_call")
    finally:
        for s in servers.values():
            _release(s.child)
    counts = p.get("instr_counts")
    if instructions is None:
        instructions = counts is not None
    if instructions:
        out["instructions"] = bench_instructions(counts or (300, 1300))
    return out


def _callgrind_server(impl: str, count: int, timeout: float) -> int | None:
    """Instructions of a server process that exits once ``count`` handlers started."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    args = ["server", "--impl", impl, "--exit-after", str(count), "--lifetime", str(timeout)]
    child = _spawn(args, env=CALLGRIND_ENV, prefix=cmd)
    try:
        info = child.wait_ready(timeout)
        load_args = ["load", "--port", str(info["port"]), "--start", "0", "--count", str(count)]
        load_args += ["--concurrency", "8", "--max-seconds", str(timeout)]
        worker = _spawn(load_args)
        try:
            worker.result(timeout)
        finally:
            _release(worker)
        _, err = child.proc.communicate(timeout=timeout)
    except (RuntimeError, subprocess.TimeoutExpired):
        return None
    finally:
        _release(child)
    match = re.search(r"Collected : (\d+)", err)
    return int(match.group(1)) if match and child.proc.returncode == 0 else None


def bench_instructions(counts: tuple[int, int], timeout: float = 600.0) -> dict[str, Any]:
    """Instructions per inbound call in the receiving process (callgrind), ours and bare."""
    if shutil.which("valgrind") is None:
        return {"available": False, "reason": "valgrind not installed"}
    low, high = counts
    out: dict[str, Any] = {"available": True, "counts": [low, high]}
    with ThreadPoolExecutor(max_workers=2) as pool:  # 2 cores: counts do not depend on load
        jobs = {
            (impl, n): pool.submit(_callgrind_server, impl, n, timeout)
            for impl in ("ours", "bare")
            for n in (low, high)
        }
        for impl in ("ours", "bare"):
            a, b = jobs[impl, low].result(), jobs[impl, high].result()
            out[impl] = (b - a) / (high - low) if a is not None and b is not None else None
            _log(f"instructions per inbound call, {impl}: {out[impl]}")
    ours, bare = out["ours"], out["bare"]
    out["ratio"] = ours / bare if ours and bare else None  # ours/bare: <= 1/0.9 is the target
    return out


def _n(v: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def table(res: dict[str, Any]) -> str:
    lines = [
        f"inbound calls, webhook -> handler start ({res['calls']:,} calls per repetition, "
        f"{res['concurrency']} connections, {res['client']} client)",
        "server   calls/s (min-max)            server cpu us/call   p50 us   p99 us",
    ]
    for impl in ("ours", "bare"):
        d = res[impl]
        lines.append(
            f"{impl:<8} {_n(d['calls_per_s']['median']):>7} ({_n(d['calls_per_s']['min'])}-"
            f"{_n(d['calls_per_s']['max'])})".ljust(40)
            + f"{_n(d['server_cpu_us_per_call']['median'], '{:.1f}'):>10}   "
            f"{_n(d['p50_us']['median']):>6}   {_n(d['p99_us']['median']):>6}"
        )
    r, c = res["ratio"], res["cpu_ratio"]
    lines.append(
        f"ours/bare calls/s: {_n(r['median'], '{:.2f}')} (per repetition "
        f"{_n(r['min'], '{:.2f}')}-{_n(r['max'], '{:.2f}')}); bare/ours server CPU per call: "
        f"{_n(c['median'], '{:.2f}')} ({_n(c['min'], '{:.2f}')}-{_n(c['max'], '{:.2f}')}); "
        "target >= 0.9 for both"
    )
    instr = res.get("instructions")
    if instr and instr.get("available"):
        lines.append(
            f"instructions per inbound call (callgrind, receiving process): ours "
            f"{_n(instr['ours'])}, bare {_n(instr['bare'])}; ours/bare "
            f"{_n(instr['ratio'], '{:.3f}')}"
        )
    elif instr:
        lines.append(f"instructions: not counted ({instr.get('reason')})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what")
    srv = sub.add_parser("server")
    srv.add_argument("--impl", choices=["ours", "bare"], required=True)
    srv.add_argument("--lifetime", type=float, default=900.0)
    srv.add_argument("--exit-after", type=int, default=0, help="exit once N handlers started")
    srv.add_argument("--loop", default="asyncio")
    ld = sub.add_parser("load")
    ld.add_argument("--port", type=int, required=True)
    ld.add_argument("--start", type=int, default=0)
    ld.add_argument("--count", type=int, required=True)
    ld.add_argument("--concurrency", type=int, default=CONCURRENCY)
    ld.add_argument("--server-pid", type=int, default=0)
    ld.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    ld.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="reduced run")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    parser.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count instructions under callgrind (default: in the full run only)",
    )
    args = parser.parse_args(argv)
    if args.what == "server":
        run_loop(lambda: server(args), args.loop)
        return 0
    if args.what == "load":
        emit(asyncio.run(load(args)))
        return 0
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    atexit.register(lambda: [_release(c) for c in list(_children)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    res = bench_inbound(PROFILES[profile], args.client, args.instructions)
    print(table(res))
    print(f"\n({profile} run, {time.monotonic() - t0:.0f} s, load average {os.getloadavg()})")
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
