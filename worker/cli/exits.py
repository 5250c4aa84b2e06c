"""The exit codes of ``cable-ingest``: the contract with automated callers (README, "Exit codes").

The numbers above 2 come from sysexits.h, so a shell script or a supervisor can tell "your input
was bad" from "try again later" without parsing a line of output.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
"""Everything was accepted (``run``: and stored); a read command answered."""
ERROR: Final = 1
"""A thing named on the command line does not exist, or cable-ingest failed (one line says why)."""
USAGE: Final = 2
"""Bad arguments (argparse: a usage line and one error line)."""
DATA: Final = 65
"""EX_DATAERR: some inputs were rejected at intake or dead-lettered after it (each is named)."""
UNAVAILABLE: Final = 69
"""EX_UNAVAILABLE: the broker or the database did not answer within the configured wait."""
TEMPFAIL: Final = 75
"""EX_TEMPFAIL: ``run`` stopped before every input had an outcome (workers died, no progress);
what is queued stays queued and a later worker finishes it."""
INTERRUPTED: Final = 130
"""SIGINT (Ctrl-C): the summary so far was printed; what is queued stays queued."""
