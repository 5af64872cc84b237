"""The ``simulator`` subcommand, run as a subprocess and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web

from signalwire_calls import _signing
from signalwire_calls._cli import build_parser
from signalwire_calls._cli_simulator import _parse_cps

from ..processes import communicate, kill
from .helpers import Receiver, basic_auth

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


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
    try:
        async with asyncio.timeout(15):
            line = (await proc.stdout.readline()).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
    except BaseException:
        await kill(proc)  # a failed start leaves no process behind
        raise
    return proc, match.group(0)


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, bytes, bytes]:
    """SIGTERM, then the exit status and the rest of stdout and stderr."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    out, err = await communicate(proc, 15)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalwire_calls",
        "simulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await communicate(proc, 15)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _dial(to: str, status_url: str | None = None) -> dict[str, object]:
    params: dict[str, object] = {"from": "+15559870000", "to": to, "url": "https://e/s"}
    if status_url is not None:
        params["status_url"] = status_url
        params["status_events"] = ["answered", "ended"]
    return {"command": "dial", "params": params}


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
        code, _, _ = await _stop(proc)
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
    _, err = await communicate(proc, 15)
    assert proc.returncode == 2
    assert b"--callees" in err


def test_parser_requires_a_subcommand() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    args = build_parser().parse_args(["simulator", "--time-scale", "0.5"])
    assert args.time_scale == 0.5


async def test_port_in_use_is_one_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await _run("--port", str(port))
    assert code == 2
    assert err.splitlines() == [f"error: port {port} on 127.0.0.1 is already in use"]
    assert out == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cps", "fast"], "--cps"),
        (["--cps", "-1"], "--cps"),
        (["--time-scale", "0"], "--time-scale"),
        (["--inbound", "ftp://x"], "--inbound"),
        (["--history-limit", "0"], "--history-limit"),
    ],
)
async def test_bad_options_exit_2(args: list[str], needle: str) -> None:
    code, _, err = await _run("--port", "0", *args)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert needle in err


def test_cps_values() -> None:
    assert _parse_cps("0") is None
    assert _parse_cps("none") is None
    assert _parse_cps("2.5") == 2.5
    for bad in ("-3", "fast"):
        with pytest.raises(ValueError):  # noqa: PT011 - float()'s own message
            _parse_cps(bad)


def test_help_documents_the_file_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulator", "--help"])
    text = capsys.readouterr().out
    for needle in (
        "--callees",
        '"behavior": "answer"',
        "hangup_after",
        "--faults",
        "webhook_rules",
        "command_rules",
        "--inbound",
        "--inbound-count",
        "--inbound-interval",
        "--cps",
        "--allow-external-webhooks",
    ):
        assert needle in text, needle


async def test_faults_file_applies(tmp_path: Path) -> None:
    plan = tmp_path / "faults.json"
    plan.write_text(
        json.dumps(
            {
                "seed": 3,
                "command_rules": [
                    {"action": "status", "status": 429, "command": "dial", "retry_after": 2}
                ],
            }
        )
    )
    proc, base_url = await _start("--time-scale", "0.01", "--faults", str(plan))
    try:
        headers = {"Authorization": basic_auth("test-project", "test-token")}
        async with aiohttp.ClientSession() as session:
            url = base_url + "/api/calling/calls"
            async with session.post(url, json=_dial("+15550001"), headers=headers) as resp:
                assert resp.status == 429
                assert float(resp.headers["Retry-After"]) == pytest.approx(0.02)
            async with session.post(url, json=_dial("+15550001"), headers=headers) as resp:
                assert resp.status == 200
    finally:
        code, _, err = await _stop(proc)
    assert code == 0, err


async def test_bad_faults_file_names_the_field(tmp_path: Path) -> None:
    plan = tmp_path / "faults.json"
    plan.write_text(json.dumps({"webhook_rules": [{"action": "explode"}]}))
    code, _, err = await _run("--faults", str(plan))
    assert code == 2
    assert err.splitlines() == [
        "error: --faults: webhook_rules[0].action: must be one of drop, duplicate, delay, reorder"
    ]


