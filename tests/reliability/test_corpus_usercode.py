"""Bad-input corpus, user code: raising in every hook, ``sys.exit``, printing.

* In-process runners with an ``exc`` class: every hook of every algorithm
  type (setup, prepare, process; validate, write and read for loop
  evaluators) and of database views (index, setup, get) raises; the runner
  raises exactly ``exc``, whose traceback names the user's file and line and
  the original message. ``sys.exit()`` in a hook is wrapped the same way.
* Through the scripts (``run_experiment`` on the example prefix: real
  ``execute`` / ``loop_execute`` / ``databases_provider`` / ``index``
  subprocesses): the block fails with a user error naming the file, line and
  message, and nothing of it stays in the cache; a block whose code prints to
  stdout runs to the same results (stdout never corrupts the protocol).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import traceback
from pathlib import Path

import pytest
from _corpus import Case, Reported, check_case, copy_example_prefix, params

from beat_backend._assets.algorithm import Algorithm
from beat_backend._assets.database import Database
from beat_backend._dataflow.data_loaders import DataLoaderList
from beat_backend._dataflow.inputs import InputList
from beat_backend._dataflow.outputs import OutputList
from beat_backend._execution import planner
from beat_backend._execution.runner import run_experiment


class UserCodeError(Exception):
    """The ``exc`` class given to the runners."""


def formatted(error: BaseException) -> str:
    """What a user sees: the whole traceback (file, line, message) of ``error``."""
    return "".join(traceback.format_exception(error))


# -- algorithms, in process ---------------------------------------------------------------

SCORE, THRESHOLD, FEEDBACK = "example/score/1", "example/threshold/1", "example/feedback/1"
LOOP = {"request": {"type": THRESHOLD}, "answer": {"type": FEEDBACK}}

#: type -> (declaration extras, groups, hooks, process arguments)
TYPES = {
    "sequential": ("sequential", False, "inputs, data_loaders, outputs"),
    "autonomous": ("autonomous", False, "data_loaders, outputs"),
    "sequential_analyzer": ("sequential", False, "inputs, data_loaders, output"),
    "autonomous_analyzer": ("autonomous", False, "data_loaders, output"),
    "sequential_loop_processor": (
        "sequential_loop_processor",
        True,
        "inputs, data_loaders, outputs, loop_channel",
    ),
    "autonomous_loop_processor": (
        "autonomous_loop_processor",
        True,
        "data_loaders, outputs, loop_channel",
    ),
    "sequential_loop_evaluator": ("sequential_loop_evaluator", True, None),
    "autonomous_loop_evaluator": ("autonomous_loop_evaluator", True, None),
}


def hooks_of(label: str) -> list[str]:
    if label == "sequential_loop_evaluator":
        return ["setup", "prepare", "validate", "write", "read"]
    if label == "autonomous_loop_evaluator":
        return ["setup", "prepare", "validate", "write"]
    return ["setup", "prepare", "process"]


def declaration(label: str) -> dict:
    kind, loop, _ = TYPES[label]
    group = {"name": "main", "inputs": {"in": {"type": SCORE}}}
    if "analyzer" not in label:
        group["outputs"] = {"out": {"type": SCORE}}
    if loop:
        group["loop"] = LOOP
    data = {
        "schema_version": 3,
        "api_version": 2,
        "type": kind,
        "language": "python",
        "splittable": False,
        "groups": [group],
    }
    if "analyzer" in label:
        data["results"] = {"n": {"type": "int32"}}
    return data


def code(label: str, failing: str, how: str = "raise") -> str:
    """The algorithm class; hook ``failing`` raises (or calls ``sys.exit``)."""
    statement = {
        "raise": f'raise ValueError("boom-{failing}")',
        "exit": "sys.exit(3)",
    }[how]
    _, _, process_args = TYPES[label]
    body = dict.fromkeys(("setup", "prepare", "process", "validate", "write", "read"), "pass")
    body[failing] = statement
    methods = [
        f"    def setup(self, parameters):\n        {body['setup']}\n        return True\n",
        f"    def prepare(self, data_loaders):\n        {body['prepare']}\n        return True\n",
    ]
    if process_args is not None:
        methods.append(
            f"    def process(self, {process_args}):\n        {body['process']}\n"
            "        return True\n"
        )
    else:
        methods += [
            f"    def validate(self, request):\n        {body['validate']}\n"
            "        return (True, {})\n",
            "    def write(self, outputs, processor_output_name, end_data_index):\n"
            f"        {body['write']}\n        return True\n",
            f"    def read(self, inputs):\n        {body['read']}\n        return True\n",
        ]
    return "import sys\n\n\nclass Algorithm:\n" + "\n".join(methods)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def run_hook(runner, label: str, hook: str) -> None:
    """Call the hooks of ``runner`` in order, up to ``hook``."""
    runner.setup({})
    if hook == "setup":
        return
    runner.prepare(DataLoaderList())
    if hook == "prepare":
        return
    if hook == "process":
        kwargs = {"inputs": InputList(), "data_loaders": DataLoaderList()}
        if "analyzer" in label:
            kwargs["output"] = object()
        else:
            kwargs["outputs"] = OutputList()
        if "processor" in label:
            kwargs["loop_channel"] = object()
        runner.process(**kwargs)
    elif hook == "validate":
        runner.validate(object())
    elif hook == "write":
        runner.write(OutputList(), "out", None)
    elif hook == "read":
        runner.read(InputList())


def algorithm_cases() -> list[Case]:
    cases = []
    for label in TYPES:
        for hook in hooks_of(label):
            for how in ("raise", "exit"):
                if how == "exit" and hook not in ("setup", "process", "validate"):
                    continue
                name = f"bad/{label}_{hook}_{how}/1"
                text = code(label, hook, how)
                statement = "sys.exit(3)" if how == "exit" else "raise ValueError"
                line = line_of(text, statement)
                value = "SystemExit: 3" if how == "exit" else f"ValueError: boom-{hook}"

                def run(root, name=name, text=text, label=label, hook=hook):
                    path = root / "algorithms" / f"{name}.py"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
                    path.with_suffix(".json").write_text(json.dumps(declaration(label)))
                    algorithm = Algorithm(str(root), name)
                    assert algorithm.valid, algorithm.errors
                    run_hook(algorithm.runner(exc=UserCodeError), label, hook)

                cases.append(
                    Case(
                        f"{label}-{hook}-{how}",
                        run,
                        UserCodeError,
                        f"algorithms/{name}.py",
                        f"line {line}, in {hook}",
                        value,
                        describe=formatted,
                    )
                )
    return cases


# -- database views, in process ---------------------------------------------------------------

VIEW_CODE = textwrap.dedent(
    """\
    import sys

    from beat.backend.python.database import View


    class Base(View):
        def index(self, root_folder, parameters):
            return [{"sample": i, "label": i % 2} for i in range(3)]

        def get(self, output, index):
            return {"value": 0}


    class RaiseIndex(Base):
        def index(self, root_folder, parameters):
            raise ValueError("boom-index")


    class RaiseSetup(Base):
        def setup(self, root_folder, parameters, objs, start_index=None, end_index=None):
            raise ValueError("boom-setup")


    class RaiseGet(Base):
        def get(self, output, index):
            raise ValueError("boom-get")


    class ExitGet(Base):
        def get(self, output, index):
            sys.exit(3)
    """
)
VIEWS = {"index": "RaiseIndex", "setup": "RaiseSetup", "get": "RaiseGet", "exit": "ExitGet"}


def view_database(root: Path) -> str:
    name = "bad_views/1"
    protocols = [
        {
            "name": hook,
            "template": "two_classes/1",
            "views": {s: {"view": view} for s in ("train", "dev", "test")},
        }
        for hook, view in VIEWS.items()
    ]
    path = root / "databases" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 2, "root_folder": "/", "protocols": protocols}))
    path.with_suffix(".py").write_text(VIEW_CODE, encoding="utf-8")
    return name


def view_cases() -> list[Case]:
    cases = []
    for hook in VIEWS:

        def run(root, hook=hook):
            database = Database(str(root), view_database(root))
            assert database.valid, database.errors
            view = database.view(hook, "train", exc=UserCodeError)
            index = root / f"{hook}.db"
            if hook == "index":
                view.index(str(index))
                return
            index.write_text('[{"label": 0, "sample": 0}]', encoding="utf-8")
            view.setup(str(index))
            view.get("label", 0)

        where = "databases/bad_views/1.py"
        statement = "sys.exit(3)" if hook == "exit" else f'raise ValueError("boom-{hook}")'
        line = line_of(VIEW_CODE, statement)
        function = "get" if hook == "exit" else hook
        value = "SystemExit: 3" if hook == "exit" else f"ValueError: boom-{hook}"
        cases.append(
            Case(
                f"view-{hook}",
                run,
                UserCodeError,
                where,
                f"line {line}, in {function}",
                value,
                describe=formatted,
            )
        )
    return cases


INPROCESS = algorithm_cases() + view_cases()


@pytest.mark.parametrize("case", params(INPROCESS))
def test_user_code_in_process(case, tmp_path):
    root = copy_example_prefix(tmp_path / "prefix")
    check_case(case, root)


# -- through the scripts ----------------------------------------------------------------------

LINEAR = "example/example/two_classes/1/linear_small"
TUNE = "example/example/threshold_loop/1/tune"


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> tuple[Path, Path, dict]:
    """Example prefix + a cache holding every output of both experiments (and results)."""
    base = tmp_path_factory.mktemp("usercode")
    prefix = copy_example_prefix(base / "prefix")
    cache = base / "cache"
    results = {}
    for experiment in (LINEAR, TUNE):
        report = run_experiment(str(prefix), experiment, str(cache))
        assert report.ok, [(o.name, o.result and o.result.stderr) for o in report.outcomes]
        results[experiment] = report.results
    return prefix, cache, results


def _edit(path: Path, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` in the file; return the new text."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text


#: (case, experiment, block, file under the prefix, old text, new text, error kind, needle)
SCRIPTED = [
    (
        "execute-process-raises",
        LINEAR,
        "normalize_train",
        "algorithms/example/normalize/1.py",
        '        sample = inputs["sample"].data\n',
        '        sample = inputs["sample"].data\n        raise ValueError("boom-process")\n',
        "in process",
        "ValueError: boom-process",
    ),
    (
        "execute-setup-raises",
        LINEAR,
        "normalize_train",
        "algorithms/example/normalize/1.py",
        '        self.scale = float(parameters["scale"])\n',
        '        raise ValueError("boom-setup")\n',
        "in setup",
        "ValueError: boom-setup",
    ),
    (
        "execute-prepare-raises",
        LINEAR,
        "normalize_train",
        "algorithms/example/normalize/1.py",
        "    def process(self, inputs, data_loaders, outputs):\n",
        "    def prepare(self, data_loaders):\n        raise ValueError('boom-prepare')\n\n"
        "    def process(self, inputs, data_loaders, outputs):\n",
        "in prepare",
        "ValueError: boom-prepare",
    ),
    (
        "execute-process-exits",
        LINEAR,
        "normalize_train",
        "algorithms/example/normalize/1.py",
        '        sample = inputs["sample"].data\n',
        '        sample = inputs["sample"].data\n        import sys; sys.exit(3)\n',
        "in process",
        "SystemExit: 3",
    ),
    (
        "loop-execute-validate-raises",
        TUNE,
        "tune",
        "algorithms/example/threshold_evaluator/1.py",
        "        self.attempts += 1\n",
        '        raise ValueError("boom-validate")\n',
        "in validate",
        "ValueError: boom-validate",
    ),
    (
        "loop-execute-write-raises",
        TUNE,
        "tune",
        "algorithms/example/threshold_evaluator/1.py",
        '        outputs["tuning"].write(',
        '        raise ValueError("boom-write")\n        outputs["tuning"].write(',
        "in write",
        "ValueError: boom-write",
    ),
    (
        "loop-execute-read-raises",
        TUNE,
        "tune",
        "algorithms/example/threshold_evaluator/1.py",
        '        self.scores.append(float(inputs["score"].data.value))\n',
        '        raise ValueError("boom-read")\n',
        "in read",
        "ValueError: boom-read",
    ),
    (
        "loop-execute-validate-exits",
        TUNE,
        "tune",
        "algorithms/example/threshold_evaluator/1.py",
        "        self.attempts += 1\n",
        "        import sys; sys.exit(3)\n",
        "in validate",
        "SystemExit: 3",
    ),
    (
        "loop-processor-process-raises",
        TUNE,
        "tune",
        "algorithms/example/threshold_processor/1.py",
        "    def process(self, inputs, data_loaders, outputs, loop_channel):\n",
        "    def process(self, inputs, data_loaders, outputs, loop_channel):\n"
        '        raise ValueError("boom-processor")\n',
        "in process",
        "ValueError: boom-processor",
    ),
    (
        "provider-view-get-raises",
        LINEAR,
        "normalize_train",
        "databases/synthetic/1.py",
        "        obj = self.objs[index]\n",
        '        raise ValueError("boom-get")\n',
        "in get",
        "ValueError: boom-get",
    ),
    (
        "provider-view-setup-raises",
        LINEAR,
        "normalize_train",
        "databases/synthetic/1.py",
        "        super(Blobs, self).setup(root_folder, parameters, objs, start_index, end_index)\n",
        '        raise ValueError("boom-setup")\n',
        "in setup",
        "ValueError: boom-setup",
    ),
]


def scripted_cases() -> list[Case]:
    cases = []
    for cid, experiment, block, relative, old, new, function, value in SCRIPTED:

        def run(root, experiment=experiment, block=block, relative=relative, old=old, new=new):
            prefix, cache = root
            text = _edit(prefix / relative, old, new)
            line = next(
                i
                for i, t in enumerate(text.splitlines(), 1)
                if "raise ValueError(" in t or "sys.exit(3)" in t
            )
            # forced: a database's code is not part of the block hash
            report = run_experiment(str(prefix), experiment, str(cache), only=block, force=True)
            (outcome,) = report.outcomes
            assert outcome.status == "failed", outcome
            plan = planner.plan(str(prefix), experiment, str(cache))
            for output in plan[block].outputs:  # nothing of the failed block stays
                assert planner.check_output(str(cache), output.path) == "missing"
            raise Reported(f"line {line}\n{outcome.result.user_error}")

        where = relative.split("/", 1)[1] if relative.startswith("algorithms/") else relative
        cases.append(Case(cid, run, Reported, where, function, value))
    return cases


SCRIPTS = scripted_cases()


@pytest.mark.parametrize("case", params(SCRIPTS))
def test_user_code_through_the_scripts(case, warm, tmp_path):
    prefix = copy_example_prefix(tmp_path / "prefix")
    cache = tmp_path / "cache"
    shutil.copytree(warm[1], cache)  # a private cache: the failed block is removed from it
    message = check_case(case, (prefix, cache))
    # the trimmed traceback names the line of the failing statement
    line = int(message.split("\n", 1)[0].split()[1])
    assert re.search(rf"line {line}, in ", message), message


def test_index_raising_in_the_index_script(warm, tmp_path):
    prefix = copy_example_prefix(tmp_path / "prefix")
    _edit(
        prefix / "databases/synthetic/1.py",
        '        labels, _ = generate(parameters["size"], parameters["seed"])\n',
        '        raise ValueError("boom-index")\n',
    )
    cache = tmp_path / "cache"  # no index yet: the index script runs and fails
    with pytest.raises(RuntimeError) as info:
        run_experiment(str(prefix), LINEAR, str(cache))
    message = str(info.value)
    assert "could not index dataset synthetic/1/small/train" in message
    assert "databases/synthetic/1.py" in message and ", in index" in message
    assert "ValueError: boom-index" in message
    assert not list(cache.rglob("*.db")), "an index file was written for a failed index()"


def test_printing_user_code_does_not_corrupt_anything(warm, tmp_path):
    prefix, cache, results = warm
    mine = copy_example_prefix(tmp_path / "prefix")
    for relative, old in (
        ("algorithms/example/normalize/1.py", '        sample = inputs["sample"].data\n'),
        ("algorithms/example/threshold_evaluator/1.py", "        self.attempts += 1\n"),
        ("databases/synthetic/1.py", "        obj = self.objs[index]\n"),
    ):
        noise = "        print('noise ' * 50, flush=True); print(b'\\x00\\xff', 'ack', 'err')\n"
        _edit(mine / relative, old, old + noise)
    private = tmp_path / "cache"
    shutil.copytree(cache, private)  # indexes and upstream outputs; the edited blocks rerun
    for experiment in (LINEAR, TUNE):
        # the view code changed: its indexes are stale, rebuilt, and their readers rerun
        report = run_experiment(str(mine), experiment, str(private), reindex=True)
        assert report.ok, [(o.name, o.result and o.result.user_error) for o in report.outcomes]
        assert report.results == results[experiment]
        ran = [o for o in report.outcomes if o.status == "ran"]
        assert ran and all("noise noise" in o.result.stdout for o in ran if o.result.stdout)
