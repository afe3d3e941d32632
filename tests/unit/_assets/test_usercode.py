"""User code checked against its declaration (beat_backend._assets.usercode, #19).

A prefix of deliberately wrong algorithms of every type and of wrong views:
each flaw gives exactly one error, with its exact text (file, line, what was
found, what was expected). Correct code in every shape the runners accept
(without the optional methods, ``*args``, decorated, inherited, static and
class methods, defaults, ...) is never flagged. Nothing of the user's is
called: a constructor, a property or a metaclass that would leave a marker
never runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest
from _paths import EXAMPLE_PREFIX, GOLDEN
from _prefix import add_algorithm, add_dataformat, add_library, write

from beat_backend._assets import usercode
from beat_backend._assets.inventory import check_prefix

FORMAT = "user/int/1"


def declaration(kind: str, api: int = 2, analyzer: bool = False) -> dict:
    """A valid declaration of ``kind`` (``Algorithm.type``; api 1: legacy)."""
    group: dict = {"inputs": {"in": {"type": FORMAT}}}
    if not analyzer:
        group["outputs"] = {"out": {"type": FORMAT}}
    if "loop" in kind:
        group["loop"] = {"request": {"type": FORMAT}, "answer": {"type": FORMAT}}
    data = {
        "language": "python",
        "api_version": api,
        "schema_version": 3 if "loop" in kind else 2,
        "groups": [group],
    }
    if api == 2:
        data["type"] = kind
    if "processor" in kind:
        data["splittable"] = False
    if analyzer:
        data["results"] = {"v": {"type": "int32"}}
    return data


@dataclass
class Case:
    name: str
    kind: str
    code: str
    #: the errors, ``{path}`` standing for the code file
    expected: list
    api: int = 2
    analyzer: bool = False


SEQ = "a sequential algorithm's process is called with 3 (inputs, data_loaders, outputs)"
AUTO = "an autonomous algorithm's process is called with 2 (data_loaders, outputs)"
SEQ_LOOP = (
    "a sequential loop processor's process is called with 4 (inputs, data_loaders, outputs, "
    "loop_channel)"
)
AUTO_LOOP = (
    "an autonomous loop processor's process is called with 3 (data_loaders, outputs, loop_channel)"
)
WRITE = "write(outputs, processor_output_name, end_data_index)"

WRONG = [
    # -- legacy (api_version 1, and api_version 2 with type legacy) --
    Case(
        "legacy_v1_three",
        "legacy",
        "class Algorithm:\n    def process(self, inputs, data_loaders, outputs):\n"
        "        return True\n",
        [
            "{path}:2: Algorithm.process needs 3 positional arguments after self (inputs, "
            "data_loaders, outputs), a legacy algorithm's process is called with 2 (inputs, "
            "outputs)"
        ],
        api=1,
    ),
    Case(
        "legacy_v2_one",
        "legacy",
        "class Algorithm:\n    def setup(self, parameters):\n        return True\n\n"
        "    def process(self, inputs):\n        return True\n",
        [
            "{path}:5: Algorithm.process takes 1 positional argument after self (inputs), a "
            "legacy algorithm's process is called with 2 (inputs, outputs)"
        ],
    ),
    Case(
        "legacy_analyzer_missing",
        "legacy",
        "class Algorithm:\n    def proces(self, inputs, output):\n        return True\n",
        [
            "{path}:1: Algorithm has no method process (found: proces), a legacy analyzer "
            "needs process(inputs, output)"
        ],
        api=1,
        analyzer=True,
    ),
    # -- sequential --
    Case(
        "sequential_two",
        "sequential",
        "class Algorithm:\n    def process(self, inputs, outputs):\n        return True\n",
        [
            f"{{path}}:2: Algorithm.process takes 2 positional arguments after self (inputs, "
            f"outputs), {SEQ}"
        ],
    ),
    Case(
        "sequential_no_class",
        "sequential",
        "class Algorithms:\n    pass\n\n\nclass Helper:\n    pass\n",
        [
            "{path}: no class Algorithm (found: Algorithms, Helper), which algorithm "
            "`user/sequential_no_class/1' needs"
        ],
    ),
    Case(
        "sequential_setup_prepare",
        "sequential",
        "class Algorithm:\n    def setup(self):\n        return True\n\n"
        "    def prepare(self, data_loaders, extra):\n        return True\n\n"
        "    def process(self, inputs, data_loaders, outputs):\n        return True\n",
        [
            "{path}:2: Algorithm.setup takes no positional argument after self, a sequential "
            "algorithm's setup is called with 1 (parameters)",
            "{path}:5: Algorithm.prepare needs 2 positional arguments after self (data_loaders, "
            "extra), a sequential algorithm's prepare is called with 1 (data_loaders)",
        ],
    ),
    Case(
        "sequential_keyword_only",
        "sequential",
        "class Algorithm:\n    def process(self, inputs, data_loaders, *, outputs):\n"
        "        return True\n",
        [
            f"{{path}}:2: Algorithm.process takes 2 positional arguments after self (inputs, "
            f"data_loaders), {SEQ}"
        ],
    ),
    Case(
        "sequential_required_keyword",
        "sequential",
        "class Algorithm:\n    def process(self, *args, model):\n        return True\n",
        [f"{{path}}:2: Algorithm.process needs the keyword-only argument model, {SEQ}"],
    ),
    Case(
        "sequential_loop_channel",
        "sequential",
        "class Algorithm:\n    def process(self, inputs, data_loaders, outputs, "
        "loop_channel=None):\n        return True\n",
        [
            f"{{path}}:2: Algorithm.process has a parameter loop_channel (only a loop processor's "
            f"process has one), {SEQ}"
        ],
    ),
    Case(
        "sequential_no_self",
        "sequential",
        "class Algorithm:\n    def process():\n        return True\n",
        [f"{{path}}:2: Algorithm.process takes no argument, not even self, {SEQ}"],
    ),
    Case(
        "sequential_not_a_method",
        "sequential",
        "class Algorithm:\n    process = 3\n",
        [f"{{path}}:1: Algorithm.process is not a method (found: int), {SEQ}"],
    ),
    Case(
        "sequential_constructor",
        "sequential",
        "class Algorithm:\n    def __init__(self, model):\n        self.model = model\n\n"
        "    def process(self, inputs, data_loaders, outputs):\n        return True\n",
        ["{path}:2: Algorithm() needs 1 argument (model), the runner creates it with none"],
    ),
    Case(
        "sequential_dataclass",
        "sequential",
        "import dataclasses\n\n\n@dataclasses.dataclass\nclass Algorithm:\n    model: object\n\n"
        "    def process(self, inputs, data_loaders, outputs):\n        return True\n",
        ["{path}:5: Algorithm() needs 1 argument (model), the runner creates it with none"],
    ),
    Case(
        "sequential_analyzer",
        "sequential",
        "class Algorithm:\n    def process(self, inputs, data_loaders):\n        return True\n",
        [
            "{path}:2: Algorithm.process takes 2 positional arguments after self (inputs, "
            "data_loaders), a sequential analyzer's process is called with 3 (inputs, "
            "data_loaders, output)"
        ],
        analyzer=True,
    ),
    # -- autonomous --
    Case(
        "autonomous_three",
        "autonomous",
        "class Algorithm:\n    def process(self, inputs, data_loaders, outputs):\n"
        "        return True\n",
        [
            f"{{path}}:2: Algorithm.process needs 3 positional arguments after self (inputs, "
            f"data_loaders, outputs), {AUTO}"
        ],
    ),
    Case(
        "autonomous_missing",
        "autonomous",
        "class Algorithm:\n    def setup(self, parameters):\n        return True\n",
        [
            "{path}:1: Algorithm has no method process (found: setup), an autonomous algorithm "
            "needs process(data_loaders, outputs)"
        ],
    ),
    Case(
        "autonomous_analyzer",
        "autonomous",
        "class Algorithm:\n    @staticmethod\n    def process(output):\n        return True\n",
        [
            "{path}:2: Algorithm.process takes 1 positional argument (output), an autonomous "
            "analyzer's process is called with 2 (data_loaders, output)"
        ],
        analyzer=True,
    ),
    # -- loop processors --
    Case(
        "sequential_processor_no_loop",
        "sequential_loop_processor",
        "class Algorithm:\n    def process(self, inputs, data_loaders, outputs):\n"
        "        return True\n",
        [f"{{path}}:2: Algorithm.process has no parameter loop_channel, {SEQ_LOOP}"],
    ),
    Case(
        "sequential_processor_first",
        "sequential_loop_processor",
        "class Algorithm:\n    def process(self, loop_channel, inputs, data_loaders, outputs):\n"
        "        return True\n",
        [
            f"{{path}}:2: Algorithm.process takes loop_channel as its first argument after self, "
            f"{SEQ_LOOP}"
        ],
    ),
    Case(
        "autonomous_processor_keyword",
        "autonomous_loop_processor",
        "class Algorithm:\n    def process(self, data_loaders, outputs, *, loop_channel):\n"
        "        return True\n",
        [
            f"{{path}}:2: Algorithm.process takes 2 positional arguments after self (data_loaders, "
            f"outputs), {AUTO_LOOP}"
        ],
    ),
    Case(
        "autonomous_processor_args_keyword",
        "autonomous_loop_processor",
        "class Algorithm:\n    def process(self, *args, loop_channel=None):\n        return True\n",
        [
            f"{{path}}:2: Algorithm.process takes loop_channel as a keyword-only argument, "
            f"{AUTO_LOOP}"
        ],
    ),
    # -- loop evaluators --
    Case(
        "sequential_evaluator",
        "sequential_loop_evaluator",
        "class Algorithm:\n    def validate(self):\n        return (True, {})\n\n"
        "    def write(self, outputs, end_data_index):\n        return True\n",
        [
            "{path}:1: Algorithm has no method read (found: validate, write), a sequential loop "
            "evaluator needs read(inputs)",
            "{path}:2: Algorithm.validate takes no positional argument after self, a sequential "
            "loop evaluator's validate is called with 1 (result)",
            "{path}:5: Algorithm.write takes 2 positional arguments after self (outputs, "
            "end_data_index), a sequential loop evaluator's write is called with 3 (outputs, "
            "processor_output_name, end_data_index)",
        ],
    ),
    Case(
        "autonomous_evaluator",
        "autonomous_loop_evaluator",
        "class Algorithm:\n    def process(self, data_loaders, outputs):\n        return True\n\n"
        "    def read(self):\n        return True\n",
        [
            "{path}:1: Algorithm has no methods validate, write (found: process, read), an "
            f"autonomous loop evaluator needs validate(result) and {WRITE}",
            "{path}:5: Algorithm.read takes no positional argument after self, an autonomous "
            "loop evaluator's read is called with 1 (inputs)",
        ],
    ),
]

#: correct code in every shape the runners accept: never flagged
VALID = {
    "without_optional": (
        "sequential",
        "class Algorithm:\n    def process(self, i, d, o):\n        return True\n",
    ),
    "args": (
        "sequential",
        "class Algorithm:\n    def process(self, *args):\n        return True\n",
    ),
    "args_kwargs_defaults": (
        "autonomous",
        "class Algorithm:\n    def setup(self, parameters=None, *, debug=False):\n"
        "        return True\n\n    def process(self, data_loaders, outputs, extra=None, "
        "**kwargs):\n        return True\n",
    ),
    "wrapped": (
        "sequential",
        "import functools\n\n\ndef logged(f):\n    @functools.wraps(f)\n"
        "    def wrapper(*args, **kwargs):\n        return f(*args, **kwargs)\n\n"
        "    return wrapper\n\n\nclass Algorithm:\n    @logged\n"
        "    def process(self, inputs, data_loaders, outputs):\n        return True\n",
    ),
    "decorated_unwrapped": (
        "sequential",
        "def counted(f):\n    def wrapper(*args, **kwargs):\n        return f(*args, **kwargs)\n\n"
        "    return wrapper\n\n\nclass Algorithm:\n    @counted\n    def process(self, a):\n"
        "        return True\n",
    ),
    "decorated_class": (
        "sequential",
        "def register(cls):\n    return cls\n\n\n@register\nclass Algorithm:\n"
        "    def process(self, inputs, data_loaders, outputs):\n        return True\n",
    ),
    "dataclass_defaults": (
        "sequential",
        "import dataclasses\n\n\n@dataclasses.dataclass\nclass Algorithm:\n"
        "    model: object = None\n\n"
        "    def process(self, inputs, data_loaders, outputs):\n        return True\n",
    ),
    "inherited": (
        "sequential",
        "class Base:\n    def process(self, inputs, data_loaders, outputs):\n        return True\n"
        "\n\nclass Algorithm(Base):\n    pass\n",
    ),
    "static_and_class_methods": (
        "legacy",
        "class Algorithm:\n    @classmethod\n    def setup(cls, parameters):\n        return True\n"
        "\n    @staticmethod\n    def process(inputs, outputs):\n        return True\n",
    ),
    "partialmethod_and_cache": (
        "sequential",
        "import functools\n\n\nclass Algorithm:\n    def _run(self, inputs, data_loaders, outputs, "
        "scale):\n        return True\n\n    process = functools.partialmethod(_run, scale=2)\n\n"
        "    @functools.lru_cache(maxsize=None)\n    def setup(self, parameters):\n"
        "        return True\n",
    ),
    "callable_object": (
        "autonomous",
        "class Step:\n    def __call__(self, data_loaders, outputs):\n        return True\n\n\n"
        "class Algorithm:\n    process = Step()\n",
    ),
    "getattr": (
        "sequential",
        "class Algorithm:\n    def __getattr__(self, name):\n        return print\n",
    ),
    "assigned_in_setup": (
        "sequential",
        "class Algorithm:\n    def setup(self, parameters):\n"
        "        self.process = lambda i, d, o: True\n        return True\n",
    ),
    "factory": ("sequential", "class _Impl:\n    pass\n\n\ndef Algorithm():\n    return _Impl()\n"),
    "api1_prepare_unused": (
        "legacy",
        "class Algorithm:\n    def prepare(self):\n        return True\n\n"
        "    def process(self, inputs, outputs):\n        return True\n",
    ),
    "legacy_with_loop_channel": (
        "legacy",
        "class Algorithm:\n    def process(self, inputs, outputs, loop_channel=None):\n"
        "        return True\n",
    ),
    "processor": (
        "sequential_loop_processor",
        "class Algorithm:\n    def process(self, inputs, data_loaders, outputs, loop_channel):\n"
        "        return True\n",
    ),
    "processor_args": (
        "autonomous_loop_processor",
        "class Algorithm:\n    def process(self, data_loaders, outputs, loop_channel, *rest):\n"
        "        return True\n",
    ),
    "autonomous_evaluator_without_read": (
        "autonomous_loop_evaluator",
        "class Algorithm:\n    def validate(self, request):\n        return (True, {})\n\n"
        "    def write(self, outputs, name, end):\n        return True\n",
    ),
}


def _prefix(root, marker) -> None:
    """The wrong and the valid algorithms, a library, a database of views."""
    add_dataformat(root, FORMAT, {"value": "int32"})
    for case in WRONG:
        add_algorithm(
            root, f"user/{case.name}/1", declaration(case.kind, case.api, case.analyzer), case.code
        )
    for name, (kind, code) in VALID.items():
        api = 1 if name == "api1_prepare_unused" else 2
        add_algorithm(root, f"user/valid_{name}/1", declaration(kind, api), code)
    # a method from a library's class; a constructor and a property that must not run
    add_library(root, "user/bases/1", code=LIBRARY)
    uses = {**declaration("sequential"), "uses": {"bases": "user/bases/1"}}
    add_algorithm(root, "user/valid_library_base/1", uses, NOT_CALLED.format(marker=str(marker)))


LIBRARY = """\
class Base:
    def process(self, inputs, data_loaders, outputs):
        return True
