"""Per-file mutation scores from mutmut's last run; exits 1 when a file is below the target.

    python tools/mutation_score.py --min 85 signalwire_calls/receiver.py

Score = killed / (mutants of the file), where killed counts mutants a test failed on, that
timed out or that the type checker caught; survivors, mutants no test reaches and mutants
not run yet all count against it. ``make mutation`` runs mutmut, then this.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check"}


def module_of(path: str) -> str:
    return str(Path(path).with_suffix("")).replace("/", ".")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="source files, as in MUTATE")
    parser.add_argument("--min", type=float, default=85.0, help="target score in percent")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    args = parser.parse_args()
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    statuses: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[name] = status
    failed = False
    for path in args.files:
        prefix = module_of(path) + "."
        mine = {n: s for n, s in statuses.items() if n.startswith(prefix)}
        counts = Counter(mine.values())
        total = len(mine)
        killed = sum(counts[s] for s in KILLED)
        score = 100.0 * killed / total if total else 0.0
        ok = total > 0 and score >= args.min
        failed |= not ok
        detail = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        verdict = "ok" if ok else f"BELOW {args.min:g} %"
        print(f"{path}: {killed}/{total} killed = {score:.1f} % ({detail}) {verdict}")
        if args.survivors:
            for name, status in sorted(mine.items()):
                if status not in KILLED:
                    print(f"    {status}: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
