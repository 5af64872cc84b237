"""``signalwire-calls simulator``: serve a local SignalWire space until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from ._cli_serve import cannot_listen, fail, stop_on_signals

if TYPE_CHECKING:
    from .testing import Simulator

__all__ = ["add_simulator"]

_EPILOG = """\
callee scripts (--callees FILE.json): a JSON object mapping a number to how the party at
that number behaves; "*" (or "default") scripts every number not listed. For inbound
calls the script of the calling number (--inbound-from) is the caller's. Every field is
optional; durations are simulated seconds:

  {
    "+15551230001": {"behavior": "answer", "after": 2, "digits": "1#"},
    "+15551230002": {"behavior": "answer", "speech": ["yes", "no"], "hangup_after": 30},
    "+15551230003": {"behavior": "voicemail", "greeting": 5, "beep": true},
    "+15551230004": {"behavior": "busy"},
    "*": {"behavior": "answer", "after": 1}
  }

  behavior       answer | busy | no_answer | fail | voicemail | fax   (default answer)
  after          seconds of ringing before the outcome                (default 1)
  hangup_after   seconds after answering when the party hangs up      (default never)
  digits         DTMF the party presses for each collect (a string, or a list: one per
                 collect, the last repeats)
  speech         what the party says for each collect (string or list, as digits)
  confidence     speech confidence 0..1 (0.92); no_match: true answers unrecognisably
  input_delay    seconds before the party starts answering a prompt (1)
  digit_interval seconds between digits (0.2)
  talk           seconds the party talks when recorded (2); "silent": true means 0
  greeting, beep voicemail greeting length (5) and beep (true)
  fax_tone       CED | CNG (fax)
  transcript, transcribe_fails   what a transcription returns

fault plan (--faults FILE.json): rates, rules and a seed, e.g.

  {"seed": 7, "duplicate_rate": 0.1, "reorder_rate": 0.1, "rate_limit_rate": 0.05,
   "retry_after": 1.0, "webhook_delay": 0.5, "webhook_jitter": 0.5,
   "webhook_rules": [{"action": "drop", "event_type": "calling.call.play",
                      "state": "finished", "nth": 1, "count": 1}],
   "command_rules": [{"action": "status", "status": 429, "command": "dial",
                      "count": 2, "retry_after": 2.0},
                     {"action": "reset", "command": "dial", "after_processing": true}]}

  rates (0..1): drop_rate duplicate_rate reorder_rate terminal_first_rate
  rate_limit_rate server_error_rate reset_rate; server_error_status (500 or 503);
  events_before_response (bool). Webhook rule actions: drop duplicate delay (with
  "delay": seconds) reorder; command rule actions: status (with "status") reset.

inbound calls (--inbound URL): the simulator places --inbound-count calls, one every
--inbound-interval simulated seconds, from --inbound-from to --inbound-to. Each POSTs the
platform's signed SWML request to URL and runs the SWML answered (answer, sleep in
milliseconds or -1, play with say:/silence:/ring:/http(s) sounds, hangup); anything
else fails the call with a warning. While it runs the call takes REST commands. One line
per call is printed: 'inbound call <id> from <from> to <to>: <status>'.
"""


def add_simulator(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``simulator`` subcommand."""
    parser = subparsers.add_parser(
        "simulator",
        help="serve a local SignalWire space (POST /api/calling/calls)",
        description="Serve a local SignalWire space until SIGINT or SIGTERM. Prints\n"
        "'signalwire simulator listening on <base URL>' once it accepts requests.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project", default="test-project", help="Basic auth user")
    parser.add_argument("--token", default="test-token", help="Basic auth password")
    parser.add_argument(
        "--signing-key",
        default="test-signing-key",
        help="webhook and SWML request signing key ('' = unsigned)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies every simulated duration"
    )
    parser.add_argument(
        "--cps",
        default="1",
        metavar="RATE",
        help="calls per simulated second that leave 'queued' (the platform's default is 1); "
        "0 or 'none' = unlimited",
    )
    parser.add_argument(
        "--max-queued-calls",
        type=int,
        default=10_000,
        help="dials waiting under --cps beyond which a dial gets 422 max_queued_calls_exceeded",
    )
    parser.add_argument(
        "--callees", metavar="FILE.json", help="callee scripts {number: {...}} (see below)"
    )
    parser.add_argument(
        "--faults", metavar="FILE.json", help="a fault plan: rates, rules, seed (see below)"
    )
    parser.add_argument(
        "--allow-external-webhooks",
        action="store_true",
        help="deliver webhooks and SWML requests to non-loopback hosts too",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--history-limit",
        type=int,
        default=100_000,
        help="commands, webhooks and ended calls kept for introspection",
    )
    inbound = parser.add_argument_group("inbound calls")
    inbound.add_argument("--inbound", metavar="URL", help="place inbound calls to this SWML URL")
    inbound.add_argument(
        "--inbound-count", type=int, default=1, help="how many (0 = until stopped; default 1)"
    )
    inbound.add_argument(
        "--inbound-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="simulated seconds between two inbound calls (default 1)",
    )
    inbound.add_argument("--inbound-from", default="+15550000001", metavar="NUMBER")
    inbound.add_argument("--inbound-to", default="+15550000002", metavar="NUMBER")
    parser.set_defaults(func=_run_simulator)


