"""Progress for people while ``enqueue`` or ``run`` works: a live line on a terminal (tqdm: count,
rate, ETA), otherwise a plain line on stderr every few seconds, so that a log shows the run
moving and a long wait is never silent."""

from __future__ import annotations

import sys
import time
from typing import IO, Never

from tqdm import tqdm

EVERY_S = 5.0
"""Seconds between two progress lines when stderr is not a terminal."""


class Meter:
    """How far one phase has come: ``update`` with the absolute count and a detail; ``close``
    at the end (off a terminal, the first and the last state are always printed)."""

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        stream: IO[str] | None = None,
        interactive: bool | None = None,
        every_s: float = EVERY_S,
    ) -> None:
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every_s = every_s
        self.done = 0
        self.detail = ""
        self._started = time.monotonic()
        self._printed_at: float | None = None
        self._bar: tqdm[Never] | None = None
        if self.interactive:
            self._bar = tqdm(
                total=total, desc=what, unit="cable", file=self.stream, dynamic_ncols=True
            )

    def update(self, done: int, detail: str = "") -> None:
        """Now ``done`` of ``total``; ``detail`` says more (stored 10, waiting 5 …)."""
        self.done, self.detail = done, detail
        if self._bar is not None:
            if detail:
                self._bar.set_postfix_str(detail, refresh=False)
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if self._printed_at is None or now - self._printed_at >= self.every_s:
            self._print(now)

    def write(self, line: str) -> None:
        """A line of its own (a rejection, a warning), above the live line on a terminal."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def advance(self, detail: str = "") -> None:
        """One more done."""
        self.update(self.done + 1, detail)

    def close(self) -> None:
        """The last state: the bar stays on the terminal; off a terminal, one last line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        self._print(time.monotonic(), eta=False)

    def _line(self, now: float, *, eta: bool = True) -> str:
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        parts = [f"{self.what}: {count}"]
        if self.detail:
            parts[0] += f" ({self.detail})"
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.done and elapsed >= 1:  # a rate over less is noise
            parts.append(f"{rate:,.0f}/s")
        if eta and elapsed >= 1 and rate > 0 and self.total is not None and self.done < self.total:
            parts.append(f"about {(self.total - self.done) / rate:,.0f} s left")
        return "; ".join(parts)

    def _print(self, now: float, *, eta: bool = True) -> None:
        print(self._line(now, eta=eta), file=self.stream, flush=True)
        self._printed_at = now
