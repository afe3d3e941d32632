"""DatabaseTester (algorithms-and-execution.md §9.6): push-style and pull-style views."""

from __future__ import annotations

import collections
import os
import traceback

import numpy
import pytest
from _prefix import add_dataformat, write

from beat_backend._core.resources import embedded_prefix
from beat_backend.database import Database, DatabaseTester, View
from beat_backend.exceptions import CastingError, OutputError
from beat_backend.loader import load_module
from beat_backend.protocoltemplate import ProtocolTemplate

EXAMPLE_PREFIX = embedded_prefix()

# ---------------------------------------------------------------------------
# A push-style view: `value' at every index, `group' once per group of indices


class Push:
    """Parameters: ``size``, ``groups`` (sizes of the `group' units) and ``mode``."""

    def setup(self, root_folder, outputs, parameters):
        self.outputs = outputs
        self.root_folder = root_folder
        self.size = parameters["size"]
        self.mode = parameters.get("mode")
        self.group_ends = list(numpy.cumsum(parameters["groups"]) - 1)
        self.next_index = 0
        return True

    def done(self, last_data_index):
        return last_data_index >= self.size - 1

    def next(self):
        i = self.next_index
        end = i + 1 if (self.mode == "wrong_next" and i == 4) else i
        value = self.outputs["value"]
        if value.isConnected() or self.mode == "unconnected":
            value.write({"value": numpy.int32(i)}, end)
        group = self.outputs["group"] if len(self.outputs) > 1 else None
        due = group is not None and (
            group.last_written_data_index < i or self.mode == "wrong_current"
        )
        if due and group.isConnected() and self.mode != "nothing":
            first = group.last_written_data_index + 1
            position = next(k for k, e in enumerate(self.group_ends) if e >= first)
            group.write({"value": position}, int(self.group_ends[position]))
        # what BEAT's push-style views do: skip to the first index still needed
        ends = [o.last_written_data_index for o in self.outputs if o.isConnected()]
        self.next_index = 1 + min(ends) if ends else end + 1
        return True


def lines(*items):
    return "".join(f"{x}\n" for x in items)


def test_push_regular(tmp_path, capsys):
    DatabaseTester(
        "push regular",
        Push,
        ["value", "group"],
        {"size": 9, "groups": [3, 3, 3]},
        report_dir=str(tmp_path),
    )
    assert capsys.readouterr().out == lines(
        "Testing 'push regular', with 1 output(s): value",
        "  - value: 9 data",
        "Testing 'push regular', with 1 output(s): group",
        "  - group: 3 data",
        "Testing 'push regular', with 2 output(s): value, group",
        "  - value: 9 data",
        "  - group: 3 data",
    )
    assert (tmp_path / "push_regular.txt").read_text() == lines(
        "value: |-0-| |-1-| |-2-| |-3-| |-4-| |-5-| |-6-| |-7-| |-8-|",
        "group: |-------0-------| |-------1-------| |-------2-------|",
    )


