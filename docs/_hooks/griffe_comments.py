"""Griffe extension: ``#:`` comments above an attribute are its docstring.

The package documents its constants and type aliases the Sphinx way, with ``#:``
comment lines just above the assignment; griffe reads only string literals after it.
This extension gives such attributes their comment as docstring, for the API reference.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import griffe


@cache
def _lines(path: str) -> tuple[str, ...]:
    return tuple(Path(path).read_text(encoding="utf-8").splitlines())


class CommentDocstrings(griffe.Extension):
    """Turns the ``#:`` lines right above an undocumented attribute into its docstring."""

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.docstring is not None or not attr.lineno or not isinstance(attr.filepath, Path):
            return
        lines = _lines(str(attr.filepath))
        text: list[str] = []
        index = attr.lineno - 2  # the line above the assignment, 0-based
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            text.insert(0, lines[index].lstrip()[2:].strip())
            index -= 1
        if text:
            attr.docstring = griffe.Docstring(
                "\n".join(text), lineno=index + 2, endlineno=attr.lineno - 1, parent=attr
            )
