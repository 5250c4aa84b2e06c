"""The framework choice of ``cable-ingest serve``, measured: Starlette and FastAPI on uvicorn.

Each candidate (``bench/framework_apps.py``) runs in a uvicorn process of its own (one worker,
httptools and uvloop when installed) on loopback; :mod:`bench.loadgen` sends single-cable POSTs
(the sample cable, ~5 KB, text/plain) and GETs of a 2 KB JSON document over 32 keep-alive
connections, closed loop. Runs alternate between the candidates so that load from elsewhere on
the machine falls on both alike; medians with min-max.

    python -m bench.frameworks [--requests 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path

from bench.loadgen import build_request, load
from bench.server import start_uvicorn, stop

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "06ALMATY598.scraped.txt"


def measure(factory: str, requests: int) -> tuple[float, float, float, float]:
    """(POST/s, POST p99 ms, GET/s, GET p99 ms) for one candidate, on a fresh server."""
    server, port = start_uvicorn(f"bench.framework_apps:{factory}", [])
    try:
        body = SAMPLE.read_bytes()
        post = build_request("POST", "/v1/cables", body, {"Content-Type": "text/plain"})
        get = build_request("GET", "/v1/cables/06ALMATY598")
        load(port, lambda _i: post, requests=min(500, requests))  # warm-up
        posted = load(port, lambda _i: post, requests=requests)
        got = load(port, lambda _i: get, requests=requests)
        assert set(posted.statuses) == {202}, posted.statuses
        assert set(got.statuses) == {200}, got.statuses
        return posted.rate, posted.percentile(0.99), got.rate, got.percentile(0.99)
    finally:
        stop(server)


def main(argv: list[str] | None = None) -> int:
    """Print one row per candidate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    candidates = ["starlette_app"]
    if importlib.util.find_spec("fastapi") is not None:
        candidates.append("fastapi_app")
    figures: dict[str, list[tuple[float, float, float, float]]] = {c: [] for c in candidates}
    for _ in range(args.runs):
        for candidate in candidates:
            figures[candidate].append(measure(candidate, args.requests))
    print(
        f"{'framework':<12} {'POST/s':>8} {'min-max':>13} {'p99 ms':>7} "
        f"{'GET/s':>8} {'min-max':>13} {'p99 ms':>7}"
    )
    for candidate, rows in figures.items():
        cols = list(zip(*rows, strict=True))
        post, get = cols[0], cols[2]
        print(
            f"{candidate.removesuffix('_app'):<12} {statistics.median(post):>8,.0f} "
            f"{min(post):>6,.0f}-{max(post):<6,.0f} {statistics.median(cols[1]):>7.1f} "
            f"{statistics.median(get):>8,.0f} {min(get):>6,.0f}-{max(get):<6,.0f} "
            f"{statistics.median(cols[3]):>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