def test_push_irregular(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the report goes to the current directory by default
    tester = DatabaseTester(
        "push",
        Push,
        ["value", "group"],
        {"size": 9, "groups": [2, 3, 4]},
        irregular_outputs=["group"],
        all_combinations=False,
    )
    assert tester.outputs_declaration == {"value": 1, "group": None}
    assert tester.report_path == "push.txt"
    assert capsys.readouterr().out == lines(
        "Testing 'push', with 2 output(s): value, group",
        "  - value: 9 data",
        "  - group: 3 data",
    )
    assert (tmp_path / "push.txt").read_text() == lines(
        "value: |-0-| |-1-| |-2-| |-3-| |-4-| |-5-| |-6-| |-7-| |-8-|",
        "group: |----0----| |-------1-------| |----------2----------|",
    )


def test_push_irregular_output_declared_regular(tmp_path):
    with pytest.raises(OutputError) as excinfo:
        DatabaseTester(
            "push",
            Push,
            ["value", "group"],
            {"size": 9, "groups": [2, 3, 4]},
            report_dir=str(tmp_path),
        )
    assert excinfo.value.value == "Wrong next index"
    assert str(excinfo.value) == "'Wrong next index'"


@pytest.mark.parametrize(
    ("parameters", "irregular", "error"),
    [
        ({"size": 9, "groups": [3, 3, 3], "mode": "wrong_current"}, [], "Wrong current index"),
        ({"size": 9, "groups": [3, 3, 3], "mode": "wrong_next"}, [], "Wrong next index"),
        (
            {"size": 9, "groups": [3, 3, 3], "mode": "unconnected"},
            [],
            "Data written on unconnected output",
        ),
        ({"size": 5, "groups": [2, 2, 2]}, [], "Invalid number of data produced"),
        ({"size": 9, "groups": [2, 3, 5]}, ["group"], "Outputs not on same index"),
        (
            {"size": 9, "groups": [3, 3, 3], "mode": "nothing"},
            [],
            "No data written on connected output",
        ),
    ],
)
def test_push_failures(tmp_path, parameters, irregular, error):
    with pytest.raises(OutputError) as excinfo:
        DatabaseTester(
            "push",
            Push,
            ["value", "group"],
            parameters,
            irregular_outputs=irregular,
            report_dir=str(tmp_path),
        )
    assert excinfo.value.value == error
    assert not (tmp_path / "push.txt").exists()


def test_push_root_folder(tmp_path):
    seen = []

    class Recording(Push):
        def setup(self, root_folder, outputs, parameters):
            seen.append(root_folder)
            return super().setup(root_folder, outputs, parameters)

    DatabaseTester("r", Recording, ["value"], {"size": 2, "groups": [2]}, report_dir=str(tmp_path))
    DatabaseTester(
        "r",
        Recording,
        ["value"],
        {"size": 2, "groups": [2]},
        root_folder="/data",
        report_dir=str(tmp_path),
    )
    assert seen == ["", "", "/data", "/data"]


def test_no_connected_output_runs_nothing(tmp_path, capsys):
    tester = DatabaseTester(
        "push", Push, ["value"], {"size": 2, "groups": [2]}, report_dir=str(tmp_path)
    )
    capsys.readouterr()
    tester.run(())
    assert capsys.readouterr().out == ""


def test_mock_output_and_synchronized_unit():
    output = DatabaseTester.MockOutput("o", False)
    assert not output.isConnected()
    output.write({"v": 1}, 2)
    output.write({"v": 2}, 3)
    assert output.written_data == [(0, 2, {"v": 1}), (3, 3, {"v": 2})]
    assert output.last_written_data_index == 3

    unit = DatabaseTester.SynchronizedUnit(0, 3)
    unit.addData("fine", 0, 0, {"v": "a"})
    unit.addData("fine", 1, 1, {"v": numpy.array([1])})
    unit.addData("coarse", 0, 1, {"v": "long value"})
    unit.addData("fine", 2, 2, {"a": 1, "b": 2})
    unit.addData("fine", 3, 3, {"v": 3})
    unit.addData("coarse", 2, 3, {"v": "x"})
    assert unit.toString() == {
        "coarse": "|-long value-| |----x----|",
        "fine": "|--a--| |-X--| |-X-| |-3-|",
    }


# ---------------------------------------------------------------------------
# Pull-style views


@pytest.fixture(scope="module")
def golden_views(golden_prefix):
    path = os.path.join(str(golden_prefix), "databases", "golden_db", "1.py")
    return load_module("golden_db_1", path, {})


def test_pull_view_module_uses_the_beat_alias(golden_views):
    assert issubclass(golden_views.Samples, View)


def test_pull_golden_train(golden_views, tmp_path, capsys):
    DatabaseTester(
        "golden train",
        golden_views.Samples,
        ["sample", "label", "class"],
        {"subset": "train"},
        irregular_outputs=["label", "class"],
        report_dir=str(tmp_path),
    )
    out = capsys.readouterr().out
    assert out.splitlines()[-4:] == [
        "Testing 'golden train', with 3 output(s): sample, label, class",
        "  - sample: 10 data",
        "  - label: 3 data",
        "  - class: 2 data",
    ]
    assert out.count("Testing ") == 7
    assert (tmp_path / "golden_train.txt").read_text() == lines(
        "sample: " + " ".join(["|-X-|"] * 10),
        "label:  |-------X-------| |----------X----------| |-------X-------|",
        "class:  |-------0-------| |-------------------1-------------------|",
    )


def test_pull_golden_test_with_parameters(golden_views, tmp_path, capsys):
    DatabaseTester(
        "golden test",
        golden_views.Samples,
        {"sample": "golden/sample/1", "label": "golden/label/1"},
        {"subset": "test", "scale": 2},
        irregular_outputs=["label"],
        all_combinations=False,
        report_dir=str(tmp_path),
    )
    assert capsys.readouterr().out == lines(
        "Testing 'golden test', with 2 output(s): sample, label",
        "  - sample: 5 data",
        "  - label: 3 data",
    )
    assert (tmp_path / "golden_test.txt").read_text() == lines(
        "sample: |-X-| |-X-| |-X-| |-X-| |-X-|",
        "label:  |----X----| |-X-| |----X----|",
    )


def test_pull_golden_grouped_output_declared_regular(golden_views, tmp_path):
    with pytest.raises(OutputError) as excinfo:
        DatabaseTester(
            "golden",
            golden_views.Samples,
            ["sample", "label"],
            {"subset": "train"},
            report_dir=str(tmp_path),
        )
    assert excinfo.value.value == "Wrong next index"


def test_pull_example_database(tmp_path, capsys):
    db = Database(EXAMPLE_PREFIX, "synthetic/1")
    assert db.valid, db.errors
    module = load_module("synthetic_1", db.storage.code.path, {})
    definition = db.view_definition("small", "train")
    DatabaseTester(
        "synthetic small train",
        module.Blobs,
        definition["outputs"],
        definition["parameters"],
        root_folder=db.data["root_folder"],
        report_dir=str(tmp_path),
    )
    assert capsys.readouterr().out == lines(
        "Testing 'synthetic small train', with 1 output(s): sample",
        "  - sample: 20 data",
        "Testing 'synthetic small train', with 1 output(s): label",
        "  - label: 20 data",
        "Testing 'synthetic small train', with 2 output(s): sample, label",
        "  - sample: 20 data",
        "  - label: 20 data",
    )
    report = (tmp_path / "synthetic_small_train.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in report] == ["label", "sample"]
    # every set of both protocols passes
    for protocol in db.protocol_names:
        for set_name in db.set_names(protocol):
            definition = db.view_definition(protocol, set_name)
            DatabaseTester(
                f"{protocol} {set_name}",
                module.Blobs,
                definition["outputs"],
                definition["parameters"],
                all_combinations=False,
                report_dir=str(tmp_path),
            )
    assert (tmp_path / "default_train.txt").exists()


def test_example_database_content(tmp_path):
    db = Database(EXAMPLE_PREFIX, "synthetic/1")
    template = ProtocolTemplate(EXAMPLE_PREFIX, "two_classes/1")
    assert template.valid and [s["name"] for s in template.sets()] == ["train", "dev", "test"]
    sizes = {}
    for protocol in db.protocol_names:
        for set_name in db.set_names(protocol):
            view = db.view(protocol, set_name)
            view.index(str(tmp_path / f"{protocol}_{set_name}.db"))
            view.setup(str(tmp_path / f"{protocol}_{set_name}.db"), pack=False)
            samples = list(view.data_sources["sample"])
            labels = list(view.data_sources["label"])
            assert [(s, e) for _, s, e in samples] == [(s, e) for _, s, e in labels]
            assert all(
                d.features.dtype == numpy.float32 and d.features.shape == (2,)
                for d, _, _ in samples
            )
            assert {(d.value, d.name) for d, _, _ in labels} == {(0, "negative"), (1, "positive")}
            sizes[(protocol, set_name)] = len(samples)
    assert sizes == {
        ("default", "train"): 200,
        ("default", "dev"): 100,
        ("default", "test"): 100,
        ("small", "train"): 20,
        ("small", "dev"): 20,
        ("small", "test"): 20,
    }
    # deterministic: indexing twice gives the same bytes
    again = tmp_path / "again.db"
    db.view("default", "train").index(str(again))
    assert again.read_bytes() == (tmp_path / "default_train.db").read_bytes()


Entry = collections.namedtuple("Entry", ["value"])


class Pull(View):
    seen = []

    def index(self, root_folder, parameters):
        Pull.seen.append(root_folder)
        mode = parameters.get("mode")
        if mode == "not_a_list":
            return (Entry(1),)
        if mode == "not_json":
            return [Entry(object())]
        return [Entry(i) for i in range(parameters.get("size", 3))]

    def get(self, output, index):
        if self.parameters.get("mode") == "none":
            return None
        return {"value": self.objs[index].value}


def test_pull_root_folder_is_passed(tmp_path):
    Pull.seen = []
    DatabaseTester("p", Pull, ["value"], {}, root_folder="/raw", report_dir=str(tmp_path))
    assert Pull.seen == ["/raw", "/raw"]
    assert (tmp_path / "p.txt").read_text() == "value: |-0-| |-1-| |-2-|\n"


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"mode": "not_a_list"}, "index() didn't return a list"),
        ({"mode": "none"}, "get() returned None for output `value' at index 0"),
        ({"size": 0}, "No data written on connected output"),
    ],
)
def test_pull_failures(tmp_path, parameters, error):
    with pytest.raises(OutputError) as excinfo:
        DatabaseTester("p", Pull, ["value"], parameters, report_dir=str(tmp_path))
    assert excinfo.value.value == error


