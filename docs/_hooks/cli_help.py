"""MkDocs hook: the command-line reference shows the parser's own ``--help``.

A line ``<!-- help: signalwire-calls simulator -->`` in a page becomes a text block with
the output of ``signalwire-calls simulator --help``, rendered at build time from the
argument parser itself, so the reference cannot drift from the command.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

from signalwire_calls._cli import build_parser

_MARKER = re.compile(r"^<!-- help: signalwire-calls(?P<args>(?: [a-z][a-z-]*)*) -->$", re.M)
_WIDTH = "88"


def help_text(args: list[str]) -> str:
    """The ``--help`` output of ``signalwire-calls ARGS`` at a fixed width."""
    out = io.StringIO()
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _WIDTH  # argparse wraps to the terminal's width
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            build_parser().parse_args([*args, "--help"])
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before
    text = out.getvalue()
    if not text.startswith("usage: signalwire-calls"):
        raise ValueError(f"signalwire-calls {' '.join(args)} --help printed no usage")
    return text


def _block(match: re.Match[str]) -> str:
    args = match["args"].split()
    command = " ".join(["signalwire-calls", *args, "--help"])
    return f"```text\n$ {command}\n{help_text(args).rstrip()}\n```"


def on_page_markdown(markdown: str, **_: object) -> str:
    """Replace each help marker of a page with the help it names."""
    return _MARKER.sub(_block, markdown)