async def test_example_callees_file(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    proc, base_url = await _start(
        "--time-scale", "0.01", "--cps", "0", "--callees", str(EXAMPLES / "callees.json")
    )
    try:
        headers = {"Authorization": basic_auth("test-project", "test-token")}
        async with aiohttp.ClientSession() as session:
            url = base_url + "/api/calling/calls"
            for number in ("+15551230001", "+15551230004", "+15551230006"):
                body = _dial(number, receiver.url(f"/{number}"))
                async with session.post(url, json=body, headers=headers) as resp:
                    assert resp.status == 200

        def outcomes() -> dict[str, str]:
            return {
                h.url.rsplit("/", 1)[-1]: h.json["params"]["end_reason"] or "answered"
                for h in receiver.hits
            }

        async with asyncio.timeout(10):
            while len(outcomes()) < 3:
                await asyncio.sleep(0.02)
        # the answering party is still on the line; the busy and failing ones ended
        assert outcomes() == {
            "+15551230001": "answered",
            "+15551230004": "busy",
            "+15551230006": "error",
        }
    finally:
        await _stop(proc)
        await receiver.stop()


async def test_inbound_calls_from_the_cli() -> None:
    seen: list[tuple[str, bytes, bool]] = []
    verifier = _signing.Verifier("k1")

    async def swml(request: web.Request) -> web.Response:
        body = await request.read()
        ok = verifier.verify(str(request.url), body, request.headers.get)
        seen.append((str(request.url), body, ok))
        document = {"version": "1.0.0", "sections": {"main": ["answer", {"sleep": -1}]}}
        return web.json_response(document, status=200 if ok else 403)

    app = web.Application()
    app.router.add_post("/swml", swml)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/swml"
    proc, _ = await _start(
        "--time-scale",
        "0.01",
        "--signing-key",
        "k1",
        "--inbound",
        url,
        "--inbound-count",
        "2",
        "--inbound-interval",
        "5",
        "--inbound-from",
        "+15557770001",
        "--inbound-to",
        "+15557770002",
    )
    try:
        assert proc.stdout is not None
        lines = []
        async with asyncio.timeout(10):
            for _ in range(2):
                lines.append((await proc.stdout.readline()).decode())
    finally:
        code, _, err = await _stop(proc)
        await runner.cleanup()
    assert code == 0, err
    assert len(seen) == 2
    assert all(ok for _, _, ok in seen)
    call = msgspec.json.decode(seen[0][1])["call"]
    assert (call["from"], call["to"], call["direction"]) == (
        "+15557770001",
        "+15557770002",
        "inbound",
    )
    for line in lines:
        assert re.fullmatch(
            r"inbound call [0-9a-f-]{36} from \+15557770001 to \+15557770002: answered\n", line
        ), line


async def test_inbound_to_a_non_loopback_url_needs_the_flag() -> None:
    async def swml(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"sections": {"main": ["answer", {"sleep": -1}]}})

    app = web.Application()
    app.router.add_post("/swml", swml)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    # 0.0.0.0 is not a loopback address, but connecting to it stays on this machine.
    url = f"http://0.0.0.0:{runner.addresses[0][1]}/swml"
    got = []
    try:
        for flag in ([], ["--allow-external-webhooks"]):
            proc, _ = await _start("--time-scale", "0.01", "--inbound", url, *flag)
            assert proc.stdout is not None
            try:
                async with asyncio.timeout(10):
                    got.append((await proc.stdout.readline()).decode())
            finally:
                await _stop(proc)
    finally:
        await runner.cleanup()
    assert ": failed (SWML request not sent:" in got[0]
    assert "not a loopback address" in got[0]
    assert got[1].rstrip().endswith(": answered")
