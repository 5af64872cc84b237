"""Keeps benchmarks/fuzz_receiver.py from rotting: a small run, signed and unsigned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", [[], ["--unsigned"]], ids=["signed", "unsigned"])
def test_fuzz_script_runs_and_finds_nothing(mode: list[str]) -> None:
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    script = str(ROOT / "benchmarks" / "fuzz_receiver.py")
    proc = subprocess.run(
        [sys.executable, script, "-n", "400", "--json", *mode],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1].split(" ", 1)[1])
    assert result["problems"] == []
    assert sum(result["statuses"].values()) == 400
    assert set(result["statuses"]) <= {"200", "400", "403", "404", "405", "408", "413"}
    stats = result["stats"]
    assert stats["rejected_error"] == 0
    assert stats["received"] > 300  # most requests reach the handler
    assert result["delivered"] == stats["accepted"] > 0
