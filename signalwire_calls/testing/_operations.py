"""The operation registry: kind name -> :class:`OpKind` (start, sub-commands, early end).

Each kind lives in its own ``_op_<kind>`` module; the dispatcher finds them here by the
kind the wire table (``_wire``) names for a command.
"""

from __future__ import annotations

from . import _op_collect, _op_detect, _op_play, _op_record, _op_stream, _op_tap, _op_transcribe
from ._model import OpKind

__all__ = ["OP_KINDS"]

OP_KINDS: dict[str, OpKind] = {
    kind.name: kind
    for kind in (
        _op_play.KIND,
        _op_record.KIND,
        _op_collect.KIND,
        _op_detect.KIND,
        _op_tap.KIND,
        _op_stream.KIND,
        _op_transcribe.KIND,
    )
}
