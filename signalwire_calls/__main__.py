"""``python -m signalwire_calls`` runs the command line (see ``_cli``)."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
