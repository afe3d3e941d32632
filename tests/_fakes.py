"""Minimal stand-ins for inputs, data loaders, outputs and loop channels.

The Runner passes these objects to user code as given, without type checks
(algorithms-and-execution.md §3), so plain Python fakes are enough to drive
algorithms in-process. Values are :class:`types.SimpleNamespace` objects, so
user code reads ``inputs["x"].data.value`` as with real dataformat objects.
"""

from __future__ import annotations

from types import SimpleNamespace


def unit(**fields) -> SimpleNamespace:
    return SimpleNamespace(**fields)


class FakeInput:
    """One input: a list of values, one data index each."""

    def __init__(self, name, values):
        self.name = name
        self.values = list(values)
        self.data = None
        self.data_index = self.data_index_end = -1
        self.next_data_index = 0

    def hasMoreData(self):
        return self.next_data_index < len(self.values)

    def next(self):
        self.data = self.values[self.next_data_index]
        self.data_index = self.data_index_end = self.next_data_index
        self.next_data_index += 1


class FakeInputs:
    """Stands in for an InputList holding one synchronized group."""

    def __init__(self, **inputs):
        self.inputs = {name: FakeInput(name, values) for name, values in inputs.items()}

    def __getitem__(self, name):
        return self.inputs.get(name)

    def __len__(self):
        return len(self.inputs)

    def hasMoreData(self):
        return any(i.hasMoreData() for i in self.inputs.values())

    def next(self):
        for i in self.inputs.values():
            i.next()


class FakeLoader:
    """Stands in for a DataLoader: unit ``i`` covers data index ``i`` of every input."""

    def __init__(self, channel, **inputs):
        self.channel = channel
        self.inputs = {name: list(values) for name, values in inputs.items()}
        self.nb_data_units = len(next(iter(self.inputs.values()), []))
        self.data_index_start = 0 if self.nb_data_units else -1
        self.data_index_end = self.nb_data_units - 1

    def input_names(self):
        return list(self.inputs)

    def count(self, name=None):
        if name is None:
            return self.nb_data_units
        return len(self.inputs.get(name, []))

    def __getitem__(self, index):
        if not 0 <= index < self.nb_data_units:
            return (None, None, None)
        return ({name: values[index] for name, values in self.inputs.items()}, index, index)


class FakeLoaderList:
    """Stands in for a DataLoaderList; the first loader is the main one."""

    def __init__(self, *loaders, main=True):
        self.loaders = list(loaders)
        self.main_loader = self.loaders[0] if (main and self.loaders) else None
        self.is_secondaries = not main

    def __len__(self):
        return len(self.loaders)

    def __iter__(self):
        return iter(self.loaders)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.loaders[key] if 0 <= key < len(self.loaders) else None
        return next((x for x in self.loaders if x.channel == key), None)

    def loaderOf(self, name):
        return next((x for x in self.loaders if name in x.inputs), None)

    def secondaries(self):
        return FakeLoaderList(*(x for x in self.loaders if x is not self.main_loader), main=False)


class FakeOutput:
    """Records ``(data, end_data_index)`` of every write; ``on_write`` is called after each."""

    def __init__(self, name, on_write=None):
        self.name = name
        self.written = []
        self.on_write = on_write

    def write(self, data, end_data_index=None):
        self.written.append((data, end_data_index))
        if self.on_write is not None:
            self.on_write(self.name, end_data_index)


class FakeOutputs(dict):
    """Stands in for an OutputList: ``outputs["name"]``."""

    def __init__(self, *names, on_write=None):
        super().__init__((name, FakeOutput(name, on_write)) for name in names)


class FakeLoopChannel:
    """Sends each request to an evaluator :class:`Runner` in the same process."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.requests = []

    def validate(self, hypothesis):
        if not isinstance(hypothesis, dict):
            raise TypeError(f"Can't transform {type(hypothesis)} in dataformat")
        self.requests.append(hypothesis)
        accepted, answer = self.evaluator.validate(unit(**hypothesis))
        return accepted, unit(**answer)
