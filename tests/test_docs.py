"""The documentation cannot rot: the site builds, and every code block in it runs or
type-checks.

* The site (``mkdocs.yml``) is built once with ``--strict``: a broken link or anchor, a
  page missing from the navigation, a reference to a name that no longer exists, a
  missing included file or a docstring griffe cannot read fails the build.
* Every name in ``signalwire_calls.__all__`` is in the built API reference's inventory.
* The command-line reference shows every option of every subcommand.
* Fenced ``python`` blocks of the README and of the pages written for users are of three
  kinds, told apart by their content: complete programs (a top-level ``asyncio.run(``)
  are run, each in a subprocess, against the simulator they start themselves, and a
  ``print(...)  # text`` line must print that text (``...`` matches anything); pytest
  files (a top-level ``def test_``) are run by pytest in a subprocess, in the mode their
  markers ask for; every other block is a fragment, type-checked by ``mypy --strict``
  inside an ``async def`` that declares the names fragments use without defining them
  (``session``, ``call``, ``sim``, ``SWML``). Blocks that include a file
  (``--8<-- "examples/..."``) are skipped here: the examples run in test_examples.py,
  and are type-checked with the fragments.
* The README starts with the two commands and fits one screen before its links.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

import signalwire_calls
from signalwire_calls._cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# pages other engineers write (linked in the navigation, not checked here)
NOT_OURS = {DOCS / "architecture.md", DOCS / "mutation.md"}
PAGES = [README, *sorted(p for p in DOCS.rglob("*.md") if p not in NOT_OURS)]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w-]*)[^\n]*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        if "--8<--" in self.code:
            return "include"
        if re.search(r"^(async )?def test_", self.code, re.M):
            return "pytest"
        if re.search(r"^asyncio\.run\(", self.code, re.M):
            return "program"
        return "fragment"


def blocks_of(page: Path) -> list[Block]:
    """The fenced code blocks of ``page`` (indented ones, in list items, included)."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page}:{i + 1}: code block never closed")
        found.append(Block(page, i + 1, opening["lang"], "\n".join(body) + "\n"))
        i = j + 1
    return found


BLOCKS = [b for page in PAGES for b in blocks_of(page)]
PYTHON = [b for b in BLOCKS if b.lang in ("python", "py")]


def _env() -> dict[str, str]:
    """The environment of a subprocess: no credentials, no pytest settings of ours."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "PYTEST_")) and k not in ("PYTHONWARNINGS",)
    }


def test_every_python_block_is_checked() -> None:
    """Control: the pages have blocks of each kind, and no python block hides under
    another language name."""
    kinds = {b.kind for b in PYTHON}
    assert kinds == {"program", "pytest", "fragment", "include"}, kinds
    for block in BLOCKS:
        if block.lang in ("", "text", "sh", "console"):
            assert not re.search(
                r"^(import \w|from \w+ import |async def |await )", block.code, re.M
            ), f"{block.name}: python code in a {block.lang or 'plain'} block is not checked"


# --------------------------------------------------------------------------- the site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with --strict."""
    out = tmp_path_factory.mktemp("site")
    env = _env() | {"NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output
    # an include marker left as text (mangled, or a block the snippets extension missed)
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"--8 ?&lt; ?--", text), f"{page}: an include was not expanded"
    return out


def _inventory(site: Path) -> set[str]:
    """The object names of the site's Sphinx inventory (``objects.inv``)."""
    data = (site / "objects.inv").read_bytes()
    header, _, compressed = data.partition(b"compressed using zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2"), header
    return {line.split(" ", 1)[0] for line in zlib.decompress(compressed).decode().splitlines()}


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    documented = _inventory(site)
    missing = [n for n in signalwire_calls.__all__ if f"signalwire_calls.{n}" not in documented]
    assert missing == [], f"not in the API reference (docs/reference/*.md): {missing}"
    # and the reference is more than the names: the testing module and the commands too
    assert {"signalwire_calls.testing.SimulatorThread", "signalwire_calls.commands.Dial"} <= (
        documented
    )


def test_cli_reference_shows_every_option(site: Path) -> None:
    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    parsers = [build_parser()]
    seen = 0
    while parsers:
        parser = parsers.pop()
        assert f"usage: {parser.prog}" in page, parser.prog
        for action in parser._actions:
            choices = action.choices if isinstance(action.choices, dict) else {}
            parsers.extend(choices.values())
            for option in action.option_strings:
                assert option in page, f"{parser.prog} {option}"
                seen += 1
    assert seen > 40  # the walk reached every subcommand


def test_included_examples_are_shown(site: Path) -> None:
    includes = [b for b in PYTHON if b.kind == "include"]
    assert len(includes) >= 4
    for block in includes:
        path = block.code.replace("--8<--", "").strip().strip('"')
        page = site / block.page.relative_to(DOCS).with_suffix("") / "index.html"
        first_def = re.search(r"^(?:async )?def (\w+)", (ROOT / path).read_text(), re.M)
        assert first_def is not None, path
        assert f"{first_def[1]}</span>" in page.read_text(encoding="utf-8"), (block.name, path)


