"""``python -m benchmarks [--quick] [--only NAME ...] [--no-write]``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from ._harness import machine, table

#: workload modules, in the order they run
SUITES = ["formats", "cache", "remote"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (smaller workloads)")
    parser.add_argument("--only", nargs="*", choices=SUITES, help="run only these suites")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)

    suites = args.only or SUITES
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    sections = []
    t0 = time.perf_counter()
    for name in suites:
        module = importlib.import_module(f"benchmarks.{name}")
        rows = module.run(quick=args.quick)
        text = table(rows)
        print(f"## {name}\n\n{text}")
        sections.append((name, module.__doc__ or "", text))
    elapsed = time.perf_counter() - t0
    print(f"total {elapsed:.1f} s")

    if not args.no_write:
        path = os.path.join(os.path.dirname(__file__), "RESULTS.md")
        with open(path, "w", encoding="utf-8") as f:
            f.write("# Benchmark results\n\n")
            f.write(f"Command: `{command}` (from the repository root)\n\n")
            f.write(f"Machine: {machine()}\n\n")
            f.write(
                "Rates are medians of 5 repetitions; `baseline` is the physical minimum "
                "for the same payload measured in the same run, `ratio` = rate / baseline.\n\n"
            )
            for name, doc, text in sections:
                f.write(f"## {name}\n\n{doc.strip()}\n\n{text}\n")
            f.write(f"Total run time: {elapsed:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
