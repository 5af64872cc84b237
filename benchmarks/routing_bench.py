"""Cross-process webhook routing on Redis, against in-process delivery, in the same run.

    python benchmarks/routing_bench.py [--quick] [--json]

One owner process (a CallSession with a RedisBus, holding pending play handles) and one
forwarder process (a stateless receiver, ``RedisBus.receiver``), both on a
``redis-server`` of the benchmark's own. The load generator (a third process) sends
signed play-finished webhooks naming the owner (``?swc_owner=...``):

* **in-process**: to the owner's own receiver, which delivers them to its registry;
* **routed**: to the forwarder, which verifies each and forwards it through Redis to the
  owner, which reads its inbox and settles the handle.

Figures: events/s answered by the receiver (for routed also end to end: until the owner
has settled every handle), and the webhook-to-waiter latency at 1,000 events/s (from the
load generator's send to the ``finished()`` waiter waking in the owner). Targets: routed
events/s >= 0.5x in-process; added p99 latency <= 2 ms. Each figure is measured with
redis-py's own parser and with ``hiredis`` (when it can be imported, or found in the
directory ``SWC_HIREDIS_PATH``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ROOT, Child, percentile, spawn_redis

OWNER = "bench-owner"
QUERY = f"?swc_owner={OWNER}"

PROFILES: dict[str, dict[str, Any]] = {
    "full": {"reps": 5, "events": 20_000, "lat_events": 2_000},
    "quick": {"reps": 3, "events": 6_000, "lat_events": 1_000},
    "smoke": {"reps": 1, "events": 300, "lat_events": 100},
}

_children: list[Child] = []


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parser_envs(directory: str) -> dict[str, dict[str, str] | None]:
    """PYTHONPATH per parser: 'pure' hides hiredis behind a module that fails to import;
    'hiredis' needs it importable (or in SWC_HIREDIS_PATH), else it is left out."""
    blocker = os.path.join(directory, "no_hiredis")
    os.makedirs(blocker, exist_ok=True)
    with open(os.path.join(blocker, "hiredis.py"), "w") as f:
        f.write('raise ImportError("hiredis hidden for the benchmark")\n')
    envs: dict[str, dict[str, str] | None] = {
        "pure": {"PYTHONPATH": os.pathsep.join([blocker, ROOT])},
    }
    extra = os.environ.get("SWC_HIREDIS_PATH")
    if extra:
        envs["hiredis"] = {"PYTHONPATH": os.pathsep.join([ROOT, extra])}
    elif importlib.util.find_spec("hiredis") is not None:
        envs["hiredis"] = {}
    return envs


class _Pair:
    """An owner process and a forwarder process on one Redis, sharing one handle pool."""

    def __init__(self, redis_url: str, p: dict[str, Any], env: dict[str, str] | None) -> None:
        self.total = 2 * p["reps"] * (p["events"] + p["lat_events"]) + 10
        self.owner = Child(
            "servers.py",
            ["receiver", "--impl", "session", "--pending", str(self.total), "--signed",
             "--bus", redis_url, "--owner", OWNER, "--lifetime", "900"],
            env=env,
        )  # fmt: skip
        _children.append(self.owner)
        self.forwarder = Child(
            "servers.py", ["forwarder", "--redis", redis_url, "--signed", "--lifetime", "900"],
            env=env,
        )  # fmt: skip
        _children.append(self.forwarder)
        self.info = self.owner.wait_ready(120)
        finfo = self.forwarder.wait_ready(60)
        self.ports = {
            "inproc": self.info["url"].split(":")[2].split("/")[0],
            "routed": finfo["url"].split(":")[2].split("/")[0],
        }
        self.pids = {"inproc": self.owner.pid, "routed": self.forwarder.pid}
        self.control = self.info["control"]
        self.next_index = 0
        self.wake: dict[str, int] = {}

    def kill(self) -> None:
        for child in (self.owner, self.forwarder):
            child.kill()
            _children.remove(child)

    def _collect(self) -> dict[str, Any]:
        """The owner's counters; the wake-up times it hands over are kept in ``wake``."""
        with urllib.request.urlopen(f"{self.control}/collect", timeout=30) as resp:
            col = dict(json.loads(resp.read()))
        self.wake.update(col["wake"])
        return col

    def _loadgen(self, mode: str, start: int, count: int, extra: list[str]) -> dict[str, Any]:
        args = ["loadgen", "--port", self.ports[mode], "--prefix", self.info["prefix"]]
        args += ["--start", str(start), "--count", str(count), "--calls", str(self.info["calls"])]
        args += ["--query", QUERY, "--signed", "--server-pid", str(self.pids[mode]), *extra]
        child = Child("clients.py", args)
        _children.append(child)
        try:
            return dict(child.result(120))
        finally:
            child.kill()
            _children.remove(child)

    def _drained(self, target: int, timeout: float = 30.0) -> float:
        """Seconds until the owner holds ``target`` pending handles (or the timeout)."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self._collect()["pending"] <= target:
                break
            time.sleep(0.002)
        return time.perf_counter() - t0

    def throughput(self, mode: str, count: int) -> dict[str, Any]:
        start, self.next_index = self.next_index, self.next_index + count
        r = self._loadgen(mode, start, count, ["--concurrency", "32", "--max-seconds", "30"])
        r.pop("send_ns", None)
        drain = self._drained(self.total - self.next_index)
        r["end_to_end_events_per_s"] = r["sent"] / (r["elapsed_s"] + drain)
        return r

    def latency(self, mode: str, count: int, rate: float) -> dict[str, Any]:
        start, self.next_index = self.next_index, self.next_index + count
        req = urllib.request.Request(
            f"{self.control}/arm?start={start}&count={count}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=30):
            pass
        r = self._loadgen(mode, start, count, ["--rate", str(rate), "--max-seconds", "30"])
        self._drained(self.total - self.next_index, 10.0)
        time.sleep(0.05)
        self._collect()
        wake, self.wake = self.wake, {}
        send = r.pop("send_ns")
        lat = [
            (wake[str(start + i)] - s) / 1000 for i, s in enumerate(send) if str(start + i) in wake
        ]
        return {
            "sent": r["sent"],
            "woken": len(lat),
            "p50_us": percentile(lat, 50),
            "p99_us": percentile(lat, 99),
            "max_us": max(lat) if lat else None,
        }


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def bench_routing(p: dict[str, Any]) -> dict[str, Any]:
    """Routed vs in-process, per Redis parser; medians over ``reps`` interleaved runs."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        redis, url = spawn_redis(directory, "the routing benchmark")
        try:
            for parser, env in _parser_envs(directory).items():
                pair = _Pair(url, p, env)
                try:
                    runs: dict[str, list[dict[str, Any]]] = {"inproc": [], "routed": []}
                    lats: dict[str, list[dict[str, Any]]] = {"inproc": [], "routed": []}
                    order = ["inproc", "routed"]
                    for rep in range(p["reps"]):
                        for mode in order if rep % 2 == 0 else order[::-1]:
                            runs[mode].append(pair.throughput(mode, p["events"]))
                            lats[mode].append(pair.latency(mode, p["lat_events"], 1000.0))
                finally:
                    pair.kill()
                res: dict[str, Any] = {}
                for mode in order:
                    res[mode] = {
                        "events_per_s": _median([r["events_per_s"] for r in runs[mode]]),
                        "end_to_end_events_per_s": _median(
                            [r["end_to_end_events_per_s"] for r in runs[mode]]
                        ),
                        "server_cpu_us_per_event": _median(
                            [r.get("server_cpu_us_per_event") for r in runs[mode]]
                        ),
                        "p50_us": _median([r["p50_us"] for r in lats[mode]]),
                        "p99_us": _median([r["p99_us"] for r in lats[mode]]),
                        "woken": min(r["woken"] for r in lats[mode]),
                        "sent": min(r["sent"] for r in lats[mode]),
                        "statuses": runs[mode][-1]["statuses"],
                    }
                res["ratio_events_per_s"] = _median(
                    [
                        a["events_per_s"] / b["events_per_s"]
                        for a, b in zip(runs["routed"], runs["inproc"], strict=True)
                    ]
                )
                res["ratio_end_to_end"] = _median(
                    [
                        a["end_to_end_events_per_s"] / b["end_to_end_events_per_s"]
                        for a, b in zip(runs["routed"], runs["inproc"], strict=True)
                    ]
                )
                added = [
                    a["p99_us"] - b["p99_us"]
                    for a, b in zip(lats["routed"], lats["inproc"], strict=True)
                    if a["p99_us"] is not None and b["p99_us"] is not None
                ]
                res["added_p99_us"] = _median(list(added))
                out[parser] = res
                _log(
                    f"routing [{parser}]: in-process {res['inproc']['events_per_s']:.0f} ev/s, "
                    f"routed {res['routed']['events_per_s']:.0f} ev/s "
                    f"(end to end {res['routed']['end_to_end_events_per_s']:.0f}) -> "
                    f"{res['ratio_events_per_s']:.2f}x; p99 at 1,000/s in-process "
                    f"{res['inproc']['p99_us']:.0f} us, routed {res['routed']['p99_us']:.0f} us "
                    f"(+{res['added_p99_us']:.0f} us)"
                )
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    try:
        result = bench_routing(PROFILES[profile])
    finally:
        while _children:
            _children.pop().kill()
    if args.json:
        print(json.dumps(result))
    else:
        for name, res in result.items():
            print(
                f"[{name}] events/s routed/in-process {res['ratio_events_per_s']:.2f}x "
                f"(target >= 0.5), end to end {res['ratio_end_to_end']:.2f}x; added p99 at "
                f"1,000/s {res['added_p99_us'] / 1000:.2f} ms (target <= 2 ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
