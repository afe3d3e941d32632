"""``DatabaseTester``: a development aid checking how a database view synchronizes its outputs.

Push-style views (``setup(root_folder, outputs, parameters)``, ``next()``,
``done(last_data_index)``) are driven exactly as the reference does (in
Python 3, with integer arithmetic). Pull-style views (``database.View``
subclasses: ``index``/``setup``/``get``) are adapted to the push protocol:
their index goes through the index-file JSON round trip (as in the platform),
and every connected output then writes the units the view yields for it,
grouped like ``DatabaseOutputDataSource`` does.

When ``outputs_declaration`` maps the outputs to their dataformats, every value
a view writes goes through what a real run does with it (the databases
provider's cast and encoding, the algorithm side's decoding): a value a run
would refuse raises the run's exception, with the output, the index and the
value as notes.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Mapping, Sequence

import numpy

from .._assets.dataformat import DataFormat
from .._core.errors import OutputError
from .._core.jsonio import loads_declaration
from .dbsource import cast_view_data, group_units
from .viewrunner import dumps_index, entries_from_index

#: consecutive steps without progress after which a push-style view is deemed stuck
_MAX_STALLED_STEPS = 1000
#: longest text of a value in the notes of a refused value
_MAX_VALUE_TEXT = 300


def check_value(dataformat, data) -> None:
    """Raise what a real run raises for ``data`` given for an output of ``dataformat``.

    The databases provider casts the value (:func:`cast_view_data`) and packs it;
    the algorithm's side decodes the bytes with the output's type.
    """
    cls = dataformat.type
    cls._from_buffer(cast_view_data(cls, data).pack())


def _value_text(data) -> str:
    text = repr(data)
    return text if len(text) <= _MAX_VALUE_TEXT else text[: _MAX_VALUE_TEXT - 3] + "..."


def _view_file(view_class) -> str | None:
    """The file defining ``view_class`` (user modules are not in ``sys.modules``)."""
    for value in vars(view_class).values():
        code = getattr(value, "__code__", None)
        if code is not None:
            return code.co_filename
    module = sys.modules.get(getattr(view_class, "__module__", None) or "")
    return getattr(module, "__file__", None)


def _prefix_of(path: str | None) -> str | None:
    """``<prefix>`` of a view file ``<prefix>/databases/<name>/<version>.py``, else ``None``."""
    if not path or not path.endswith(".py"):
        return None
    databases = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if os.path.basename(databases) != "databases":
        return None
    return os.path.dirname(databases)


def load_dataformats(view_class, outputs_declaration, prefix: str | None = None) -> dict:
    """Output name -> ``DataFormat`` when ``outputs_declaration`` is a mapping, else ``{}``.

    ``prefix`` defaults to the prefix the view's file lives in. ``OutputError``
    when there is none or a dataformat is not valid (its errors as notes).
    """
    if not isinstance(outputs_declaration, Mapping):
        return {}
    if prefix is None:
        path = _view_file(view_class)
        prefix = _prefix_of(path)
        if prefix is None:
            raise OutputError(
                "cannot check the values against the dataformats: give prefix= (the view's "
                f"file `{path}' is not in <prefix>/databases/<name>/<version>.py)"
            )
    cache: dict = {}
    dataformats = {}
    for output, name in outputs_declaration.items():
        dataformat = cache.get(name) if isinstance(name, str) else None
        if dataformat is None:
            dataformat = DataFormat(prefix, name, dataformat_cache=cache)
        if not dataformat.valid:
            error = OutputError(f"the dataformat `{name}' of output `{output}' is not valid")
            for message in dataformat.errors:
                error.add_note(message)
            raise error
        dataformats[output] = dataformat
    return dataformats


class _OutputList:
    """The outputs given to a view: iterable, indexable by position or by name."""

    def __init__(self):
        self._outputs = []

    def add(self, output) -> None:
        self._outputs.append(output)

    def __getitem__(self, key):
        if isinstance(key, str):
            for output in self._outputs:
                if output.name == key:
                    return output
            raise KeyError(key)
        return self._outputs[key]

    def __iter__(self):
        return iter(self._outputs)

    def __len__(self):
        return len(self._outputs)


def _is_pull_style(view_class) -> bool:
    return callable(getattr(view_class, "index", None)) and callable(
        getattr(view_class, "get", None)
    )


class _PullViewAdapter:
    """Drives a pull-style view (``index``/``setup``/``get``) like a push-style one."""

    def __init__(self, view_class):
        self.view_class = view_class
        self.view = None
        self.outputs = None
        self.units = {}
        self.cursors = {}
        self.next_index = 0
        self.count = 0

    def setup(self, root_folder, outputs, parameters):
        view = self.view_class()
        objs = view.index(root_folder, parameters)
        if not isinstance(objs, list):
            raise OutputError("index() didn't return a list")
        try:  # what the platform does: write the index file, read it back
            data = loads_declaration(dumps_index(objs), "index")
            objs = entries_from_index(data, "index")
        except (TypeError, ValueError) as exc:
            raise OutputError(f"index() returned entries that cannot be indexed: {exc}") from exc
        view.setup(root_folder, parameters, objs)
        self.view = view
        self.outputs = outputs
        self.count = len(view.objs)
        self.units = {
            o.name: group_units(view.objs, view.get_output_mapping(o.name)) for o in outputs
        }
        self.cursors = {o.name: 0 for o in outputs}
        self.next_index = 0
        return True

    def next(self):
        for output in self.outputs:
            if not output.isConnected() or output.last_written_data_index >= self.next_index:
                continue
            cursor = self.cursors[output.name]
            units = self.units[output.name]
            if cursor >= len(units):
                continue
            unit = units[cursor]
            self.cursors[output.name] = cursor + 1
            data = self.view.get(output.name, unit.position)
            if data is None:
                raise OutputError(
                    f"get() returned None for output `{output.name}' at index {unit.start_index}"
                )
            output.write(data, unit.end_index)
        ends = [o.last_written_data_index for o in self.outputs if o.isConnected()]
        if ends:
            self.next_index = min(ends) + 1
        return True

    def done(self, last_data_index):
        return last_data_index >= self.count - 1


class DatabaseTester:
    """Used while developing a new database view, to test its behavior.

    For each combination of connected outputs it checks that the data indices
    are consistent, that connected outputs produce data and unconnected ones
    don't; it prints statistics and, when all outputs are connected, writes a
    text report ``<name with spaces as _>.txt`` into ``report_dir`` (default:
    the current directory). Outputs are assumed to produce data at constant
    intervals, except those listed in ``irregular_outputs``. When
    ``outputs_declaration`` maps output names to dataformat names, each value
    is also checked as a real run would (:func:`check_value`); the dataformats
    are loaded from ``prefix`` (default: the prefix of the view's file).
    """

    class MockOutput:
        """Records what a view writes: ``(start, end, data)`` tuples.

        With a ``dataformat``, each value is first checked as a real run would
        (:func:`check_value`); a refused value raises the run's exception with
        the output, the index and the value as notes.
        """

        def __init__(self, name, connected, dataformat=None):
            self.name = name
            self.connected = connected
            self.dataformat = dataformat
            self.last_written_data_index = -1
            self.written_data = []

        def write(self, data, end_data_index):
            start = self.last_written_data_index + 1
            if self.dataformat is not None:
                try:
                    check_value(self.dataformat, data)
                except Exception as exc:
                    exc.add_note(f"output: {self.name}")
                    end = end_data_index
                    span = "" if end == start else f" (data indices {start} to {end})"
                    exc.add_note(f"index: {start}{span}")
                    exc.add_note(f"value: {_value_text(data)}")
                    raise
            self.written_data.append((start, end_data_index, data))
            self.last_written_data_index = end_data_index

        def isConnected(self):
            return self.connected

    class SynchronizedUnit:
        """A data unit of the report; finer units of other outputs are its children."""

        def __init__(self, start, end):
            self.start = start
            self.end = end
            self.data = {}
            self.children = []

        def addData(self, output, start, end, data):
            if start == self.start and end == self.end:
                self.data[output] = self._dataToString(data)
                return
            for child in self.children:
                if child.start <= start and end <= child.end:
                    child.addData(output, start, end, data)
                    return
            unit = DatabaseTester.SynchronizedUnit(start, end)
            unit.addData(output, start, end, data)
            inside = [c for c in self.children if start <= c.start and c.end <= end]
            unit.children = inside
            others = [c for c in self.children if c not in inside]
            self.children = sorted([*others, unit], key=lambda c: (c.start, -c.end))

        def _min_width(self):
            own = max((len(v) + 4 for v in self.data.values()), default=1)
            children = sum(c._min_width() for c in self.children) + max(len(self.children) - 1, 0)
            return max(own, children)

        def _render(self, width):
            texts = {
                output: "|" + value.center(width - 2, "-") + "|"
                for output, value in self.data.items()
            }
            if not self.children:
                return texts
            widths = [c._min_width() for c in self.children]
            extra = width - sum(widths) - (len(widths) - 1)
            for i in range(len(widths)):
                widths[i] += extra // len(widths) + (1 if i < extra % len(widths) else 0)
            rendered = [c._render(w) for c, w in zip(self.children, widths)]
            names = []
            for r in rendered:
                names.extend(n for n in r if n not in names and n not in texts)
            for name in names:
                texts[name] = " ".join(r.get(name, " " * w) for r, w in zip(rendered, widths))
            return texts

        def toString(self):
            """Output name -> its units drawn as ``|--value--|`` boxes, aligned."""
            return self._render(self._min_width())

        def _dataToString(self, data):
            if hasattr(data, "as_dict"):
                data = data.as_dict()
            if not isinstance(data, dict) or len(data) != 1:
                return "X"
            value = next(iter(data.values()))
            if isinstance(value, (numpy.ndarray, dict, list)):
                return "X"
            return str(value)

    def __init__(
        self,
        name: str,
        view_class,
        outputs_declaration: Iterable[str],
        parameters: dict,
        irregular_outputs: Sequence[str] = (),
        all_combinations: bool = True,
        root_folder=None,
        report_dir: str | None = None,
        prefix: str | None = None,
    ):
        self.name = name
        self.view_class = view_class
        self.outputs_declaration = {}
        self.parameters = parameters
        self.irregular_outputs = list(irregular_outputs)
        self.root_folder = root_folder
        self.report_dir = report_dir
        self.pull_style = _is_pull_style(view_class)
        self.dataformats = load_dataformats(view_class, outputs_declaration, prefix)

        self.determine_regular_intervals(outputs_declaration)

        if all_combinations:
            for size in range(0, len(self.outputs_declaration) + 1):
                for subset in itertools.combinations(self.outputs_declaration.keys(), size):
                    self.run(subset)
        else:
            self.run(list(self.outputs_declaration.keys()))

    # -- helpers -------------------------------------------------------------

    def _new_view(self, outputs):
        if self.pull_style:
            view = _PullViewAdapter(self.view_class)
            view.setup(self.root_folder, outputs, self.parameters)
        else:
            view = self.view_class()
            root_folder = self.root_folder if self.root_folder is not None else ""
            view.setup(root_folder, outputs, self.parameters)
        return view

    @property
    def report_path(self) -> str:
        """Where the report of this tester is written."""
        filename = self.name.replace(" ", "_") + ".txt"
        return os.path.join(self.report_dir, filename) if self.report_dir else filename

    # -- the checks ----------------------------------------------------------

    def determine_regular_intervals(self, outputs_declaration) -> None:
        """One ``next()`` with every output connected gives each regular interval."""
        outputs = _OutputList()
        for name in outputs_declaration:
            outputs.add(DatabaseTester.MockOutput(name, True, self.dataformats.get(name)))

        view = self._new_view(outputs)
        view.next()

        for output in outputs:
            if output.name in self.irregular_outputs:
                self.outputs_declaration[output.name] = None
            elif not output.written_data:
                raise OutputError("No data written on connected output")
            else:
                self.outputs_declaration[output.name] = output.last_written_data_index + 1

    def run(self, connected_outputs) -> None:
        """Check the view with ``connected_outputs`` connected (the others not)."""
        if len(connected_outputs) == 0:
            return

        print(
            "Testing '%s', with %d output(s): %s"
            % (self.name, len(connected_outputs), ", ".join(connected_outputs))
        )

        connected = {k: v for k, v in self.outputs_declaration.items() if k in connected_outputs}
        not_connected = [k for k in self.outputs_declaration if k not in connected]

        outputs = _OutputList()
        for name in self.outputs_declaration:
            dataformat = self.dataformats.get(name)
            outputs.add(DatabaseTester.MockOutput(name, name in connected, dataformat))

        view = self._new_view(outputs)

        next_expected_indices = dict.fromkeys(connected, 0)
        next_index = 0
        stalled = 0

        def _done():
            return all(
                view.done(output.last_written_data_index)
                for output in outputs
                if output.isConnected()
            )

        while not _done():
            view.next()

            for name, interval in connected.items():
                written = outputs[name].written_data
                if not written:
                    raise OutputError("No data written on connected output")
                start, end, _ = written[-1]
                if start != next_expected_indices[name]:
                    raise OutputError("Wrong current index")
                if interval is not None:
                    if end != next_expected_indices[name] + interval - 1:
                        raise OutputError("Wrong next index")
                elif end < next_expected_indices[name]:
                    raise OutputError("Wrong next index")

            for name in not_connected:
                if outputs[name].written_data:
                    raise OutputError("Data written on unconnected output")

            previous = next_index
            next_index = 1 + min(outputs[name].written_data[-1][1] for name in connected)
            stalled = stalled + 1 if next_index <= previous else 0
            if stalled >= _MAX_STALLED_STEPS:
                raise OutputError("The view stopped producing data")

            for name, interval in connected.items():
                last_end = outputs[name].written_data[-1][1]
                if interval is not None:
                    if next_index == next_expected_indices[name] + interval:
                        next_expected_indices[name] += interval
                elif next_index > last_end:
                    next_expected_indices[name] = last_end + 1

        for name, interval in connected.items():
            written = outputs[name].written_data
            print("  - %s: %d data" % (name, len(written)))
            if interval is not None and len(written) * interval != next_index:
                raise OutputError("Invalid number of data produced")

        for name in connected:
            written = outputs[name].written_data
            if not written or written[-1][1] != next_index - 1:
                raise OutputError("Outputs not on same index")

        if len(connected) == len(self.outputs_declaration):
            self._write_report(outputs)

    def _write_report(self, outputs) -> None:
        sorted_outputs = sorted(outputs, key=lambda x: len(x.written_data))
        unit = DatabaseTester.SynchronizedUnit(0, sorted_outputs[0].written_data[-1][1])
        for output in sorted_outputs:
            for start, end, data in output.written_data:
                unit.addData(output.name, start, end, data)
        texts = unit.toString()
        width = max(len(x) for x in self.outputs_declaration)
        with open(self.report_path, "w", encoding="utf-8") as f:
            for output in reversed(sorted_outputs):
                f.write(output.name + ": " + " " * (width - len(output.name)))
                f.write(texts.get(output.name, "") + "\n")
