"""Campaign progress: a live ``rich`` view on a terminal, periodic log lines otherwise.

``rich`` is optional (the ``cli`` extra); without it, or off a terminal, the campaign
logs one line every interval on the ``signalwire_calls.campaign`` logger.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio


class CampaignStats(Protocol):
    """What the progress view reads of ``campaign.CampaignStats``."""

    @property
    def total(self) -> int | None: ...
    @property
    def done(self) -> int: ...
    @property
    def outcomes(self) -> Mapping[str, int]: ...
    @property
    def live(self) -> int: ...
    @property
    def cps(self) -> float: ...
    @property
    def cps_limit(self) -> float | None: ...
    @property
    def waiting(self) -> int: ...
    @property
    def refused(self) -> int: ...
    @property
    def throttles(self) -> int: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def eta(self) -> float | None: ...
    @property
    def stopping(self) -> bool: ...


class CampaignReport(Protocol):
    """What the summary table reads of ``campaign.CampaignReport``."""

    @property
    def targets(self) -> int: ...
    @property
    def outcomes(self) -> Mapping[str, int]: ...
    @property
    def attempts(self) -> Mapping[str, int]: ...
    @property
    def elapsed(self) -> float | None: ...
    @property
    def dials(self) -> int | None: ...
    @property
    def stopped(self) -> bool: ...


__all__ = ["Reporter", "make_reporter", "render_report", "stats_line"]

logger = logging.getLogger("signalwire_calls.campaign")

_ORDER = (
    "completed",
    "busy",
    "no_answer",
    "failed",
    "canceled",
    "machine",
    "flow_error",
    "error",
    "unknown",
)


class Reporter(Protocol):
    """Shows progress while ``run()`` runs; ``finish()`` leaves the final state."""

    async def run(self) -> None: ...

    def finish(self) -> None: ...


def rich_available() -> bool:
    """Whether ``rich`` can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def make_reporter(
    mode: str, stats: Callable[[], CampaignStats], interval: float
) -> Reporter | None:
    """The reporter for ``mode`` (``auto``, ``rich``, ``log``, ``off``), or None."""
    if mode == "off":
        return None
    if mode == "rich" or (mode == "auto" and sys.stderr.isatty() and rich_available()):
        if not rich_available():
            raise RuntimeError("progress='rich' needs rich: pip install 'signalwire_calls[cli]'")
        return _RichReporter(stats)
    return _LogReporter(stats, interval)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def stats_line(s: CampaignStats) -> str:
    """One line: done/total, outcomes, live calls, rate, ETA."""
    total = "?" if s.total is None else str(s.total)
    outcomes = ", ".join(f"{k} {s.outcomes[k]}" for k in _ORDER if s.outcomes.get(k))
    limit = "" if s.cps_limit is None else f" (limit {s.cps_limit:g})"
    parts = [
        f"{s.done}/{total} done",
        outcomes or "no outcome yet",
        f"live {s.live}",
        f"{s.cps:.1f} dials/s{limit}",
    ]
    if s.waiting:
        parts.append(f"retries waiting {s.waiting}")
    if s.refused:
        parts.append(f"refused {s.refused} (throttled {s.throttles}x)")
    parts.append(f"elapsed {_duration(s.elapsed)}")
    if s.eta is not None:
        parts.append(f"ETA {_duration(s.eta)}")
    if s.stopping:
        parts.append("stopping")
    return " | ".join(parts)


class _LogReporter:
    def __init__(self, stats: Callable[[], CampaignStats], interval: float) -> None:
        self._stats = stats
        self._interval = interval

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._interval)
            logger.info("campaign: %s", stats_line(self._stats()))

    def finish(self) -> None:
        logger.info("campaign finished: %s", stats_line(self._stats()))


class _RichReporter:
    def __init__(self, stats: Callable[[], CampaignStats]) -> None:
        from rich.console import Console
        from rich.live import Live

        self._stats = stats
        self._live = Live(
            self._render(), console=Console(stderr=True), refresh_per_second=4, transient=False
        )

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        s = self._stats()
        table = Table(title="campaign", show_header=True, header_style="bold")
        table.add_column("outcome")
        table.add_column("targets", justify="right")
        for name in _ORDER:
            n = s.outcomes.get(name)
            if n:
                table.add_row(name, str(n))
        table.add_row("live calls", str(s.live), style="cyan")
        if s.waiting:
            table.add_row("retries waiting", str(s.waiting))
        limit = "" if s.cps_limit is None else f" / {s.cps_limit:g}"
        table.add_row("dials/s", f"{s.cps:.1f}{limit}")
        if s.refused:
            table.add_row("refused (429/503)", f"{s.refused} ({s.throttles} pauses)")
        total = "?" if s.total is None else str(s.total)
        table.add_row("done", f"{s.done}/{total}", style="bold")
        table.add_row("elapsed / ETA", f"{_duration(s.elapsed)} / {_duration(s.eta)}")
        if s.stopping:
            table.add_row("state", "stopping", style="yellow")
        if s.total:
            table.caption = None
            grid = Table.grid()
            grid.add_row(table)
            grid.add_row(ProgressBar(total=s.total, completed=s.done, width=40))
            return grid
        return table

    async def run(self) -> None:
        with self._live:
            while True:
                self._live.update(self._render())
                await anyio.sleep(0.25)

    def finish(self) -> None:
        self._live.update(self._render())
        self._live.refresh()


def render_report(report: CampaignReport, *, use_rich: bool | None = None) -> str:
    """The summary table of a report: rich's table when available (and asked), else
    plain text."""
    rows: list[tuple[str, int]] = []
    for name in (*_ORDER, "waiting", "pending", "active"):
        n = report.outcomes.get(name)
        if n:
            rows.append((name, n))
    placed = sum(v for k, v in report.attempts.items() if k != "not_sent")
    refused = report.attempts.get("not_sent", 0)
    footer = f"attempts: {placed} placed, {refused} refused before placing a call"
    if report.elapsed is not None and report.dials is not None:
        footer += f"\nthis run: {report.dials} dials in {report.elapsed:.1f} s"
        if report.stopped:
            footer += " (stopped before the end)"
    if use_rich is None:
        use_rich = rich_available()
    if use_rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="campaign summary")
        table.add_column("outcome")
        table.add_column("targets", justify="right")
        for name, n in rows:
            table.add_row(name, str(n))
        table.add_row("total", str(report.targets), style="bold")
        console = Console(width=80, record=True, file=io.StringIO(), force_terminal=False)
        console.print(table)
        console.print(footer)
        return console.export_text()
    width = max([len(name) for name, _ in rows] + [8])
    lines = [f"{'outcome':<{width}}  {'targets':>8}"]
    lines += [f"{name:<{width}}  {n:>8}" for name, n in rows]
    lines.append(f"{'total':<{width}}  {report.targets:>8}")
    lines.append(footer)
    return "\n".join(lines) + "\n"
