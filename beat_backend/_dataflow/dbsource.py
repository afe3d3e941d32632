"""``DatabaseOutputDataSource``: the data units of one output of a database view.

cache-files.md §7.3, with *absolute* data indices when a range is given (the
reference mixes positions and indices there).
"""

from __future__ import annotations

import time
from collections import namedtuple

from .._assets.dataformat import DataFormat
from .._cache.base import DataSource

#: one unit: its absolute data indices and the position of its first entry
#: within the view's (range-sliced) objects
Infos = namedtuple("Infos", ["start_index", "end_index", "position"])

_NONE3 = (None, None, None)
_NOTHING = object()


def group_units(objects, attribute: str, offset: int = 0) -> list:
    """Group *consecutive* entries with the same ``attribute`` value into units.

    Returns :data:`Infos` with absolute indices ``offset + position``.
    Raises ``AttributeError`` naming the field when an entry lacks it.
    """
    infos: list = []
    previous = _NOTHING
    for position, obj in enumerate(objects):
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            raise AttributeError(
                f"index entry {offset + position} has no field `{attribute}' "
                f"(its fields: {', '.join(getattr(obj, '_fields', ())) or 'none'})"
            ) from None
        index = offset + position
        if previous is not _NOTHING and value == previous:
            infos[-1] = infos[-1]._replace(end_index=index)
        else:
            infos.append(Infos(index, index, position))
        previous = value
    return infos


def cast_view_data(cls, data):
    """What a run makes of a value a view's ``get()`` returned for an output of type ``cls``.

    A dict is cast into ``cls`` with safe casting and no defaults (every declared
    field, no other); anything else is kept as it is (it must pack itself).
    """
    if isinstance(data, dict):
        data = cls.__new__(cls).from_dict(data, casting="safe", add_defaults=False)
    return data


class DatabaseOutputDataSource(DataSource):
    """Utility class to load data from an output of a database view."""

    def __init__(self):
        super().__init__()
        self.prefix = None
        self.dataformat = None
        self.view = None
        self.output_name = None
        self.pack = True
        self._type = None

    def setup(
        self,
        view,
        output_name: str,
        dataformat_name: str,
        prefix: str,
        start_index: int | None = None,
        end_index: int | None = None,
        pack: bool = False,
        dataformat_cache: dict | None = None,
    ) -> bool:
        """Configure the source over the objects of ``view`` (a set-up view runner).

        Units carry absolute data indices (``start_index`` is the index of the
        view's first object). ``dataformat_cache`` (name -> DataFormat) lets
        several outputs share their formats.
        """
        self.prefix = prefix
        self.view = view
        self.output_name = output_name
        self.pack = pack

        cache = dataformat_cache if dataformat_cache is not None else {}
        dataformat = cache.get(dataformat_name)
        if dataformat is None:
            dataformat = DataFormat(prefix, dataformat_name, dataformat_cache=cache)
            cache[dataformat_name] = dataformat
        if not dataformat.valid:
            raise RuntimeError(f"the dataformat `{dataformat_name}' is not valid")
        self.dataformat = dataformat
        self._type = dataformat.type  # the class is built once, here

        attribute = view.get_output_mapping(output_name)
        offset = start_index if start_index is not None else 0
        try:
            infos = group_units(view.objects(), attribute, offset)
        except AttributeError as exc:
            raise RuntimeError(f"cannot group output `{output_name}': {exc}") from None
        if end_index is not None:  # views that ignore the range still stay inside it
            infos = [x for x in infos if x.end_index <= end_index]
        self.infos = infos
        self.ready = True
        return True

    def __getitem__(self, index):
        if index < 0 or index >= len(self.infos):
            return _NONE3
        infos = self.infos[index]
        t0 = time.perf_counter()
        data = cast_view_data(self._type, self.view.get(self.output_name, infos.position))
        if self.pack:
            data = data.pack()
            self.nb_bytes_read += len(data)
        self.read_duration += time.perf_counter() - t0
        return (data, infos.start_index, infos.end_index)

    def __getstate__(self):
        state = super().__getstate__()
        state["_type"] = None  # generated classes are rebuilt, never pickled
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.dataformat is not None:
            self._type = self.dataformat.type
