"""Opt-in JSON Schema validation of BEAT declarations (platform-equivalent rules).

The schemas live in ``<schemas_dir>/<kind>/<version>.json`` (JSON Schema
draft-07, the newest draft jsonschema 3.2 knows: the BEAT platform pins it).
Each declares ``$id`` ``https://beat-backend.invalid/schemas/<kind>/<version>.json``
and refers to the others by relative URI (``../common/1.json#/definitions/reference``).
References are resolved with what the installed jsonschema offers: a
:class:`referencing.Registry` on jsonschema >= 4.18, a ``RefResolver`` with a
store of every schema by ``$id`` before. Nothing is ever fetched. Files are read
and validators built once per process.

Errors are strings ``"<json-pointer>: <message> (rule: <schema-pointer>)"``,
e.g. ``/: 'representation' is a required property (rule: /required)``. The
root pointer is ``/``; pointers are not ``~``-escaped (the platform's form).
The schema pointer is the path of the failing keyword: ``$ref`` hops are
transparent and so is ``if`` (``/then/...``, ``/else/...``; jsonschema 3.2
reports ``/if/then/...``).

The messages are built here from the failing keyword, its value and the
instance (see :func:`_messages`), never taken from jsonschema, so that they are
the same on every jsonschema version; values are rendered by :func:`_show`
(``repr``, mappings as dicts).
``uniqueItems``, ``enum`` and ``const`` compare with one equality of our own
(:func:`_same`: booleans are not numbers, ``1 == 1.0``, recursively), since
jsonschema 3.2 and 4.x differ there. The schema files use no ``false``
subschema (``additionalProperties: false`` is fine): jsonschema 4.x reports a
nested one without its last path step, 3.2 with it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._core.resources import schemas_dir
from .schemafast import canonical as _canonical
from .schemafast import same as _same
from .schemafast import shown_valid

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

#: Base URI of every schema ``$id`` (``.invalid`` never resolves: nothing is fetched).
BASE_URI = "https://beat-backend.invalid/schemas/"

#: The draft the schema files are written in (``$schema``).
DRAFT = "http://json-schema.org/draft-07/schema#"


def schema_uri(kind: str, version: int) -> str:
    """The ``$id`` of schema ``kind``/``version``."""
    return f"{BASE_URI}{kind}/{version}.json"


# ---------------------------------------------------------------------------
# jsonschema, imported on first use (:mod:`.schemafast` shows most data valid
# without it)


@functools.cache
def _uses_referencing() -> bool:
    """jsonschema >= 4.18 resolves ``$ref`` through a ``referencing`` registry (its
    ``RefResolver`` is deprecated there); older versions only have ``RefResolver``.
    Told by the validators' ``registry`` argument, never by the (deprecated) ``__version__``."""
    import jsonschema

    return "registry" in inspect.signature(jsonschema.Draft7Validator.__init__).parameters


def _unique_items(validator, unique, instance, schema) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if unique and validator.is_type(instance, "array"):
        seen = {_canonical(item) for item in instance}
        if len(seen) != len(instance):
            yield ValidationError("uniqueItems")


def _enum(validator, enums, instance, schema) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if not any(_same(instance, each) for each in enums):
        yield ValidationError("enum")


def _const(validator, const, instance, schema) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if not _same(instance, const):
        yield ValidationError("const")


@functools.cache
def _validator_class() -> Any:
    """Draft-07 with our equality; every other keyword is jsonschema's."""
    import jsonschema.validators

    return jsonschema.validators.extend(
        jsonschema.Draft7Validator,
        {"uniqueItems": _unique_items, "enum": _enum, "const": _const},
    )


def __getattr__(name: str) -> Any:
    """``USE_REFERENCING`` and ``_Validator``, made (importing jsonschema) on first use."""
    lazy = {"USE_REFERENCING": _uses_referencing, "_Validator": _validator_class}.get(name)
    if lazy is not None:
        return lazy()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# loading


@functools.cache
def _load() -> dict[tuple[str, int], dict[str, Any]]:
    """Read every schema file once: the schemas by ``(kind, version)``."""
    root = schemas_dir()
    schemas: dict[tuple[str, int], dict[str, Any]] = {}
    for kind in sorted(os.listdir(root)):
        folder = os.path.join(root, kind)
        if not os.path.isdir(folder):
            continue
        for filename in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(filename)
            if ext != ".json" or not stem.isdigit():
                continue
            path = os.path.join(folder, filename)
            with open(path, encoding="utf-8") as f:
                contents = json.load(f)
            version = int(stem)
            expected = schema_uri(kind, version)
            if contents.get("$id") != expected:
                raise RuntimeError(f"schema {path} must declare $id {expected!r}")
            if contents.get("$schema") != DRAFT:
                raise RuntimeError(f"schema {path} must declare $schema {DRAFT!r}")
            schemas[(kind, version)] = contents
    return schemas


