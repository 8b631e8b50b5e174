"""A tiny, dependency-free benchmark harness that reports ratios within one run.

Shared machines are noisy, so every benchmark interleaves its candidates round by round
(A, B, C, A, B, C, ...) and reports the best round of each — the least disturbed — as
operations per second, plus the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    seconds_per_op: float

    @property
    def per_second(self) -> float:
        return 1.0 / self.seconds_per_op


def _calibrate(fn: Callable[[], object], target: float) -> int:
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target / 4 or number >= 1 << 20:
            return max(1, int(number * target / max(elapsed, 1e-9)))
        number *= 2


def compare(
    candidates: dict[str, Callable[[], object]], *, rounds: int = 7, round_seconds: float = 0.2
) -> list[Result]:
    """Time each candidate in interleaved rounds; return the best round of each."""
    numbers = {name: _calibrate(fn, round_seconds) for name, fn in candidates.items()}
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(rounds):
        for name, fn in candidates.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return [Result(name, best[name]) for name in candidates]


def table(title: str, results: list[Result], baseline: str) -> str:
    """Markdown table with ops/s and the ratio to ``baseline``."""
    base = next(r for r in results if r.name == baseline)
    lines = [f"### {title}", "", "| candidate | per second | ratio to baseline |",
             "|---|---:|---:|"]
    for r in results:
        ratio = r.per_second / base.per_second
        lines.append(f"| {r.name} | {r.per_second:,.0f} | {ratio:.2f}× |")
    return "\n".join(lines) + "\n"
