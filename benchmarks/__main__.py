"""Run the benchmarks and print Markdown tables.

``python -m benchmarks [--quick] [validate] [dsig] [hostile] [store] [relay] [instances]
[large]`` (no name: all of them; ``instances`` needs root and starts a private
three-member RabbitMQ cluster).
"""

from __future__ import annotations

import platform
import sys

from benchmarks import (
    bench_dsig,
    bench_hostile,
    bench_instances,
    bench_large,
    bench_relay,
    bench_store,
    bench_validate,
)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()} {platform.release()}\n")
    only = [a for a in argv if not a.startswith("-")]
    if not only or "validate" in only:
        print(bench_validate.run(quick))
    if not only or "dsig" in only:
        print(bench_dsig.run(quick))
    if not only or "hostile" in only:
        print(bench_hostile.run(quick))
    if not only or "store" in only:
        print(bench_store.run(quick))
    if not only or "relay" in only:
        print(bench_relay.run(quick))
    if not only or "instances" in only:
        print(bench_instances.run(quick))
    if not only or "large" in only:
        print(bench_large.run(quick))
        print(bench_large.run_nodes(quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
