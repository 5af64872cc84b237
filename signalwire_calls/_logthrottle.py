"""Rate-limited log lines, so that input from the network cannot flood the log.

A ``LogThrottle`` stands for one kind of message: it logs the first one, then at most one
per ``interval`` seconds, and the next line it lets through says how many it held back::

    bad_signature = LogThrottle(logger, logging.WARNING)    # one per kind of message
    bad_signature("webhook refused: signature does not match %r", url)

Log untrusted strings with ``%r`` (as above): a value holding a newline then cannot pose
as a log line of its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """Logs through ``logger`` at ``level``: the first call, then at most one call per
    ``interval`` seconds; calls in between are only counted (``suppressed``) and the next
    logged line ends with ``(N more like this in the last S s not logged)``.

    ``clock`` (monotonic seconds) is there for tests. Not thread-safe: use one per event
    loop. A call while ``logger`` is disabled for ``level`` does nothing.
    """

    __slots__ = ("_clock", "_interval", "_last", "_level", "_logger", "suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        interval: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"interval: must be >= 0 seconds, got {interval!r}")
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._last = -math.inf
        #: Calls held back since the last logged one.
        self.suppressed = 0

    def __call__(self, msg: str, *args: object, exc_info: BaseException | None = None) -> bool:
        """Log ``msg % args`` unless one was logged less than ``interval`` ago; return
        whether this call was logged. ``exc_info`` adds that exception's traceback."""
        if not self._logger.isEnabledFor(self._level):
            return False
        now = self._clock()
        since = now - self._last
        if since < self._interval:
            self.suppressed += 1
            return False
        self._last = now
        if self.suppressed:
            msg += " (%d more like this in the last %.0f s not logged)"
            args = (*args, self.suppressed, since)
            self.suppressed = 0
        self._logger.log(self._level, msg, *args, exc_info=exc_info, stacklevel=2)
        return True
