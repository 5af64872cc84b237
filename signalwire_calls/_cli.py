"""The ``signalwire-calls`` command line (also ``python -m signalwire_calls``).

Subcommands: ``simulator`` (serve a local SignalWire space until SIGINT/SIGTERM).
Each subcommand is a ``_add_<name>(subparsers)`` function that registers its parser
and sets ``func`` to an ``async`` runner; add new ones (e.g. ``demo``) to
``_SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._cli_campaign import _add_campaign

__all__ = ["build_parser", "main"]


def _add_simulator(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulator",
        help="serve a local SignalWire space (POST /api/calling/calls)",
        description="Serve a local SignalWire space until SIGINT or SIGTERM. Prints "
        "'signalwire simulator listening on <base URL>' once it accepts requests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project", default="test-project", help="Basic auth user")
    parser.add_argument("--token", default="test-token", help="Basic auth password")
    parser.add_argument(
        "--signing-key", default="test-signing-key", help="webhook signing key ('' = unsigned)"
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies every simulated duration"
    )
    parser.add_argument("--callees", metavar="FILE.json", help="callee scripts {number: {...}}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--history-limit",
        type=int,
        default=100_000,
        help="commands/webhooks kept for introspection",
    )
    parser.set_defaults(func=_run_simulator)


async def _run_simulator(args: argparse.Namespace) -> int:
    from .testing import Simulator

    if args.time_scale <= 0:
        print("error: --time-scale must be > 0", file=sys.stderr)
        return 2
    sim = Simulator(
        project=args.project,
        token=args.token,
        signing_key=args.signing_key or None,
        time_scale=args.time_scale,
        host=args.host,
        port=args.port,
        seed=args.seed,
        history_limit=args.history_limit,
    )
    if args.callees:
        try:
            sim.load_callees(args.callees)
        except (OSError, ValueError) as exc:
            print(f"error: --callees: {exc}", file=sys.stderr)
            return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with sim:
            print(f"signalwire simulator listening on {sim.base_url}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("signalwire simulator stopped", flush=True)
    return 0


# Subcommand registrars; the lead adds `demo` here.
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_simulator,
    _add_campaign,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="signalwire-calls", description="signalwire_calls command line"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``signalwire-calls`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        return asyncio.run(func(args))
    except KeyboardInterrupt:
        return 130
