"""``signalwire-calls campaign run | report``: outbound campaigns from the command line.

``run`` dials the numbers of a CSV file (a ``number`` column; the other columns are the
target's ``data``) under a concurrency cap and a calls-per-second limit, journals every
attempt in SQLite and prints a summary. ``--simulate`` runs the same campaign against an
embedded, time-scaled simulator with a mix of callees, to dry-run before spending money.
``report`` prints (or exports as JSON or CSV) the summary of a journal.

With ``--redis URL --name NAME`` several ``run`` processes (on one machine or many) run
one campaign together: targets, journal and the calls-per-second limit are shared in
Redis; ``report --redis URL --name NAME`` reads the whole campaign from anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import sys
from typing import Any

import msgspec

__all__ = ["add_campaign"]

_DEFAULT_MIX = "answer=70,busy=10,no_answer=10,fail=5,voicemail=5"
_BEHAVIORS = ("answer", "busy", "no_answer", "fail", "voicemail")
_ANSWER_SWML: dict[str, Any] = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


def add_campaign(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="run an outbound campaign, or report on one",
        description="Outbound campaigns: 'run' dials the numbers of a CSV file, 'report' "
        "prints the summary of a campaign journal.",
    )
    sub = parser.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")

    run = sub.add_parser(
        "run",
        help="dial the numbers of a CSV file",
        description="Dial the numbers of TARGETS (a CSV file with a 'number' column; the "
        "other columns become each target's data) and run FLOW on every answered call. "
        "Credentials come from SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID, "
        "SIGNALWIRE_API_TOKEN (and SIGNALWIRE_SIGNING_KEY, SIGNALWIRE_PUBLIC_URL: where "
        "the platform reaches this program's webhook receiver). The first SIGINT/SIGTERM "
        "stops dialing and lets live calls finish; the second hangs them up.",
    )
    run.add_argument(
        "targets",
        metavar="TARGETS.csv",
        nargs="?",
        help="the numbers to dial; with --redis it may be left out to join a campaign "
        "another worker loaded",
    )
    run.add_argument(
        "--from", dest="from_", required=True, metavar="NUMBER", help="the caller number"
    )
    what = run.add_mutually_exclusive_group()
    what.add_argument("--url", help="URL of the SWML the calls run")
    what.add_argument("--swml", help="the SWML the calls run: a JSON file, or inline JSON")
    run.add_argument(
        "--flow",
        metavar="MODULE:FUNCTION",
        help="async def flow(call, target) run on each answered call (module looked up "
        "from the current directory); default: wait for the call to end",
    )
    run.add_argument(
        "--cps",
        type=float,
        default=1.0,
        help="dials per second (default 1, a SignalWire space's default rate: the platform "
        "queues what goes beyond your space's limit)",
    )
    run.add_argument("--no-cps-limit", action="store_true", help="no calls-per-second limit at all")
    run.add_argument("--concurrency", type=int, default=10, help="live calls at most")
    run.add_argument(
        "--journal",
        help="SQLite journal file (default campaign.db; in memory with --simulate)",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the campaign of an existing journal"
    )
    run.add_argument(
        "--redial-unknown",
        action="store_true",
        help="dial again the targets a crash left mid-dial (they may have been called)",
    )
    run.add_argument("--amd", action="store_true", help="answering-machine detection first")
    run.add_argument(
        "--amd-policy",
        choices=["hangup", "flow"],
        default="hangup",
        help="on a machine: hang up (outcome 'machine') or run the flow anyway",
    )
    run.add_argument(
        "--retry",
        action="append",
        default=[],
        metavar="OUTCOME=TIMES@SECONDS",
        help="retry rule, e.g. busy=2@300 (repeatable)",
    )
    run.add_argument("--ring-timeout", type=int, help="seconds a call may ring")
    run.add_argument("--caller-id", help="caller id name or number shown to the callee")
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds live calls may take to finish after the first SIGINT/SIGTERM",
    )
    run.add_argument(
        "--give-up-after",
        type=float,
        default=600.0,
        help="stop when every dial has been refused (429/503/no connection) this long",
    )
    run.add_argument("--number-column", default="number")
    run.add_argument("--progress", choices=["auto", "rich", "log", "off"], default="auto")
    run.add_argument("--progress-interval", type=float, default=10.0)
    run.add_argument("--receiver-host", default="127.0.0.1")
    run.add_argument("--receiver-port", type=int, default=0)
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    shared = run.add_argument_group(
        "distributed",
        "Run this process as one worker of a campaign shared in Redis: start the same "
        "command (same --cps) in as many processes as wanted; each loads TARGETS (every "
        "target is added once) and dials its share. No --journal: the journal is in Redis.",
    )
    _redis_arguments(shared)
    shared.add_argument(
        "--claim-idle",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="take over the targets of a worker silent this long (default 30; a target it "
        "was dialing ends 'unknown', never dialled twice)",
    )
    sim = run.add_argument_group("dry run")
    sim.add_argument(
        "--simulate",
        action="store_true",
        help="run against an embedded simulator instead of a SignalWire space",
    )
    sim.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="with --simulate: multiplies every duration (0.01: 100x faster)",
    )
    sim.add_argument(
        "--mix",
        default=_DEFAULT_MIX,
        help=f"with --simulate: callee shares (default {_DEFAULT_MIX})",
    )
    sim.add_argument("--seed", type=int, default=0)
    run.set_defaults(func=_run)

    report = sub.add_parser(
        "report",
        help="print or export a campaign journal's summary",
        description="Print the summary of a campaign journal, or export one row per "
        "target as JSON or CSV on stdout.",
    )
    report.add_argument("journal", metavar="JOURNAL", nargs="?", help="a journal file")
    _redis_arguments(report.add_argument_group("distributed campaign (instead of JOURNAL)"))
    report.add_argument(
        "--follow",
        action="store_true",
        help="with --redis: show the campaign's progress (all workers) until every "
        "target has an outcome, then the summary",
    )
    report.add_argument("--progress", choices=["auto", "rich", "log"], default="auto")
    report.add_argument("--progress-interval", type=float, default=10.0)
    fmt = report.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="summary and targets as JSON")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per target")
    report.set_defaults(func=_report)


def _redis_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--redis",
        metavar="URL",
        help="Redis URL, e.g. redis://host:6379/0 (a password in it is never printed)",
    )
    group.add_argument("--name", metavar="NAME", help="the campaign's name in Redis")


def _backend(args: argparse.Namespace) -> Any:
    """The ``RedisBackend`` that --redis and --name ask for, or None."""
    if args.redis is None and args.name is None:
        return None
    if args.redis is None:
        raise _UsageError("--name: needs --redis URL")
    if args.name is None:
        raise _UsageError("--redis: needs --name NAME (the campaign's name)")
    from . import ConfigurationError, ValidationError
    from .campaign import RedisBackend

    try:
        return RedisBackend(args.redis, args.name, claim_idle=getattr(args, "claim_idle", 30.0))
    except (ConfigurationError, ValidationError) as exc:
        raise _UsageError(str(exc)) from None


async def _follow(backend: Any, args: argparse.Namespace) -> None:
    """The progress view of a distributed campaign from this process, until every target
    has an outcome."""
    import anyio

    from ._campaign_redis import NoCampaignError
    from ._progress import make_reporter

    said = False
    while True:
        try:
            latest = await backend.stats()
            break
        except NoCampaignError:  # its workers may start after this view
            if not said:
                said = True
                print(
                    f"waiting for campaign {backend.name!r} at {backend.url} to start",
                    file=sys.stderr,
                )
            await anyio.sleep(0.2)
    log = logging.getLogger("signalwire_calls.campaign")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        reporter = make_reporter(args.progress, lambda: latest, args.progress_interval)
        assert reporter is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(reporter.run)
            while latest.total is None or latest.done < latest.total:
                await anyio.sleep(min(args.progress_interval, 1.0))
                latest = await backend.stats()
            tg.cancel_scope.cancel()
        reporter.finish()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


class _UsageError(Exception):
    """A bad argument: printed as ``error: ...`` with exit status 2."""


def _import_flow(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(f"--flow: expected MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _UsageError(f"--flow: cannot import {module_name!r}: {exc}") from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise _UsageError(f"--flow: {module_name!r} has no function {attr!r}")
    return func


def _parse_retry(rules: list[str]) -> dict[str, Any]:
    from .campaign import RetryRule

    out: dict[str, Any] = {}
    for rule in rules:
        outcome, _, rest = rule.partition("=")
        times, _, after = rest.partition("@")
        try:
            out[outcome.strip()] = RetryRule(times=int(times), after=float(after or 0))
        except ValueError as exc:
            raise _UsageError(f"--retry: expected OUTCOME=TIMES@SECONDS, got {rule!r}") from exc
    return out


def _parse_mix(text: str) -> list[tuple[str, float]]:
    mix: list[tuple[str, float]] = []
    for part in text.split(","):
        name, _, share = part.partition("=")
        name = name.strip()
        if name not in _BEHAVIORS:
            raise _UsageError(f"--mix: unknown callee {name!r}; use {', '.join(_BEHAVIORS)}")
        try:
            weight = float(share)
        except ValueError:
            raise _UsageError(f"--mix: {part!r} needs a share, e.g. {name}=10") from None
        if weight < 0:
            raise _UsageError(f"--mix: {name} share must be >= 0")
        mix.append((name, weight))
    if sum(w for _, w in mix) <= 0:
        raise _UsageError("--mix: the shares add up to 0")
    return mix


def _swml(value: str | None) -> dict[str, Any] | str | None:
    if value is None:
        return None
    text = value
    if not value.lstrip().startswith(("{", "[")):
        try:
            with open(value, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise _UsageError(f"--swml: cannot read {value!r}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _UsageError(f"--swml: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _UsageError("--swml: must be a JSON object")
    return data


def _script_callees(
    sim: Any, numbers: list[str], mix: list[tuple[str, float]], seed: int
) -> dict[str, int]:
    """Script every target's callee from the mix, deterministically per number."""
    from .testing import Callee

    total = sum(w for _, w in mix)
    counts = dict.fromkeys(_BEHAVIORS, 0)
    for number in numbers:
        rng = random.Random(f"{seed}:{number}")
        pick = rng.random() * total
        behavior = mix[-1][0]
        for name, weight in mix:
            if pick < weight:
                behavior = name
                break
            pick -= weight
        after = 1.0 + rng.random() * 4.0
        if behavior == "answer":
            callee = Callee.answers(after=after, hangup_after=120.0)
        elif behavior == "busy":
            callee = Callee.busy(after=after)
        elif behavior == "no_answer":
            callee = Callee.no_answer(after=20.0)
        elif behavior == "fail":
            callee = Callee.fails()
        else:
            callee = Callee.voicemail(greeting=6.0, after=after, hangup_after=60.0)
        sim.script(number, callee)
        counts[behavior] += 1
    return counts


