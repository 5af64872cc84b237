"""The examples run against the simulator in the suite, so they never rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .redis_server import require_redis_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str) -> str:
    # no REDIS_URL either: an example needing Redis starts its own, never the shared one
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_") and k != "REDIS_URL"
    }
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_quickstart_runs_the_whole_flow() -> None:
    out = _run("quickstart.py")
    assert "caller chose: digit '1'" in out
    assert "recording: https://" in out
    assert "call ended: hangup" in out
    assert "detection: machine (MACHINE)" in out
    assert "detector done: machine, beep=True" in out
    assert "0 expired" in out
    for name in (
        "-> dial",
        "<- calling.call.state",
        "-> calling.collect",
        "<- calling.call.detect",
    ):
        assert name in out


def test_inbound_bot_answers_three_callers() -> None:
    out = _run("inbound_bot.py")
    assert "+15553000001 pressed '1' (digit)" in out
    assert "+15553000002 pressed '2' (digit)" in out
    assert "+15553000002 left a message: https://" in out
    assert "+15553000009 pressed '9' (digit)" in out
    assert "3 calls handled, 0 failed, 0 still live" in out


def test_campaign_example_runs_and_prints_the_summary() -> None:
    out = _run("campaign.py")
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
    assert lines["total"] == "200"
    # the example's callee mix, outcome by outcome
    expected = {"completed": 136, "busy": 20, "no_answer": 20, "failed": 4, "machine": 20}
    assert {k: int(lines[k]) for k in expected} == expected
    # busy and no-answer targets were tried twice (one retry each)
    assert "attempts: 240 placed" in out
    assert "dials per simulated second" in out


def test_aiohttp_mount_serves_webhooks_from_the_users_app() -> None:
    out = _run("aiohttp_mount.py")
    assert "/hooks/signalwire/events" in out
    assert "POST /calls -> 202" in out
    assert "-> {'state': 'done', 'digits': '1'}" in out
    # the webhooks came in through the app's mounted routes, and the call has ended
    health = out.splitlines()[-1]
    assert health.startswith("GET /health -> {'live_calls': 0, 'webhooks': ")
    assert int(health.rsplit(" ", 1)[1].rstrip("}")) > 0


def test_fastapi_mount_serves_webhooks_under_uvicorn() -> None:
    out = _run("fastapi_mount.py")
    assert "/hooks/signalwire/events" in out
    assert "POST /calls -> 202" in out
    assert "-> {'state': 'done', 'digits': '2'}" in out
    health = out.splitlines()[-1]
    assert health.startswith("GET /health -> {'live_calls': 0, 'webhooks': ")
    assert int(health.rsplit(" ", 1)[1].rstrip("}")) > 0


def test_flows_example_passes_under_pytest() -> None:
    """The pytest file a user copies, run as they would run it: its own pytest process,
    pytest-asyncio in strict mode, warnings as errors."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "PYTEST_")) and k != "PYTHONWARNINGS"
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLES / "test_flows.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-o",
            "asyncio_mode=strict",
            "-W",
            "error",
        ],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert output.strip().splitlines()[-1].startswith("5 passed"), output


def test_scale_out_routes_every_webhook_to_its_worker() -> None:
    require_redis_server()
    out = _run("scale_out.py")
    workers = [line for line in out.splitlines() if line.startswith("worker ")]
    assert len(workers) == 3
    for line in workers:
        assert "10 calls, 10 pressed 1" in line
        assert "0 expired, 0 still live" in line
    stopped = [line for line in out.splitlines() if "receiver stopped" in line]
    assert len(stopped) == 2
    for line in stopped:
        assert "0 dead-lettered, 0 refused with 503" in line
        assert " 0 forwarded" not in line  # both receivers took their share
    assert "0 webhook(s) dead-lettered in all" in out
