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
SUITES = ["formats", "cache", "remote", "executor", "batches", "startup", "latency", "overhead"]
#: sections of RESULTS.md written by other means, kept as they are
KEPT = ("dask", "notes")


def _sections(text: str) -> dict[str, str]:
    """``## name`` -> that section of RESULTS.md (heading included)."""
    return {
        match.group(1): match.group(0).rstrip("\n") + "\n"
        for match in re.finditer(r"^## (\S+)\n.*?(?=^## |\Z)", text, re.S | re.M)
    }


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


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
        _write(path, args.only, command, sections, load_before, load_after, elapsed)
    return 0


def _write(path, only, command, sections, load_before, load_after, elapsed) -> None:
    """Write RESULTS.md: a full run replaces it (the kept sections stay); ``--only``
    replaces its own sections, each saying which command and load produced it."""
    old_text = _read(path)
    old = _sections(old_text)
    new = {}
    for name, doc, text in sections:
        origin = ""
        if only:
            origin = (
                f"Refreshed by `{command}` (load average {load_before} before, "
                f"{load_after} after; {elapsed:.1f} s); the other sections come from the "
                "run in the header.\n\n"
            )
        new[name] = f"## {name}\n\n{origin}{doc.strip()}\n\n{text}"
    if only and old_text:
        head = old_text[: old_text.index("## ")] if "## " in old_text else old_text
    else:
        head = (
            "# Benchmark results\n\n"
            f"Command: `{command}` (from the repository root)\n\n"
            f"Machine: {machine()}\n\n"
            f"Load average (1, 5, 15 min): {load_before} before the run, {load_after} "
            f"after; total run time {elapsed:.1f} s.\n\n"
            "Rates are medians of 5 repetitions; `baseline` is the physical minimum "
            "for the same payload measured in the same run, `ratio` = rate / baseline.\n\n"
        )
    names = [n for n in SUITES if n in new or (only and n in old)]
    body = [new.get(name) or old[name] for name in names]
    body += [old[name] for name in KEPT if name in old]
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "\n".join(body))


if __name__ == "__main__":
    sys.exit(main())
