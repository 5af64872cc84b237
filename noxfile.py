"""The test suite on every supported Python found on this machine: ``nox`` (or
``nox -s tests-3.12``; arguments after ``--`` go to pytest).

An interpreter is looked for as ``python3.X`` on ``PATH`` and among pyenv's installed
versions (which pyenv's shims only run when selected); a version found nowhere is
skipped with one line saying so, never downloaded.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

PYTHONS = ("3.11", "3.12", "3.13")

ROOT = Path(__file__).resolve().parent
LINKS = ROOT / ".nox" / ".interpreters"

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False  # skip an absent Python, even on CI
nox.options.download_python = "never"


def _probe(executable: str) -> tuple[str, str] | None:
    """(``3.X``, its ``sys.executable``) of ``executable``, or None when it does not run
    (a pyenv shim of a version that is not selected, a dangling link)."""
    code = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
    try:
        result = subprocess.run(
            [executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.split("\n")
    if result.returncode != 0 or len(lines) < 2 or not lines[1]:
        return None
    return lines[0], lines[1]


def _candidates(version: str) -> list[str]:
    """``python3.X`` on ``PATH``, then pyenv's installs of 3.X, newest patch first."""
    name = f"python{version}"
    search = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if Path(d) != LINKS
    )
    found = [shutil.which(name, path=search) or ""]
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed: list[tuple[int, str]] = []
    for exe in glob.glob(str(versions / f"{version}.*" / "bin" / name)):
        release = re.fullmatch(r"\d+\.\d+\.(\d+)", Path(exe).parents[1].name)
        if release is not None:  # a plain CPython release (not -dev, t, a pypy...)
            installed.append((int(release.group(1)), exe))
    found += [exe for _, exe in sorted(installed, reverse=True)]
    return [c for c in found if c]


def _expose_interpreters() -> None:
    """Link each supported Python that runs into one directory put first on ``PATH``,
    where nox's lookup finds it before a shim that would not run."""
    LINKS.mkdir(parents=True, exist_ok=True)
    for version in PYTHONS:
        link = LINKS / f"python{version}"
        link.unlink(missing_ok=True)
        for candidate in _candidates(version):
            probe = _probe(candidate)
            if probe is not None and probe[0] == version:
                link.symlink_to(os.path.realpath(probe[1]))
                break
    if os.environ.get("PATH", "").split(os.pathsep)[0] != str(LINKS):
        os.environ["PATH"] = os.pathsep.join((str(LINKS), os.environ.get("PATH", "")))


_expose_interpreters()


@nox.session(python=list(PYTHONS))
def tests(session: nox.Session) -> None:
    """Install the package with its dev extras and run the test suite."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "-m", "pytest", *session.posargs)
