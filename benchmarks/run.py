"""Run every benchmark scenario and print a table (and, with --json, one JSON line last).

    python benchmarks/run.py            # full run, ~10-14 minutes on 2 cores
    python benchmarks/run.py --quick    # reduced, under 2 minutes
    python benchmarks/run.py --quick --json

Each scenario is paired with its baseline in the same run, and the two are interleaved
repetition by repetition: figures on a shared machine drift by 20 % between runs minutes
apart, so only same-run ratios mean anything. Servers and load generators run in their
own processes (127.0.0.1 only, each with a hard deadline, all killed on exit).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PROJECT, SIGNING_KEY, TOKEN, Child, percentile, python_env
from inbound_bench import PROFILES as INBOUND_PROFILES
from inbound_bench import bench_inbound
from inbound_bench import table as inbound_table
from routing_bench import bench_routing

HERE = os.path.dirname(os.path.abspath(__file__))

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "duration": 2.0,
        "warmup": 0.4,
        "reps": 5,
        "concurrency": [1, 100, 1000],
        "pending": 100_000,
        "rec_events": 20_000,
        "lat_events": 2_000,
        "flows_concurrency": [100, 1000],
        "flows_duration": 3.0,
        "memory": [10_000, 100_000],
        "growth": (20_000, 12),
        "livecalls": 10_000,
        "codec_seconds": 0.2,
        "instr_counts": (300, 2300),
        "instr_reps": 3,
        "instr_c1_counts": (200, 1200),
        "instr_part_count": 20_000,
        "instr_pending": 10_000,
        "instr_receiver_counts": (200, 1000),
        "instr_timeout": 600.0,
        "variants": True,
    },
    "quick": {
        "duration": 0.7,
        "warmup": 0.2,
        "reps": 3,
        "concurrency": [1, 100, 1000],
        "pending": 100_000,
        "rec_events": 8_000,
        "lat_events": 1_000,
        "flows_concurrency": [100, 1000],
        "flows_duration": 1.2,
        "memory": [10_000, 100_000],
        "growth": (20_000, 10),
        "livecalls": 10_000,
        "codec_seconds": 0.05,
        "instr_counts": (100, 600),
        "instr_reps": 1,
        "instr_c1_counts": (100, 300),
        "instr_part_count": 5_000,
        "instr_pending": 5_000,
        "instr_receiver_counts": (100, 300),
        "instr_timeout": 300.0,
        "variants": False,
    },
    # only keeps the scripts from rotting (tests/test_benchmarks_smoke.py): no figures
    "smoke": {
        "duration": 0.1,
        "warmup": 0.05,
        "reps": 1,
        "concurrency": [1, 100],
        "pending": 2_000,
        "rec_events": 200,
        "lat_events": 50,
        "flows_concurrency": [10],
        "flows_duration": 0.3,
        "memory": [1_000, 2_000],
        "growth": (1_000, 2),
        "livecalls": 500,
        "codec_seconds": 0.005,
        "instr_counts": (20, 40),
        "instr_reps": 1,
        "instr_c1_counts": (5, 10),
        "instr_part_count": 20,
        "instr_pending": 200,
        "instr_receiver_counts": (20, 40),
        "instr_timeout": 120.0,
        "variants": False,
    },
}

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4194304", "MALLOC_TRIM_THRESHOLD_": "134217728"}
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

_children: list[Child] = []


def _spawn(
    script: str, args: list[str], env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> Child:
    child = Child(script, args, env=env, prefix=prefix or ())
    _children.append(child)
    return child


def _kill_all() -> None:
    while _children:
        _children.pop().kill()


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def _med(values: list[float | None]) -> float | None:
    return _stats(values)["median"]


def _worker(script: str, args: list[str], timeout: float, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    child = _spawn(script, args, env)
    try:
        return child.result(timeout)
    finally:
        child.kill()
        _children.remove(child)


# --------------------------------------------------------------------------- commands


def bench_commands(p: dict[str, Any]) -> dict[str, Any]:
    server = _spawn("servers.py", ["fast", "--lifetime", "900"])
    info = server.wait_ready()
    port, pid = str(info["port"]), str(server.pid)
    timeout = p["warmup"] + p["duration"] + 60
    common = ["--duration", str(p["duration"]), "--warmup", str(p["warmup"]), "--server-pid", pid]

    def run(impl: str, extra: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
        return _worker(
            "clients.py",
            ["commands", "--impl", impl, "--port", port, *common, *extra],
            timeout,
            env,
        )

    out: dict[str, Any] = {}
    for c in p["concurrency"]:
        runs: dict[str, list[dict[str, Any]]] = {"session": [], "bare_aiohttp": []}
        order = [("bare_aiohttp", "bare", []), ("session", "session", [])]
        for rep in range(p["reps"]):
            for key, impl, extra in order if rep % 2 == 0 else order[::-1]:
                runs[key].append(run(impl, ["--concurrency", str(c), *extra]))
        out[f"c{c}"] = {k: _agg(v) for k, v in runs.items()}
        out[f"c{c}"]["ratio"] = _ratio(runs["session"], runs["bare_aiohttp"], "ops_per_s")
        out[f"c{c}"]["cpu_ratio"] = _ratio(runs["bare_aiohttp"], runs["session"], "cpu_us_per_op")
        _log(f"commands c{c}: {_fmt_pair(out[f'c{c}'], 'ops_per_s')}")
    # the blocking clients in 32 threads, interleaved with the session at c100 (their
    # ratio to it is a target): requests.Session, and the vendor SDK's RestClient
    blocking: dict[str, list[dict[str, Any]]] = {"requests": [], "vendor": [], "session": []}
    vendor_note = None
    for _ in range(p["reps"]):
        blocking["requests"].append(run("requests", ["--threads", "32"]))
        vendor = run("vendor", ["--threads", "32"])
        if vendor.get("available"):
            blocking["vendor"].append(vendor)
        else:
            vendor_note = vendor.get("reason")
        blocking["session"].append(run("session", ["--concurrency", "100"]))
    out["requests_threads"] = _agg(blocking["requests"])
    out["vendor_sdk_threads"] = _agg(blocking["vendor"]) if blocking["vendor"] else None
    out["vendor_sdk_note"] = vendor_note
    out["session_c100_beside_threads"] = _agg(blocking["session"])
    out["requests_ratio"] = _ratio(blocking["session"], blocking["requests"], "ops_per_s")
    out["vendor_ratio"] = (
        _ratio(blocking["session"], blocking["vendor"], "ops_per_s") if blocking["vendor"] else None
    )
    _log(
        f"commands in 32 threads: requests {out['requests_threads']['ops_per_s']['median']:.0f}/s, "
        f"vendor sdk {_g(out, 'vendor_sdk_threads', 'ops_per_s', 'median') or vendor_note}"
    )
    if p["variants"]:
        variants: dict[str, list[dict[str, Any]]] = {"default": [], "malloc_env": []}
        if HAVE_UVLOOP:
            variants["uvloop"] = []
        for _ in range(p["reps"]):
            variants["default"].append(run("session", ["--concurrency", "100"]))
            variants["malloc_env"].append(run("session", ["--concurrency", "100"], MALLOC_ENV))
            if HAVE_UVLOOP:
                variants["uvloop"].append(
                    run("session", ["--concurrency", "100", "--loop", "uvloop"])
                )
        out["variants_session_c100"] = {k: _agg(v) for k, v in variants.items()}
        if not HAVE_UVLOOP:
            out["variants_session_c100"]["uvloop"] = None
    server.kill()
    return out


#: Under callgrind: a fixed hash seed, so that set and dict layouts (and so the counts)
#: repeat from run to run.
CALLGRIND_ENV = {"PYTHONHASHSEED": "0"}


def _callgrind_instructions(args: list[str], timeout: float) -> int | None:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    try:
        proc = subprocess.run(
            [*cmd, os.path.join(HERE, "instructions.py"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=python_env(CALLGRIND_ENV),
        )
    except subprocess.TimeoutExpired:
        return None
    match = re.search(r"Collected : (\d+)", proc.stderr)
    return int(match.group(1)) if match and proc.returncode == 0 else None


def _per_op(counts: list[int | None], low: int, high: int) -> float | None:
    a, b = counts
    return (b - a) / (high - low) if a is not None and b is not None else None


def _receiver_instructions(
    impl: str, signed: bool, pending: int, count: int, timeout: float
) -> int | None:
    args = ["receiver", "--impl", impl, "--pending", str(pending), "--calls", "100"]
    args += ["--exit-after", str(count), "--lifetime", str(timeout)]
    if signed:
        args.append("--signed")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    child = _spawn("servers.py", args, env=CALLGRIND_ENV, prefix=cmd)
    try:
        info = child.wait_ready(timeout)
        port = info["url"].split(":")[2].split("/")[0]
        load = ["loadgen", "--port", port, "--prefix", info["prefix"], "--start", "0"]
        load += ["--count", str(count), "--calls", "100", "--concurrency", "8"]
        load += ["--max-seconds", str(timeout)]
        _worker("clients.py", [*load, "--signed"] if signed else load, timeout)
        _, err = child.proc.communicate(timeout=timeout)
    except (RuntimeError, subprocess.TimeoutExpired):
        return None
    finally:
        child.kill()
        _children.remove(child)
    match = re.search(r"Collected : (\d+)", err)
    return int(match.group(1)) if match and child.proc.returncode == 0 else None


def bench_instructions(p: dict[str, Any]) -> dict[str, Any]:
    """Instructions per command at concurrency 100 (callgrind), session vs bare aiohttp,
    with the session's pieces counted apart; instructions per webhook in the receiving
    process. Ratios that do not drift with the machine's load."""
    if shutil.which("valgrind") is None:
        return {"available": False, "reason": "valgrind not installed"}
    from instructions import BARE_PARTS, PARTS

    low, high = p["instr_counts"]
    server = _spawn("servers.py", ["fast", "--lifetime", "900"])
    port = str(server.wait_ready()["port"])
    timeout = p["instr_timeout"]
    out: dict[str, Any] = {"available": True, "counts": [low, high]}
    # two valgrind processes at a time (2 cores): the counts do not depend on the load
    with ThreadPoolExecutor(max_workers=2) as pool:
        # whole commands: the count moves by ~0.5 % with how the event loop batches the
        # answers (timing under valgrind): the median of a few repetitions
        reps = p["instr_reps"]
        whole = {
            (impl, n, rep): pool.submit(
                _callgrind_instructions,
                ["--impl", impl, "--port", port, "--count", str(n)],
                timeout,
            )
            for rep in range(reps)
            for impl in ("session", "bare")
            for n in (low, high)
        }
        # concurrency 1 (one repetition): each command then waits for its answer alone
        c1_low, c1_high = p["instr_c1_counts"]
        whole_c1 = {
            (impl, n): pool.submit(
                _callgrind_instructions,
                ["--impl", impl, "--port", port, "--count", str(n), "--concurrency", "1"],
                timeout,
            )
            for impl in ("session", "bare")
            for n in (c1_low, c1_high)
        }
        # the pieces: run at 0 and at N, no network
        n_parts = p["instr_part_count"]
        parts = {
            (part, n): pool.submit(
                _callgrind_instructions, ["--part", part, "--count", str(n)], timeout
            )
            for part in (*PARTS, *BARE_PARTS)
            for n in ((0, n_parts) if part in (PARTS[0], BARE_PARTS[0]) else (n_parts,))
        }
        for impl in ("session", "bare"):
            per = [
                _per_op([whole[impl, n, rep].result() for n in (low, high)], low, high)
                for rep in range(reps)
            ]
            out[f"{impl}_reps"] = per
            out[impl] = _med(per)
            _log(f"instructions per command, {impl}: {per}")
        for impl in ("session", "bare"):
            out[f"{impl}_c1"] = _per_op(
                [whole_c1[impl, n].result() for n in (c1_low, c1_high)], c1_low, c1_high
            )
            _log(f"instructions per command at c1, {impl}: {out[f'{impl}_c1']}")
        sc1, bc1 = out["session_c1"], out["bare_c1"]
        out["ratio_c1"] = sc1 / bc1 if sc1 and bc1 else None
        cumulative: dict[str, float | None] = {}
        for group in (PARTS, BARE_PARTS):
            base = parts[group[0], 0].result()
            for part in group:
                c = parts[part, n_parts].result()
                cumulative[part] = (c - base) / n_parts if c is not None and base else None
        out["parts_cumulative"] = cumulative
    server.kill()
    out["breakdown"] = _breakdown(out, PARTS, BARE_PARTS)
    # the receiver: instructions per webhook in the receiving process (the load
    # generator runs outside valgrind), session vs the bare aiohttp handler
    pending = p["instr_pending"]
    r_low, r_high = p["instr_receiver_counts"]
    out["receiver_counts"] = [r_low, r_high]
    for signed in (False, True):
        kind = "signed" if signed else "unsigned"
        for impl in ("session", "bare"):
            counts = [
                _receiver_instructions(impl, signed, pending, n, timeout) for n in (r_low, r_high)
            ]
            key = f"receiver_{impl}_{kind}"
            out[key] = _per_op(counts, r_low, r_high)
            _log(f"instructions per webhook, {impl} {kind}: {out[key]}")
        rs, rb = out[f"receiver_session_{kind}"], out[f"receiver_bare_{kind}"]
        out[f"receiver_ratio_{kind}"] = rs / rb if rs and rb else None
    s, b = out["session"], out["bare"]
    out["ratio"] = s / b if s and b else None
    return out


