"""``python -m benchmarks [--quick] [--only NAME ...] [--no-write]``.

Runs every workload beside its baseline (same run), prints the tables and
writes ``benchmarks/RESULTS.md``; the ``## dask`` section (written by
``python -m benchmarks.dask_sweep --write``) and the hand-written ``## notes``
section of an existing RESULTS.md are kept.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time

from ._harness import load_average, machine, table

#: workload modules, in the order they run
SUITES = ["formats", "cache", "remote", "executor", "startup"]
#: sections of RESULTS.md written by other means, kept as they are
KEPT = ("dask", "notes")


def _kept_sections(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    kept = []
    for name in KEPT:
        match = re.search(rf"^## {name}\n.*?(?=^## |\Z)", text, re.S | re.M)
        if match:
            kept.append(match.group(0).rstrip("\n") + "\n")
    return "\n".join(kept)


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
    load_before = load_average()
    sections = []
    t0 = time.perf_counter()
    for name in suites:
        module = importlib.import_module(f"benchmarks.{name}")
        rows = module.run(quick=args.quick)
        text = table(rows)
        print(f"## {name}\n\n{text}", flush=True)
        sections.append((name, module.__doc__ or "", text))
    elapsed = time.perf_counter() - t0
    load_after = load_average()
    print(f"total {elapsed:.1f} s; load average {load_before} before, {load_after} after")

    if not args.no_write:
        path = os.path.join(os.path.dirname(__file__), "RESULTS.md")
        kept = _kept_sections(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write("# Benchmark results\n\n")
            f.write(f"Command: `{command}` (from the repository root)\n\n")
            f.write(f"Machine: {machine()}\n\n")
            f.write(
                f"Load average (1, 5, 15 min): {load_before} before the run, {load_after} "
                f"after; total run time {elapsed:.1f} s.\n\n"
            )
            f.write(
                "Rates are medians of 5 repetitions; `baseline` is the physical minimum "
                "for the same payload measured in the same run, `ratio` = rate / baseline.\n\n"
            )
            for name, doc, text in sections:
                f.write(f"## {name}\n\n{doc.strip()}\n\n{text}\n")
            if kept:
                f.write(kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
