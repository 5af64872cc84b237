"""Keeps benchmarks/ from rotting: every scenario runs for a fraction of a second.

Benchmarks are not tests: nothing here asserts a speed, only that each scenario ran and
reported its figures in the JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bench_server(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """A benchmark server process (``python args...``) and the JSON of its
    ``BENCH-READY`` line; killed on the way out if it has not exited by then."""
    server = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("BENCH-READY"), line
        yield server, json.loads(line.split(" ", 1)[1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


def run_ok(*args: str) -> str:
    """``python args...`` within 30 s; its stdout, once it exited with status 0."""
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=30, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.timeout(90)
def test_every_scenario_runs_and_reports() -> None:
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json"],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    for key in (
        "commands_per_s",
        "receiver_events_per_s",
        "waiter_latency_us",
        "flows_per_s",
        "bytes_per_handle",
        "command_ratio",
        "receiver_ratio",
        "vendor_ratio",
        "inbound_ratio",
        "inbound_cpu_ratio",
        "targets",
    ):
        assert key in result, key
    assert set(result["commands_per_s"]) >= {
        "session",
        "bare_aiohttp",
        "requests_threads",
        "vendor_sdk_threads",
    }
    assert result["commands_per_s"]["session"] > 0
    # the vendor SDK is in the bench extra: its row is measured, not skipped
    assert result["commands_per_s"]["vendor_sdk_threads"] > 0, result["details"]["commands"].get(
        "vendor_sdk_note"
    )
    assert set(result["command_ratios"]) == {"c1", "c100"}
    assert result["receiver_events_per_s"]["session"] > 0
    if shutil.which("redis-server"):  # the routing scenario runs wherever Redis does
        routing = result["routing"]["pure"]
        assert routing["routed"]["events_per_s"] > 0
        assert routing["routed"]["woken"] == routing["routed"]["sent"] > 0
    assert result["waiter_latency_us"]["p99"] is not None
    assert all(v > 0 for v in result["flows_per_s"].values())
    assert result["bytes_per_handle"]["h100k"] > 0
    details = result["details"]
    assert details["memory"]["growth"]["pending_left"] == 0
    assert set(details["codec"]["encode"]) >= {"dial", "play", "collect"}
    assert details["receiver"]["session_signed"]["latency_at_1000_per_s"]["woken"]["median"] > 0
    # inbound calls: every signed SWML request answered 200 and its handler started, on
    # both servers, and the kept calls ended between repetitions
    inbound = details["inbound"]
    for impl in ("ours", "bare"):
        assert inbound[impl]["statuses"] == [{"200": inbound["calls"]}], inbound[impl]
        assert inbound[impl]["handled"] == [inbound["calls"]]
    assert inbound["ours"]["server_stats"]["inbound"]["overflow"] == 0
    assert inbound["ours"]["server_stats"]["live_calls"] == 0
    assert result["inbound_calls_per_s"]["session"] > 0
    assert result["inbound_calls_per_s"]["bare_aiohttp"] > 0
    assert result["inbound_ratio"] is not None


@pytest.mark.timeout(60)
def test_instruction_count_clients_run() -> None:
    """The workloads that run.py counts under callgrind (whole commands against the fast
    server, and the session's pieces without it), run plainly."""
    servers = str(ROOT / "benchmarks" / "servers.py")
    with bench_server(servers, "fast", "--lifetime", "50") as (_, info):
        port = str(info["port"])
        runs: list[tuple[str, ...]] = [
            ("--impl", impl, "--port", port, "--count", "200") for impl in ("session", "bare")
        ]
        runs += [("--part", part, "--count", "50") for part in ("deliver", "bare_body")]
        for args in runs:
            run_ok(str(ROOT / "benchmarks" / "instructions.py"), *args)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", ["session", "bare"])
def test_receiver_counted_under_callgrind_exits_after_its_events(impl: str) -> None:
    """run.py counts a receiver's instructions per webhook by running it until N events
    settled; run plainly here, it must exit by itself with status 0."""
    with bench_server(
        str(ROOT / "benchmarks" / "servers.py"),
        *("receiver", "--impl", impl, "--pending", "300", "--calls", "10"),
        *("--exit-after", "100", "--lifetime", "40", "--signed"),
    ) as (receiver, info):
        port = info["url"].split(":")[2].split("/")[0]
        out = run_ok(
            str(ROOT / "benchmarks" / "clients.py"),
            *("loadgen", "--port", port, "--prefix", info["prefix"], "--start", "0"),
            *("--count", "100", "--calls", "10", "--concurrency", "4", "--signed"),
        )
        assert '"200": 100' in out, out[-500:]
        assert receiver.wait(timeout=20) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", ["ours", "bare"])
def test_inbound_server_counted_under_callgrind_exits_after_its_calls(impl: str) -> None:
    """inbound_bench.py counts a server's instructions per inbound call by running it
    until N handlers started; run plainly here, it must exit by itself with status 0."""
    script = str(ROOT / "benchmarks" / "inbound_bench.py")
    with bench_server(script, "server", "--impl", impl, "--exit-after", "60") as (server, info):
        out = run_ok(script, "load", "--port", str(info["port"]), "--count", "60")
        assert '"statuses": {"200": 60}' in out, out[-500:]
        assert server.wait(timeout=20) == 0


def test_soak_runs_a_round_and_reports_the_table() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--flows",
            "12",
            "--rounds",
            "1",
            "--minutes",
            "0",
            "--wait",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "wrong results: 0" in proc.stdout
    assert "left (calls, operations, buffered) (0, 0, 0)" in proc.stdout
