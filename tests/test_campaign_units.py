"""Campaign parts on their own: pacing and AIMD on a made-up clock, the journal, CSV
targets, report export, configuration errors, the progress view."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import logging
import math
import random
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from signalwire_calls import (
    APIStatusError,
    CallSession,
    ConfigurationError,
    ConnectError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    ValidationError,
)
from signalwire_calls._journal import Batch, Journal
from signalwire_calls._pacing import LAG, TOLERANCE, Pacer
from signalwire_calls._progress import make_reporter, render_report, stats_line
from signalwire_calls.campaign import (
    Campaign,
    CampaignReport,
    CampaignStats,
    CSVTargets,
    DialOptions,
    MachineDetection,
    RetryRule,
    Target,
    _not_sent,
    export_report,
    read_report,
)

# ------------------------------------------------------------------------ pacing


def drive(pacer: Pacer, dials: int, lateness: list[float], start: float = 0.0) -> list[float]:
    """Dial ``dials`` times as the dispatcher does, each wake ``lateness[i]`` late."""
    now = start
    times: list[float] = []
    for i in range(dials):
        now += pacer.delay(now) + lateness[i % len(lateness)]
        assert pacer.delay(now) == 0.0
        pacer.take(now)
        times.append(now)
    return times


def max_in_window(times: list[float], window: float = 1.0) -> int:
    most = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_pacing_on_time_is_exact() -> None:
    pacer = Pacer(10)
    times = drive(pacer, 101, [0.0])
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.1}
    assert max_in_window(times) <= 11


@pytest.mark.parametrize("cps", [1, 5, 10, 50, 500])
def test_loop_lag_neither_bursts_nor_lowers_the_rate(cps: int) -> None:
    rng = random.Random(cps)
    interval = 1 / cps
    # the event loop wakes the dialer up to 2 ms late, at random: the schedule is kept
    lateness = [rng.uniform(0, min(LAG, 0.5 * interval)) for _ in range(997)]
    times = drive(Pacer(cps), 20 * cps + 1, lateness)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved == pytest.approx(cps, rel=0.01)
    assert max_in_window(times) <= cps + 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval - min(LAG, TOLERANCE * interval) - 1e-9


@pytest.mark.parametrize("cps", [10, 500])
def test_lag_beyond_the_allowance_is_lost_not_burst(cps: int) -> None:
    rng = random.Random(cps)
    interval = 1 / cps
    lateness = [rng.uniform(0, 0.9 * interval) for _ in range(997)]
    times = drive(Pacer(cps, lag=math.inf), 20 * cps + 1, lateness)
    assert max_in_window(times) <= cps + 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval * (1 - TOLERANCE) - 1e-9
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved < cps  # what cannot be made up without a burst is lost


def test_a_long_stall_is_not_made_up_with_a_burst() -> None:
    pacer = Pacer(10)
    times = drive(pacer, 5, [0.0])
    now = times[-1] + 3.0  # 30 intervals late
    pacer.take(now)
    assert pacer.delay(now) == pytest.approx(0.1)  # one token, nothing made up
    times += [now, *drive(pacer, 30, [0.0], start=now)]
    assert max_in_window(times) <= 11


def test_no_rate_means_no_wait() -> None:
    pacer = Pacer(None)
    for i in range(100):
        assert pacer.delay(i * 1e-6) == 0.0
        pacer.take(i * 1e-6)
    assert pacer.observed(1e-4) == 100


def test_throttle_pauses_and_halves_once_per_pause() -> None:
    pacer = Pacer(20)
    drive(pacer, 10, [0.0])
    assert pacer.throttle(1.0, 2.0) is True
    assert pacer.rate == 10
    # more 429s of dials that were in flight: one signal, the pause only grows
    assert pacer.throttle(1.01, 2.5) is False
    assert pacer.rate == 10
    assert pacer.delay(1.02) == pytest.approx(3.51 - 1.02)
    assert pacer.throttles == 1
    # a 429 after the pause lowers it again
    assert pacer.throttle(4.0, None) is True
    assert pacer.rate == 5
    assert pacer.delay(4.0) == pytest.approx(1.0)  # the default pause


def test_additive_increase_back_to_the_ceiling() -> None:
    pacer = Pacer(20)
    pacer.throttle(0.0, 1.0)
    assert pacer.rate == 10
    rates = []
    now = 1.0
    while now < 12:
        now += max(pacer.delay(now), 0.01)
        pacer.take(now)
        rates.append(pacer.rate)
    # +2 (a tenth of 20) per second, starting one second after the pause ended
    assert rates[0] == 10
    assert sorted(set(rates)) == [10, 12, 14, 16, 18, 20]
    assert rates[-1] == 20


def test_without_a_limit_a_throttle_sets_one_then_lifts_it() -> None:
    pacer = Pacer(None)
    for i in range(100):
        pacer.take(i / 100)  # 100 dials in the last second
    pacer.throttle(0.995, 0.5)
    seen: list[float | None] = [pacer.rate]
    now = 1.5
    while seen[-1] is not None and now < 60:
        now += max(pacer.delay(now), 0.001)
        pacer.take(now)
        seen.append(pacer.rate)
    assert seen[0] == 50
    assert seen[-1] is None  # twice the rate that drew the 429: no limit again
    assert seen[-2] is not None
    assert seen[-2] >= 95


def test_pacer_refuses_a_bad_rate() -> None:
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="cps"):
            Pacer(bad)


# ------------------------------------------------------------------------ journal


def start(journal: Journal, key: str, number: str = "+1", data: str = "{}") -> tuple[int, Batch]:
    """A new target and its first attempt, as the dispatcher writes them."""
    tid = journal.new_target(key, number, data, 1.0)
    return tid, journal.begin_attempt(tid, 1, 1.0, resumed=False)


def done(journal: Journal, tid: int, status: str = "completed", **fields: Any) -> None:
    journal.finish(tid, 1, status, state="done", outcome=status, attempts=1, now=2.0, **fields)


async def test_group_commit_one_transaction_per_turn(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.open()
    try:
        started = [start(journal, f"k{i}", f"+1{i}") for i in range(1000)]
        batches = [b for _, b in started]
        assert len({id(b) for b in batches}) == 1  # all in one group
        assert journal.commits == 0
        await batches[0].wait()
        assert journal.commits == 1
        assert journal.writes == 2000
        assert [tid for tid, _ in started] == list(range(1, 1001))
        # non-urgent writes wait for the batch delay (or ride along with urgent ones)
        for tid, _ in started[:10]:
            done(journal, tid, call_id=f"c{tid}")
        await asyncio.sleep(0)
        assert journal.commits == 1
        await asyncio.sleep(journal.batch_delay * 2)
        assert journal.commits == 2
        # another connection sees what was committed
        with closing(sqlite3.connect(tmp_path / "j.db")) as db:
            assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 1000
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        journal.close()


async def test_an_attempt_is_on_disk_before_its_batch_resolves(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.open()
    try:
        _, batch = start(journal, "k", "+1555", '{"a": 1}')
        with closing(sqlite3.connect(tmp_path / "j.db")) as db:
            assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
        await batch.wait()
        assert batch.committed
        with closing(sqlite3.connect(tmp_path / "j.db")) as db:
            row = db.execute("SELECT status FROM attempts WHERE target_id = 1").fetchone()
            assert row == ("dialing",)
    finally:
        journal.close()


async def test_recover_marks_mid_dial_targets_unknown(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    journal.open()
    tid, batch = start(journal, "done", "+1")
    await batch.wait()
    done(journal, tid)
    _, batch = start(journal, "crashed", "+2")
    await batch.wait()
    tid, batch = start(journal, "retry", "+3")
    await batch.wait()
    journal.finish(tid, 1, "busy", state="waiting", outcome=None, attempts=1, now=2, next_at=99.0)
    journal.flush()
    # the process dies here: what a crash leaves is the file, nothing else
    crashed, journal._db = journal.db, None
    journal._drop_lock()  # the dead process's lock goes with it

    again = Journal(path)
    again.open()
    try:
        assert again.recover() == 1
        states = again.states()
        assert states["done"].state == "done"
        assert states["done"].outcome == "completed"
        assert states["crashed"].outcome == "unknown"
        assert states["crashed"].tries == 1
        assert states["retry"].state == "waiting"
        assert states["retry"].next_at == 99.0
        assert again.attempt_counts() == {"completed": 1, "unknown": 1, "busy": 1}
        assert again.recover() == 0  # idempotent
    finally:
        again.close()
        crashed.close()


async def test_one_campaign_writes_a_journal_others_may_read_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = Journal(path)
    first.open()
    try:
        _, batch = start(first, "k")
        await batch.wait()
        with pytest.raises(OSError, match="in use by another running campaign"):
            Journal(path).open()
        report = read_report(path)  # a reader is welcome meanwhile
        assert report.outcomes == {"active": 1}
        assert report.attempts == {"dialing": 1}
    finally:
        first.close()
    second = Journal(path)
    second.open()  # free again once closed
    second.close()


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OSError, match="not a campaign journal"):
        Journal(bad).open()
    with pytest.raises(FileNotFoundError):
        read_report(tmp_path / "missing.db")


def test_journal_throughput_figure(tmp_path: Path) -> None:
    """Not a speed assertion: the journal commits thousands of rows in a few batches."""

    async def main() -> tuple[int, int]:
        journal = Journal(tmp_path / "j.db")
        journal.open()
        for i in range(5000):
            tid, batch = start(journal, f"k{i}")
            done(journal, tid)
            if i % 500 == 499:
                await batch.wait()
        journal.close()
        return journal.writes, journal.commits

    writes, commits = asyncio.run(main())
    assert writes == 20_000
    assert commits == 10


# ------------------------------------------------------------------------ CSV, export


def test_csv_targets(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\ufeffnumber,name,plan\n+15550001,Ada,gold\n +15550002 ,Bob,\n")
    targets = CSVTargets(path)
    assert len(targets) == 2
    assert list(targets) == [
        Target("+15550001", {"name": "Ada", "plan": "gold"}),
        Target("+15550002", {"name": "Bob", "plan": ""}),
    ]
    assert list(targets) == list(targets)  # read again, lazily

    ided = tmp_path / "ids.csv"
    ided.write_text("id,phone\na,+1\nb,+1\n")
    targets = CSVTargets(ided, number_column="phone", id_column="id")
    assert [(t.key, t.number, t.data) for t in targets] == [("a", "+1", {}), ("b", "+1", {})]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("phone\n+1\n", "number", "no 'number' column"),
        ("number\n+1\n\n \n", "number", "line 4: empty number"),
        ("", "number", "no 'number' column"),
    ],
)
def test_bad_csv_names_the_field_and_line(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message) as info:
        CSVTargets(path)
    assert info.value.field == field


async def test_report_export(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    journal.open()
    tid, batch = start(journal, "a", "+1", '{"name": "Ada", "key": "x"}')
    await batch.wait()
    done(journal, tid, call_id="c1", amd="human", result='"ok"')
    tid, batch = start(journal, "b", "+2", '{"plan": "gold"}')
    await batch.wait()
    journal.finish(
        tid, 1, "busy", state="waiting", outcome=None, attempts=1, now=2, end_reason="busy"
    )
    journal.close()

    report = read_report(path)
    assert report.targets == 2
    assert report.outcomes == {"completed": 1, "waiting": 1}
    assert report.attempts == {"completed": 1, "busy": 1}
    assert "completed" in report.summary()
    assert "waiting" in report.summary()

    out = io.StringIO()
    assert export_report(path, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["outcome"] for r in rows] == ["completed", "waiting"]
    assert rows[0]["result"] == '"ok"'
    assert rows[0]["amd"] == "human"
    assert rows[0]["name"] == "Ada"
    assert rows[1]["plan"] == "gold"
    # a data column named like a fixed column does not overwrite it
    assert rows[0]["key"] == "a"
    out = io.StringIO()
    export_report(path, out, format="json")
    data = json.loads(out.getvalue())
    assert data["targets"][0]["result"] == "ok"
    assert data["targets"][1]["end_reason"] == "busy"
    with pytest.raises(ValueError, match="format"):
        export_report(path, io.StringIO(), format="xml")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ configuration


def test_dial_options_merge() -> None:
    base = DialOptions(from_="+1", url="https://a", ring_timeout=30)
    merged = base.merged(DialOptions(ring_timeout=10, caller_id="Shop"))
    assert merged == DialOptions(from_="+1", url="https://a", ring_timeout=10, caller_id="Shop")
    assert base.merged(None) is base
    assert base.merged(DialOptions()) is base


def test_values_are_checked() -> None:
    with pytest.raises(ValidationError) as info:
        Target("")
    assert info.value.field == "number"
    with pytest.raises(ValidationError, match="data"):
        Target("+1", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="times"):
        RetryRule(times=-1, after=1)
    with pytest.raises(ValidationError, match="after"):
        RetryRule(times=1, after=math.inf)
    with pytest.raises(ValidationError, match="voicemail"):
        MachineDetection(on_machine="voicemail")
    with pytest.raises(ValidationError, match="on_machine"):
        MachineDetection(on_machine="ignore")  # type: ignore[arg-type]


def test_campaign_configuration_errors() -> None:
    session = CallSession(space="http://127.0.0.1:9", project="p", token="t")
    ok = {"from_": "+1", "url": "https://example.com/swml"}
    cases = [
        ({"url": "https://x"}, "from_"),
        ({"from_": "+1"}, "url"),
        ({**ok, "concurrency": 0}, "concurrency"),
        ({**ok, "cps": 0}, "cps"),
        ({**ok, "cps": math.nan}, "cps"),
        ({**ok, "drain_timeout": -1}, "drain_timeout"),
        ({**ok, "flow_timeout": 0}, "flow_timeout"),
        ({**ok, "progress": "loud"}, "progress"),
        ({**ok, "retry": {"completed": RetryRule(1, 1)}}, "cannot be retried"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            Campaign(session, [], **options)  # type: ignore[arg-type]


def test_which_dial_failures_placed_no_call() -> None:
    def status(cls: type[APIStatusError], code: int) -> APIStatusError:
        return cls("dial: HTTP", status=code, command="dial")

    assert _not_sent(status(RateLimitError, 429))
    assert _not_sent(status(ServerError, 503))
    assert _not_sent(status(APIStatusError, 422))
    assert _not_sent(ConnectError("refused", request_sent=False))
    assert not _not_sent(ConnectError("reset", request_sent=True))
    assert not _not_sent(status(ServerError, 500))
    assert not _not_sent(status(ServerError, 502))
    assert not _not_sent(RequestTimeout("slow"))

    class PoolTimeout(RequestTimeout):  # the name a pool-queue timeout will carry
        pass

    assert _not_sent(PoolTimeout("queued too long"))


# ------------------------------------------------------------------------ progress


def _stats(**changes: Any) -> CampaignStats:
    base = CampaignStats(
        outcomes={"completed": 7, "busy": 2},
        done=9,
        total=20,
        live=3,
        waiting=1,
        dials=12,
        refused=2,
        throttles=1,
        skipped=0,
        duplicates=0,
        cps=4.5,
        cps_limit=5.0,
        elapsed=65.0,
        eta=80.0,
        stopping=False,
    )
    return msgspec.structs.replace(base, **changes)


def test_progress_line() -> None:
    line = stats_line(_stats())
    assert line == (
        "9/20 done | completed 7, busy 2 | live 3 | 4.5 dials/s (limit 5) | "
        "retries waiting 1 | refused 2 (throttled 1x) | elapsed 1:05 | ETA 1:20"
    )
    line = stats_line(_stats(total=None, outcomes={}, eta=None, stopping=True, refused=0))
    assert line.startswith("9/? done | no outcome yet | live 3")
    assert line.endswith("elapsed 1:05 | stopping")


async def test_log_progress_off_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    reporter = make_reporter("log", _stats, 0.01)
    assert reporter is not None
    caplog.set_level(logging.INFO, logger="signalwire_calls.campaign")
    with anyio.move_on_after(0.05):
        await reporter.run()
    reporter.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3
    assert lines[0].startswith("campaign: 9/20 done")
    assert lines[-1].startswith("campaign finished: 9/20 done")
    assert make_reporter("off", _stats, 1.0) is None
    # "auto" off a terminal: log lines
    assert type(make_reporter("auto", _stats, 1.0)).__name__ == "_LogReporter"


def test_rich_view_and_summary() -> None:
    from rich.console import Console

    reporter = make_reporter("rich", _stats, 1.0)
    assert reporter is not None
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(reporter._render())  # type: ignore[attr-defined]
    text = console.export_text()
    for needle in ("completed", "busy", "live calls", "4.5 / 5", "9/20", "1:05 / 1:20"):
        assert needle in text, needle

    report = CampaignReport(
        journal=None,
        targets=9,
        outcomes={"completed": 7, "busy": 2},
        attempts={"completed": 7, "busy": 3, "not_sent": 2},
        first_attempt_at=None,
        last_update_at=None,
        dials=12,
        elapsed=65.0,
        stopped=True,
    )
    plain = render_report(report, use_rich=False)
    assert plain.splitlines()[1:4] == [
        "completed         7",
        "busy              2",
        "total             9",
    ]
    assert "attempts: 10 placed, 2 refused before placing a call" in plain
    assert "this run: 12 dials in 65.0 s (stopped before the end)" in plain
    fancy = render_report(report, use_rich=True)
    assert "campaign summary" in fancy
    assert "completed" in fancy
    assert "│" in fancy
