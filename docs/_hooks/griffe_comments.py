"""Griffe extension: the package's docstrings, as the API reference reads them.

* ``#:`` comment lines right above an attribute are its docstring. The package documents
  its constants and type aliases that way (the Sphinx convention); griffe reads only
  string literals after the assignment.
* reStructuredText's literal-block marker is dropped: a paragraph ending ``::`` ends
  with ``:``, and a line holding only ``::`` goes. The indented block after it is a code
  block in Markdown as it is.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import griffe

_LITERAL_MARKER = re.compile(r"(?P<end>(?<=\S)::$)|^[ \t]*::[ \t]*\n", re.M)


@cache
def _lines(path: str) -> tuple[str, ...]:
    return tuple(Path(path).read_text(encoding="utf-8").splitlines())


def _markdown(text: str) -> str:
    return _LITERAL_MARKER.sub(lambda m: ":" if m["end"] else "", text)


class CommentDocstrings(griffe.Extension):
    """Gives undocumented attributes their ``#:`` comments; drops ``::`` markers."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)

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
                _markdown("\n".join(text)),
                lineno=index + 2,
                endlineno=attr.lineno - 1,
                parent=attr,
            )
