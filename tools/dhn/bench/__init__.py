"""Benchmarks (`make bench`): each module ``bench_*.py`` here has ``run() -> list of Figure``.

The runner prints one table (figure, value, unit, ratio to what it is compared with, measured
in the same run) and writes the same figures to runs/bench.json as a flat {name: number}.
"""
import time
from dataclasses import dataclass


@dataclass
class Figure:
    name: str            # flat key in bench.json, e.g. "layers.pairwise_b64_k48_ms"
    value: float
    unit: str
    ratio: float = None  # value / reference, the reference measured in the same run
    versus: str = ""     # what the ratio compares with, in words


def best_time(fn, repeat=5, number=1):
    """Best wall time of ``number`` calls, over ``repeat`` tries (seconds per call)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best
