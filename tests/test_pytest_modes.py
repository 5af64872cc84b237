"""The ``signalwire_simulator`` fixture in a user's project, under each way of running tests.

Each case writes a small project of its own (ini settings and a test file written the way
the README shows) and runs pytest on it in a subprocess, with only the plugins it names:
pytest-asyncio in strict mode (tests marked ``@pytest.mark.asyncio``), pytest-asyncio in
auto mode, anyio's plugin (``@pytest.mark.anyio``, pytest-asyncio disabled), and a plain
test with neither async plugin. Warnings are errors in every project. Each run takes
one to three seconds, most of it pytest's start-up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The README's example; {marker} is the line that tells the runner to run it.
README_TEST = """\
import pytest

from signalwire_calls import CallSession, Digits
from signalwire_calls.testing import Callee, SimulatorThread

{marker}async def test_menu(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    sim.script("+15551230001", Callee.answers(after=1.0, digits="2#"))
    async with CallSession(
        space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
    ) as session:
        call = await session.dial(
            to="+15551230001", from_="+15559870000", url="https://example.com/swml"
        )
        await call.answered(timeout=5)
        menu = await call.collect(digits=Digits(max=1, terminators="#"))
        assert (await menu.finished(timeout=5)).digits == "2"
        await call.end()
    ended = await sim.wait_for_call_state(call.id, "ended")
    assert [c.command for c in sim.commands] == ["dial", "calling.collect", "calling.end"]
    assert ended.end_reason == "hangup"
"""

# The README's plain (synchronous) variant.
SYNC_TEST = """\
import asyncio

from signalwire_calls import CallSession, Digits
from signalwire_calls.testing import Callee, SimulatorThread


async def menu(sim: SimulatorThread) -> str | None:
    async with CallSession(
        space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
    ) as session:
        call = await session.dial(
            to="+15551230001", from_="+15559870000", url="https://example.com/swml"
        )
        await call.answered(timeout=5)
        menu = await call.collect(digits=Digits(max=1, terminators="#"))
        return (await menu.finished(timeout=5)).digits


def test_menu(signalwire_simulator: SimulatorThread) -> None:
    signalwire_simulator.script("+15551230001", Callee.answers(after=1.0, digits="2#"))
    assert asyncio.run(menu(signalwire_simulator)) == "2"
    assert len(signalwire_simulator.calls) == 1
"""

# The marker, at module and test level, with every option the brief names.
CONFIGURED_TEST = """\
import pytest

from signalwire_calls import CallSession, Digits
from signalwire_calls.testing import Callee, FaultPlan, SimulatorThread, WebhookRule

pytestmark = pytest.mark.signalwire_simulator(time_scale=0.05)


@pytest.mark.asyncio
@pytest.mark.signalwire_simulator(
    callees={"+15551230002": Callee.answers(after=0.5, digits="7#")},
    cps=None,
    faults=FaultPlan(webhook_rules=[WebhookRule("duplicate", event_type="calling.call.collect")]),
)
async def test_configured(signalwire_simulator: SimulatorThread) -> None:
    sim = signalwire_simulator
    assert (sim.time_scale, sim.cps) == (0.05, None)
    async with CallSession(
        space=sim.base_url, project=sim.project, token=sim.token, signing_key=sim.signing_key
    ) as session:
        calls = [
            await session.dial(to="+15551230002", from_="+15559870000", url="https://e.com/s")
            for _ in range(3)
        ]
        for call in calls:
            await call.answered(timeout=5)
        menu = await calls[0].collect(digits=Digits(max=1, terminators="#"))
        assert (await menu.finished(timeout=5)).digits == "7"
    assert sim.peak_live_calls == 3  # no pacing: all three rang at once
    hooks = sim.webhooks_for(event_type="calling.call.collect")
    assert [h.duplicate for h in hooks].count(True) == 1


def test_defaults_apply_where_not_marked(signalwire_simulator: SimulatorThread) -> None:
    assert (signalwire_simulator.time_scale, signalwire_simulator.cps) == (0.05, 1.0)
    assert signalwire_simulator.callees == {}
"""


@dataclass(frozen=True)
class Mode:
    ini: str
    args: tuple[str, ...]
    files: dict[str, str]
    passed: int


MODES = {
    "pytest-asyncio strict": Mode(
        ini="asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
        args=("-p", "no:anyio"),
        files={
            "test_menu.py": README_TEST.format(marker="@pytest.mark.asyncio\n"),
            "test_configured.py": CONFIGURED_TEST,
        },
        passed=3,
    ),
    "pytest-asyncio auto": Mode(
        ini="asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        args=("-p", "no:anyio"),
        files={"test_menu.py": README_TEST.format(marker="")},
        passed=1,
    ),
    "anyio": Mode(
        ini="",
        args=("-p", "no:asyncio"),
        files={"test_menu.py": README_TEST.format(marker="@pytest.mark.anyio\n")},
        passed=1,
    ),
    "plain sync": Mode(
        ini="",
        args=("-p", "no:asyncio", "-p", "no:anyio"),
        files={"test_menu.py": SYNC_TEST},
        passed=1,
    ),
}


# -q, and hypothesis's plugin (a dev dependency of ours, not of a user's project) left out:
# it takes most of pytest's start-up time.
QUIET = ("-q", "-p", "no:hypothesispytest")


def run_project(root: Path, mode: Mode) -> subprocess.CompletedProcess[str]:
    """Write the project under ``root`` and run pytest on it in a subprocess."""
    ini = "[pytest]\nfilterwarnings = error\n" + mode.ini
    (root / "pytest.ini").write_text(ini)
    for name, text in mode.files.items():
        (root / name).write_text(text)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST_") and k not in ("PYTHONPATH", "PYTHONWARNINGS")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *QUIET, *mode.args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", list(MODES))
def test_readme_example_passes(name: str, tmp_path: Path) -> None:
    mode = MODES[name]
    result = run_project(tmp_path, mode)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(rf"{mode.passed} passed in [0-9.]+s", summary), output


def test_async_test_without_a_runner_says_so(tmp_path: Path) -> None:
    """Control: with no async plugin an async test does not pass, so the cases above
    pass because their runner ran the coroutine, not because it was skipped."""
    mode = Mode(
        ini="",
        args=("-p", "no:asyncio", "-p", "no:anyio"),
        files={"test_menu.py": README_TEST.format(marker="")},
        passed=0,
    )
    result = run_project(tmp_path, mode)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "async def functions are not natively supported" in output, output
