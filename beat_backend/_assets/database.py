"""Database declarations (schema v1 and v2) and the ``View`` base class of user views.

``Database.__init__`` sets the initial attributes and calls
``self._load(data, dataformat_cache)`` — the BEAT platform subclasses this
class and overrides ``_load`` (platform-client.md §4). Database code is always
Python (``<prefix>/databases/<name>/<version>.py``, never in a hashed folder).

:class:`IndexFingerprint` (``Database.index_fingerprint``) records what a set's
index file is built from, so that ``beat-backend run`` can tell an index built
from another state of the database (beyond BEAT: the platform's dataset hashes
name the database, protocol and set only).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os

from .._core.errors import AssetNameError
from .._core.hashing import hashFileContents
from .._core.jsonio import canonical_dumps
from .._core.names import sha256_hex
from . import storage as _storage
from .common import DeclaredAsset
from .loader import load_module
from .protocoltemplate import ProtocolTemplate, load_output_formats

_UNNAMED = "__unnamed_database__"


class Storage(_storage.AssetStorage, _storage.CodeStorage):
    """Resolves paths for databases (``<name>/<version>``); the code is Python."""

    asset_type = "database"
    asset_folder = "databases"
    name_slashes = 1
    hashed = False
    kind_word = "database"

    def __init__(self, prefix: str, name: str):
        # views are coded in Python, whatever the declaration says
        super().__init__(self._resolve(prefix, name), "python")


class Database(DeclaredAsset):
    """Databases define the start point of the dataflow in an experiment.

    ``data`` is the database name (``<name>/<version>``), loaded from
    ``prefix``. ``dataformat_cache`` (name -> DataFormat) and
    ``protocoltemplate_cache`` (name -> ProtocolTemplate) are optional shared
    caches; a database loads each protocol template once.
    """

    _kind = "database"
    _has_code = True

    def __init__(
        self,
        prefix: str,
        data,
        dataformat_cache: dict | None = None,
        protocoltemplate_cache: dict | None = None,
    ):
        self._name = None
        self.prefix = prefix
        self.dataformats = {}
        self.storage = None
        self.errors = []
        self.data = None
        self.code = None
        self.code_path = None
        self._module = None
        self._protocoltemplate_cache = (
            protocoltemplate_cache if protocoltemplate_cache is not None else {}
        )
        # the platform's _load override writes into the cache straight away
        self._load(data, {} if dataformat_cache is None else dataformat_cache)

    # -- loading ------------------------------------------------------------

    def _load(self, data, dataformat_cache):
        self._name = data
        self.storage = Storage(self.prefix, data)
        if not self._read_declaration():
            return
        self._read_code()

        if not isinstance(self.data, dict):
            path = self.storage.json.path
            self.errors.append(f"Database declaration invalid: {path} must hold a JSON object")
            return
        if self.schema_version == 1:
            self._load_v1(dataformat_cache)
        elif self.schema_version == 2:
            self._load_v2(dataformat_cache)
        else:
            raise RuntimeError(f"Invalid schema version {self.schema_version}")

    def _structure_errors(self, sets_key: str) -> list[str]:
        protocols = self.data.get("protocols")
        if not isinstance(protocols, list):
            return ["Database declaration invalid: `protocols' must be a list"]
        errors = []
        for i, protocol in enumerate(protocols):
            if not isinstance(protocol, dict) or "name" not in protocol:
                errors.append(f"Database declaration invalid: protocol #{i} has no `name'")
                continue
            container = protocol.get(sets_key)
            kind = list if sets_key == "sets" else dict
            if not isinstance(container, kind):
                errors.append(
                    f"Database declaration invalid: protocol `{protocol['name']}' has no "
                    f"`{sets_key}' {kind.__name__}"
                )
            elif sets_key == "views" and not isinstance(protocol.get("template"), str):
                errors.append(
                    f"Database declaration invalid: protocol `{protocol['name']}' has no `template'"
                )
        return errors

    def _load_v1(self, dataformat_cache):
        errors = self._structure_errors("sets")
        if errors:
            self.errors.extend(errors)
            return
        for protocol in self.data["protocols"]:
            load_output_formats(self, protocol["sets"], dataformat_cache)

    def _load_v2(self, dataformat_cache):
        errors = self._structure_errors("views")
        if errors:
            self.errors.extend(errors)
            return
        for protocol in self.data["protocols"]:
            try:
                template = self._template(protocol["template"], dataformat_cache)
            except AssetNameError as exc:
                self.errors.append(str(exc))
                continue
            if template.valid:
                load_output_formats(self, template.sets(), dataformat_cache)

    def _template(self, name: str, dataformat_cache: dict | None = None) -> ProtocolTemplate:
        """The protocol template ``name``, loaded once and then reused."""
        cache = getattr(self, "_protocoltemplate_cache", None)
        if cache is None:  # a subclass skipped our __init__
            cache = self._protocoltemplate_cache = {}
        template = cache.get(name)
        if template is None:
            template = ProtocolTemplate(self.prefix, name, dataformat_cache)
            cache[name] = template
        return template

    # -- properties ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The database name (``<name>/<version>``)."""
        return self._name or _UNNAMED

    @name.setter
    def name(self, value):
        self._name = value
        self.storage = Storage(self.prefix, value)

    @property
    def environment(self):
        """The run environment (``{"name", "version"}``) or ``None``."""
        return self.data.get("environment")

    @property
    def protocols(self) -> dict:
        """Protocol name -> protocol declaration."""
        return {p["name"]: p for p in self.data["protocols"]}

    def protocol(self, name: str) -> dict:
        """The declaration of protocol ``name`` (``KeyError`` if unknown)."""
        return self.protocols[name]

    @property
    def protocol_names(self) -> list:
        """Protocol names, in declaration order."""
        return [p["name"] for p in self.data["protocols"]]

    def _set_list(self, protocol: str) -> list:
        """The set declarations of ``protocol`` in declaration order (v2: from its template)."""
        if self.schema_version == 1:
            return self.protocol(protocol)["sets"]
        template = self._template(self.protocol(protocol)["template"])
        if not template.valid:
            raise RuntimeError("\n  * " + "\n  * ".join(template.errors))
        return template.sets()

    def sets(self, protocol: str) -> dict:
        """Set name -> set declaration of ``protocol`` (the last of a duplicated name wins)."""
        return {s["name"]: s for s in self._set_list(protocol)}

    def set(self, protocol: str, name: str) -> dict:
        """The declaration of set ``name`` of ``protocol`` (``KeyError`` if unknown)."""
        return self.sets(protocol)[name]

    def set_names(self, protocol: str) -> list:
        """The names of the sets of ``protocol``, in declaration order, duplicates kept.

        (The platform compares ``len(names)`` with ``len(set(names))`` to report
        duplicated set names.)
        """
        return [s["name"] for s in self._set_list(protocol)]

    def view_definition(self, protocol_name: str, set_name: str) -> dict:
        """A copy of the set declaration, with ``view`` and (v2) ``parameters``."""
        if self.schema_version == 1:
            return copy.deepcopy(self.set(protocol_name, set_name))
        protocol = self.protocol(protocol_name)
        entry = protocol["views"][set_name]
        definition = copy.deepcopy(self.set(protocol_name, set_name))
        definition["view"] = entry["view"]
        if "parameters" in entry:
            definition["parameters"] = copy.deepcopy(entry["parameters"])
        return definition

    # -- the views ------------------------------------------------------------

    def view(self, protocol: str, name: str, exc=None, root_folder=None):
        """The view runner of set ``name`` of ``protocol`` (constructed, not set up).

        ``exc`` (an exception class) wraps errors of the user code; without it
        loading errors are raised unchanged (e.g. ``SyntaxError``).
        """
        if not self._name:
            raise (exc or RuntimeError)("database has no name")
        if not self.valid:
            message = (
                f"cannot load view for set `{name}' of protocol `{protocol}' from invalid "
                f"database ({self.name})\n" + "\n".join(self.errors)
            )
            raise (exc or RuntimeError)(message)
        definition = self.view_definition(protocol, name)  # KeyError when unknown

        if getattr(self, "_module", None) is None:
            try:
                self._module = load_module(self.name.replace("/", "_"), self.storage.code.path, {})
            except Exception as e:
                if exc is None:
                    raise
                raise exc(e) from e

        if root_folder is None:
            root_folder = self.data.get("root_folder")

        # The only upward import of the layers: the view runner reads the data
        # of the view and therefore lives in _dataflow (declared in pyproject.toml).
        from .._dataflow.viewrunner import Runner

        return Runner(
            self._module,
            definition,
            self.prefix,
            root_folder,
            exc,
            dataformat_cache=dict(self.dataformats),
        )

    def index_fingerprint(
        self, protocol: str, name: str, root_folder: str | None = None
    ) -> IndexFingerprint:
        """What the index file of set ``name`` of ``protocol`` is built from.

        The declaration parts that determine the set (root folder — ``root_folder``
        when the indexer overrides it —, view class and parameters, the set's
        outputs, and the set's template: for schema v2 the protocol template's
        declaration), the view code, and the libraries the view uses: databases
        declare none (their schemas have no ``uses``), so that part is empty.
        The description and the other sets' views do not count. Raises
        ``KeyError`` for an unknown protocol or set.
        """
        definition = self.view_definition(protocol, name)
        if self.schema_version == 1:
            template = definition.get("template")
        else:
            template_name = self.protocol(protocol)["template"]
            data = self._template(template_name).data or {}
            template = {
                "name": template_name,
                "declaration": {k: v for k, v in data.items() if k != "description"},
            }
        parts = {
            "root_folder": root_folder if root_folder is not None else declared_root(self),
            "view": definition.get("view"),
            "parameters": definition.get("parameters", {}),
            "outputs": definition.get("outputs", {}),
            "template": template,
        }
        code_path = self.storage.code.path
        code = hashFileContents(code_path) if os.path.isfile(code_path) else ""
        return IndexFingerprint(
            self.name,
            protocol,
            name,
            {key: sha256_hex(canonical_dumps(value)) for key, value in parts.items()},
            code,
        )

    # -- operations ---------------------------------------------------------

    def export(self, prefix: str) -> None:
        """Export the protocol templates (v2), the formats, then this database."""
        self._check_export(prefix, need_storage=False)
        if self.schema_version != 1:
            for protocol in self.data["protocols"]:
                self._template(protocol["template"]).export(prefix)
        for dataformat in self.dataformats.values():
            dataformat.export(prefix)
        self.write(Storage(prefix, self.name))


