"""A fast, one-sided JSON Schema check of declarations (no jsonschema import).

:func:`shown_valid` answers ``True`` only for data valid under a draft-07 schema
of the shipped files; ``False`` means "not shown valid" (invalid, or beyond
what it knows): :func:`beat_backend._assets.schemas.validate` then asks
jsonschema, which gives the verdict and the errors. A valid declaration, the
usual case, thus costs neither jsonschema's import (~50 ms) nor its slower
validation: ``beat-backend run`` on a cached experiment starts faster.

It is stricter than draft-07 wherever that is simpler, never laxer:

* an integer is an ``int`` (draft-07 also accepts ``1.0``);
* the siblings of ``$ref`` are checked too (draft-07 ignores them);
* a keyword it does not know (``format``, ``dependencies``...), a nested
  ``$id``, a reference it cannot resolve, or data too deep to recurse: not
  shown valid.

``enum``, ``const`` and ``uniqueItems`` use :func:`canonical`, the equality the
jsonschema validator of :mod:`.schemas` is extended with (booleans are not
numbers, ``1 == 1.0``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin


def canonical(value: Any) -> Any:
    """A hashable form of a JSON value: equal forms <=> equal JSON values.

    Booleans are kept apart from numbers (``True != 1``), numbers compare by
    value (``1 == 1.0``), containers recursively.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    if isinstance(value, Mapping):
        return ("object", frozenset((k, canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(canonical(v) for v in value))
    return ("other", repr(value))


def same(one: Any, two: Any) -> bool:
    """Whether two JSON values are equal (see :func:`canonical`)."""
    return canonical(one) == canonical(two)


class _NotShown(Exception):
    """Beyond this checker: the caller asks jsonschema."""


def shown_valid(schema: Mapping, store: Mapping[str, Any], data: Any) -> bool:
    """Whether ``data`` is shown valid under ``schema`` (a root schema with ``$id``);
    ``store`` maps every schema ``$id`` to its contents (for ``$ref``)."""
    try:
        return _Checker(store).check(schema, schema["$id"], data)
    except (_NotShown, RecursionError):
        return False


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}

#: keywords that never fail (``definitions`` is only reached through ``$ref``)
_ANNOTATIONS = frozenset(
    {"$schema", "title", "description", "$comment", "definitions", "default", "examples"}
)


def _number(value: Any) -> bool:
    return _TYPES["number"](value)


class _Checker:
    def __init__(self, store: Mapping[str, Any]):
        self.store = store

    def resolve(self, base: str, ref: str) -> tuple[Any, str]:
        """The schema ``ref`` names from ``base``, and its own base URI."""
        url, fragment = urldefrag(urljoin(base, ref))
        node = self.store.get(url)
        if node is None:
            raise _NotShown(ref)
        if fragment:
            if not fragment.startswith("/"):
                raise _NotShown(ref)
            for part in fragment[1:].split("/"):
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                elif isinstance(node, dict) and part in node:
                    node = node[part]
                else:
                    raise _NotShown(ref)
        return node, url

    def check(self, schema: Any, base: str, value: Any) -> bool:
        if schema is True:
            return True
        if schema is False or not isinstance(schema, dict):
            return False
        for key, rule in schema.items():
            if key in _ANNOTATIONS:
                continue
            if key == "$id":
                if urljoin(base, rule) != base:
                    raise _NotShown(key)
            elif key == "$ref":
                target, target_base = self.resolve(base, rule)
                if not self.check(target, target_base, value):
                    return False
            elif key == "type":
                names = [rule] if isinstance(rule, str) else rule
                if any(name not in _TYPES for name in names):
                    raise _NotShown(f"type {rule}")
                if not any(_TYPES[name](value) for name in names):
                    return False
            elif key in ("properties", "patternProperties", "additionalProperties"):
                if isinstance(value, dict) and not self.members(key, schema, base, value):
                    return False
            elif key == "required":
                if isinstance(value, dict) and not all(name in value for name in rule):
                    return False
            elif key == "minProperties":
                if isinstance(value, dict) and len(value) < rule:
                    return False
            elif key == "items":
                if isinstance(value, list) and not self.items(schema, base, value):
                    return False
            elif key == "additionalItems":
                continue  # checked with "items" (alone, it means nothing)
            elif key == "minItems":
                if isinstance(value, list) and len(value) < rule:
                    return False
            elif key == "maxItems":
                if isinstance(value, list) and len(value) > rule:
                    return False
            elif key == "uniqueItems":
                unique = {canonical(item) for item in value} if isinstance(value, list) else ()
                if rule and isinstance(value, list) and len(unique) != len(value):
                    return False
            elif key == "enum":
                if not any(same(value, each) for each in rule):
                    return False
            elif key == "const":
                if not same(value, rule):
                    return False
            elif key == "pattern":
                if isinstance(value, str) and not re.search(rule, value):
                    return False
            elif key == "minLength":
                if isinstance(value, str) and len(value) < rule:
                    return False
            elif key == "maxLength":
                if isinstance(value, str) and len(value) > rule:
                    return False
            elif key == "minimum":
                if _number(value) and value < rule:
                    return False
            elif key == "maximum":
                if _number(value) and value > rule:
                    return False
            elif key == "if":
                branch = "then" if self.check(rule, base, value) else "else"
                if branch in schema and not self.check(schema[branch], base, value):
                    return False
            elif key in ("then", "else"):
                continue  # checked with "if" (alone, they mean nothing)
            elif key == "allOf":
                if not all(self.check(sub, base, value) for sub in rule):
                    return False
            elif key == "anyOf":
                if not any(self.check(sub, base, value) for sub in rule):
                    return False
            elif key == "oneOf":
                if sum(self.check(sub, base, value) for sub in rule) != 1:
                    return False
            elif key == "not":
                if self.check(rule, base, value):
                    return False
            else:
                raise _NotShown(key)
        return True

    def members(self, key: str, schema: dict, base: str, value: dict) -> bool:
        """One of the three object-member keywords of ``schema`` on ``value``."""
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if key == "properties":
            return all(
                self.check(sub, base, value[name])
                for name, sub in properties.items()
                if name in value
            )
        if key == "patternProperties":
            return all(
                self.check(sub, base, member)
                for pattern, sub in patterns.items()
                for name, member in value.items()
                if re.search(pattern, name)
            )
        extra = [
            member
            for name, member in value.items()
            if name not in properties and not any(re.search(p, name) for p in patterns)
        ]
        return all(self.check(schema[key], base, member) for member in extra)

    def items(self, schema: dict, base: str, value: list) -> bool:
        """``items`` (and ``additionalItems`` with a list of ``items``) on ``value``."""
        rule = schema["items"]
        if not isinstance(rule, list):
            return all(self.check(rule, base, item) for item in value)
        if not all(self.check(sub, base, item) for sub, item in zip(rule, value)):
            return False
        extra = value[len(rule) :]
        return not extra or all(
            self.check(schema.get("additionalItems", True), base, item) for item in extra
        )
