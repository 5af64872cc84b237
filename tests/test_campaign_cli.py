"""``signalwire-calls campaign``: the command line, in-process for arguments and as a real
subprocess against an in-test simulator for signals and crashes (SIGINT, SIGKILL)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from signalwire_calls import Call, silence
from signalwire_calls._cli import main
from signalwire_calls.campaign import Campaign, Target, read_report, read_targets_csv
from signalwire_calls.testing import Callee, Simulator

from .processes import communicate, kill
from .test_campaign import (
    CALLER,
    SWML,
    T,
    calls_per_number,
    journal_targets,
    live_calls,
    make_session,
    make_simulator,
    number,
)

FLOWS = """
from signalwire_calls import silence


async def talk(call, target):
    play = await call.play(silence(float(target.data.get("talk") or 1)))
    await play.finished(timeout=30)
    return "talked"


async def broken(call, target):
    raise RuntimeError("broken flow")
"""


async def talk(call: Call, target: Target) -> str:
    """The same flow as ``flows:talk``, for the in-process resume."""
    play = await call.play(silence(float(target.data.get("talk") or 1)))
    await play.finished(timeout=T)
    return "talked"


def write_targets(path: Path, count: int, talk: float = 1.0, start: int = 0) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "name", "talk"])
        for i in range(start, start + count):
            writer.writerow([number(i), f"customer {i}", talk])
    return path


def sim_env(sim: Simulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    env.update(
        SIGNALWIRE_SPACE=sim.base_url,
        SIGNALWIRE_PROJECT_ID=sim.project,
        SIGNALWIRE_API_TOKEN=sim.token,
        SIGNALWIRE_SIGNING_KEY=sim.signing_key or "",
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    return env


async def start_cli(sim: Simulator, cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalwire_calls",
        "campaign",
        "run",
        *args,
        cwd=cwd,
        env=sim_env(sim),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def done_count(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT COUNT(*) FROM targets WHERE state = 'done'").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(row[0])


async def wait_for_done(journal: Path, count: int, proc: asyncio.subprocess.Process) -> None:
    with anyio.fail_after(T):
        while done_count(journal) < count:
            assert proc.returncode is None, "the campaign ended early"
            await anyio.sleep(0.01)


# ------------------------------------------------------------------------ crashes, signals


async def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    targets_csv = write_targets(tmp_path / "targets.csv", 400, talk=5.0)
    journal = tmp_path / "campaign.db"
    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=1.0))
        proc = await start_cli(
            sim,
            tmp_path,
            str(targets_csv),
            "--from",
            CALLER,
            "--swml",
            json.dumps(SWML),
            "--flow",
            "flows:talk",
            "--cps",
            "400",
            "--concurrency",
            "40",
            "--journal",
            str(journal),
            "--progress",
            "off",
        )
        try:
            await wait_for_done(journal, 100, proc)
        finally:
            await kill(proc)
        assert proc.returncode == -signal.SIGKILL
        before = journal_targets(journal)
        with closing(sqlite3.connect(journal)) as db:
            mid_dial = {
                k
                for (k,) in db.execute(
                    "SELECT t.key FROM attempts a JOIN targets t ON t.id = a.target_id "
                    "WHERE a.status = 'dialing'"
                )
            }
        final_before = {k for k, (state, _, _) in before.items() if state == "done"}
        dialled_before = calls_per_number(sim)
        assert len(final_before) >= 100
        assert mid_dial
        assert final_before.isdisjoint(mid_dial)
        # calls the dead process was on stay up until someone hangs up: no one knows them
        orphans = {sim.calls[c].to for c in live_calls(sim)}
        assert orphans <= mid_dial

        async with make_session(sim) as session:
            resumed = Campaign(
                session,
                read_targets_csv(targets_csv),
                talk,
                from_=CALLER,
                swml=SWML,
                cps=400,
                concurrency=40,
                journal=journal,
                progress="off",
                handle_signals=False,
            )
            report = await resumed.run()
        for call_id in live_calls(sim):
            sim.hangup(call_id)
        after = calls_per_number(sim)
    rows = journal_targets(journal)
    assert len(rows) == 400
    assert all(state == "done" for state, _, _ in rows.values())
    # a target with a final outcome before the crash was not dialled again
    assert all(after[k] == dialled_before[k] == 1 for k in final_before)
    # the ones in flight at the crash are "unknown" and were not dialled again
    assert {k for k, (_, o, _) in rows.items() if o == "unknown"} == mid_dial
    assert all(after[k] == dialled_before[k] for k in mid_dial)
    # every other target was dialled exactly once in all
    rest = set(rows) - final_before - mid_dial
    assert all(after[k] == 1 for k in rest)
    assert max(after.values()) == 1
    assert report.outcomes == {"completed": 400 - len(mid_dial), "unknown": len(mid_dial)}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_the_cli_gracefully_and_resume_finishes(
    tmp_path: Path, signum: int
) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    targets_csv = write_targets(tmp_path / "targets.csv", 200, talk=3.0)
    journal = tmp_path / "campaign.db"
    common = [
        str(targets_csv),
        "--from",
        CALLER,
        "--swml",
        json.dumps(SWML),
        "--flow",
        "flows:talk",
        "--cps",
        "300",
        "--concurrency",
        "20",
        "--journal",
        str(journal),
        "--progress",
        "off",
    ]
    async with make_simulator() as sim:
        sim.script("*", Callee.answers(after=0.5))
        proc = await start_cli(sim, tmp_path, *common)
        try:
            await wait_for_done(journal, 30, proc)
        except BaseException:
            await kill(proc)
            raise
        proc.send_signal(signum)
        out, err = await communicate(proc, T)
        assert proc.returncode == 130, err.decode()
        assert "canceled" not in out.decode()
        assert live_calls(sim) == []  # the live calls were let finish
        first = read_report(journal)
        assert first.outcomes.get("completed", 0) < 200
        assert "unknown" not in first.outcomes

        proc = await start_cli(sim, tmp_path, *common, "--resume", "--json")
        out, err = await communicate(proc, T)
        assert proc.returncode == 0, err.decode()
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["outcomes"] == {"completed": 200}
        assert Counter(calls_per_number(sim).values()) == Counter({1: 200})
        assert live_calls(sim) == []


# ------------------------------------------------------------------------ dry run, report


def test_simulate_dry_run_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    targets_csv = write_targets(tmp_path / "targets.csv", 80)
    journal = tmp_path / "dry.db"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rc = main(
            [
                "campaign",
                "run",
                str(targets_csv),
                "--from",
                CALLER,
                "--simulate",
                "--time-scale",
                "0.01",
                "--flow",
                "flows:talk",
                "--amd",
                "--cps",
                "50",
                "--concurrency",
                "30",
                "--retry",
                "busy=1@5",
                "--journal",
                str(journal),
                "--progress",
                "off",
                "--mix",
                "answer=60,busy=10,no_answer=10,fail=10,voicemail=10",
            ]
        )
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "simulating" in out.err
    report = read_report(journal)
    assert report.targets == 80
    assert set(report.outcomes) <= {"completed", "busy", "no_answer", "failed", "machine"}
    assert report.outcomes["completed"] >= 30
    assert "completed" in out.out
    assert "total" in out.out
    # busy targets were tried twice
    assert report.attempts.get("busy", 0) == 2 * report.outcomes.get("busy", 0)

    assert main(["campaign", "report", str(journal)]) == 0
    text = capsys.readouterr().out
    assert "completed" in text
    assert "80" in text
    assert main(["campaign", "report", str(journal), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["targets"]) == 80
    assert data["summary"]["outcomes"] == report.outcomes
    assert {t["data"]["name"] for t in data["targets"]} == {f"customer {i}" for i in range(80)}
    assert main(["campaign", "report", str(journal), "--csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 80
    assert Counter(r["outcome"] for r in rows) == Counter(report.outcomes)
    assert rows[0]["name"] == "customer 0"
    assert rows[0]["talk"] == "1.0"


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["campaign", *args])
    return rc, capsys.readouterr().err


def test_bad_arguments_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_targets(tmp_path / "good.csv", 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,name\n+15550001,x\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("number,name\n+15550001,x\n,y\n")
    base = ["run", "--from", CALLER, "--simulate", "--progress", "off"]
    cases: list[tuple[list[str], str]] = [
        ([*base, str(bad)], "number: "),
        ([*base, str(empty)], "line 3: empty number"),
        ([*base, str(tmp_path / "missing.csv")], "cannot read"),
        ([*base, str(good), "--flow", "nomodule_xyz:f"], "--flow: cannot import"),
        ([*base, str(good), "--flow", "justaname"], "MODULE:FUNCTION"),
        ([*base, str(good), "--mix", "answer=1,ghost=2"], "--mix: unknown callee 'ghost'"),
        ([*base, str(good), "--retry", "busy=two@3"], "--retry: expected"),
        ([*base, str(good), "--retry", "completed=1@3"], "cannot be retried"),
        ([*base, str(good), "--concurrency", "0"], "--concurrency"),
        ([*base, str(good), "--cps", "0"], "--cps"),
        ([*base, str(good), "--swml", "[1]"], "--swml: must be a JSON object"),
        (["run", "--from", CALLER, str(good)], "--url or --swml"),
        (["report", str(tmp_path / "nope.db")], "does not exist"),
    ]
    for args, message in cases:
        rc, err = _run_cli(args, capsys)
        assert rc == 2, args
        assert message in err, (args, err)


def test_an_existing_journal_needs_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets_csv = write_targets(tmp_path / "t.csv", 5)
    journal = tmp_path / "j.db"
    args = [
        "run",
        str(targets_csv),
        "--from",
        CALLER,
        "--simulate",
        "--time-scale",
        "0.001",
        "--cps",
        "100",
        "--journal",
        str(journal),
        "--progress",
        "off",
    ]
    assert _run_cli(args, capsys)[0] == 0
    rc, err = _run_cli(args, capsys)
    assert rc == 2
    assert "pass --resume" in err
    rc, _ = _run_cli([*args, "--resume"], capsys)
    assert rc == 0
    report = read_report(journal)
    assert report.targets == 5
    assert sum(report.outcomes.values()) == 5
    assert sum(v for k, v in report.attempts.items() if k != "not_sent") == 5


def test_credentials_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SIGNALWIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    targets_csv = write_targets(tmp_path / "t.csv", 2)
    rc, err = _run_cli(
        ["run", str(targets_csv), "--from", CALLER, "--url", "https://example.com/swml"],
        capsys,
    )
    assert rc == 2
    assert "SIGNALWIRE_" in err
