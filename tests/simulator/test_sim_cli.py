"""The ``simulator`` subcommand, run as a subprocess and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from signalwire_calls._cli import build_parser

from .helpers import basic_auth


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalwire_calls",
        "simulator",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        line = (await proc.stdout.readline()).decode()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert match, line
    return proc, match.group(0)


async def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    callees = tmp_path / "callees.json"
    callees.write_text(json.dumps({"+15550001": {"behavior": "busy", "after": 1}}))
    proc, base_url = await _start(
        "--project",
        "p1",
        "--token",
        "t1",
        "--signing-key",
        "k1",
        "--time-scale",
        "0.01",
        "--callees",
        str(callees),
    )
    try:
        body = {
            "command": "dial",
            "params": {"from": "+1", "to": "+15550001", "url": "https://e/s"},
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(
                base_url + "/api/calling/calls",
                json=body,
                headers={"Authorization": basic_auth("p1", "t1")},
            ) as resp:
                assert resp.status == 200
                leg = await resp.json()
            assert leg["status"] == "queued"
            async with session.post(base_url + "/api/calling/calls", json=body) as resp:
                assert resp.status == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await proc.wait()
    assert code == 0


async def test_cli_bad_callees_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalwire_calls",
        "simulator",
        "--callees",
        str(bad),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"--callees" in err


def test_parser_requires_a_subcommand() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    args = build_parser().parse_args(["simulator", "--time-scale", "0.5"])
    assert args.time_scale == 0.5