"""

NOT_CALLED = """\
class Meta(type):
    def __call__(cls, *args, **kwargs):
        open({marker!r}, "a").write("meta")
        return super().__call__(*args, **kwargs)


class Algorithm(bases.Base, metaclass=Meta):
    def __init__(self):
        open({marker!r}, "a").write("init")

    @property
    def setup(self):
        open({marker!r}, "a").write("property")
        return lambda parameters: True
"""


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    root = tmp_path_factory.mktemp("usercode")
    marker = root / "marker"
    _prefix(root, marker)
    add_views(root)
    reports = {(r.kind, r.name): r.errors for r in check_prefix(str(root), schema=False)}
    return root, marker, reports


@pytest.mark.parametrize("case", WRONG, ids=lambda c: c.name)
def test_each_flaw_is_one_error_with_its_exact_text(checked, case):
    root, _, reports = checked
    path = root / f"algorithms/user/{case.name}/1.py"
    assert reports[("algorithm", f"user/{case.name}/1")] == [
        e.format(path=path) for e in case.expected
    ]


@pytest.mark.parametrize("name", [*VALID, "library_base"])
def test_valid_code_is_never_flagged(checked, name):
    _, _, reports = checked
    assert reports[("algorithm", f"user/valid_{name}/1")] == []


def test_nothing_of_the_users_is_called(checked):
    _, marker, _ = checked
    assert not marker.exists()


# -- views -------------------------------------------------------------------------------------

VIEWS = """\
from beat.backend.python.database import View