def test_pull_index_must_survive_the_index_file(tmp_path):
    with pytest.raises(OutputError) as excinfo:
        DatabaseTester("p", Pull, ["value"], {"mode": "not_json"}, report_dir=str(tmp_path))
    assert excinfo.value.value.startswith("index() returned entries that cannot be indexed: ")


# ---------------------------------------------------------------------------
# Values: checked against the set's dataformats as a real run does (issue #16)

ITEM = "t/item/1"
POINT = "t/point/1"
ITEM_FIELDS = "id, point, values, name"

ITEMS_VIEW = """\
import numpy
from collections import namedtuple

from beat.backend.python.database import View

Entry = namedtuple("Entry", ["key"])


def good(key):
    return {
        "id": numpy.uint64(key),
        "point": {"x": numpy.int32(key), "y": 0.5},
        "values": numpy.zeros((2, 3), dtype=numpy.float32),
        "name": "entry %d" % key,
    }


BAD = {
    "string_for_int": lambda v: v.update(id="abc"),
    "python_int_for_uint64": lambda v: v.update(id=7),
    "float_for_int": lambda v: v.update(id=1.5),
    "missing_field": lambda v: v.pop("name"),
    "extra_field": lambda v: v.update(more=1),
    "list_for_nested_object": lambda v: v.update(point=[1, 0.5]),
    "wrong_array_shape": lambda v: v.update(values=numpy.zeros((3, 2), dtype=numpy.float32)),
    "wrong_array_rank": lambda v: v.update(values=numpy.zeros(6, dtype=numpy.float32)),
    "strings_in_a_numeric_array": lambda v: v.update(values=[["a", "b", "c"]] * 2),
}


class Items(View):
    def __init__(self):
        super().__init__()
        self.output_member_map = {"item": "key", "point": "key"}

    def index(self, root_folder, parameters):
        return [Entry(i) for i in range(parameters.get("size", 4))]

    def get(self, output, index):
        key = self.objs[index].key
        if output == "point":
            return {"x": numpy.int32(key), "y": 0.25}
        value = good(key)
        bad = self.parameters.get("bad")
        if index == self.parameters.get("at", 0) and bad is not None:
            if bad == "list_for_the_object":
                return list(value.values())
            BAD[bad](value)
        return value
"""

