"""Distributed campaigns from the command line: real worker processes on a real
``redis-server``, against an in-test simulator; one is killed with SIGKILL mid-run, and
``campaign report`` reads the whole campaign from yet another process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from signalwire_calls._cli import main
from signalwire_calls.testing import Callee

from .processes import communicate, kill
from .redis_server import RedisServer, _free_port
from .test_campaign import CALLER, SWML, T, calls_per_number, live_calls, make_simulator
from .test_campaign_cli import FLOWS, sim_env, start_cli, write_targets
from .test_campaign_redis import redis_state

N = 600


async def _done(client: Redis, name: str) -> int:
    return int(await client.hget(f"swc:{{{name}}}:stats", "s:done") or 0)


async def _consumer_of(client: Redis, name: str, pid: int) -> str:
    consumers: list[dict[str, Any]] = await client.xinfo_consumers(
        f"swc:{{{name}}}:targets", "workers"
    )
    names = [c["name"] for c in consumers if f":{pid}:" in c["name"]]
    assert len(names) == 1, consumers
    return str(names[0])


async def test_sigkill_a_worker_its_targets_are_taken_over_none_dialled_twice(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    targets_csv = write_targets(tmp_path / "targets.csv", N, talk=5.0)
    name = "killed"
    common = [
        "--from", CALLER, "--swml", json.dumps(SWML), "--flow", "flows:talk",
        "--cps", "300", "--concurrency", "20", "--progress", "off", "--json",
        "--redis", redis_server.url, "--name", name, "--claim-idle", "1.5",
    ]  # fmt: skip
    async with (
        make_simulator() as sim,
        Redis.from_url(redis_server.url, decode_responses=True) as client,
    ):
        sim.script("*", Callee.answers(after=1.0))
        # two workers load the targets (each is added once), the third joins without
        procs = [
            await start_cli(sim, tmp_path, str(targets_csv), *common),
            await start_cli(sim, tmp_path, str(targets_csv), *common),
            await start_cli(sim, tmp_path, *common),
        ]
        victim = procs[1]
        # the progress of the whole campaign, from a process that is no worker
        follower = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signalwire_calls", "campaign", "report", "--follow",
            "--progress", "log", "--progress-interval", "0.2",
            "--redis", redis_server.url, "--name", name,
            cwd=tmp_path, env=sim_env(sim), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(follower)
        try:
            with anyio.fail_after(T):
                while await _done(client, name) < N // 4:
                    for p in procs:
                        if p.returncode is not None:
                            _, err = await p.communicate()
                            raise AssertionError(f"a worker ended early: {err.decode()[-2000:]}")
                    await anyio.sleep(0.01)
            victim.kill()
            await victim.communicate()
            assert victim.returncode == -signal.SIGKILL
            # what the dead worker held, read before anyone can take it over
            consumer = await _consumer_of(client, name, victim.pid)
            pending = await client.xpending_range(
                f"swc:{{{name}}}:targets", "workers", "-", "+", 1000, consumer
            )
            state = await redis_state(redis_server, name)
            by_entry = {t["id"]: key for key, t in state.items()}
            held = {by_entry[p["message_id"]] for p in pending}
            mid_dial = {k for k in held if state[k]["st"] == "active"}
            not_dialled = held - mid_dial
            assert mid_dial  # it was killed with calls under way
            assert all(state[k]["s"] == "dialing" for k in mid_dial)
            dialled_before = calls_per_number(sim)
            results = []
            logs: list[str] = []
            with anyio.fail_after(T):
                for proc in (procs[0], procs[2]):
                    out, err = await proc.communicate()
                    assert proc.returncode == 0, err.decode()
                    results.append(json.loads(out.decode().strip().splitlines()[-1]))
                    logs.append(err.decode())
                followed, progress = await follower.communicate()
            assert follower.returncode == 0, progress.decode()
        finally:
            for proc in procs:
                await kill(proc)
        # the dead worker's calls stay up: nobody knows them any more
        orphans = {sim.calls[c].to for c in live_calls(sim)}
        for call_id in live_calls(sim):
            sim.hangup(call_id)
        per_number = calls_per_number(sim)
        final = await redis_state(redis_server, name)
    assert orphans <= mid_dial
    # no number dialled twice; the ones it was dialing are "unknown" and not dialled again
    assert max(per_number.values()) == 1
    assert all(per_number.get(k, 0) == dialled_before.get(k, 0) for k in mid_dial)
    assert {k for k, t in final.items() if t.get("o") == "unknown"} == mid_dial
    assert all("stopped answering while dialing" in final[k]["err"] for k in mid_dial)
    # the ones it held but had not dialled were taken over and dialled once, elsewhere
    assert all(per_number[k] == 1 and f":{victim.pid}:" not in final[k]["w"] for k in not_dialled)
    # every other target was dialled exactly once
    assert len(per_number) >= N - len(mid_dial)
    assert all(per_number[k] == 1 for k in final if k not in mid_dial)
    expected = {"completed": N - len(mid_dial), "unknown": len(mid_dial)}
    for summary in results:  # each survivor reports the whole campaign
        assert summary["targets"] == N
        assert summary["outcomes"] == expected
    assert sum(s["dials"] for s in results) < N
    # whoever took over said so (one line each, not one per target)
    assert sum(log.count("mid-dial on a worker that stopped answering") for log in logs) >= 1

    # the follower saw it go, then printed the summary and ended by itself
    lines = progress.decode().splitlines()
    assert any(f"/{N} done" in line and "campaign: " in line for line in lines)
    assert f"campaign finished: {N}/{N} done" in progress.decode()
    assert "unknown" in followed.decode()
    assert "total" in followed.decode()

    # the report, from another process
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signalwire_calls", "campaign", "report",
        "--redis", redis_server.url, "--name", name, "--json",
        cwd=tmp_path, env=sim_env(sim), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await communicate(proc, T)
    assert proc.returncode == 0, err.decode()
    exported = json.loads(out.decode())
    assert exported["summary"]["outcomes"] == expected
    assert exported["summary"]["targets"] == N
    rows = {row["key"]: row for row in exported["targets"]}
    assert len(rows) == N
    assert {k for k, row in rows.items() if row["outcome"] == "unknown"} == mid_dial
    assert {row["result"] for k, row in rows.items() if k not in mid_dial} == {"talked"}
    assert rows[f"+1555{0:07d}"]["data"] == {"name": "customer 0", "talk": "5.0"}


# ------------------------------------------------------------------------ arguments


def _run_args(targets: Path, *extra: str) -> list[str]:
    return ["campaign", "run", str(targets), "--from", CALLER, "--progress", "off", *extra]


def test_distributed_arguments_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = write_targets(tmp_path / "t.csv", 3)
    url = "redis://127.0.0.1:1/0"
    cases = [
        (_run_args(targets, "--simulate", "--redis", url), "--redis: needs --name NAME"),
        (_run_args(targets, "--simulate", "--name", "x"), "--name: needs --redis URL"),
        (
            _run_args(targets, "--simulate", "--redis", url, "--name", "x", "--journal", "j.db"),
            "--journal: not with --redis",
        ),
        (
            _run_args(targets, "--simulate", "--redis", url, "--name", "x", "--resume"),
            "--resume: not with --redis",
        ),
        (_run_args(targets, "--simulate", "--redis", url, "--name", "a b"), "name: a campaign"),
        (
            ["campaign", "run", "--from", CALLER, "--simulate", "--redis", url, "--name", "x"],
            "--simulate: needs TARGETS.csv",
        ),
        (["campaign", "run", "--from", CALLER, "--simulate"], "TARGETS.csv: required"),
        (["campaign", "report", "--redis", url], "--redis: needs --name"),
        (["campaign", "report"], "give a JOURNAL file, or --redis URL --name NAME"),
        (
            ["campaign", "report", "j.db", "--redis", url, "--name", "x"],
            "give a JOURNAL file, or --redis URL --name NAME (not both)",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_unreachable_redis_is_an_error_naming_the_url_not_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = write_targets(tmp_path / "t.csv", 3)
    port = _free_port()
    url = f"redis://worker:hunter2@127.0.0.1:{port}/0"
    rc = main(_run_args(targets, "--simulate", "--redis", url, "--name", "x"))
    err = capsys.readouterr().err
    assert rc == 1
    assert f"cannot reach redis://worker:***@127.0.0.1:{port}/0" in err
    assert "hunter2" not in err
    assert main(["campaign", "report", "--redis", url, "--name", "x"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach redis://worker:***@127.0.0.1:{port}/0" in err
    assert "hunter2" not in err


def test_report_of_a_campaign_that_is_not_there(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["campaign", "report", "--redis", redis_server.url, "--name", "ghost"]) == 1
    assert "no campaign 'ghost'" in capsys.readouterr().err
