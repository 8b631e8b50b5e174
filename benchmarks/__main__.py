"""Run every benchmark and print Markdown tables: ``python -m benchmarks [--quick]``."""

from __future__ import annotations

import platform
import sys

from benchmarks import bench_validate


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()} {platform.release()}\n")
    print(bench_validate.run(quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
