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
        """Whether ``value`` is shown valid under ``schema`` (its references from ``base``)."""
        if schema is True:
            return True
        if schema is False or not isinstance(schema, dict):
            return False
        members_done = False
        for key, rule in schema.items():
            if key in _ANNOTATIONS:
                continue
            if key in _MEMBER_KEYWORDS:
                if members_done:
                    continue
                members_done = True
            keyword = _KEYWORDS.get(key)
            if keyword is None:
                raise _NotShown(key)
            if not keyword(self, rule, schema, base, value):
                return False
        return True

    def members(self, schema: dict, base: str, value: dict) -> bool:
        """``properties``, ``patternProperties`` and ``additionalProperties`` on ``value``."""
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for name, member in value.items():
            matched = [sub for pattern, sub in patterns.items() if re.search(pattern, name)]
            if name in properties:
                matched.append(properties[name])
            elif not matched and "additionalProperties" in schema:
                matched.append(schema["additionalProperties"])
            if not all(self.check(sub, base, member) for sub in matched):
                return False
        return True

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


# ---------------------------------------------------------------------------
# keywords: (checker, rule, schema, base, value) -> shown valid


def _id(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    if urljoin(base, rule) != base:  # a nested base: not followed here
        raise _NotShown("$id")
    return True


def _ref(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    target, target_base = c.resolve(base, rule)
    return c.check(target, target_base, value)


def _type(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    names = [rule] if isinstance(rule, str) else rule
    if any(name not in _TYPES for name in names):
        raise _NotShown(f"type {rule}")
    return any(_TYPES[name](value) for name in names)


def _members(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    """The three member keywords together (``check`` calls it once per schema)."""
    return not isinstance(value, dict) or c.members(schema, base, value)


_MEMBER_KEYWORDS = frozenset({"properties", "patternProperties", "additionalProperties"})


def _items(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    return not isinstance(value, list) or c.items(schema, base, value)


def _unique(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    if not rule or not isinstance(value, list):
        return True
    return len({canonical(item) for item in value}) == len(value)


def _if(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    branch = "then" if c.check(rule, base, value) else "else"
    return branch not in schema or c.check(schema[branch], base, value)


def _done_elsewhere(c: _Checker, rule: Any, schema: dict, base: str, value: Any) -> bool:
    return True  # then/else (checked with if), additionalItems (with items)


def _bound(kind: Callable[[Any], bool], test: Callable[[Any, Any], bool]):
    """A keyword ``test(value, rule)`` on the values of one ``kind`` (others pass)."""
    return lambda c, rule, schema, base, value: not kind(value) or test(value, rule)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_KEYWORDS: dict[str, Callable[[_Checker, Any, dict, str, Any], bool]] = {
    "$id": _id,
    "$ref": _ref,
    "type": _type,
    "properties": _members,
    "patternProperties": _members,
    "additionalProperties": _members,
    "items": _items,
    "additionalItems": _done_elsewhere,
    "then": _done_elsewhere,
    "else": _done_elsewhere,
    "if": _if,
    "uniqueItems": _unique,
    "required": _bound(_TYPES["object"], lambda v, r: all(name in v for name in r)),
    "minProperties": _bound(_TYPES["object"], lambda v, r: len(v) >= r),
    "minItems": _bound(_TYPES["array"], lambda v, r: len(v) >= r),
    "maxItems": _bound(_TYPES["array"], lambda v, r: len(v) <= r),
    "pattern": _bound(_is_str, lambda v, r: re.search(r, v) is not None),
    "minLength": _bound(_is_str, lambda v, r: len(v) >= r),
    "maxLength": _bound(_is_str, lambda v, r: len(v) <= r),
    "minimum": _bound(_number, lambda v, r: v >= r),
    "maximum": _bound(_number, lambda v, r: v <= r),
    "enum": lambda c, rule, schema, base, value: any(same(value, each) for each in rule),
    "const": lambda c, rule, schema, base, value: same(value, rule),
    "allOf": lambda c, rule, schema, base, value: all(c.check(s, base, value) for s in rule),
    "anyOf": lambda c, rule, schema, base, value: any(c.check(s, base, value) for s in rule),
    "oneOf": lambda c, rule, schema, base, value: sum(c.check(s, base, value) for s in rule) == 1,
    "not": lambda c, rule, schema, base, value: not c.check(rule, base, value),
}
