"""Opt-in JSON Schema validation of BEAT declarations (platform-equivalent rules).

The schemas live in ``<schemas_dir>/<kind>/<version>.json`` (JSON Schema
2020-12). Each declares ``$id`` ``https://beat-backend.invalid/schemas/<kind>/<version>.json``
and refers to the others by relative URI (``../common/1.json#/definitions/reference``),
all served by one :class:`referencing.Registry`. Files are read and validators
built once per process.

Errors are strings ``"<json-pointer>: <message> (rule: <schema-pointer>)"``,
e.g. ``/: 'representation' is a required property (rule: /required)``. The
root pointer is ``/``; pointers are not ``~``-escaped (the platform's form).
The schema pointer is the path of the failing keyword as jsonschema reports
it: ``$ref`` hops are transparent.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

from .._core.resources import schemas_dir

#: Base URI of every schema ``$id`` (``.invalid`` never resolves: nothing is fetched).
BASE_URI = "https://beat-backend.invalid/schemas/"


def schema_uri(kind: str, version: int) -> str:
    """The ``$id`` of schema ``kind``/``version``."""
    return f"{BASE_URI}{kind}/{version}.json"


@functools.cache
def _load() -> tuple[referencing.Registry, dict[tuple[str, int], dict[str, Any]]]:
    """Read every schema file once: the shared registry and the schemas by key."""
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
            schemas[(kind, version)] = contents
    registry = referencing.Registry().with_resources(
        (
            schema_uri(kind, version),
            referencing.jsonschema.DRAFT202012.create_resource(contents),
        )
        for (kind, version), contents in schemas.items()
    )
    return registry.crawl(), schemas


@functools.cache
def _validator(kind: str, version: int) -> jsonschema.Draft202012Validator:
    registry, schemas = _load()
    return jsonschema.Draft202012Validator(schemas[(kind, version)], registry=registry)


def available_schemas() -> list[tuple[str, int]]:
    """Every ``(kind, version)`` shipped, sorted (``common`` holds definitions only)."""
    return sorted(_load()[1])


def _pointer(parts: Iterable[Any]) -> str:
    return "/" + "/".join(str(p) for p in parts)


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


def validate(kind: str, data: Any) -> tuple[Any, list[str]]:
    """Validate ``data`` against schema ``kind`` at the version the data declares.

    The version is ``data["schema_version"]`` (dataformats: ``"#schema_version"``),
    default 1. Returns ``(data, errors)``: ``data`` unchanged, ``errors`` sorted by
    instance path (empty when valid). An unknown version is reported as an
    error string; an unknown ``kind`` raises ``ValueError``.
    """
    _, schemas = _load()
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
            f"/{key}: there is no {kind} schema version {declared!r} (available: {available})"
        ]

    found = sorted(
        (
            _path_key(error.absolute_path),
            f"{_pointer(error.absolute_path)}: {error.message} "
            f"(rule: {_pointer(error.absolute_schema_path)})",
        )
        for error in _validator(kind, version).iter_errors(data)
    )
    return data, [text for _, text in found]