def declared_root(database: Database):
    """The ``root_folder`` of the declaration (``None`` when absent)."""
    data = database.data
    return data.get("root_folder") if isinstance(data, dict) else None


#: how :meth:`IndexFingerprint.changes` names the declaration parts
DECLARATION_PARTS = {
    "root_folder": "root folder",
    "view": "view class",
    "parameters": "view parameters",
    "outputs": "set outputs",
    "template": "protocol template",
}


@dataclasses.dataclass(frozen=True)
class IndexFingerprint:
    """What one index file was built from (beyond BEAT; see ``Database.index_fingerprint``).

    ``declaration`` maps each declaration part (:data:`DECLARATION_PARTS`) to
    the SHA-256 of its canonical JSON, ``code`` is the SHA-256 of the view
    code file, ``libraries`` (library name -> hash) is always empty: databases
    declare no libraries. Stored as JSON beside the index
    (:meth:`to_bytes` / :meth:`from_bytes`).
    """

    #: the ``format`` of the stored JSON
    FORMAT = "beat_backend index fingerprint 1"

    database: str
    protocol: str
    set: str
    declaration: dict
    code: str
    libraries: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": self.FORMAT, **dataclasses.asdict(self)}

    def to_bytes(self) -> bytes:
        """The sidecar's bytes (indented JSON, sorted keys, a final newline)."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> IndexFingerprint:
        """Parse :meth:`to_bytes`' output; ``ValueError`` if it is not a fingerprint of ours."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(obj, dict) or obj.get("format") != cls.FORMAT:
            found = obj.get("format") if isinstance(obj, dict) else None
            raise ValueError(f"unknown fingerprint format {found!r} (expected {cls.FORMAT!r})")
        fields = {f.name: obj.get(f.name) for f in dataclasses.fields(cls)}
        texts = all(isinstance(fields[k], str) for k in ("database", "protocol", "set", "code"))
        maps = all(isinstance(fields[k], dict) for k in ("declaration", "libraries"))
        if not (texts and maps):
            raise ValueError("malformed fingerprint (missing or mistyped fields)")
        return cls(**fields)

    def changes(self, current: IndexFingerprint) -> list[str]:
        """What differs in ``current``: ``declaration (<parts>)``, ``code``, ``libraries``."""
        changed = []
        parts = sorted(set(self.declaration) | set(current.declaration))
        differ = [p for p in parts if self.declaration.get(p) != current.declaration.get(p)]
        if differ:
            names = ", ".join(DECLARATION_PARTS.get(p, p) for p in differ)
            changed.append(f"declaration ({names})")
        if self.code != current.code:
            changed.append("code")
        if self.libraries != current.libraries:
            changed.append("libraries")
        return changed


class View:
    """Base class of (pull-style) database views.

    Subclasses implement :meth:`index` and :meth:`get`; they may skip
    ``View.__init__`` (the other methods need no constructor state).
    """

    def __init__(self):
        #: output name -> entry field, for outputs named like Python keywords
        self.output_member_map = {}

    def index(self, root_folder, parameters):
        """Return a list of (named) tuples describing the data provided by the view.

        Entries of one higher-level unit (e.g. all files of one client) must be
        consecutive. Store file paths, never the data itself.
        """
        raise NotImplementedError

    def setup(self, root_folder, parameters, objs, start_index=None, end_index=None):
        """Keep ``root_folder``, ``parameters`` and the entries of the range."""
        self.root_folder = root_folder
        self.parameters = parameters
        self.start_index = start_index if start_index is not None else 0
        self.end_index = end_index if end_index is not None else len(objs) - 1
        self.objs = objs[self.start_index : self.end_index + 1]

    def get(self, output, index):
        """The data of ``output`` for entry ``index`` of ``self.objs``."""
        raise NotImplementedError

    def get_output_mapping(self, output):
        """The entry field grouping ``output`` (default: the output name)."""
        return (getattr(self, "output_member_map", None) or {}).get(output, output)