#: bad kind -> (exception type, message): what the real run raises
BAD_VALUES = {
    "string_for_int": (
        "CastingError",
        f"cannot safely cast attribute `id' on dataformat `{ITEM}' with type `<U3' to "
        "`uint64' without precision loss",
    ),
    "python_int_for_uint64": (
        "CastingError",
        f"cannot safely cast attribute `id' on dataformat `{ITEM}' with type `int64' to "
        "`uint64' without precision loss",
    ),
    "float_for_int": (
        "CastingError",
        f"cannot safely cast attribute `id' on dataformat `{ITEM}' with type `float64' to "
        "`uint64' without precision loss",
    ),
    "missing_field": (
        "FieldsError",
        f"missing attributes (name) for dataformat `{ITEM}' which require `{ITEM_FIELDS}'",
    ),
    "extra_field": (  # the spec's text: an empty list when extra keys are present
        "FieldsError",
        f"missing attributes () for dataformat `{ITEM}' which require `{ITEM_FIELDS}'",
    ),
    "list_for_the_object": ("AttributeError", "'list' object has no attribute 'pack'"),
    "list_for_nested_object": ("AttributeError", "'list' object has no attribute 'keys'"),
    "wrong_array_shape": (
        "CastingError",
        f"input argument for array attribute `values' on dataformat `{ITEM}' does not respect "
        "dimension restrictions for dimension `0' as requested in the data format (3 != 2)",
    ),
    "wrong_array_rank": (
        "CastingError",
        f"input argument for array attribute `values' on dataformat `{ITEM}' has 1 dimensions "
        "and does not respect what is requested in the data format (2 dimension(s))",
    ),
    "strings_in_a_numeric_array": (
        "CastingError",
        f"input argument for array attribute `values' on dataformat `{ITEM}' cannot be "
        "converted to an array of `float32': could not convert string to float: 'a'",
    ),
}


def items_prefix(root, parameters=None):
    """A prefix with the dataformats ``t/point/1`` and ``t/item/1`` and the database
    ``t/1`` (view ``Items``, protocol ``p``, set ``s`` with outputs item and point)."""
    add_dataformat(root, POINT, {"x": "int32", "y": "float64"})
    add_dataformat(
        root, ITEM, {"id": "uint64", "point": POINT, "values": [2, 3, "float32"], "name": "string"}
    )
    write(
        root,
        "protocoltemplates/tpl/1.json",
        {"schema_version": 1, "sets": [{"name": "s", "outputs": {"item": ITEM, "point": POINT}}]},
    )
    view = {"view": "Items", "parameters": parameters or {}}
    write(
        root,
        "databases/t/1.json",
        {
            "schema_version": 2,
            "root_folder": "/unused",
            "protocols": [{"name": "p", "template": "tpl/1", "views": {"s": view}}],
        },
    )
    write(root, "databases/t/1.py", ITEMS_VIEW)
    return root


def items_view(root):
    return load_module("t_1", str(root / "databases" / "t" / "1.py"), {}).Items


def test_values_of_a_good_view_pass(tmp_path, capsys):
    root = items_prefix(tmp_path / "prefix")
    outputs = {"item": ITEM, "point": POINT}
    tester = DatabaseTester("good", items_view(root), outputs, {}, report_dir=str(tmp_path))
    assert sorted(tester.dataformats) == ["item", "point"]
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "Testing 'good', with 2 output(s): item, point",
        "  - item: 4 data",
        "  - point: 4 data",
    ]
    assert (tmp_path / "good.txt").exists()


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
def test_a_bad_value_fails_as_in_a_real_run(tmp_path, bad):
    root = items_prefix(tmp_path / "prefix")
    with pytest.raises(Exception) as excinfo:
        DatabaseTester(
            "bad",
            items_view(root),
            {"item": ITEM, "point": POINT},
            {"bad": bad, "at": 2},
            report_dir=str(tmp_path),
        )
    kind, message = BAD_VALUES[bad]
    error = excinfo.value
    assert (type(error).__name__, str(error)) == (kind, message)
    output, index, value = error.__notes__
    assert (output, index) == ("output: item", "index: 2")
    assert value.startswith("value: {'id': ") or value.startswith("value: [")
    # the message shown names them
    shown = "".join(traceback.format_exception_only(error))
    assert shown.endswith(f"{message}\noutput: item\nindex: 2\n{value}\n")
    assert not (tmp_path / "bad.txt").exists()


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
def test_the_real_run_raises_the_same(tmp_path, bad):
    # the databases provider's sources (DatabaseOutputDataSource, packing) in-process
    root = items_prefix(tmp_path / "prefix", {"bad": bad, "at": 2})
    view = Database(str(root), "t/1").view("p", "s")
    view.index(str(tmp_path / "index.db"))
    view.setup(str(tmp_path / "index.db"), pack=True)
    source = view.data_sources["item"]
    assert source[1][0]  # the units before are fine
    with pytest.raises(Exception) as excinfo:
        source[2]
    assert (type(excinfo.value).__name__, str(excinfo.value)) == BAD_VALUES[bad]


