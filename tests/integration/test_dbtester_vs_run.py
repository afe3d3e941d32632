"""End to end: what ``DatabaseTester`` accepts, a real run accepts (issue #16, point 3).

Each case edits the ``sample`` values of the bundled example view (a copy of
``prefix/``), checks the view with ``DatabaseTester`` in this process, then runs
the block reading it (``normalize_train``) through ``beat-backend run``: the
databases_provider and execute scripts as subprocesses. The tester passes
exactly when the run does; when it fails, the run fails with the same
exception type and text, for the same unit.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from _paths import EXAMPLE_PREFIX

from beat_backend._cli.main import main
from beat_backend.database import Database, DatabaseTester
from beat_backend.loader import load_module

SMALL = "example/example/two_classes/1/linear_small"
GOOD = (
    '            return {\n                "id": numpy.uint64(obj.sample_id),\n'
    '                "features": self.features[obj.sample_id - self.first_id],\n'
    "            }\n"
)
FEATURES = "self.features[obj.sample_id - self.first_id]"

#: case -> the lines replacing GOOD in the view's get()
CASES = {
    "good": GOOD,
    "string_id": GOOD.replace("numpy.uint64(obj.sample_id)", '"abc"'),
    "python_int_id": GOOD.replace("numpy.uint64(obj.sample_id)", "obj.sample_id"),
    "missing_field": '            return {"id": numpy.uint64(obj.sample_id)}\n',
    "extra_field": GOOD.replace("            }\n", '                "more": 1,\n            }\n'),
    "list_for_the_object": f"            return [numpy.uint64(obj.sample_id), {FEATURES}]\n",
    "two_dimensional_features": GOOD.replace(FEATURES, f"{FEATURES}.reshape(1, 2)"),
}


def _tester_error(prefix: str, tmp_path) -> tuple[str, list[str]] | None:
    """``None`` when DatabaseTester accepts the view, else ``<exception>: <text>`` and notes."""
    db = Database(prefix, "synthetic/1")
    view = load_module("synthetic_1", db.storage.code.path, {}).Blobs
    definition = db.view_definition("small", "train")
    try:
        DatabaseTester(
            "small train",
            view,
            definition["outputs"],  # output -> dataformat: the values are checked
            definition["parameters"],
            all_combinations=False,
            report_dir=str(tmp_path),
        )
    except Exception as exc:
        # (the module shown depends on what was imported: the facades rename classes)
        return f"{type(exc).__qualname__}: {exc}", exc.__notes__
    return None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_tester_and_a_real_run_agree(case, tmp_path, capsys):
    prefix = str(tmp_path / "prefix")
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    path = os.path.join(prefix, "databases", "synthetic", "1.py")
    with open(path, encoding="utf-8") as f:
        code = f.read()
    assert GOOD in code
    with open(path, "w", encoding="utf-8") as f:
        f.write(code.replace(GOOD, CASES[case]))

    refused = _tester_error(prefix, tmp_path)
    capsys.readouterr()
    cache = str(tmp_path / "cache")
    status = main(
        ["run", "--json", "--block", "normalize_train", "--prefix", prefix, "--cache", cache, SMALL]
    )
    document = json.loads(capsys.readouterr().out)
    (block,) = document["blocks"]

    if refused is None:
        assert case == "good"
        assert (status, block["status"]) == (0, "ran"), block
        return
    line, notes = refused
    assert (status, block["status"]) == (1, "failed")
    last = block["user_error"].strip().split("\n")[-1]
    assert last.endswith(line) and last[: -len(line)] in ("", "beat_backend._core.errors."), last
    assert notes[0] == "output: sample"
    # the same unit: the provider names the request that failed (`get sample <index>', or
    # `gtb sample <first> <count>' for a batch read ahead)
    index = int(notes[1].split()[1])
    request = re.search(r"command `(get|gtb) sample (\d+)(?: (\d+))?'", block["user_error"])
    first, count = int(request.group(2)), int(request.group(3) or 1)
    assert first <= index < first + count, (index, request.group(0))
