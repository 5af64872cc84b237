"""What the serving subcommands (``simulator``, ``receiver``) share: the start-up error
exit, the message for a port that cannot be bound, and serving until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cannot_listen", "fail", "stop_on_signals"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def fail(message: str) -> int:
    """Print ``error: <message>`` to stderr; the exit status of a refused start (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def cannot_listen(exc: OSError, host: str, port: int) -> int:
    """``fail`` for a server that could not bind ``host:port`` (one line, no traceback)."""
    if exc.errno == errno.EADDRINUSE:
        return fail(f"port {port} on {host} is already in use")
    return fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that SIGINT or SIGTERM sets while the block runs (the running loop's
    signal handlers, removed when it ends)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
