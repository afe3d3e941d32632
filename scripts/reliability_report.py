"""Run the reliability suite and print its figures (the tables of tests/reliability/README.md).

    python scripts/reliability_report.py            # corpus + default fault trials (~1 min)
    python scripts/reliability_report.py --slow     # + the seeded fault trials (-m slow)

Runs ``pytest tests/reliability`` with a junit report (cases tried and
passed, per category) and ``BEAT_RELIABILITY_LOG`` (one JSON line per fault
trial: role, signal, the runs it took until the signal hit a live process,
the outcome, how long the surviving processes took to exit, the rerun), then
the tests of the rest of the suite named in :data:`ELSEWHERE` (the connect
timeout, the signals of ``beat-backend run``), and prints Markdown: cases
per category, the fault trials per role and signal, the hit rate per role.
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: test function -> category (corpus functions are split further by case id)
CATEGORIES = {
    "test_value_corpus": "values: wrong dtypes, shapes, missing fields x 5 casting modes",
    "test_user_code_in_process": "user code raising / sys.exit in every hook (in-process, exc)",
    "test_user_code_through_the_scripts": "user code raising / sys.exit through the scripts",
    "test_index_raising_in_the_index_script": "user code raising through the scripts",
    "test_printing_user_code_does_not_corrupt_anything": "user code printing to stdout",
    "test_message_corpus": "malformed / out-of-order messages to the handlers",
    "test_accepted_requests_keep_the_handler_serving": "messages the handlers accept",
    "test_err_with_invalid_utf8_is_recorded_and_acknowledged": "messages the handlers accept",
    "test_don_ends_serving_and_later_requests_get_no_reply": "messages the handlers accept",
    "test_the_databases_provider_script_answers_garbage_with_err": (
        "malformed / out-of-order messages to the handlers"
    ),
}
ASSET_PREFIXES = {
    "malformed": "declarations: malformed JSON (7 kinds)",
    "duplicate": "declarations: duplicate keys (7 kinds)",
    "schema": "declarations: schema violations (validate + check)",
    "cycle": "declarations: cycles (dataformats, libraries, toolchains)",
    "name": "declarations: invalid asset names (7 kinds)",
}
CONFIG_PREFIXES = ("execute-", "block-cli-", "loop-execute-", "provider-")
#: tests outside tests/reliability that the report runs too: a keyword of their module or
#: function name (pytest ``-k``) -> category; each category is listed even without tests
ELSEWHERE = {
    "channel_connect": "peers that never come up: BEAT_BACKEND_CONNECT_TIMEOUT",
    "connect_timeout": "peers that never come up: BEAT_BACKEND_CONNECT_TIMEOUT",
    "no_databases_provider_listening": "peers that never come up: BEAT_BACKEND_CONNECT_TIMEOUT",
    "run_signals": "`beat-backend run` interrupted: Ctrl-C (SIGINT) and SIGTERM",
}
#: categories counted in the bad-input corpus
CORPUS = (
    "declarations",
    "values",
    "cache files",
    "configuration files",
    "user code",
    "malformed / out-of-order",
    "messages the",
)


def category(module: str, name: str) -> str:
    function, _, case = name.partition("[")
    case = case.rstrip("]")
    if function == "test_declaration_corpus":
        return ASSET_PREFIXES.get(case.split("-")[0], "declarations: unknown types and references")
    if function == "test_file_corpus":
        if case.startswith(CONFIG_PREFIXES):
            return "configuration files: missing keys, paths escaping the cache root"
        return "cache files: truncated, bit-flipped, header/checksum mismatch, index vs data"
    if function in CATEGORIES:
        return CATEGORIES[function]
    for keyword, label in ELSEWHERE.items():
        if keyword in module.lower() or keyword in function.lower():
            return label
    if module.endswith("test_fuzz_decoders"):
        return "hypothesis fuzzing of the decoders"
    if module.endswith("test_cache_maintenance"):
        return "cache: read-only files, verify, gc, two writers"
    if module.endswith("test_safe_defaults"):
        return "safe defaults: loopback, no unpickling, early validation, user code"
    if module.endswith("test_faults"):
        return "fault injection"
    return "other"


def run_pytest(slow: bool, workdir: Path) -> tuple[int, Path, Path]:
    junit = workdir / "reliability.xml"
    log = workdir / "faults.jsonl"
    env = dict(os.environ, BEAT_RELIABILITY_LOG=str(log))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(REPO / "tests" / "reliability"),
        f"--junitxml={junit}",
    ]
    status = subprocess.call(command, cwd=REPO, env=env)
    if slow:  # the default run first, then the slow trials (one report each, merged)
        junit_slow = workdir / "slow.xml"
        command[-1] = f"--junitxml={junit_slow}"
        status = subprocess.call([*command, "-m", "slow"], cwd=REPO, env=env) or status
        _merge(junit, junit_slow)
    # the named tests of the rest of the suite (slow ones too with --slow)
    junit_elsewhere = workdir / "elsewhere.xml"
    command[-2:] = [
        str(REPO / "tests"),
        f"--ignore={REPO / 'tests' / 'reliability'}",
        f"--junitxml={junit_elsewhere}",
        "-k",
        " or ".join(ELSEWHERE),
    ]
    if slow:
        command += ["-m", "slow or not slow"]
    found = subprocess.call(command, cwd=REPO, env=env)
    if found != 5:  # 5: no such test (yet)
        status = status or found
        _merge(junit, junit_elsewhere)
    return status, junit, log


def _merge(into: Path, other: Path) -> None:
    tree = ET.parse(into)
    suite = tree.getroot().find("testsuite")
    if suite is None:
        suite = tree.getroot()
    for case in ET.parse(other).iter("testcase"):
        suite.append(case)
    tree.write(into)


def cases(junit: Path) -> collections.OrderedDict:
    """Category -> [tried, passed]."""
    table: collections.OrderedDict = collections.OrderedDict()
    for case in ET.parse(junit).iter("testcase"):
        if case.find("skipped") is not None:
            continue
        label = category(case.get("classname", ""), case.get("name", ""))
        row = table.setdefault(label, [0, 0])
        row[0] += 1
        if case.find("failure") is None and case.find("error") is None:
            row[1] += 1
    return table


def faults(log: Path) -> list[dict]:
    """The fault trials of the JSON log (its ``fault-hits`` summary lines are recomputed)."""
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [line for line in lines if line.get("kind") == "fault"]


def _hits(rows: list[dict]) -> tuple[int, int, int, str]:
    """Runs started, signal points tried, points that hit a live process, the hit rate."""
    runs = sum(r.get("attempts", 1) for r in rows)
    points = sum(len(r.get("misses", ())) + bool(r["hit"]) for r in rows)
    hits = sum(bool(r["hit"]) for r in rows)
    return runs, points, hits, f"{100 * hits / points:.0f} %" if points else "-"


def markdown(table, trials: list[dict]) -> str:
    lines = ["| category | cases tried | passed |", "|---|---:|---:|"]
    corpus = [0, 0]
    others = []
    for label in ELSEWHERE.values():  # listed even before such tests exist
        table.setdefault(label, [0, 0])
    for label, (tried, passed) in sorted(table.items()):
        if label.startswith(CORPUS):
            lines.append(f"| {label} | {tried} | {passed} |")
            corpus[0] += tried
            corpus[1] += passed
        else:
            others.append(f"| {label} | {tried} | {passed} |")
    lines.append(f"| **bad-input corpus, total** | **{corpus[0]}** | **{corpus[1]}** |")
    lines += others
    if trials:
        lines += ["", *_fault_table(trials), "", *_hit_table(trials)]
    return "\n".join(lines)


def _fault_table(trials: list[dict]) -> list[str]:
    lines = [
        "| role | signal | trials | runs | points tried | signal hit a live process | hit rate "
        "| block failed with a system error | run completed | runner killed | survivors exited "
        "within (max) | reruns identical |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = collections.defaultdict(list)
    for trial in trials:
        groups[(trial["role"], trial["signal"])].append(trial)
    for (role, signal), rows in sorted(groups.items()):
        outcomes = collections.Counter(r["outcome"] for r in rows)
        runs, points, hits, rate = _hits(rows)
        lines.append(
            f"| {role} | {signal} | {len(rows)} | {runs} | {points} | {hits} | {rate} "
            f"| {outcomes['failed: system error']} | {outcomes['completed']} "
            f"| {outcomes['runner killed']} | {max(r['survivors_s'] for r in rows):.2f} s "
            f"| {sum(r['rerun'] == 'identical results' for r in rows)} |"
        )
    return lines


def _hit_table(trials: list[dict]) -> list[str]:
    lines = [
        "| role | trials | runs | points tried | signal hit a live process | hit rate "
        "| hit at the first point |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups = collections.defaultdict(list)
    for trial in trials:
        groups[trial["role"]].append(trial)
    for role, rows in sorted(groups.items()):
        runs, points, hits, rate = _hits(rows)
        first = sum(bool(r["hit"]) and not r.get("misses") for r in rows)
        lines.append(f"| {role} | {len(rows)} | {runs} | {points} | {hits} | {rate} | {first} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", action="store_true", help="also run the seeded fault trials")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reliability_") as tmp:
        status, junit, log = run_pytest(args.slow, Path(tmp))
        print()
        print(markdown(cases(junit), faults(log)))
    return status


if __name__ == "__main__":
    sys.exit(main())
