"""pytest plugin (entry point ``pytest11``): the ``signalwire_simulator`` fixture.

::

    @pytest.mark.asyncio  # or @pytest.mark.anyio; neither with asyncio_mode = "auto"
    async def test_menu(signalwire_simulator):
        signalwire_simulator.script("+15550001", Callee.answers(digits="1#"))
        ...  # point your client at signalwire_simulator.base_url

The fixture is synchronous: it yields a :class:`SimulatorThread`, a simulator serving
from an event loop in a thread of its own, so it serves whichever plugin runs the test
(pytest-asyncio in strict or auto mode, anyio's pytest plugin) and plain tests that
call ``asyncio.run``. It is stopped, and its thread ended, after the test.

Defaults: ``time_scale=0.01`` (a 30 s call flow runs in 0.3 s) and, like a real space,
1 dial per simulated second (100 per real second at that scale; further dials wait in
``queued``); every other :class:`Simulator` option keeps its default. Change them per
test, class or module with the marker (options of farther markers are overridden by
nearer ones; values are copied for each test)::

    pytestmark = pytest.mark.signalwire_simulator(time_scale=0.05)

    @pytest.mark.signalwire_simulator(cps=None, callees={"+15550001": Callee.busy()})
    async def test_burst(signalwire_simulator): ...

for a whole project by overriding the ``signalwire_simulator_options`` fixture in a
``conftest.py`` (it returns a dict of options, empty by default), or through indirect
parametrization (``@pytest.mark.parametrize("signalwire_simulator", [{"cps": None}],
indirect=True)``), which wins over markers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import pytest

from ._threaded import OPTION_NAMES, SimulatorOptions, SimulatorThread

__all__ = ["signalwire_simulator", "signalwire_simulator_options"]

MARKER: Final = "signalwire_simulator"
DEFAULT_TIME_SCALE: Final = 0.01


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): Simulator options for the signalwire_simulator fixture "
        f"(time_scale={DEFAULT_TIME_SCALE}, cps=1.0, callees, faults, ...)",
    )


@pytest.fixture
def signalwire_simulator_options() -> SimulatorOptions:
    """Project-wide options of the ``signalwire_simulator`` fixture (override it in a
    ``conftest.py``); markers and indirect parameters take precedence."""
    return {}


@pytest.fixture
def signalwire_simulator(
    request: pytest.FixtureRequest, signalwire_simulator_options: SimulatorOptions
) -> Iterator[SimulatorThread]:
    """A started simulator on 127.0.0.1 in a thread of its own (time_scale 0.01, 1 call
    per simulated second as on the platform), stopped after the test."""
    options = resolve_options(
        signalwire_simulator_options,
        request.node.iter_markers(MARKER),
        getattr(request, "param", None),
    )
    with SimulatorThread(**options) as sim:
        yield sim


def resolve_options(
    base: Mapping[str, Any], markers: Iterable[pytest.Mark], param: Any = None
) -> SimulatorOptions:
    """The fixture's options: its defaults, then ``base``, then ``markers`` (nearest
    first, as pytest yields them), then the indirect ``param``; copied for one test."""
    layers: list[tuple[str, Mapping[str, Any]]] = [("signalwire_simulator_options", base)]
    for mark in reversed(list(markers)):
        if mark.args:
            raise TypeError(f"@pytest.mark.{MARKER}: takes keyword options only, not {mark.args!r}")
        layers.append((f"@pytest.mark.{MARKER}", mark.kwargs))
    if param is not None:
        if not isinstance(param, Mapping):
            raise TypeError(f"{MARKER} parameter: must be a dict of options, not {param!r}")
        layers.append((f"{MARKER} parameter", param))
    merged: dict[str, Any] = {"time_scale": DEFAULT_TIME_SCALE}
    for where, options in layers:
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise TypeError(
                f"{where}: {unknown[0]!r} is not a Simulator option "
                f"(options: {', '.join(sorted(OPTION_NAMES))})"
            )
        merged.update(options)
    # a marker's FaultPlan or callee mapping is shared by every test it marks: each test
    # gets its own copy, so rule counters and random streams start afresh
    result: SimulatorOptions = copy.deepcopy(merged)  # type: ignore[assignment]
    return result