def _parse_cps(text: str) -> float | None:
    if text.strip().lower() in ("none", "0", "0.0", "unlimited"):
        return None
    value = float(text)
    if not value > 0:
        raise ValueError
    return value


async def _run_simulator(args: argparse.Namespace) -> int:
    from .testing import FaultPlan, Simulator

    if args.time_scale <= 0:
        return fail("--time-scale must be > 0")
    try:
        cps = _parse_cps(args.cps)
    except ValueError:
        return fail(f"--cps must be a number > 0, or 0/none for no limit, not {args.cps!r}")
    if args.max_queued_calls < 0:
        return fail("--max-queued-calls must be >= 0")
    if args.history_limit < 1:
        return fail("--history-limit must be >= 1")
    if args.inbound is not None and not args.inbound.startswith(("http://", "https://")):
        return fail(f"--inbound must be an http(s) URL, not {args.inbound!r}")
    if args.inbound_count < 0 or args.inbound_interval < 0:
        return fail("--inbound-count and --inbound-interval must be >= 0")
    faults = None
    if args.faults:
        try:
            faults = FaultPlan.load(args.faults)
        except (OSError, ValueError) as exc:
            return fail(f"--faults: {exc}")
    sim = Simulator(
        project=args.project,
        token=args.token,
        signing_key=args.signing_key or None,
        time_scale=args.time_scale,
        host=args.host,
        port=args.port,
        seed=args.seed,
        history_limit=args.history_limit,
        faults=faults,
        cps=cps,
        max_queued_calls=args.max_queued_calls,
        allow_external_webhooks=args.allow_external_webhooks,
    )
    if args.callees:
        try:
            sim.load_callees(args.callees)
        except (OSError, ValueError) as exc:
            return fail(f"--callees: {exc}")
    try:
        await sim.start()
    except OSError as exc:
        await sim.aclose()
        return cannot_listen(exc, args.host, args.port)
    placer: asyncio.Task[None] | None = None
    try:
        with stop_on_signals() as stop:
            print(f"signalwire simulator listening on {sim.base_url}", flush=True)
            if args.inbound:
                placer = asyncio.create_task(_place_inbound_calls(sim, args))
            await stop.wait()
    finally:
        if placer is not None:
            placer.cancel()
            await asyncio.gather(placer, return_exceptions=True)
        await sim.aclose()
    print("signalwire simulator stopped", flush=True)
    return 0


async def _place_inbound_calls(sim: Simulator, args: argparse.Namespace) -> None:
    """Place the ``--inbound`` calls, one every ``--inbound-interval`` simulated seconds."""
    in_flight: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            call = await sim.place_inbound(
                from_=args.inbound_from, to=args.inbound_to, url=args.inbound
            )
        except Exception as exc:  # a bug, not the application's answer: say so, keep serving
            print(f"error: inbound call: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        detail = f" ({call.swml_error})" if call.swml_error else ""
        print(
            f"inbound call {call.id} from {call.from_} to {call.to}: {call.status}{detail}",
            flush=True,
        )

    placed = 0
    try:
        while args.inbound_count == 0 or placed < args.inbound_count:
            if placed:
                await asyncio.sleep(args.inbound_interval * sim.time_scale)
            task = asyncio.create_task(one())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            placed += 1
        while in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