async def _run(args: argparse.Namespace) -> int:
    # progress lines, warnings (signals, drain deadline) and errors go to stderr
    log = logging.getLogger("signalwire_calls.campaign")
    handler: logging.Handler | None = None
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        return await _run_checked(args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if handler is not None:
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)


def _check_journal(args: argparse.Namespace) -> str | None:
    """The journal path to use; refuses to reuse one without --resume."""
    from .campaign import read_report

    journal: str | None = args.journal
    if args.redis is not None:
        for flag, value in (
            ("--journal", args.journal),
            ("--resume", args.resume),
            ("--redial-unknown", args.redial_unknown),
        ):
            if value:
                raise _UsageError(
                    f"{flag}: not with --redis (the journal is in Redis; a worker started "
                    "again simply joins the campaign)"
                )
        return None
    if journal is None and not args.simulate:
        journal = "campaign.db"
    if journal is not None and os.path.exists(journal) and not args.resume:
        try:
            existing = read_report(journal)
        except OSError as exc:
            raise _UsageError(f"--journal: {exc}") from exc
        if existing.targets:
            raise _UsageError(
                f"--journal: {journal} already holds a campaign ({existing.targets} "
                "targets): pass --resume to continue it, or choose another file"
            )
    return journal


async def _run_checked(args: argparse.Namespace) -> int:
    from . import CallSession, ConfigurationError, SignalWireError, ValidationError
    from ._progress import render_report
    from .campaign import Campaign, CSVTargets, DialOptions, MachineDetection

    if args.concurrency < 1:
        raise _UsageError("--concurrency: must be >= 1")
    if not args.no_cps_limit and not args.cps > 0:
        raise _UsageError("--cps: must be > 0 (or --no-cps-limit)")
    if args.simulate and not args.time_scale > 0:
        raise _UsageError("--time-scale: must be > 0")
    backend = _backend(args)
    targets: Any = []
    if args.targets is not None:
        try:
            targets = CSVTargets(args.targets, number_column=args.number_column)
        except ValidationError as exc:
            raise _UsageError(str(exc)) from exc
    elif backend is None:
        raise _UsageError("TARGETS.csv: required (unless joining a campaign with --redis)")
    elif args.simulate:
        raise _UsageError("--simulate: needs TARGETS.csv (its callees are scripted from it)")
    flow = _import_flow(args.flow) if args.flow else None
    retry = _parse_retry(args.retry)
    swml = _swml(args.swml)
    if args.url is None and swml is None:
        if not args.simulate:
            raise _UsageError("--url or --swml: the SWML the calls run is required")
        swml = _ANSWER_SWML
    journal = _check_journal(args)
    sim: Any = None
    time_scale = 1.0
    if args.simulate:
        from .testing import Simulator

        mix = _parse_mix(args.mix)
        sim = Simulator(time_scale=args.time_scale, seed=args.seed, cps=None)
        counts = _script_callees(sim, [t.number for t in targets], mix, args.seed)
        await sim.start()
        print(
            "simulating "
            + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            + f" at time scale {args.time_scale:g}",
            file=sys.stderr,
        )
        session = CallSession(
            space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
        )
        time_scale = args.time_scale
    else:
        try:
            session = CallSession.from_env(
                receiver_host=args.receiver_host, receiver_port=args.receiver_port
            )
        except ConfigurationError as exc:
            raise _UsageError(str(exc)) from exc
    try:
        try:
            campaign = Campaign(
                session,
                targets,
                flow,
                from_=args.from_,
                url=args.url,
                swml=swml,
                options=DialOptions(caller_id=args.caller_id, ring_timeout=args.ring_timeout),
                concurrency=args.concurrency,
                cps=None if args.no_cps_limit else args.cps,
                journal=journal,
                retry=retry,
                machine_detection=MachineDetection(on_machine=args.amd_policy)
                if args.amd
                else None,
                redial_unknown=args.redial_unknown,
                drain_timeout=args.drain_timeout,
                give_up_after=args.give_up_after,
                progress=args.progress,
                progress_interval=args.progress_interval,
                time_scale=time_scale,
                backend=backend,
            )
        except (ConfigurationError, ValidationError) as exc:
            raise _UsageError(str(exc)) from exc
        try:
            async with session:
                report = await campaign.run()
        except (SignalWireError, OSError) as exc:
            print(f"error: the campaign stopped: {exc}", file=sys.stderr)
            return 1
    finally:
        if sim is not None:
            await sim.aclose()
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        print(render_report(report), end="")
    return 130 if report.stopped else 0


async def _report(args: argparse.Namespace) -> int:
    from ._progress import render_report
    from .campaign import export_report, read_report

    try:
        backend = _backend(args)
        if (backend is None) == (args.journal is None):
            raise _UsageError("give a JOURNAL file, or --redis URL --name NAME (not both)")
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.follow and backend is None:
        print("error: --follow: needs --redis URL --name NAME", file=sys.stderr)
        return 2
    if backend is not None:
        try:
            if args.follow:
                await _follow(backend, args)
            if args.json or args.csv:
                await backend.export(sys.stdout, format="json" if args.json else "csv")
            else:
                print(render_report(await backend.report()), end="")
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        if args.json or args.csv:
            export_report(args.journal, sys.stdout, format="json" if args.json else "csv")
        else:
            print(render_report(read_report(args.journal)), end="")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