class NoGet(View):
    def index(self, root_folder, parameters):
        return []


class NoIndex(View):
    def get(self, output, index):
        return {}


class Arity(View):
    def index(self, root_folder):
        return []

    def get(self, index):
        return {}


class OldSetup(View):
    def index(self, root_folder, parameters):
        return []

    def setup(self, root_folder, parameters, objs):
        self.objs = objs

    def get(self, output, index):
        return {}


class Push:
    def setup(self, root_folder, outputs, parameters):
        return True

    def next(self):
        return True

    def done(self, last_data_index):
        return True


class NoBase:
    def index(self, root_folder, parameters):
        return []

    def get(self, output, index):
        return {}


class Needs(View):
    def __init__(self, root):
        super().__init__()

    def index(self, root_folder, parameters):
        return []

    def get(self, output, index):
        return {}


class Good(View):
    def index(self, root_folder, parameters):
        return []

    def get(self, output, index):
        return {}


class _Aliased(Good):
    def setup(self, *args, **kwargs):
        super().setup(*args, **kwargs)


class KeywordsSetup(Good):
    def setup(self, root_folder, parameters, objs, **ranges):
        super().setup(root_folder, parameters, objs, **ranges)


Aliased = _Aliased
NotAClass = 42
"""

VIEW_SETS = [
    ("missing1", "Missing"),
    ("missing2", "Missing"),
    ("noget", "NoGet"),
    ("noindex", "NoIndex"),
    ("arity", "Arity"),
    ("oldsetup", "OldSetup"),
    ("push", "Push"),
    ("nobase", "NoBase"),
    ("needs", "Needs"),
    ("notclass", "NotAClass"),
    ("good", "Good"),
    ("aliased", "Aliased"),
    ("keywords", "KeywordsSetup"),
]


def add_views(root) -> None:
    sets = [{"name": s, "template": s, "view": v, "outputs": {"o": FORMAT}} for s, v in VIEW_SETS]
    protocols = [{"name": "p", "template": "t", "sets": sets}]
    write(
        root,
        "databases/views/1.json",
        {"schema_version": 1, "root_folder": "/", "protocols": protocols},
    )
    write(root, "databases/views/1.py", VIEWS)


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_push_style_view_is_legacy_code_for_check_but_not_runnable(checked):
    """``check`` accepts the legacy (push-style) view interface; ``run``'s checks
    (``push_views_accepted`` off) refuse it: the databases provider needs index/get."""
    root, _, reports = checked
    path = root / "databases/views/1.py"
    assert not any("Push" in e for e in reports[("database", "views/1")][1:])
    token = usercode.push_views_accepted.set(False)
    try:
        run_reports = {(r.kind, r.name): r.errors for r in check_prefix(str(root), schema=False)}
    finally:
        usercode.push_views_accepted.reset(token)
    pushed = [e for e in run_reports[("database", "views/1")] if "Push" in e and "push" in e]
    assert pushed == [
        f"{path}:{_line(VIEWS, 'class Push')}: Push is a push-style view (found: setup, next, "
        "done), which only DatabaseTester runs; a view needs index(root_folder, parameters) "
        "and get(output, index)"
    ]


def test_each_view_flaw_is_one_error_with_its_exact_text(checked):
    root, _, reports = checked
    path = root / "databases/views/1.py"

    def at(needle):
        return f"{path}:{_line(VIEWS, needle)}"

    assert reports[("database", "views/1")] == [
        f"{path}: no class Missing (found: Arity, Good, KeywordsSetup, Needs, NoBase, NoGet, "
        "NoIndex, OldSetup, Push, _Aliased), which database `views/1' names as the view of sets "
        "p/missing1, p/missing2",
        f"{at('class NoGet')}: NoGet has no method get (found: index), a view needs get(output, "
        "index)",
        f"{at('class NoIndex')}: NoIndex has no method index (found: get), a view needs "
        "index(root_folder, parameters)",
        f"{at('def index(self, root_folder):')}: Arity.index takes 1 positional argument after "
        "self (root_folder), a view's index is called with 2 (root_folder, parameters)",
        f"{at('def get(self, index)')}: Arity.get takes 1 positional argument after self "
        "(index), a view's get is called with 2 (output, index)",
        f"{at('def setup(self, root_folder, parameters, objs):')}: OldSetup.setup has no "
        "parameter start_index, a view's setup is called with 3 (root_folder, parameters, "
        "objs) and the keywords start_index, end_index",
        f"{at('class NoBase')}: NoBase has no methods setup, get_output_mapping (found: index, "
        "get), a view needs setup(root_folder, parameters, objs, start_index=..., "
        "end_index=...) and get_output_mapping(output)",
        f"{at('def __init__(self, root)')}: Needs() needs 1 argument (root), the view runner "
        "creates it with none",
        f"{path}: NotAClass is not a class (found: int)",
    ]


# -- the prefixes that work --------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    [EXAMPLE_PREFIX, GOLDEN / "prefix", GOLDEN / "wire/loop/run/prefix"],
    ids=["bundled", "golden", "golden-loop"],
)
def test_the_bundled_and_golden_prefixes_pass_clean(prefix, tmp_path):
    root = tmp_path / "prefix"
    shutil.copytree(prefix, root)  # the check leaves nothing behind either
    reports = check_prefix(str(root), schema=False)
    assert {(r.kind, r.name): r.errors for r in reports if r.errors} == {}
    assert "algorithm" in {r.kind for r in reports}
    assert sorted(p.name for p in root.rglob("__pycache__")) == []


# -- importing in a process that goes on -------------------------------------------------------

RUDE = """\
import os, signal, sys
print("loading the model")
os.environ["OMP_NUM_THREADS"] = "64"
os.chdir(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, "/nowhere")
signal.signal(signal.SIGINT, signal.SIG_IGN)


