"""Protocol templates: the sets (and their outputs) a database protocol provides.

``ProtocolTemplate.__init__`` sets the initial attributes and calls
``self._load(data, dataformat_cache)`` — the BEAT platform subclasses this
class and overrides ``_load`` (platform-client.md §4).
"""

from __future__ import annotations

from .._core.errors import AssetNameError
from . import storage as _storage
from .common import DeclaredAsset
from .dataformat import DataFormat

_UNNAMED = "__unnamed_protocoltemplate__"


class Storage(_storage.AssetStorage, _storage.Storage):
    """Resolves paths for protocol templates (``<name>/<version>``).

    The hashed folder of the template name (``toUserPath(name)/<version>``) is
    tried first; the hash excludes the ``description`` key.
    """

    asset_type = "protocoltemplate"
    asset_folder = "protocoltemplates"
    name_slashes = 1
    kind_word = "protocol template"

    def __init__(self, prefix: str, name: str):
        super().__init__(self._resolve(prefix, name))

    def hash(self) -> str:
        """The hash of the declaration JSON (``description`` excluded)."""
        return super().hash("description")


def load_output_formats(owner, sets, dataformat_cache: dict) -> None:
    """Load the formats of every output of ``sets`` into ``owner.dataformats``.

    Formats come from ``dataformat_cache`` when present (and are added to it
    otherwise). Broken formats are kept: their errors surface when used.
    """
    for set_ in sets:
        outputs = set_.get("outputs", {}) if isinstance(set_, dict) else {}
        for value in outputs.values():
            if value in owner.dataformats:
                continue
            dataformat = dataformat_cache.get(value)
            if dataformat is None:
                try:
                    dataformat = DataFormat(owner.prefix, value, dataformat_cache=dataformat_cache)
                except AssetNameError as exc:  # a malformed name is the owner's own error
                    if str(exc) not in owner.errors:
                        owner.errors.append(str(exc))
                    continue
                dataformat_cache[value] = dataformat
            owner.dataformats[value] = dataformat


class ProtocolTemplate(DeclaredAsset):
    """The sets of a database protocol, with the data format of each output.

    ``data`` is the template name (``<name>/<version>``), loaded from ``prefix``.
    """

    _kind = "protocol template"

    def __init__(self, prefix: str, data, dataformat_cache: dict | None = None):
        self._name = None
        self.storage = None
        self.dataformats = {}
        self.prefix = prefix
        self.errors = []
        self.data = None
        # the platform's _load override writes into the cache straight away
        self._load(data, {} if dataformat_cache is None else dataformat_cache)

    def _load(self, data, dataformat_cache):
        self._name = data
        self.storage = Storage(self.prefix, data)
        if not self._read_declaration():
            return
        if not isinstance(self.data, dict) or not isinstance(self.data.get("sets"), list):
            path = self.storage.json.path
            self.errors.append(
                f"Protocol template declaration invalid: {path} must hold an object "
                "with a `sets' list"
            )
            return
        load_output_formats(self, self.data["sets"], dataformat_cache)

    # -- properties ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The template name (``<name>/<version>``)."""
        return self._name or _UNNAMED

    @name.setter
    def name(self, value):
        self._name = value
        self.storage = Storage(self.prefix, value)

    def sets(self) -> list:
        """The list of set declarations."""
        return self.data["sets"]

    def set(self, name: str):
        """The declaration of set ``name`` or ``None``."""
        for item in self.sets():
            if item["name"] == name:
                return item
        return None

    # -- operations ---------------------------------------------------------

    def export(self, prefix: str) -> None:
        """Export the output formats, then this template, into ``prefix``."""
        self._check_export(prefix, need_storage=False)
        for dataformat in self.dataformats.values():
            dataformat.export(prefix)
        self.write(Storage(prefix, self.name))
