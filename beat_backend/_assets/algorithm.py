"""Algorithm declarations: groups, parameters, results, libraries and the runner.

``Algorithm.__init__`` sets the initial attributes and calls
``self._load(data, dataformat_cache, library_cache)``; the BEAT platform
subclasses this class and overrides ``_load`` (and
``_convert_parameter_types``), reusing ``_update_dataformat_cache``
(platform-client.md §4).
"""

from __future__ import annotations

import numpy

from .._core.errors import DeclarationError
from . import loader
from . import storage as _storage
from .common import DeclaredAsset, declared, same_prefix
from .dataformat import DataFormat
from .dataformat import Storage as DataFormatStorage
from .library import export_libraries, use_library
from .library import uses_dict as _uses_dict
from .runner import Runner

_UNNAMED = "__unnamed_algorithm__"


def _repr(value) -> str:
    """``repr`` of a value as numpy 1 shows it (``1.0``, not ``np.float64(1.0)``)."""
    if int(numpy.__version__.split(".", 1)[0]) >= 2:
        with numpy.printoptions(legacy="1.25"):
            return repr(value)
    return repr(value)  # pragma: no cover - numpy 1


def _choices(values) -> str:
    return ", ".join(_repr(v) for v in values)


class Storage(_storage.AssetCodeStorage):
    """Resolves paths for algorithms."""

    asset_type = "algorithm"
    asset_folder = "algorithms"