class Algorithm:
    def process(self, inputs, data_loaders, outputs):
        return True
"""


def test_the_import_leaves_this_process_as_it_was(tmp_path, capsys, monkeypatch):
    """``run`` imports in its own process: what the module level prints goes to stderr
    (stdout may be a --json document), the environment the scripts inherit, the
    working directory, sys.path and the signal handlers are put back."""
    import os
    import signal
    import sys

    add_dataformat(tmp_path, FORMAT, {"value": "int32"})
    add_algorithm(tmp_path, "user/rude/1", declaration("sequential"), RUDE)
    add_algorithm(tmp_path, "user/exits/1", declaration("sequential"), "raise SystemExit(3)\n")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = (dict(os.environ), os.getcwd(), list(sys.path), signal.getsignal(signal.SIGINT))
    reports = {r.name: r.errors for r in check_prefix(str(tmp_path), schema=False)}
    after = (dict(os.environ), os.getcwd(), list(sys.path), signal.getsignal(signal.SIGINT))
    assert after == before
    assert capsys.readouterr() == ("", "loading the model\n")
    assert reports["user/rude/1"] == []
    path = tmp_path / "algorithms/user/exits/1.py"
    assert reports["user/exits/1"] == [  # sys.exit() at import: an error, not the end
        f"cannot load the code of algorithm `user/exits/1': SystemExit: 3 ({path}, line 1)"
    ]
