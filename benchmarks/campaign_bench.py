"""Campaign benchmarks: client CPU per call against a hand-written loop, journal
throughput, memory per live call, pacing accuracy. Same-run ratios, no absolute targets
asserted.

    python benchmarks/campaign_bench.py            # 10,000 targets at concurrency 1,000
    python benchmarks/campaign_bench.py --quick    # reduced, well under a minute
    python benchmarks/campaign_bench.py --json     # one JSON line at the end
    python benchmarks/campaign_bench.py --distributed [--quick]   # Redis, 1-3 workers

The simulator runs in its own process (``signalwire-calls simulator``, time scale 0.01);
each client variant runs in a fresh worker process whose CPU time is measured around
the calls only. The hand loop is what a user writes without ``Campaign``: an
``asyncio.Semaphore`` for the concurrency, then ``dial``, ``answered``, ``play``,
``finished``, ``end`` per call; ``hand_ended`` also waits for the end event before
freeing its semaphore slot, as the campaign does (a call is live until it has ended),
so it never has more live calls than its concurrency. The campaign runs the same flow
(dial, answered, play, finished; it hangs up itself) with no cps limit, and journals
every attempt to SQLite. Under ``--instructions`` (the default without ``--quick``)
both are also counted under callgrind at concurrency 100, which a shared machine's
load does not move.

``--distributed`` runs one campaign (no cps limit) on a ``redis-server`` of its own with
1, 2 and 3 worker processes, released together, against one simulator process, and
reports calls per second for each, next to the single-process campaign (SQLite
journal) on the same targets; with the CPU share of the simulator and of Redis over
each run, which tells what limits it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import (
    PROJECT,
    READY,
    ROOT,
    SIGNING_KEY,
    TOKEN,
    Child,
    emit,
    proc_cpu,
    python_env,
    rss_bytes,
    spawn_redis,
)

SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}
CALLER = "+15559870000"
SCALE = 0.01

ANSWER = {"*": {"behavior": "answer", "after": 0.5}}
FAIL_FAST = {"*": {"behavior": "fail", "after": 0.1}}


def _log(msg: str) -> None:
    print(f"[campaign-bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workers


def _session(url: str, **options: Any) -> Any:
    from signalwire_calls import CallSession, HTTPSettings, RetryPolicy

    options.setdefault("http", HTTPSettings(limit=1000, timeout=30))
    return CallSession(
        space=url,
        project=PROJECT,
        token=TOKEN,
        signing_key=SIGNING_KEY,
        call_end_grace=0.5,
        retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.1),
        **options,
    )


def _targets(n: int) -> list[Any]:
    from signalwire_calls.campaign import Target

    return [Target(f"+1555{i:07d}", {"i": i}) for i in range(n)]


async def _flow(call: Any, target: Any) -> None:
    from signalwire_calls import tts

    play = await call.play(tts("Hello"))
    await play.finished(timeout=30)


async def worker_hand(args: argparse.Namespace) -> dict[str, Any]:
    """The hand-written loop: Semaphore + dial + answered + play + end (``hand_ended``:
    then also wait for the end event inside the semaphore, so that, like the campaign,
    it never has more live calls than its concurrency)."""
    from signalwire_calls import tts

    failures: dict[str, int] = {}
    async with _session(args.url) as session:
        sem = asyncio.Semaphore(args.concurrency)
        targets = _targets(args.targets)

        async def one(number: str) -> None:
            async with sem:
                try:
                    call = await session.dial(to=number, from_=CALLER, swml=SWML)
                    await call.answered(timeout=60)
                    play = await call.play(tts("Hello"))
                    await play.finished(timeout=30)
                    await call.end()
                    if args.worker == "hand_ended":
                        await call.ended(timeout=30)
                except Exception as exc:  # counted: the benchmark reports them
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(t.number) for t in targets))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return {
        "calls": args.targets,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_us_per_call": cpu / args.targets * 1e6,
        "calls_per_s": args.targets / wall,
        "failures": failures,
    }


async def worker_campaign(args: argparse.Namespace) -> dict[str, Any]:
    from signalwire_calls.campaign import Campaign

    with tempfile.TemporaryDirectory() as tmp:
        async with _session(args.url) as session:
            campaign = Campaign(
                session,
                _targets(args.targets),
                _flow,
                from_=CALLER,
                swml=SWML,
                concurrency=args.concurrency,
                cps=None,
                journal=os.path.join(tmp, "bench.db"),
                progress="off",
                handle_signals=False,
            )
            cpu0, t0 = time.process_time(), time.perf_counter()
            report = await campaign.run()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            journal = campaign._journal
    return {
        "calls": args.targets,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_us_per_call": cpu / args.targets * 1e6,
        "calls_per_s": args.targets / wall,
        "outcomes": report.outcomes,
        "journal_writes": journal.writes,
        "journal_commits": journal.commits,
        "journal_writes_per_s": journal.writes / wall,
    }


async def worker_distributed(args: argparse.Namespace) -> dict[str, Any]:
    """One worker of a distributed campaign: ready once its session is open, dials from
    the moment the runner creates the ``--go`` file."""
    from signalwire_calls.campaign import Campaign, RedisBackend

    async with _session(args.url) as session:
        campaign = Campaign(
            session,
            _targets(args.targets),
            _flow,
            from_=CALLER,
            swml=SWML,
            concurrency=args.concurrency,
            cps=None,
            backend=RedisBackend(args.redis, args.name),
            progress="off",
            handle_signals=False,
        )
        print(READY + "{}", flush=True)
        while not os.path.exists(args.go):  # noqa: ASYNC240 - a start barrier, polled
            await asyncio.sleep(0.002)
        cpu0, t0 = time.process_time(), time.time()
        report = await campaign.run()
        cpu, t1 = time.process_time() - cpu0, time.time()
    return {
        "start": t0,
        "end": t1,
        "cpu_s": cpu,
        "dials": report.dials,
        "targets": report.targets,
        "outcomes": report.outcomes,
    }


async def worker_memory(args: argparse.Namespace) -> dict[str, Any]:
    """RSS per live call: ``concurrency`` calls held up at once, campaign vs hand loop."""
    import anyio

    from signalwire_calls.campaign import Campaign

    n = args.concurrency
    hold = asyncio.Event()
    async with _session(args.url) as session:
        base = rss_bytes() or 0
        if args.variant == "campaign":

            async def held(call: Any, target: Any) -> None:
                await hold.wait()

            with tempfile.TemporaryDirectory() as tmp:
                campaign = Campaign(
                    session,
                    _targets(n),
                    held,
                    from_=CALLER,
                    swml=SWML,
                    concurrency=n,
                    cps=None,
                    journal=os.path.join(tmp, "mem.db"),
                    progress="off",
                    handle_signals=False,
                )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(campaign.run)
                    while sum(1 for c in session.calls if c.state == "answered") < n:
                        await asyncio.sleep(0.01)
                    peak = rss_bytes() or 0
                    hold.set()
        else:
            answered = 0

            async def one(number: str) -> None:
                nonlocal answered
                call = await session.dial(to=number, from_=CALLER, swml=SWML)
                await call.answered(timeout=60)
                answered += 1
                await hold.wait()
                await call.end()

            async with anyio.create_task_group() as tg:
                for t in _targets(n):
                    tg.start_soon(one, t.number)
                while answered < n:
                    await asyncio.sleep(0.01)
                peak = rss_bytes() or 0
                hold.set()
    return {"live_calls": n, "rss_growth": peak - base, "bytes_per_live_call": (peak - base) / n}


async def worker_pacing(args: argparse.Namespace) -> dict[str, Any]:
    from signalwire_calls import TraceRecord
    from signalwire_calls.campaign import Campaign

    dials: list[float] = []

    def trace(record: TraceRecord) -> None:
        if record.kind == "command" and record.name == "dial":
            dials.append(record.at)

    async with _session(args.url, trace=trace) as session:
        campaign = Campaign(
            session,
            _targets(args.targets),
            None,
            from_=CALLER,
            swml=SWML,
            concurrency=args.concurrency,
            cps=args.cps,
            journal=None,
            progress="off",
            handle_signals=False,
        )
        await campaign.run()
    achieved = (len(dials) - 1) / (dials[-1] - dials[0])
    most = start = 0
    for end, t in enumerate(dials):
        while t - dials[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    gaps = sorted(b - a for a, b in itertools.pairwise(dials))
    return {
        "cps": args.cps,
        "dials": len(dials),
        "achieved": achieved,
        "ratio": achieved / args.cps,
        "max_in_1s": most,
        "min_gap_intervals": gaps[0] * args.cps,
    }


def journal_throughput(rows: int) -> dict[str, Any]:
    """Writes per second of the journal alone: an attempt begun, finished, its target set."""
    sys.path.insert(0, ROOT)
    from signalwire_calls._journal import Journal

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            journal = Journal(os.path.join(tmp, "j.db"))
            journal.open()
            t0 = time.perf_counter()
            for i in range(rows):
                key = f"+1555{i:07d}"
                tid = journal.new_target(key, key, '{"i": 1}', 1.0)
                batch = journal.begin_attempt(tid, 1, 1.0, resumed=False)
                if i % 100 == 99:  # a dispatcher awaits each group of dials
                    await batch.wait()
                journal.finish(
                    tid, 1, "completed", state="done", outcome="completed", attempts=1, now=2.0
                )
            journal.close()
            wall = time.perf_counter() - t0
            return {
                "writes": journal.writes,
                "commits": journal.commits,
                "writes_per_s": journal.writes / wall,
            }

    return asyncio.run(main())


# --------------------------------------------------------------------------- runner


def _spawn_simulator(callees: dict[str, Any]) -> tuple[Child, str, str]:
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(callees, fh)
    child = Child.__new__(Child)
    child.cmd = [
        sys.executable,
        "-m",
        "signalwire_calls",
        "simulator",
        "--project",
        PROJECT,
        "--token",
        TOKEN,
        "--signing-key",
        SIGNING_KEY,
        "--time-scale",
        str(SCALE),
        "--cps",
        "0",
        "--callees",
        path,
        "--history-limit",
        "1000",
    ]
    child.proc = subprocess.Popen(
        child.cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=python_env(),
        text=True,
        cwd=ROOT,
    )
    return child, child.wait_ready()["url"], path


def _instructions(url: str, mode: str, concurrency: int, sizes: tuple[int, int]) -> float | None:
    """Client instructions per call under callgrind: two runs of different sizes, so
    that start-up and imports cancel out (wall-clock CPU drifts 20 % on a shared VM)."""
    counts = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cg.out")
            cmd = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                mode,
                "--url",
                url,
                "--targets",
                str(n),
                "--concurrency",
                str(concurrency),
            ]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=python_env(), timeout=1200, check=False
            )
            match = re.search(r"Collected : (\d+)", proc.stderr)
            if match is None:
                _log(f"callgrind gave no count for {mode}: {proc.stderr[-500:]}")
                return None
            counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (sizes[1] - sizes[0])


def _worker(mode: str, extra: list[str], timeout: float) -> dict[str, Any]:
    child = Child("campaign_bench.py", ["--worker", mode, *extra])
    try:
        return child.result(timeout)
    finally:
        child.kill()


def run(quick: bool, instructions: bool) -> dict[str, Any]:
    targets, concurrency = (2000, 200) if quick else (10_000, 1000)
    out: dict[str, Any] = {"targets": targets, "concurrency": concurrency}
    sim, url, path = _spawn_simulator(ANSWER)
    try:
        runs: dict[str, list[dict[str, Any]]] = {"hand": [], "hand_ended": [], "campaign": []}
        for rep in range(1 if quick else 2):
            for mode in runs:
                args = ["--url", url, "--targets", str(targets)]
                args += ["--concurrency", str(concurrency)]
                r = _worker(mode, args, 600)
                runs[mode].append(r)
                _log(
                    f"{mode} #{rep + 1}: {r['cpu_us_per_call']:.0f} us CPU per call, "
                    f"{r['calls_per_s']:.0f} calls/s"
                )
        best = {m: min(r["cpu_us_per_call"] for r in rs) for m, rs in runs.items()}
        out["efficiency"] = {
            "hand_cpu_us_per_call": best["hand"],
            "hand_ended_cpu_us_per_call": best["hand_ended"],
            "campaign_cpu_us_per_call": best["campaign"],
            "campaign_vs_hand": best["hand"] / best["campaign"],
            "campaign_vs_hand_ended": best["hand_ended"] / best["campaign"],
            "runs": runs,
        }
        if instructions and shutil.which("valgrind"):
            hand_i = _instructions(url, "hand", 100, (300, 900))
            camp_i = _instructions(url, "campaign", 100, (300, 900))
            out["efficiency"]["hand_instructions_per_call"] = hand_i
            out["efficiency"]["campaign_instructions_per_call"] = camp_i
            if hand_i and camp_i:
                out["efficiency"]["campaign_vs_hand_instructions"] = hand_i / camp_i
                _log(
                    f"instructions per call: hand {hand_i:,.0f}, campaign {camp_i:,.0f} "
                    f"-> {hand_i / camp_i:.3f}x"
                )
        mem_n = 200 if quick else 1000
        out["memory"] = {
            variant: _worker(
                "memory",
                ["--url", url, "--concurrency", str(mem_n), "--variant", variant],
                300,
            )
            for variant in ("hand", "campaign")
        }
        _log(
            "memory per live call: "
            + ", ".join(
                f"{k} {v['bytes_per_live_call'] / 1024:.1f} KiB" for k, v in out["memory"].items()
            )
        )
    finally:
        sim.kill()
        os.unlink(path)
    out["journal"] = journal_throughput(20_000 if quick else 100_000)
    _log(f"journal: {out['journal']['writes_per_s']:,.0f} writes/s")
    sim, url, path = _spawn_simulator(FAIL_FAST)
    try:
        out["pacing"] = {}
        for cps in (5, 50, 500):
            seconds = 2.0 if quick else 5.0
            n = max(10, int(cps * seconds))
            r = _worker(
                "pacing",
                ["--url", url, "--targets", str(n), "--concurrency", "500", "--cps", str(cps)],
                120,
            )
            out["pacing"][f"cps{cps}"] = r
            _log(
                f"pacing cps={cps}: achieved {r['achieved']:.2f} ({r['ratio']:.3f}x), "
                f"at most {r['max_in_1s']} in any second"
            )
    finally:
        sim.kill()
        os.unlink(path)
    return out


def _cpu_share(pid: int, before: float | None, wall: float) -> float | None:
    after = proc_cpu(pid)
    return None if before is None or after is None or wall <= 0 else (after - before) / wall


def run_distributed(quick: bool) -> dict[str, Any]:
    """Calls per second of one campaign with 1, 2, 3 worker processes on Redis."""
    targets, concurrency = (2000, 200) if quick else (6000, 300)
    out: dict[str, Any] = {"targets": targets, "concurrency_per_worker": concurrency}
    with tempfile.TemporaryDirectory() as tmp:
        redis, redis_url = spawn_redis(tmp, "--distributed")
        sim, url, path = _spawn_simulator(ANSWER)
        try:
            sim0, t0 = proc_cpu(sim.pid), time.perf_counter()
            base = _worker(
                "campaign", ["--url", url, "--targets", str(targets), "--concurrency",
                             str(concurrency)], 900,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            out["single_process"] = {
                "calls_per_s": base["calls_per_s"],
                "client_cpu_us_per_call": base["cpu_us_per_call"],
                "simulator_cpu": _cpu_share(sim.pid, sim0, wall),
            }
            _log(
                f"single process (SQLite journal): {base['calls_per_s']:.0f} calls/s, "
                f"{base['cpu_us_per_call']:.0f} us client CPU per call, simulator "
                f"{100 * (out['single_process']['simulator_cpu'] or 0):.0f}% of a core"
            )
            runs: dict[str, Any] = {}
            for workers in (1, 2, 3):
                go = os.path.join(tmp, f"go-{workers}")
                args = ["--worker", "distributed", "--url", url, "--redis", redis_url,
                        "--name", f"bench-{workers}", "--targets", str(targets),
                        "--concurrency", str(concurrency), "--go", go]  # fmt: skip
                children = [Child("campaign_bench.py", args) for _ in range(workers)]
                try:
                    for child in children:
                        child.wait_ready()
                    sim_cpu, redis_cpu = proc_cpu(sim.pid), proc_cpu(redis.pid)
                    t0 = time.perf_counter()
                    with open(go, "w"):
                        pass
                    results = [child.result(900) for child in children]
                    wall = time.perf_counter() - t0
                finally:
                    for child in children:
                        child.kill()
                span = max(r["end"] for r in results) - min(r["start"] for r in results)
                dials = [r["dials"] for r in results]
                runs[str(workers)] = {
                    "calls_per_s": targets / span,
                    "dials_per_worker": dials,
                    "outcomes": results[0]["outcomes"],
                    "worker_cpu_s": [r["cpu_s"] for r in results],
                    "workers_cpu": sum(r["cpu_s"] for r in results) / span,
                    "client_cpu_us_per_call": sum(r["cpu_s"] for r in results) / targets * 1e6,
                    "load_average": os.getloadavg()[0],
                    "simulator_cpu": _cpu_share(sim.pid, sim_cpu, wall),
                    "redis_cpu": _cpu_share(redis.pid, redis_cpu, wall),
                }
                r = runs[str(workers)]
                _log(
                    f"{workers} worker(s): {r['calls_per_s']:.0f} calls/s, dials {dials}, "
                    f"CPU (share of one core): workers {100 * r['workers_cpu']:.0f}%, "
                    f"simulator {100 * (r['simulator_cpu'] or 0):.0f}%, "
                    f"redis {100 * (r['redis_cpu'] or 0):.0f}%; "
                    f"{r['client_cpu_us_per_call']:.0f} us client CPU per call; "
                    f"load average {r['load_average']:.1f}"
                )
            out["workers"] = runs
            one = runs["1"]["calls_per_s"]
            out["scaling"] = {k: v["calls_per_s"] / one for k, v in runs.items()}
            out["one_worker_vs_single_process"] = one / base["calls_per_s"]
        finally:
            sim.kill()
            os.unlink(path)
            redis.terminate()
            redis.wait(timeout=10)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also count instructions per call under callgrind (default: on without --quick)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="calls/s of one campaign on Redis with 1, 2 and 3 worker processes",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--targets", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--cps", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="campaign", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, ROOT)
        fn = {
            "hand": worker_hand,
            "hand_ended": worker_hand,
            "campaign": worker_campaign,
            "memory": worker_memory,
            "pacing": worker_pacing,
            "distributed": worker_distributed,
        }[args.worker]
        emit(asyncio.run(fn(args)))
        return 0
    if args.distributed:
        dist = run_distributed(args.quick)
        if args.json:
            print(json.dumps(dist))
        else:
            print(
                f"single process (SQLite journal): "
                f"{dist['single_process']['calls_per_s']:.0f} calls/s"
            )
            for k, v in dist["workers"].items():
                print(
                    f"{k} worker(s) on Redis: {v['calls_per_s']:.0f} calls/s "
                    f"({dist['scaling'][k]:.2f}x one worker); CPU (share of one core): "
                    f"workers {100 * v['workers_cpu']:.0f}%, simulator "
                    f"{100 * (v['simulator_cpu'] or 0):.0f}%, "
                    f"redis {100 * (v['redis_cpu'] or 0):.0f}%"
                )
        return 0
    instructions = not args.quick if args.instructions is None else args.instructions
    result = run(args.quick, instructions)
    if args.json:
        print(json.dumps(result))
    else:
        eff = result["efficiency"]
        print(
            f"client CPU per call: hand loop {eff['hand_cpu_us_per_call']:.0f} us, "
            f"campaign {eff['campaign_cpu_us_per_call']:.0f} us "
            f"-> campaign efficiency {eff['campaign_vs_hand']:.2f}x the hand loop's "
            f"({eff['campaign_vs_hand_ended']:.2f}x a hand loop that also waits for the "
            f"end event, {eff['hand_ended_cpu_us_per_call']:.0f} us)"
        )
        if eff.get("campaign_vs_hand_instructions"):
            print(
                f"client instructions per call: hand loop "
                f"{eff['hand_instructions_per_call']:,.0f}, campaign "
                f"{eff['campaign_instructions_per_call']:,.0f} "
                f"-> {eff['campaign_vs_hand_instructions']:.3f}x"
            )
        print(f"journal: {result['journal']['writes_per_s']:,.0f} writes/s")
        for k, v in result["memory"].items():
            print(f"memory per live call ({k}): {v['bytes_per_live_call'] / 1024:.1f} KiB")
        for k, v in result["pacing"].items():
            print(
                f"pacing {k}: achieved/configured {v['ratio']:.3f}, "
                f"max {v['max_in_1s']} dials in any second"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
