"""The ``signalwire-calls`` command line (also ``python -m signalwire_calls``).

Each subcommand lives in its own ``_cli_<name>`` module as a registrar: a function that
adds its parser to the subparsers and sets ``func`` to an ``async`` runner returning the
exit status. This module only lists the registrars.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._cli_campaign import add_campaign
from ._cli_routing import add_dlq, add_receiver
from ._cli_simulator import add_simulator

__all__ = ["build_parser", "main"]

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# One registrar per subcommand.
_SUBCOMMANDS: list[Registrar] = [
    add_simulator,
    add_campaign,
    add_receiver,
    add_dlq,
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