@functools.cache
def _registry() -> Any:
    """The ``referencing.Registry`` of every schema (jsonschema >= 4.18 only)."""
    import referencing
    import referencing.jsonschema

    registry = referencing.Registry().with_resources(
        (schema_uri(kind, version), referencing.jsonschema.DRAFT7.create_resource(contents))
        for (kind, version), contents in _load().items()
    )
    return registry.crawl()


@functools.cache
def _store() -> dict[str, dict[str, Any]]:
    """Every schema by ``$id`` (the store of a jsonschema < 4.18 ``RefResolver``)."""
    return {schema_uri(kind, version): contents for (kind, version), contents in _load().items()}


def _ref_resolver(schema: dict[str, Any]) -> Any:
    # only reached on jsonschema < 4.18, where RefResolver is not deprecated
    import jsonschema

    return jsonschema.RefResolver(base_uri=schema["$id"], referrer=schema, store=_store())


@functools.cache
def _validator(kind: str, version: int) -> Any:
    schema = _load()[(kind, version)]
    validator = _validator_class()
    if _uses_referencing():
        return validator(schema, registry=_registry())
    return validator(schema, resolver=_ref_resolver(schema))


def resolve(kind: str, version: int, ref: str) -> Any:
    """The schema ``ref`` points to, seen from schema ``kind``/``version`` (raises if none)."""
    schema = _load()[(kind, version)]
    if _uses_referencing():
        return _registry().resolver(base_uri=schema["$id"]).lookup(ref).contents
    return _ref_resolver(schema).resolve(ref)[1]


def available_schemas() -> list[tuple[str, int]]:
    """Every ``(kind, version)`` shipped, sorted (``common`` holds definitions only)."""
    return sorted(_load())


# ---------------------------------------------------------------------------
# error texts


def _pointer(parts: Iterable[Any]) -> str:
    return "/" + "/".join(str(p) for p in parts)


#: keywords followed, in a schema path, by a property name or a pattern
_NAMED = frozenset({"properties", "patternProperties", "definitions", "dependencies"})
#: keywords followed, in a schema path, by a list position (``items`` in its array form)
_INDEXED = frozenset({"items", "allOf", "anyOf", "oneOf"})


def _rule_parts(schema_path: Iterable[Any]) -> list[Any]:
    """The schema path with ``if`` dropped before ``then``/``else`` (jsonschema 3.2 keeps it).

    Names under ``properties`` and the like are skipped, never taken for keywords.
    """
    parts = list(schema_path)
    kept: list[Any] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        following = parts[i + 1] if i + 1 < len(parts) else None
        named = part in _NAMED and following is not None
        indexed = part in _INDEXED and isinstance(following, int)
        if named or indexed:  # the name or position is no keyword: keep it as it is
            kept += [part, following]
            i += 2
        elif part == "if" and following in ("then", "else"):
            i += 1
        else:
            kept.append(part)
            i += 1
    return kept


def _additional_properties(instance: Mapping, schema: Mapping) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return sorted(
        (
            key
            for key in instance
            if key not in properties and not any(re.search(p, key) for p in patterns)
        ),
        key=str,
    )


def _show(value: Any) -> str:
    """``repr`` of a JSON value, any mapping shown as a dict and any sequence as a list.

    Declarations parsed by the prefix tools hold ``OrderedDict`` objects, whose
    ``repr`` differs from a dict's (and between Python versions).
    """
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + _join(value) + "]"
    return repr(value)


def _join(values: Iterable[Any]) -> str:
    return ", ".join(_show(v) for v in values)


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


#: size keywords: (message when the limit is 1 for min*, 0 for max*; message otherwise)
_SIZES = {
    "minItems": ("should be non-empty", "is too short"),
    "minLength": ("should be non-empty", "is too short"),
    "minProperties": ("should be non-empty", "does not have enough properties"),
    "maxItems": ("is expected to be empty", "is too long"),
    "maxLength": ("is expected to be empty", "is too long"),
    "maxProperties": ("is expected to be empty", "has too many properties"),
}

#: bound keywords: the words between the instance and the bound
_BOUNDS = {
    "minimum": "is less than the minimum of",
    "maximum": "is greater than the maximum of",
    "exclusiveMinimum": "is less than or equal to the minimum of",
    "exclusiveMaximum": "is greater than or equal to the maximum of",
    "multipleOf": "is not a multiple of",
}


#: keywords that yield one error per missing property: :func:`_messages` of the
#: first error of one keyword gives all of them
_GROUPED = frozenset({"required", "dependencies"})


