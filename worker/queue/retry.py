"""Retry timing: exponential backoff with "equal jitter" (half fixed, half random)."""

from __future__ import annotations

import random

BASE_S = 1.0
CAP_S = 300.0


def backoff(attempt: int, *, base: float = BASE_S, cap: float = CAP_S) -> float:
    """Seconds to wait before retry ``attempt`` (0 for the first retry).

    Uniform in [d/2, d] with d = min(cap, base * 2**attempt): waits grow with each attempt,
    and retries of many batches failing together spread out instead of returning in step.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
