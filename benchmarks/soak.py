"""Soak: rounds of concurrent full call flows against a misbehaving simulator in another
process, for minutes, then the table of outcomes.

    python benchmarks/soak.py                      # 1,000 flows a round, 3 minutes
    python benchmarks/soak.py --flows 1000 --minutes 10 --seed 7
    python benchmarks/soak.py --flows 50 --minutes 0 --rounds 1    # a quick look

The simulator runs as ``signalwire-calls simulator`` with the chaos fault plan and the
callee mix written to JSON files (so the same run works across processes). Each round
dials new numbers; every flow must end in a result or a typed error, none may be wrong
(checked against its callee's script), and after each round the session must hold
nothing: no live call, no pending operation, nothing buffered. Exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PROJECT, SIGNING_KEY, TOKEN, python_env

from signalwire_calls import CallSession, RetryPolicy
from signalwire_calls.testing._chaos import ChaosReport, chaos_faults, run_flows, script_numbers


def soak(args: argparse.Namespace) -> int:
    """Write the callee and fault files, start the simulator process, run the rounds."""
    total_rounds = args.rounds or 10**9
    numbers: dict[str, dict[str, object]] = {}
    for r in range(min(total_rounds, args.max_numbers_rounds)):
        for number, callee in script_numbers(args.flows, start=r * args.flows).items():
            numbers[number] = callee.to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        callees_file = os.path.join(tmp, "callees.json")
        faults_file = os.path.join(tmp, "faults.json")
        with open(callees_file, "w") as f:
            json.dump(numbers, f)
        with open(faults_file, "w") as f:
            json.dump(chaos_faults(args.seed).to_dict(), f)
        cmd = [
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
            str(args.time_scale),
            "--cps",
            "0",
            "--callees",
            callees_file,
            "--faults",
            faults_file,
            "--history-limit",
            "20000",
        ]
        sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=python_env(None))
        try:
            assert sim.stdout is not None
            line = sim.stdout.readline()
            if "listening on" not in line:
                print(f"the simulator did not start: {line!r}", file=sys.stderr)
                return 1
            base = line.rsplit(" ", 1)[1].strip()
            return asyncio.run(_rounds(args, base, total_rounds))
        finally:
            sim.terminate()
            try:
                sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()


async def _rounds(args: argparse.Namespace, base: str, total_rounds: int) -> int:
    deadline = time.monotonic() + args.minutes * 60
    combined = ChaosReport()
    failures: list[str] = []
    started = time.monotonic()
    async with CallSession(
        space=base,
        project=PROJECT,
        token=TOKEN,
        signing_key=SIGNING_KEY,
        call_end_grace=1.0,
        retry=RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_cap=0.2),
    ) as session:
        rnd = 0
        while rnd < total_rounds and (rnd == 0 or time.monotonic() < deadline):
            start = (rnd % args.max_numbers_rounds) * args.flows
            t0 = time.monotonic()
            report = await run_flows(session, args.flows, wait=args.wait, start=start)
            combined.outcomes.extend(report.outcomes)
            for _ in range(200):  # the grace periods run out
                stats = session.stats().registry
                if (stats.live_calls, stats.pending_operations, stats.buffered_now) == (0, 0, 0):
                    break
                await asyncio.sleep(0.05)
            stats = session.stats().registry
            left = (stats.live_calls, stats.pending_operations, stats.buffered_now)
            kinds = collections.Counter(o.kind for o in report.outcomes)
            print(
                f"round {rnd + 1}: {args.flows} flows in {time.monotonic() - t0:.1f} s "
                f"{dict(kinds)}; wrong {len(report.wrong)}; left (calls, operations, "
                f"buffered) {left}",
                flush=True,
            )
            if report.wrong:
                failures.extend(o.wrong or "" for o in report.wrong)
            if left != (0, 0, 0):
                failures.append(f"round {rnd + 1} left {left}")
            rnd += 1
        final = session.stats()
    elapsed = time.monotonic() - started
    print()
    print(combined.render())
    print(
        f"\n{len(combined.outcomes)} flows in {rnd} rounds, {elapsed:.0f} s; commands sent "
        f"{final.commands_sent}, retries {final.transport.retries}, 429s "
        f"{final.transport.rate_limited}, 5xx {final.transport.server_errors}; events routed "
        f"{final.registry.routed}, duplicates {final.registry.duplicates}, late "
        f"{final.registry.late}, calls ended locally {final.registry.calls_ended_locally}"
    )
    for failure in failures[:20]:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flows", type=int, default=1000, help="concurrent flows per round")
    parser.add_argument("--minutes", type=float, default=3.0, help="keep starting rounds until")
    parser.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: time)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--wait", type=float, default=8.0, help="timeout of every wait (s)")
    parser.add_argument(
        "--max-numbers-rounds", type=int, default=20, help="rounds before numbers are reused"
    )
    args = parser.parse_args()
    sys.exit(soak(args))


if __name__ == "__main__":
    main()
