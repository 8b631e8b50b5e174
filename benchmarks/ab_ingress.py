"""The API ingress of two checkouts (or two settings), measured adjacent and alternating.

``python -m benchmarks.ab_ingress --a <checkout> --b <checkout> [--env-b NAME=VALUE]
[--rounds 8] [--count 3000] [--in-flight 16] [--workers 2]``

A change that only touches the API is measured against the API, next to it: rounds run
``A, B, B, A, …`` (each a ``docaxis serve`` of that checkout's ``cli.py`` on a fresh store,
wrk posting ``count`` packages, :meth:`bench_relay._Bench.ingress`), and each round pair
gives a ratio B / A. On this shared 2-core machine the rate of the same code moves by up
to 2× within minutes; a ratio against a hop run minutes apart carries that drift
(docs/benchmarks.md, "2026-12-01 (tenth session)"). ``--env-a`` / ``--env-b`` set
environment variables for that side's node (an experiment behind a switch).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks import bench_relay


def _environment(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


async def _measure(args: argparse.Namespace) -> dict[str, list[float]]:
    vhost = bench_relay._vhost()
    bench = bench_relay._Bench(f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                               Path(tempfile.mkdtemp()), args.count)
    sides = {"A": (Path(args.a).resolve(), _environment(args.env_a)),
             "B": (Path(args.b).resolve(), _environment(args.env_b))}
    rates: dict[str, list[float]] = {"A": [], "B": []}
    base = dict(os.environ)
    await bench.setup()
    try:
        for round_ in range(args.rounds):
            for name in ("A", "B") if round_ % 2 == 0 else ("B", "A"):
                root, environment = sides[name]
                bench_relay.ROOT = root  # `serve` runs that checkout's cli.py
                os.environ.clear()
                os.environ.update({**base, **environment})
                rate = await bench.ingress(args.workers, 2 * round_ + (name == "B"),
                                           args.in_flight)
                rates[name].append(rate)
                print(f"round {round_} {name}: {rate:,.0f}/s, {bench.last_cpu_ms:.2f} ms CPU "
                      f"a package, {bench.last_per_transaction:.1f} a transaction, idle "
                      f"{bench.last_cores.get('idle', float('nan')):.2f} cores", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(base)
        await bench.close()
        subprocess.run([bench_relay.RABBITMQCTL or "", "delete_vhost", vhost], check=False,
                       capture_output=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="checkout A (its cli.py is served)")
    parser.add_argument("--b", required=True, help="checkout B")
    parser.add_argument("--env-a", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rates = asyncio.run(_measure(args))
    ratios = [b / a for a, b in zip(rates["A"], rates["B"], strict=True)]
    print(f"\nA median {statistics.median(rates['A']):,.0f}/s, B median "
          f"{statistics.median(rates['B']):,.0f}/s; B / A each round "
          f"{', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
