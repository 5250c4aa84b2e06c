"""Run the chaos scenarios and print one reconciled row each; exit 1 if anything was lost or
duplicated, or a scenario failed to run."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from chaos.feeds import SCENARIOS as FEED_SCENARIOS
from chaos.scenarios import SCENARIOS as CORE_SCENARIOS
from chaos.scenarios import Row

SCENARIOS = {**CORE_SCENARIOS, **FEED_SCENARIOS}

HEADER = ("scenario", "sent", "stored", "dead", "withheld", "rejected", "lost", "dup", "recover")


def _cells(row: Row) -> tuple[str, ...]:
    o = row.outcome
    numbers = (o.sent, o.stored, o.dead_lettered, o.withheld, o.rejected, len(o.lost))
    return (row.scenario, *(f"{n:,}" for n in numbers), f"{o.duplicated:,}",
            f"{row.recover_s:.1f} s")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios named (default: all) in order."""
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    widths = [44, 7, 7, 6, 8, 8, 5, 4, 9]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(HEADER, widths, strict=True))))  # fmt: skip
    failed = False
    for name in args.scenarios or list(SCENARIOS):
        try:
            row = SCENARIOS[name]()
        except Exception:
            traceback.print_exc()
            print(f"{name}: the scenario could not run", flush=True)
            failed = True
            continue
        cells = _cells(row)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(cells, widths, strict=True))),
              flush=True)  # fmt: skip
        for note in row.outcome.notes:
            print(f"    {note}")
        if row.outcome.lost:
            print(f"    LOST: {', '.join(row.outcome.lost[:5])}")
        for failure in row.outcome.failures:
            print(f"    FAILED: {failure}")
        failed = failed or bool(row.outcome.lost or row.outcome.failures)
        failed = failed or row.outcome.duplicated > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