def _breakdown(
    out: dict[str, Any], parts: tuple[str, ...], bare_parts: tuple[str, ...]
) -> dict[str, dict[str, float | None]] | None:
    """Instructions per command by piece, session and bare side by side; the HTTP
    request (aiohttp, the event loop, the coroutine frames) is the whole minus the pieces."""
    cum = out["parts_cumulative"]
    if any(cum.get(k) is None for k in (*parts, *bare_parts)) or not out["session"]:
        return None
    rows: dict[str, dict[str, float | None]] = {}
    prev = 0.0
    for part in parts:
        rows[part] = {"session": cum[part] - prev, "bare": None}
        prev = cum[part]
    rows["control_id"]["bare"] = None
    rows["build"]["bare"] = cum["bare_body"]  # the bare loop builds and encodes a dict
    rows["encode"]["bare"] = 0.0  # counted in its build
    rows["leg_decode"]["bare"] = cum["bare_decode"]
    bare_pieces = cum["bare_body"] + cum["bare_decode"]
    rows["request"] = {
        "session": out["session"] - prev,
        "bare": out["bare"] - bare_pieces if out["bare"] else None,
    }
    rows["total"] = {"session": out["session"], "bare": out["bare"]}
    return rows


def _agg(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return {k: _stats([r.get(k) for r in runs]) for k in keys}


def _ratio(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    """Per-repetition ratios a/b (the pairs ran back to back), summarized."""
    return _stats([x[key] / y[key] if y.get(key) else None for x, y in zip(a, b, strict=False)])


def _fmt_pair(d: dict[str, Any], key: str) -> str:
    return " ".join(
        f"{k}={v[key]['median']:.0f}"
        for k, v in d.items()
        if isinstance(v, dict) and key in v and v[key]["median"] is not None
    )


# --------------------------------------------------------------------------- receiver


class _ReceiverProc:
    def __init__(self, impl: str, signed: bool, p: dict[str, Any], extra: list[str], env: Any):
        self.total = p["pending"] + p["reps"] * (p["rec_events"] + p["lat_events"])
        args = ["receiver", "--impl", impl, "--pending", str(self.total), "--lifetime", "900"]
        if signed:
            args.append("--signed")
        self.signed = signed
        self.child = _spawn("servers.py", args + extra, env)
        self.next_index = 0

    def ready(self) -> None:
        self.info = self.child.wait_ready(120)
        self.port = self.info["url"].split(":")[2].split("/")[0]

    def _loadgen(self, start: int, count: int, extra: list[str]) -> dict[str, Any]:
        args = ["loadgen", "--port", self.port, "--prefix", self.info["prefix"]]
        args += ["--start", str(start), "--count", str(count), "--calls", str(self.info["calls"])]
        args += ["--server-pid", str(self.child.pid), *extra]
        if self.signed:
            args.append("--signed")
        return _worker("clients.py", args, 120)

    def throughput(self, count: int) -> dict[str, Any]:
        start, self.next_index = self.next_index, self.next_index + count
        r = self._loadgen(start, count, ["--concurrency", "32", "--max-seconds", "20"])
        r.pop("send_ns", None)
        return r

    def latency(self, count: int, rate: float) -> dict[str, Any]:
        start, self.next_index = self.next_index, self.next_index + count
        ctl = self.info["control"]
        with urllib.request.urlopen(
            urllib.request.Request(f"{ctl}/arm?start={start}&count={count}", method="POST"),
            timeout=30,
        ):
            pass
        r = self._loadgen(start, count, ["--rate", str(rate), "--max-seconds", "30"])
        time.sleep(0.05)
        with urllib.request.urlopen(f"{ctl}/collect", timeout=30) as resp:
            col = json.loads(resp.read())
        send = r.pop("send_ns")
        wake = col["wake"]
        lat = [
            (wake[str(start + i)] - s) / 1000 for i, s in enumerate(send) if str(start + i) in wake
        ]
        r.update(
            {
                "woken": len(lat),
                "p50_us": percentile(lat, 50),
                "p99_us": percentile(lat, 99),
                "max_us": max(lat) if lat else None,
                "pending_after": col["pending"],
                "rss": col["rss"],
            }
        )
        return r


def bench_receiver(p: dict[str, Any]) -> dict[str, Any]:
    setups: dict[str, tuple[str, bool, list[str], Any]] = {
        "bare_unsigned": ("bare", False, [], None),
        "session_unsigned": ("session", False, [], None),
        "bare_signed": ("bare", True, [], None),
        "session_signed": ("session", True, [], None),
    }
    if p["variants"]:
        setups["session_unsigned_gc_freeze"] = ("session", False, ["--gc-freeze"], None)
        setups["session_unsigned_malloc_env"] = ("session", False, [], MALLOC_ENV)
        if HAVE_UVLOOP:
            setups["session_unsigned_uvloop"] = ("session", False, ["--loop", "uvloop"], None)
    out: dict[str, Any] = {}
    names = list(setups)
    # two at a time: each pair shares a time window, one receiver idle while the other runs
    for i in range(0, len(names), 2):
        group = names[i : i + 2]
        procs = {n: _ReceiverProc(*setups[n][:2], p, setups[n][2], setups[n][3]) for n in group}
        for proc in procs.values():
            proc.ready()
        tput: dict[str, list[dict[str, Any]]] = {n: [] for n in group}
        lat: dict[str, list[dict[str, Any]]] = {n: [] for n in group}
        for rep in range(p["reps"]):
            for n in group if rep % 2 == 0 else group[::-1]:
                tput[n].append(procs[n].throughput(p["rec_events"]))
                lat[n].append(procs[n].latency(p["lat_events"], 1000.0))
        for n in group:
            out[n] = {
                "throughput": _agg(tput[n]),
                "latency_at_1000_per_s": _agg(lat[n]),
                "pending_at_end": lat[n][-1]["pending_after"],
                "rss_bytes": lat[n][-1]["rss"],
                "build_s": procs[n].info["build_s"],
                "_runs": tput[n],
            }
            procs[n].child.kill()
            _log(
                f"receiver {n}: {out[n]['throughput']['events_per_s']['median']:.0f} ev/s, "
                f"p99 {out[n]['latency_at_1000_per_s']['p99_us']['median']:.0f} us"
            )
    for kind in ("unsigned", "signed"):
        out[f"ratio_{kind}"] = _ratio(
            out[f"session_{kind}"]["_runs"], out[f"bare_{kind}"]["_runs"], "events_per_s"
        )
        # receiver CPU per event, bare/session: steadier than events/s on a shared VM
        out[f"cpu_ratio_{kind}"] = _ratio(
            out[f"bare_{kind}"]["_runs"],
            out[f"session_{kind}"]["_runs"],
            "server_cpu_us_per_event",
        )
    for v in out.values():
        if isinstance(v, dict):
            v.pop("_runs", None)
    return out


# --------------------------------------------------------------------------- flows


def bench_flows(p: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"*": {"behavior": "answer", "after": 0.5, "digits": "1#"}}, f)
        callees = f.name
    out: dict[str, Any] = {}
    try:
        sim = _spawn_simulator(callees)
        url = sim.wait_ready()["url"]
        for c in p["flows_concurrency"]:
            runs = []
            for _ in range(p["reps"]):
                runs.append(
                    _worker(
                        "clients.py",
                        [
                            "flows",
                            "--url",
                            url,
                            "--concurrency",
                            str(c),
                            "--duration",
                            str(p["flows_duration"]),
                            "--warmup",
                            str(p["warmup"]),
                            "--server-pid",
                            str(sim.pid),
                        ],
                        p["flows_duration"] + 120,
                    )
                )
            out[f"c{c}"] = _agg(runs)
            out[f"c{c}"]["failures"] = [r.get("failures") for r in runs]
            _log(f"flows c{c}: {out[f'c{c}']['ops_per_s']['median']:.0f} flows/s")
        sim.kill()
    finally:
        os.unlink(callees)
    return out


def _spawn_simulator(callees: str) -> Child:
    child = Child.__new__(Child)
    import subprocess

    from _common import ROOT, python_env

    child.cmd = [
        sys.executable,
        "-m",
        "signalwire_calls",
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--project",
        PROJECT,
        "--token",
        TOKEN,
        "--signing-key",
        SIGNING_KEY,
        "--time-scale",
        "0.01",
        "--callees",
        callees,
        "--history-limit",
        "10000",
        "--cps",
        "0",  # unlimited: the benchmark measures the client, not the platform's pacing
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
    _children.append(child)
    return child


# --------------------------------------------------------------------------- memory, codec


def bench_memory(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in p["memory"]:
        t = _worker("inproc.py", ["memory", "--handles", str(n)], 120)
        r = _worker("inproc.py", ["memory", "--handles", str(n), "--rss"], 120)
        out[f"h{n}"] = {**t, **r}
    n, cycles = p["growth"]
    out["growth"] = _worker(
        "inproc.py", ["growth", "--handles", str(n), "--cycles", str(cycles)], 180
    )
    out["livecalls"] = _worker("inproc.py", ["livecalls", "--calls", str(p["livecalls"])], 120)
    _log(f"memory: {json.dumps({k: v.get('bytes_per_handle') for k, v in out.items()})}")
    return out


def bench_codec(p: dict[str, Any]) -> dict[str, Any]:
    return _worker("inproc.py", ["codec", "--seconds", str(p["codec_seconds"])], 120)


# --------------------------------------------------------------------------- report


def _g(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


#: The targets, all same-run ratios or absolute bounds (see README, Performance).
TARGETS = {
    "command_ratio": 0.95,  # session/bare commands/s, at every concurrency: >=
    "command_instructions_ratio": 1.05,  # session/bare instructions per command: <=
    "vendor_ratio": 5.0,  # session c100 / vendor SDK in 32 threads: >=
    "receiver_ratio": 0.95,  # session/bare events/s, signed and unsigned: >=
    "waiter_p99_us": 1000.0,  # webhook-to-waiter p99 at 1,000 events/s: <
    "bytes_per_handle": 460.0,  # at the largest memory count: <=
    "routing_ratio": 0.5,  # events/s routed through Redis / delivered in-process: >=
    "routing_added_p99_us": 2000.0,  # added webhook-to-waiter p99 at 1,000/s: <=
    "inbound_ratio": 0.9,  # ours/bare inbound calls/s, webhook to handler start: >=
    "inbound_cpu_ratio": 0.9,  # bare/ours server CPU per inbound call: >=
}


def summary(res: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    cmd, rec, flows, mem = res["commands"], res["receiver"], res["flows"], res["memory"]
    c100 = _g(cmd, "c100") or {}
    sess = _g(c100, "session", "ops_per_s", "median")
    rr = {k: _g(rec, f"ratio_{k}", "median") for k in ("unsigned", "signed")}
    rr_vals = [r for r in rr.values() if r is not None]
    p99 = {k: _g(rec, f"session_{k}", "latency_at_1000_per_s", "p99_us", "median") for k in rr}
    p99_vals = [v for v in p99.values() if v is not None]
    top = max(p["memory"])
    small = min(p["memory"])
    command_ratios = {f"c{c}": _g(cmd, f"c{c}", "ratio", "median") for c in p["concurrency"]}
    ratio_vals = [v for v in command_ratios.values() if v is not None]
    instr = res.get("instructions") or {}
    inbound = res.get("inbound") or {}
    out = {
        "commands_per_s": {
            "session": sess,
            "bare_aiohttp": _g(c100, "bare_aiohttp", "ops_per_s", "median"),
            "requests_threads": _g(cmd, "requests_threads", "ops_per_s", "median"),
            "vendor_sdk_threads": _g(cmd, "vendor_sdk_threads", "ops_per_s", "median"),
        },
        "receiver_events_per_s": {
            "session": _g(rec, "session_unsigned", "throughput", "events_per_s", "median"),
            "bare_aiohttp": _g(rec, "bare_unsigned", "throughput", "events_per_s", "median"),
            "session_signed": _g(rec, "session_signed", "throughput", "events_per_s", "median"),
            "bare_aiohttp_signed": _g(rec, "bare_signed", "throughput", "events_per_s", "median"),
        },
        "waiter_latency_us": {
            "p50": _g(rec, "session_signed", "latency_at_1000_per_s", "p50_us", "median"),
            "p99": max(p99_vals) if p99_vals else None,
            "p99_signed": p99["signed"],
            "p99_unsigned": p99["unsigned"],
            "rate_per_s": 1000,
        },
        "flows_per_s": {
            f"c{c}": _g(flows, f"c{c}", "ops_per_s", "median") for c in p["flows_concurrency"]
        },
        "bytes_per_handle": {
            "h10k": _g(mem, f"h{small}", "bytes_per_handle"),
            "h100k": _g(mem, f"h{top}", "bytes_per_handle"),
        },
        "growth_after_settle_bytes": _g(mem, "growth", "growth_bytes"),
        "command_ratios": command_ratios,
        "command_ratio": min(ratio_vals) if ratio_vals else None,
        "command_cpu_ratio": _g(c100, "cpu_ratio", "median"),
        "command_instructions_ratio": instr.get("ratio"),
        "instructions_per_command": {
            "session": instr.get("session"),
            "bare_aiohttp": instr.get("bare"),
        },
        "instructions_breakdown": instr.get("breakdown"),
        "receiver_instructions_ratio": {
            "unsigned": instr.get("receiver_ratio_unsigned"),
            "signed": instr.get("receiver_ratio_signed"),
        },
        "requests_ratio": _g(cmd, "requests_ratio", "median"),
        "vendor_ratio": _g(cmd, "vendor_ratio", "median"),
        "receiver_ratio": min(rr_vals) if rr_vals else None,
        "receiver_ratio_unsigned": rr["unsigned"],
        "receiver_ratio_signed": rr["signed"],
        "receiver_cpu_ratio_unsigned": _g(rec, "cpu_ratio_unsigned", "median"),
        "receiver_cpu_ratio_signed": _g(rec, "cpu_ratio_signed", "median"),
        "command_p99_us_c1000": {
            "session": _g(cmd, "c1000", "session", "p99_us", "median"),
            "bare_aiohttp": _g(cmd, "c1000", "bare_aiohttp", "p99_us", "median"),
        },
        # cross-process routing on Redis (with redis-py's own parser; hiredis beside)
        "routing": res.get("routing") or None,
        "inbound_calls_per_s": {
            "session": _g(inbound, "ours", "calls_per_s", "median"),
            "bare_aiohttp": _g(inbound, "bare", "calls_per_s", "median"),
        },
        "inbound_server_cpu_us_per_call": {
            "session": _g(inbound, "ours", "server_cpu_us_per_call", "median"),
            "bare_aiohttp": _g(inbound, "bare", "server_cpu_us_per_call", "median"),
        },
        "inbound_ratio": _g(inbound, "ratio", "median"),
        "inbound_cpu_ratio": _g(inbound, "cpu_ratio", "median"),
        "inbound_instructions_ratio": _g(inbound, "instructions", "ratio"),
    }
    measured = {
        "command_ratio": out["command_ratio"],
        "command_instructions_ratio": out["command_instructions_ratio"],
        "vendor_ratio": out["vendor_ratio"],
        "receiver_ratio": out["receiver_ratio"],
        "waiter_p99_us": out["waiter_latency_us"]["p99"],
        "bytes_per_handle": out["bytes_per_handle"]["h100k"],
        "routing_ratio": _g(res, "routing", "pure", "ratio_events_per_s"),
        "routing_added_p99_us": _g(res, "routing", "pure", "added_p99_us"),
        "inbound_ratio": out["inbound_ratio"],
        "inbound_cpu_ratio": out["inbound_cpu_ratio"],
    }
    upper = (
        "command_instructions_ratio",
        "waiter_p99_us",
        "bytes_per_handle",
        "routing_added_p99_us",
    )
    out["targets"] = {
        k: {
            "measured": v,
            "target": TARGETS[k],
            "met": None if v is None else (v <= TARGETS[k] if k in upper else v >= TARGETS[k]),
        }
        for k, v in measured.items()
    }
    return out


def _n(v: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _row(rows: list[list[str]], name: str, d: Any, key: str, cpu: str = "cpu_us_per_op") -> None:
    s = _g(d, key) or {}
    rows.append(
        [
            name,
            _n(s.get("median")),
            f"{_n(s.get('min'))}-{_n(s.get('max'))}",
            _n(_g(d, cpu, "median"), "{:.0f}"),
            _n(
                _g(d, "server_cpu_us_per_op", "median")
                or _g(d, "server_cpu_us_per_event", "median"),
                "{:.0f}",
            ),
            _n(_g(d, "p50_us", "median")),
            _n(_g(d, "p99_us", "median")),
        ]
    )


def table(res: dict[str, Any], p: dict[str, Any]) -> str:
    head = ["scenario", "median/s", "min-max", "cpu us/op", "server cpu us/op", "p50 us", "p99 us"]
    rows: list[list[str]] = []
    cmd = res["commands"]
    for c in p["concurrency"]:
        _row(rows, f"commands c{c}: session (Call.play)", cmd[f"c{c}"]["session"], "ops_per_s")
        _row(
            rows, f"commands c{c}: bare aiohttp+msgspec", cmd[f"c{c}"]["bare_aiohttp"], "ops_per_s"
        )
    _row(
        rows,
        "commands c100: session, beside the threads",
        cmd["session_c100_beside_threads"],
        "ops_per_s",
    )
    _row(rows, "commands: requests, 32 threads", cmd["requests_threads"], "ops_per_s")
    if cmd.get("vendor_sdk_threads"):
        _row(rows, "commands: signalwire-sdk, 32 threads", cmd["vendor_sdk_threads"], "ops_per_s")
    else:
        note = f"null ({cmd.get('vendor_sdk_note') or 'not run'})"[:60]
        rows.append(["commands: signalwire-sdk, 32 threads", note, "", "", "", "", ""])
    for name, v in (cmd.get("variants_session_c100") or {}).items():
        if v is None:
            rows.append([f"commands c100 session [{name}]", "null", "", "", "", "", ""])
        else:
            _row(rows, f"commands c100 session [{name}]", v, "ops_per_s")
    rec = res["receiver"]
    for name, v in rec.items():
        if name.startswith(("ratio", "cpu_ratio")) or not isinstance(v, dict):
            continue
        t = v["throughput"]
        lat = v["latency_at_1000_per_s"]
        rows.append(
            [
                f"receiver {name.replace('_', ' ')} (100k pending)",
                _n(_g(t, "events_per_s", "median")),
                f"{_n(_g(t, 'events_per_s', 'min'))}-{_n(_g(t, 'events_per_s', 'max'))}",
                "(receiver)",
                _n(_g(t, "server_cpu_us_per_event", "median"), "{:.0f}"),
                _n(_g(lat, "p50_us", "median")),
                _n(_g(lat, "p99_us", "median")) + f" (max {_n(_g(lat, 'max_us', 'median'))})",
            ]
        )
    for c in p["flows_concurrency"]:
        _row(rows, f"flows c{c} (vs simulator)", res["flows"][f"c{c}"], "ops_per_s")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    mem = res["memory"]
    lines.append("")
    for k, v in mem.items():
        if k.startswith("h"):
            lines.append(
                f"memory {k}: {_n(v.get('bytes_per_handle'))} B/pending handle (tracemalloc; "
                f"bare future+ids object {_n(v.get('bare_bytes_per_handle'))} B), "
                f"RSS delta {_n(v.get('rss_bytes_per_handle'))} B/handle"
            )
    g = mem["growth"]
    lines.append(
        f"memory after settle, {g['cycles']} cycles of {g['handles_per_cycle']:,} handles: "
        f"{', '.join(_n(x / 1e6, '{:.1f}') for x in g['retained_bytes_after_each_cycle'])} MB "
        f"(peak over the second half of the cycles minus peak over the first: "
        f"{_n(g['growth_bytes'])} B; bounded by the 100k recent-key set)"
    )
    lc = mem["livecalls"]
    lines.append(
        f"RSS with {lc['calls']:,} live calls each with a pending play: "
        f"{lc['rss_bytes'] / 1e6:.1f} MB (library part {lc['rss_delta_bytes'] / 1e6:.1f} MB)"
    )
    lines.append("")
    lines.append("codec ns/op (median)      ours    json   json/ours")
    codec = res["codec"]
    for kind in ("encode", "decode"):
        for name, v in codec[kind].items():
            lines.append(
                f"  {kind} {name:<14} {v['ns']['median']:>8.0f} {v['json_ns']['median']:>7.0f}"
                f"   {v['ratio']:.1f}x"
            )
    s = res["summary"]
    instr = res.get("instructions") or {}
    if instr.get("available"):
        lines.append("")
        lines.append(
            "instructions per command at c100 (callgrind, client process): "
            f"session {_n(instr.get('session'))}, bare aiohttp {_n(instr.get('bare'))}; "
            f"session/bare = {_n(instr.get('ratio'), '{:.3f}')}; at c1: session "
            f"{_n(instr.get('session_c1'))}, bare {_n(instr.get('bare_c1'))}, session/bare = "
            f"{_n(instr.get('ratio_c1'), '{:.3f}')}"
        )
        bd = instr.get("breakdown")
        if bd:
            lines.append("  piece                    session      bare")
            for name, v in bd.items():
                lines.append(
                    f"  {_PIECES.get(name, name):<22} {_n(v['session']):>9} {_n(v['bare']):>9}"
                )
        lines.append(
            "instructions per webhook (callgrind, receiving process, "
            f"{p['instr_pending']:,} pending): session unsigned "
            f"{_n(instr.get('receiver_session_unsigned'))} vs bare "
            f"{_n(instr.get('receiver_bare_unsigned'))} (session/bare "
            f"{_n(instr.get('receiver_ratio_unsigned'), '{:.3f}')}), signed "
            f"{_n(instr.get('receiver_session_signed'))} vs "
            f"{_n(instr.get('receiver_bare_signed'))} (session/bare "
            f"{_n(instr.get('receiver_ratio_signed'), '{:.3f}')})"
        )
    if res.get("inbound"):
        lines.append("")
        lines.append(inbound_table(res["inbound"]))
    lines.append("")
    ratios = ", ".join(f"{k} {_n(v, '{:.2f}')}" for k, v in s["command_ratios"].items())
    p99 = s["command_p99_us_c1000"]
    lines.append(
        f"ratios: commands session/bare {ratios} (by CPU per command at c100 "
        f"{_n(s['command_cpu_ratio'], '{:.2f}')}); session c100/requests-threads "
        f"{_n(s['requests_ratio'], '{:.1f}')}; receiver session/bare unsigned "
        f"{_n(s['receiver_ratio_unsigned'], '{:.2f}')}, signed "
        f"{_n(s['receiver_ratio_signed'], '{:.2f}')} (by receiver CPU per event "
        f"{_n(s['receiver_cpu_ratio_unsigned'], '{:.2f}')}, "
        f"{_n(s['receiver_cpu_ratio_signed'], '{:.2f}')}); p99 at c1000 session "
        f"{_n(p99['session'])} us vs bare {_n(p99['bare_aiohttp'])} us"
    )
    lines.append("targets:")
    for key, t in s["targets"].items():
        met = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
        lines.append(
            f"  {_TARGET_NAMES[key]:<58} {_n(t['measured'], '{:,.3f}'):>10}  "
            f"(target {t['target']:g})  {met}"
        )
    return "\n".join(lines)


_PIECES = {
    "control_id": "control id",
    "build": "Play build+validation",
    "register": "register + settle",
    "encode": "encode",
    "admission": "FIFO admission",
    "leg_decode": "leg decode",
    "deliver": "webhook stand-in",
    "request": "HTTP request (rest)",
    "total": "total",
}
_TARGET_NAMES = {
    "command_ratio": "commands/s session/bare, worst of c1/c100/c1000 (>=)",
    "command_instructions_ratio": "instructions per command session/bare at c100 (<=)",
    "vendor_ratio": "commands/s session c100 / signalwire-sdk in 32 threads (>=)",
    "receiver_ratio": "receiver events/s session/bare, worst of signed/unsigned (>=)",
    "waiter_p99_us": "webhook-to-waiter p99 us at 1,000/s, worst of both (<)",
    "bytes_per_handle": "bytes per pending handle at the largest count (<=)",
    "routing_ratio": "events/s routed through Redis / in-process (>=)",
    "routing_added_p99_us": "added webhook-to-waiter p99 us when routed, at 1,000/s (<=)",
    "inbound_ratio": "inbound calls/s, webhook to handler start, session/bare (>=)",
    "inbound_cpu_ratio": "server CPU per inbound call, bare/session (>=)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced run, under 2 minutes")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated scenarios",
    )
    args = parser.parse_args(argv)
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    p = PROFILES[profile]
    atexit.register(_kill_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    default_only = "commands,receiver,inbound,flows,memory,codec"
    if profile == "full":
        default_only += ",instructions"
    if shutil.which("redis-server"):
        default_only += ",routing"
    only = set((args.only or default_only).split(","))
    scenarios: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "commands": bench_commands,
        "receiver": bench_receiver,
        "inbound": lambda _: bench_inbound(INBOUND_PROFILES[profile]),
        "flows": bench_flows,
        "memory": bench_memory,
        "codec": bench_codec,
        "instructions": bench_instructions,
        "routing": lambda p: bench_routing(
            {"reps": p["reps"], "events": p["rec_events"], "lat_events": p["lat_events"]}
        ),
    }
    t0 = time.monotonic()
    res: dict[str, Any] = {
        "profile": profile,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "uvloop_available": HAVE_UVLOOP,
        },
    }
    try:
        for name, fn in scenarios.items():
            res[name] = fn(p) if name in only else {}
    finally:
        _kill_all()
    res["elapsed_s"] = time.monotonic() - t0
    if only >= set(scenarios) - {"instructions", "routing"}:
        res["summary"] = summary(res, p)
        print(table(res, p))
    print(f"\n({profile} run, {res['elapsed_s']:.0f} s)")
    if args.json:
        out = dict(res.get("summary", {}))
        out["details"] = {k: v for k, v in res.items() if k != "summary"}
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