def test_changelog_page_is_the_changelog(site: Path) -> None:
    page = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    first_entry = next(
        line.removeprefix("- ").split("`")[0].strip()
        for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("- ")
    )
    assert first_entry
    assert first_entry in page


# --------------------------------------------------------------------------- programs


def _expected_output(code: str) -> list[re.Pattern[str]]:
    """``print(...)  # text`` lines: the text each must print (``...`` is anything)."""
    patterns = []
    for match in re.finditer(r"^\s*print\(.*\)\s+#\s*(?P<text>.+)$", code, re.M):
        parts = [re.escape(part.strip()) for part in match["text"].split("...")]
        patterns.append(re.compile(".*".join(parts)))
    return patterns


@pytest.mark.parametrize("block", [b for b in PYTHON if b.kind == "program"], ids=lambda b: b.name)
def test_program_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(block.code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, f"{block.name}\n{proc.stdout}{proc.stderr}"
    for pattern in _expected_output(block.code):
        assert pattern.search(proc.stdout), (
            f"{block.name}: {pattern.pattern!r} not in\n{proc.stdout}"
        )


# --------------------------------------------------------------------------- pytest files


def _mode(block: Block) -> str:
    if "@pytest.mark.anyio" in block.code:
        return "anyio"
    return "strict" if "@pytest.mark.asyncio" in block.code else "auto"


QUIET = ("-p", "no:hypothesispytest")  # a dev dependency of ours, slow to load
_LOOP_SCOPE = "asyncio_default_fixture_loop_scope = function\n"
_MODE_SETTINGS = {
    "strict": ("asyncio_mode = strict\n" + _LOOP_SCOPE, ()),
    "auto": ("asyncio_mode = auto\n" + _LOOP_SCOPE, ()),
    "anyio": ("", ("-p", "no:asyncio")),
}


@pytest.mark.parametrize("mode", sorted({_mode(b) for b in PYTHON if b.kind == "pytest"}))
def test_pytest_blocks_pass(mode: str, tmp_path: Path) -> None:
    """The pages' test files, in a project of their own, run as a user would."""
    blocks = [b for b in PYTHON if b.kind == "pytest" and _mode(b) == mode]
    for block in blocks:
        name = re.sub(r"\W", "_", block.name.removesuffix(".md").replace(".md:", "_"))
        (tmp_path / f"test_{name}.py").write_text(block.code, encoding="utf-8")
    ini, args = _MODE_SETTINGS[mode]
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n" + ini)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *QUIET, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    tests = sum(len(re.findall(r"^(?:async )?def test_", b.code, re.M)) for b in blocks)
    assert re.search(rf"^{tests} passed", output.strip().splitlines()[-1]), output


# --------------------------------------------------------------------------- fragments

# What fragments use without defining it. A fragment assigning one of these names makes
# it a local of its own type.
PRELUDE = """\
from __future__ import annotations

import asyncio
from typing import Any

from signalwire_calls import *  # noqa: F403
from signalwire_calls.testing import Callee, FaultPlan, Simulator, SimulatorThread

session: CallSession
call: Call
sim: SimulatorThread
SWML: dict[str, Any] = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


async def _fragment() -> None:
"""


MYPY_ARGS = ("--config-file", str(ROOT / "pyproject.toml"), "--no-pretty", "--show-error-codes")


def test_fragments_and_examples_type_check(tmp_path: Path) -> None:
    """``mypy --strict`` (the project's settings) over every fragment, the examples and
    the site's hooks. Its cache is the project's, which ``make typecheck`` warms."""
    fragments = [b for b in PYTHON if b.kind == "fragment"]
    assert len(fragments) > 20
    files: dict[str, Block] = {}
    for number, block in enumerate(fragments):
        name = f"fragment_{number:03d}.py"
        source = PRELUDE + textwrap.indent(block.code, "    ") + "\n"
        (tmp_path / name).write_text(f"# {block.name}\n{source}", encoding="utf-8")
        files[name] = block
    extra = [
        *sorted((ROOT / "examples").glob("*.py")),
        *sorted((DOCS / "_hooks").glob("*.py")),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *MYPY_ARGS, *sorted(files), *map(str, extra)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=_env() | {"MYPY_CACHE_DIR": str(ROOT / ".mypy_cache")},
        check=False,
    )
    if proc.returncode != 0:
        report = [proc.stdout, proc.stderr]
        for name, block in files.items():
            if name in proc.stdout:
                report.append(f"--- {name} is {block.name}:\n{block.code}")
        pytest.fail("\n".join(report))
    assert "Success: no issues found" in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- README


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    start = next(i for i, line in enumerate(lines) if line.strip())  # the title
    rest = [line for line in lines[start + 1 :] if line.strip()]
    assert rest[:4] == [
        "```sh",
        "make demo   # creates .venv, installs, runs a whole call flow against the bundled"
        " simulator",
        "make test   # creates .venv, installs the dev extras, runs ruff, mypy --strict and pytest",
        "```",
    ], rest[:4]


def test_readme_fits_one_screen_before_its_links() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    links = next(i for i, line in enumerate(lines) if line.startswith("## Documentation"))
    assert links <= 45, f"{links} lines before the documentation links"
    assert [b.kind for b in blocks_of(README) if b.lang == "python"] == ["program"]


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert len(local) > 5
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []
