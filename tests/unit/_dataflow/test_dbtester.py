"""DatabaseTester (algorithms-and-execution.md §9.6): push-style and pull-style views."""

from __future__ import annotations

import collections
import os

import numpy
import pytest

from beat_backend._core.resources import embedded_prefix
from beat_backend.database import Database, DatabaseTester, View
from beat_backend.exceptions import OutputError
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
