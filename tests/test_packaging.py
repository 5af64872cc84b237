"""The distributions: ``python -m build`` makes an sdist and a wheel that ``twine check``
accepts and that carry what an installed copy needs (typing marker, the simulator's
schema, the console script, the pytest plugin's entry point, the licence).

The build runs without isolation (the build backend comes from the dev extra), so the
test needs no network. The archives are inspected rather than installed: a fresh
virtual environment would take longer than the whole file may.
"""

from __future__ import annotations

import ast
import configparser
import email.parser
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "signalwire_calls"
SCRIPT = ("signalwire-calls", "signalwire_calls._cli:main")
PLUGIN = ("signalwire_calls", "signalwire_calls.testing._pytest_plugin")
URLS = ("Homepage", "Source", "Issues", "Changelog", "Documentation")
# never in an sdist: caches, environments, build output
JUNK = {".git", ".venv", ".nox", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
JUNK |= {"dist", "build"}


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(sdist, wheel)


def source_files() -> set[str]:
    """The package's files in the source tree, relative to the repository root."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / PACKAGE).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def wheel_metadata(wheel: zipfile.ZipFile) -> tuple[str, Message]:
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    dist_info = meta.rsplit("/", 1)[0]
    return dist_info, email.parser.Parser().parsestr(wheel.read(meta).decode())


def test_twine_check_passes(built: Built) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("PASSED") == 2, output


def test_wheel_carries_the_whole_package(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    in_package = {n for n in names if n.startswith(f"{PACKAGE}/")}
    assert in_package == source_files()
    for needed in ("py.typed", "testing/__init__.py", "testing/calling_schema.json"):
        assert f"{PACKAGE}/{needed}" in names


def test_wheel_declares_script_plugin_licence_and_metadata(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        dist_info, meta = wheel_metadata(wheel)
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(f"{dist_info}/entry_points.txt").decode())
        licence_files = [n for n in wheel.namelist() if n.startswith(f"{dist_info}/licenses/")]
        assert licence_files == [f"{dist_info}/licenses/LICENSE"]
        licence = wheel.read(licence_files[0]).decode()
    assert licence.startswith("MIT License")
    assert entry_points["console_scripts"][SCRIPT[0]] == SCRIPT[1]
    assert entry_points["pytest11"][PLUGIN[0]] == PLUGIN[1]
    assert meta["License"] == "MIT"
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = set(meta.get_all("Classifier") or [])
    for wanted in (
        "Typing :: Typed",
        "Framework :: AsyncIO",
        "License :: OSI Approved :: MIT License",
        "Topic :: Communications :: Telephony",
    ):
        assert wanted in classifiers
    versions = sorted(
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if c.startswith("Programming Language :: Python :: 3.")
    )
    assert versions == list(noxfile_pythons())
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert sorted(urls) == sorted(URLS)
    assert all(u.startswith("https://") for u in urls.values())


def noxfile_pythons() -> tuple[str, ...]:
    """``PYTHONS`` of noxfile.py, read without importing it."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "PYTHONS" for t in targets):
                assert node.value is not None
                value = ast.literal_eval(node.value)
                assert isinstance(value, tuple)
                return tuple(str(v) for v in value)
    raise AssertionError("noxfile.py: no PYTHONS")


def test_sdist_carries_sources_and_no_junk(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = sdist.getnames()
        top = names[0].split("/", 1)[0]
        member = sdist.extractfile(f"{top}/pyproject.toml")
        assert member is not None
        pyproject = tomllib.loads(member.read().decode())
    relative = {n.split("/", 1)[1] for n in names if "/" in n}
    for needed in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "CHANGELOG.md"):
        assert needed in relative
    assert source_files() <= relative
    junk = sorted(n for n in relative if JUNK & set(n.split("/")) or n.endswith(".pyc"))
    assert junk == []
    project = pyproject["project"]
    assert project["scripts"] == {SCRIPT[0]: SCRIPT[1]}
    assert project["entry-points"]["pytest11"] == {PLUGIN[0]: PLUGIN[1]}


def test_wheel_imports_and_finds_its_schema(built: Built) -> None:
    """The package runs from the wheel alone: its modules and its schema file load."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import signalwire_calls.testing._pytest_plugin as plugin\n"
        "from signalwire_calls.testing._schema import command_specs\n"
        "assert plugin.__file__.startswith(sys.argv[1]), plugin.__file__\n"
        "print(len(command_specs()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(built.wheel)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20
