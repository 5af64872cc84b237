"""pytest plugin (entry point ``pytest11``): the ``signalwire_simulator`` fixture.

::

    async def test_menu(signalwire_simulator):
        signalwire_simulator.script("+15550001", Callee.answers(digits="1#"))
        ...  # point your client at signalwire_simulator.base_url

The fixture is async: it is registered with pytest-asyncio when that is installed, and
as a plain pytest fixture otherwise (which the anyio pytest plugin also runs).

Like a real space it paces dials at 1 call per simulated second (100 calls per real
second at the fixture's time scale of 0.01); further dials wait in ``queued``. A test
that dials many calls at once and does not test pacing can lift the limit with
``signalwire_simulator.cps = None`` before dialling, or start its own
``Simulator(time_scale=0.01, cps=None)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ._server import Simulator

__all__ = ["signalwire_simulator"]

DEFAULT_TIME_SCALE = 0.01

_fixture: Callable[..., Any]
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the user's test stack
    _fixture = pytest.fixture
else:
    _fixture = pytest_asyncio.fixture


@_fixture  # type: ignore[untyped-decorator]
async def signalwire_simulator() -> AsyncIterator[Simulator]:
    """A started :class:`Simulator` on 127.0.0.1 (time_scale 0.01, 1 call per simulated
    second as on the platform), closed after the test."""
    async with Simulator(time_scale=DEFAULT_TIME_SCALE) as sim:
        yield sim