class Algorithm(DeclaredAsset):
    """Algorithms are the runnable components of the platform.

    This class parses the declaration (groups, parameters, results, ``uses``,
    type) and gives a :class:`Runner` for the code through :meth:`runner`.
    """

    LEGACY = "legacy"
    SEQUENTIAL = "sequential"
    AUTONOMOUS = "autonomous"
    SEQUENTIAL_LOOP_EVALUATOR = "sequential_loop_evaluator"
    AUTONOMOUS_LOOP_EVALUATOR = "autonomous_loop_evaluator"
    SEQUENTIAL_LOOP_PROCESSOR = "sequential_loop_processor"
    AUTONOMOUS_LOOP_PROCESSOR = "autonomous_loop_processor"

    dataformat_klass = DataFormat

    _kind = "algorithm"
    _has_code = True
    _needs_language = True

    def __init__(
        self,
        prefix: str,
        name: str,
        dataformat_cache: dict | None = None,
        library_cache: dict | None = None,
    ):
        self._name = None
        self.storage = None
        self.prefix = prefix
        self.data = None
        self.code = None
        self.code_path = None
        self.groups = []
        self.input_map = {}
        self.output_map = {}
        self.loop_map = {}
        self.dataformats = {}
        self.libraries = {}
        self.errors = []
        self._module = None
        # the platform's _load overrides write into the caches straight away
        self._load(
            name,
            {} if dataformat_cache is None else dataformat_cache,
            {} if library_cache is None else library_cache,
        )

    # -- loading ------------------------------------------------------------

    def _load(self, data, dataformat_cache, library_cache):
        self._name = data
        self.storage = Storage(self.prefix, data)
        if not self._read_declaration():
            return
        if not isinstance(self.data, dict):
            self.errors.append(
                f"Algorithm declaration invalid: expected a JSON object in "
                f"{self.storage.json.path}, got {type(self.data).__name__}"
            )
            self.data = None
            return

        self._read_code()

        self._load_groups()
        self._load_dataformats(dataformat_cache)
        self._convert_parameter_types()
        self._load_libraries(library_cache)

    def _endpoints(self, group, index, key):
        entries = group.get(key, {})
        if not isinstance(entries, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("type"), str) for v in entries.values()
        ):
            self.errors.append(
                f"Algorithm declaration invalid: `{key}' of group {index} must map names to "
                "objects with a `type' string"
            )
            return {}
        return entries

    def _load_groups(self):
        groups = self.data.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            self.errors.append("Algorithm declaration invalid: `groups' must be a list of objects")
            return
        self.groups = groups
        for index, group in enumerate(groups):
            if "inputs" not in group:
                self.errors.append(f"Algorithm declaration invalid: group {index} has no `inputs'")
            for key, target in (
                ("inputs", self.input_map),
                ("outputs", self.output_map),
                ("loop", self.loop_map),
            ):
                for name, entry in self._endpoints(group, index, key).items():
                    target[name] = entry["type"]

    def _update_dataformat_cache(self, type_name, dataformat_cache):
        """The dataformat ``type_name``, from ``dataformat_cache`` or loaded into it."""
        if type_name not in self.dataformats:
            if dataformat_cache and type_name in dataformat_cache:
                thisformat = dataformat_cache[type_name]
            else:
                thisformat = self.dataformat_klass(self.prefix, type_name, None, dataformat_cache)
                if dataformat_cache is not None:
                    dataformat_cache[type_name] = thisformat
            self.dataformats[type_name] = thisformat
        return self.dataformats[type_name]

    def _result_references(self):
        results = self.results if isinstance(self.results, dict) else {}
        return [
            r["type"]
            for r in results.values()
            if isinstance(r, dict) and isinstance(r.get("type"), str) and "/" in r["type"]
        ]

    def _load_dataformats(self, dataformat_cache):
        # errors of the formats themselves are not ours: they surface when used
        if dataformat_cache is None:
            dataformat_cache = {}
        names = [*self.input_map.values(), *self.output_map.values(), *self.loop_map.values()]
        for type_name in names + self._result_references():
            try:
                self._update_dataformat_cache(type_name, dataformat_cache)
            except (RuntimeError, ValueError) as exc:  # invalid name, malformed JSON
                self.errors.append(f"dataformat `{type_name}' cannot be loaded: {exc}")

    def _convert_parameter_types(self):
        """Turn parameter types into numpy dtypes and convert range/choice/default."""
        parameters = self.parameters
        if parameters is None:
            return
        if not isinstance(parameters, dict):
            self.errors.append("Algorithm declaration invalid: `parameters' must be an object")
            return
        for name, parameter in parameters.items():
            if not isinstance(parameter, dict) or "type" not in parameter:
                self.errors.append(f"parameter `{name}' must be an object with a `type'")
                continue
            self._convert_parameter(name, parameter)

    def _convert_parameter(self, name, parameter):
        def convert(value, what):
            try:
                return dtype.type(value)
            except Exception as e:
                self.errors.append(
                    f"{what} for parameter `{name}' cannot be cast to type `{dtype.name}': {e}"
                )
                return None

        declared = parameter["type"]
        try:
            if isinstance(declared, numpy.dtype):
                dtype = declared
            else:
                dtype = numpy.dtype("str" if declared == "string" else declared)
        except TypeError:
            self.errors.append(f"parameter `{name}' has an unknown type `{declared}'")
            return
        parameter["type"] = dtype

        valid_range = False
        if "range" in parameter:
            bounds = parameter["range"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                self.errors.append(f"range for parameter `{name}' must be a list [start, end]")
            else:
                bounds[0] = convert(bounds[0], "start of range")
                bounds[1] = convert(bounds[1], "end of range")
                if bounds[0] is not None and bounds[1] is not None:
                    if bounds[0] >= bounds[1]:
                        self.errors.append(
                            f"range for parameter `{name}' has a start greater then the end "
                            f"value ({_repr(bounds[0])} >= {_repr(bounds[1])})"
                        )
                    else:
                        valid_range = True

        choices = parameter.get("choice")
        if choices is not None:
            if not isinstance(choices, list):
                self.errors.append(f"choice for parameter `{name}' must be a list")
                choices = None
            else:
                for i, choice in enumerate(choices):
                    choices[i] = convert(choice, f"choice[{i}]")

        if "default" in parameter:
            default = parameter["default"] = convert(parameter["default"], "default")
            if default is None:
                return
            low, high = parameter["range"] if valid_range else (None, None)
            if valid_range and (default < low or default > high):
                self.errors.append(
                    f"default for parameter `{name}' ({_repr(default)}) is not within "
                    f"parameter range [{_repr(low)}, {_repr(high)}]"
                )
            if choices is not None and default not in choices:
                self.errors.append(
                    f"default for parameter `{name}' ({_repr(default)}) is not a valid "
                    f"choice `[{_choices(choices)}]'"
                )

    def _load_libraries(self, library_cache):
        uses = self.uses
        if uses is None:
            return
        if not isinstance(uses, dict):
            self.errors.append("Algorithm declaration invalid: `uses' must be an object")
            return
        if library_cache is None:
            library_cache = {}
        for alias, used in uses.items():
            lib = library_cache.get(used)
            use_library(self, alias, used, library_cache, lib, (RuntimeError, DeclarationError))

    # -- properties ---------------------------------------------------------

    @property
    def name(self) -> str:
        """``user/name/version`` (``__unnamed_algorithm__`` if none)."""
        return self._name or _UNNAMED

    @name.setter
    def name(self, value):
        self._name = value
        self.storage = Storage(self.prefix, value, declared(self, "language"))
        self.code_path = self.storage.code.path

    @property
    def api_version(self) -> int:
        return declared(self, "api_version", 1)

    @property
    def type(self) -> str:
        """``legacy`` under API 1, else the declared type (``sequential`` by default)."""
        if self.api_version == 1:
            return Algorithm.LEGACY
        return declared(self, "type", Algorithm.SEQUENTIAL)

    @property
    def is_autonomous(self) -> bool:
        return self.type in (
            Algorithm.AUTONOMOUS,
            Algorithm.AUTONOMOUS_LOOP_PROCESSOR,
            Algorithm.AUTONOMOUS_LOOP_EVALUATOR,
        )

    @property
    def is_sequential(self) -> bool:
        return self.type in (
            Algorithm.SEQUENTIAL,
            Algorithm.SEQUENTIAL_LOOP_PROCESSOR,
            Algorithm.SEQUENTIAL_LOOP_EVALUATOR,
        )

    @property
    def is_loop(self) -> bool:
        """Whether this is a loop evaluator (the processor merely *uses* a loop)."""
        return self.type in (
            Algorithm.SEQUENTIAL_LOOP_EVALUATOR,
            Algorithm.AUTONOMOUS_LOOP_EVALUATOR,
        )

    @property
    def language(self):
        """The language of the code; setting it re-targets the code file."""
        return declared(self, "language")

    @language.setter
    def language(self, value):
        if self.storage is not None:
            self.storage.language = value  # KeyError for an unknown language
            self.code_path = self.storage.code.path
        self.data["language"] = value

    @property
    def uses(self):
        """Alias (as seen by the code) -> library name, or ``None``."""
        return declared(self, "uses")

    @uses.setter
    def uses(self, value):
        if not isinstance(value, dict):
            raise RuntimeError("Invalid uses entry, must be a dict")
        self.data["uses"] = value

    @property
    def isAnalyzer(self) -> bool:
        return self.results is not None

    @property
    def results(self):
        """Result name -> ``{"type", "display"?, ...}`` for analyzers, else ``None``."""
        return declared(self, "results")

    @results.setter
    def results(self, value):
        self.data["results"] = value

    @property
    def parameters(self):
        """Parameter name -> declaration (types as numpy dtypes), or ``None``."""
        return declared(self, "parameters")

    @parameters.setter
    def parameters(self, value):
        self.data["parameters"] = value

    @property
    def splittable(self) -> bool:
        return declared(self, "splittable", False)

    @splittable.setter
    def splittable(self, value):
        self.data["splittable"] = value

    # -- operations ---------------------------------------------------------

    def clean_parameter(self, parameter: str, value):
        """``value`` converted to the type of ``parameter``, checked against choice/range."""
        parameters = self.parameters
        if not parameters or parameter not in parameters:
            raise KeyError(parameter)
        definition = parameters[parameter]
        retval = definition["type"].type(value)
        choices = definition.get("choice")
        if choices is not None and retval not in choices:
            raise ValueError(
                f"value for `{parameter}' ({_repr(value)}) must be one of `[{_choices(choices)}]'"
            )
        bounds = definition.get("range")
        if bounds is not None and (retval < bounds[0] or retval > bounds[1]):
            raise ValueError(
                f"value for `{parameter}' ({_repr(value)}) must be picked within interval "
                f"`[{_repr(bounds[0])}, {_repr(bounds[1])}]'"
            )
        return retval

    def result_dataformat(self):
        """The dataformat of the results (analyzers only), named ``analysis:<name>``."""
        if not self.results:
            raise TypeError(f"algorithm `{self.name}' is a block algorithm, not an analyzer")
        declaration = {key: value["type"] for key, value in self.results.items()}
        fmt = self.dataformat_klass(self.prefix, declaration, None, dict(self.dataformats))
        fmt.name = "analysis:" + self.name
        return fmt

    def uses_dict(self) -> dict:
        """``{alias: {"path": <library code path>, "uses": <its uses_dict()>}}``."""
        self._require_valid()
        return _uses_dict(self.uses, self.libraries)

    def runner(self, klass: str = "Algorithm", exc=None) -> Runner:
        """A :class:`Runner` around a new instance of class ``klass`` of the code.

        The code is loaded once per Algorithm object. Loading errors are
        wrapped in ``exc`` when given, else raised unchanged.
        """
        error = exc or RuntimeError
        if self._name is None or self.storage is None:
            raise error("algorithm has no name")
        if self.language in (None, "unknown"):
            raise error("algorithm has no programming language set")
        if not self.valid:
            raise error(f"cannot load code for invalid algorithm ({self.name})")
        if self.language != "python":
            raise error(
                f"cannot load code of algorithm `{self.name}': only python code can be "
                f"loaded (language `{self.language}')"
            )
        if self._module is None:
            try:
                self._module = loader.load_module(
                    self.name.replace("/", "_"), self.storage.code.path, self.uses_dict()
                )
            except Exception as e:
                if exc is None:
                    raise
                raise exc(e).with_traceback(e.__traceback__) from e
        return Runner(self._module, klass, self, exc)

    def _exported_dataformats(self) -> tuple[dict, list]:
        """Named formats to write (used ones and what they need), and foreign ones.

        Formats of another class (a platform subclass without our dependency
        walk) are exported through their own ``export``.
        """
        results_only = set(self._result_references()) - {
            *self.input_map.values(),
            *self.output_map.values(),
            *self.loop_map.values(),
        }
        formats, foreign = {}, []
        for name, fmt in self.dataformats.items():
            if name in results_only and not fmt.valid:
                continue  # e.g. a platform `plot/...' format: not needed to run
            if not fmt.valid or not isinstance(fmt.data, dict):
                raise RuntimeError(
                    f"algorithm `{self.name}' uses dataformat `{name}', which is not valid:\n"
                    + "\n".join(fmt.errors)
                )
            dependencies = getattr(fmt, "_dependencies", None)
            if dependencies is None:
                foreign.append(fmt)
                continue
            formats[name] = fmt
            for dep_name, dep in dependencies().items():
                if dep.storage is None:
                    continue
                if not dep.valid or not isinstance(dep.data, dict):
                    raise RuntimeError(
                        f"dataformat `{name}' (used by algorithm `{self.name}') depends on "
                        f"`{dep_name}', which is not valid:\n" + "\n".join(dep.errors)
                    )
                formats.setdefault(dep_name, dep)
        return formats, foreign

    def export(self, prefix: str) -> None:
        """Export this algorithm, its dataformats and its libraries into ``prefix``."""
        self._check_export(prefix, same_prefix)
        export_libraries(self.libraries, prefix, set())
        formats, foreign = self._exported_dataformats()
        for name, fmt in formats.items():
            fmt.write(DataFormatStorage(prefix, name))
        for fmt in foreign:  # pragma: no cover - platform dataformat classes
            fmt.export(prefix)
        self.write(Storage(prefix, self.name, self.language))