def _messages(error: ValidationError) -> list[str]:
    """The message(s) of one jsonschema error, from its keyword, value and instance.

    One message per error, except for the keywords of :data:`_GROUPED`: jsonschema
    yields one error per missing property, and the first one gives them all (the
    caller skips the others).
    """
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword is None:  # the false schema
        return [f"False schema does not allow {_show(instance)}"]
    if keyword == "type":
        types = [value] if isinstance(value, str) else list(value)
        return [f"{_show(instance)} is not of type {_join(types)}"]
    if keyword == "required":
        return [f"{_show(name)} is a required property" for name in value if name not in instance]
    if keyword == "dependencies":  # the array form (the schema form reports its own keywords)
        return [
            f"{_show(each)} is a dependency of {_show(name)}"
            for name, needed in value.items()
            if name in instance and isinstance(needed, list)
            for each in needed
            if each not in instance
        ]
    if keyword == "additionalProperties":
        extras = _additional_properties(instance, schema)
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            patterns = _join(sorted(schema["patternProperties"]))
            return [f"{_join(extras)} {verb} not match any of the regexes: {patterns}"]
        return [
            f"Additional properties are not allowed ({_join(extras)} {_was(len(extras))} "
            "unexpected)"
        ]
    if keyword == "additionalItems":
        items = schema.get("items", [])
        extras = instance[len(items) if isinstance(items, list) else 0 :]
        return [
            f"Additional items are not allowed ({_join(extras)} {_was(len(extras))} unexpected)"
        ]
    if keyword in _SIZES:
        special, usual = _SIZES[keyword]
        limit = 1 if keyword.startswith("min") else 0
        return [f"{_show(instance)} {special if value == limit else usual}"]
    if keyword in _BOUNDS:
        return [f"{_show(instance)} {_BOUNDS[keyword]} {_show(value)}"]
    if keyword == "pattern":
        return [f"{_show(instance)} does not match {_show(value)}"]
    if keyword == "const":
        return [f"{_show(value)} was expected"]
    if keyword == "enum":
        return [f"{_show(instance)} is not one of {_show(value)}"]
    if keyword == "uniqueItems":
        return [f"{_show(instance)} has non-unique elements"]
    if keyword in ("anyOf", "oneOf"):
        if keyword == "oneOf" and not error.context:  # jsonschema's only context-free oneOf
            return [f"{_show(instance)} is valid under more than one of the given schemas"]
        return [f"{_show(instance)} is not valid under any of the given schemas"]
    if keyword == "not":
        return [f"{_show(instance)} should not be valid under {_show(value)}"]
    if keyword == "contains":
        return [f"{_show(instance)} does not contain an item valid under the given schema"]
    # any other keyword (format, or one of a later draft)
    return [f"{_show(instance)} does not satisfy {keyword!s}: {_show(value)}"]


def _iter_errors(validator: Any, data: Any) -> Iterator[ValidationError]:
    """Every jsonschema error of ``data`` (the one seam with jsonschema's validation)."""
    return validator.iter_errors(data)


def _path_key(parts: Iterable[Any]) -> tuple[tuple[int, int, str], ...]:
    # list indices sort numerically, keys alphabetically; never compares int to str
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def _version_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _texts(errors: Iterable[ValidationError]) -> list[str]:
    """The sorted error strings of jsonschema ``errors``."""
    found: list[tuple[Any, str]] = []
    grouped: set[tuple[str, str]] = set()
    for error in errors:
        path = list(error.absolute_path)
        where = _pointer(path)
        rule = _pointer(_rule_parts(error.absolute_schema_path))
        if error.validator in _GROUPED:
            if (where, rule) in grouped:
                continue
            grouped.add((where, rule))
        key = _path_key(path)
        found.extend((key, f"{where}: {message} (rule: {rule})") for message in _messages(error))
    return [text for _, text in sorted(found)]


def validate(kind: str, data: Any) -> tuple[Any, list[str]]:
    """Validate ``data`` against schema ``kind`` at the version the data declares.

    The version is ``data["schema_version"]`` (dataformats: ``"#schema_version"``),
    default 1. Returns ``(data, errors)``: ``data`` unchanged, ``errors`` sorted by
    instance path (empty when valid). An unknown version is reported as an
    error string; an unknown ``kind`` raises ``ValueError``.
    """
    schemas = _load()
    versions = sorted(v for k, v in schemas if k == kind)
    if not versions:
        known = ", ".join(sorted({k for k, _ in schemas}))
        raise ValueError(f"unknown schema kind `{kind}' (known kinds: {known})")

    key = "#schema_version" if kind == "dataformat" else "schema_version"
    declared = data.get(key, 1) if isinstance(data, Mapping) else 1
    version = _version_of(declared)
    if version not in versions:
        available = ", ".join(str(v) for v in versions)
        return data, [
            f"/{key}: there is no {kind} schema version {_show(declared)} (available: {available})"
        ]

    if shown_valid(schemas[(kind, version)], _store(), data):
        return data, []
    return data, _texts(_iter_errors(_validator(kind, version), data))