def test_the_prefix_may_be_given(tmp_path):
    root = items_prefix(tmp_path / "prefix")

    class Elsewhere(items_view(root)):  # defined outside any prefix
        def get(self, output, index):
            return {"x": "abc", "y": 1.0} if index == 1 else {"x": numpy.int32(1), "y": 1.0}

    with pytest.raises(OutputError) as excinfo:
        DatabaseTester("p", Elsewhere, {"point": POINT}, {}, report_dir=str(tmp_path))
    assert excinfo.value.value == (
        "cannot check the values against the dataformats: give prefix= (the view's file "
        f"`{__file__}' is not in <prefix>/databases/<name>/<version>.py)"
    )
    with pytest.raises(CastingError) as excinfo:
        DatabaseTester(
            "p", Elsewhere, {"point": POINT}, {}, prefix=str(root), report_dir=str(tmp_path)
        )
    assert str(excinfo.value).startswith("cannot safely cast attribute `x' on dataformat")
    assert excinfo.value.__notes__ == ["output: point", "index: 1", "value: {'x': 'abc', 'y': 1.0}"]
    # output names only (a list): the values are not checked
    DatabaseTester("p", Elsewhere, ["point"], {}, report_dir=str(tmp_path))


def test_an_invalid_dataformat_is_named(tmp_path):
    root = items_prefix(tmp_path / "prefix")
    with pytest.raises(OutputError) as excinfo:
        DatabaseTester("p", items_view(root), {"item": "t/nope/1"}, {}, report_dir=str(tmp_path))
    assert excinfo.value.value == "the dataformat `t/nope/1' of output `item' is not valid"
    assert len(excinfo.value.__notes__) == 1
    assert "t/nope/1" in excinfo.value.__notes__[0]


def test_push_style_values_are_checked_with_their_data_indices(tmp_path):
    # the `group' units of Push carry a plain int: refused for an int32 field (safe casting)
    root = items_prefix(tmp_path / "prefix")
    add_dataformat(root, "t/value/1", {"value": "int32"})
    outputs = {"value": "t/value/1", "group": "t/value/1"}
    with pytest.raises(CastingError) as excinfo:
        DatabaseTester(
            "push",
            Push,
            outputs,
            {"size": 9, "groups": [3, 3, 3]},
            prefix=str(root),
            report_dir=str(tmp_path),
        )
    assert str(excinfo.value) == (
        "cannot safely cast attribute `value' on dataformat `t/value/1' with type `int64' "
        "to `int32' without precision loss"
    )
    assert excinfo.value.__notes__ == [
        "output: group",
        "index: 3 (data indices 3 to 5)",  # the first unit holds 0: not checked (§5.2)
        "value: {'value': 1}",
    ]
