"""Bad-input corpus, values: wrong dtypes, shapes and missing fields under each casting mode.

Every bad value goes through ``from_dict`` under the five casting modes
(``no``, ``equiv``, ``safe``, ``same_kind``, ``unsafe``), the constructor
(unsafe, defaults added) and attribute assignment (safe). The message names
the dataformat, the field and the offending value (or its type).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
from _corpus import Case, check_case, params

from beat_backend._assets.dataformat import DataFormat
from beat_backend._core.errors import CastingError, FieldsError

FORMAT = "bad/values/1"
POINT = "bad/point/1"
DECLARATIONS = {
    FORMAT: {
        "i8": "int8",
        "u8": "uint8",
        "i32": "int32",
        "b": "bool",
        "s": "string",
        "vec": [3, "float64"],
        "grid": [2, 0, "int16"],
        "names": [0, "string"],
        "pts": [0, POINT],
        "nested": {"x": "int8"},
    },
    POINT: {"x": "int32", "y": "int32"},
}
MODES = ("no", "equiv", "safe", "same_kind", "unsafe")
STRICT = MODES[:-1]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("values") / "prefix"
    for name, declaration in DECLARATIONS.items():
        path = root / "dataformats" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(declaration), encoding="utf-8")
    return root


def the_type(root: Path):
    df = DataFormat(str(root), FORMAT)
    assert df.valid, df.errors
    return df.type


#: (label, field, value, {mode: (error type, value needle)}); a mode absent = accepted
BAD_VALUES = [
    ("float-to-int", "i32", 3.5, dict.fromkeys(STRICT, (CastingError, "`float64'"))),
    (
        "text-to-int",
        "i32",
        "abc",
        {**dict.fromkeys(STRICT, (CastingError, "`<U3'")), "unsafe": (ValueError, "'abc'")},
    ),
    (
        "dict-to-int",
        "i32",
        {"a": 1},
        {**dict.fromkeys(STRICT, (CastingError, "`object'")), "unsafe": (TypeError, "{'a': 1}")},
    ),
    ("sequence-to-int", "i32", [1, 2], dict.fromkeys(MODES, (CastingError, "[1, 2]"))),
    ("text-to-bool", "b", "x", dict.fromkeys(STRICT, (CastingError, "`<U1'"))),
    ("negative-to-uint", "u8", numpy.int16(-1), dict.fromkeys(STRICT, (CastingError, "`int16'"))),
    (
        "int-too-big",
        "i8",
        300,
        {
            **dict.fromkeys(("no", "equiv", "safe"), (CastingError, "`int64'")),
            "same_kind": (OverflowError, "300"),  # int64 -> int8 is the same kind
            "unsafe": (OverflowError, "300"),
        },
    ),
    ("vector-ndim", "vec", [[1, 2, 3]], dict.fromkeys(MODES, (CastingError, "2 dimensions"))),
    ("vector-length", "vec", [1, 2], dict.fromkeys(MODES, (CastingError, "(2 != 3)"))),
    ("grid-rows", "grid", [[1], [2], [3]], dict.fromkeys(MODES, (CastingError, "(3 != 2)"))),
    ("vector-item", "vec", [1, "x", 2], dict.fromkeys(MODES, (CastingError, "'x'"))),
    ("string-array-item", "names", ["a", 5], dict.fromkeys(MODES, (CastingError, "int (5)"))),
    ("string-array-scalar", "names", 42, dict.fromkeys(MODES, (CastingError, "0 dimensions"))),
    ("object-array-item", "pts", [5], dict.fromkeys(MODES, (CastingError, "int (5)"))),
    (
        "object-array-field",
        "pts",
        [{"x": 1, "zz": 2}],
        dict.fromkeys(MODES, (FieldsError, "(zz)")),
    ),
    ("nested-value", "nested", {"x": 3.5}, dict.fromkeys(STRICT, (CastingError, "`float64'"))),
]


def value_cases() -> list[Case]:
    cases = []
    for label, field, value, expected in BAD_VALUES:
        for mode, (error, needle) in expected.items():
            # the message names the format (or, inside arrays, the element's format)
            where = POINT if field == "pts" and error is FieldsError else None
            where = where or (f"{FORMAT}.nested_type" if field == "nested" else FORMAT)
            field_needle = "x" if field == "nested" else f"`{field}'"
            if error is FieldsError:
                field_needle = "unexpected attribute"
            if error is OverflowError:  # numpy's own, never wrapped (dataformats spec §5.2)
                where, field_needle = None, "int8"

            def run(root, field=field, value=value, mode=mode):
                the_type(root)().from_dict({field: value}, casting=mode, add_defaults=True)

            cases.append(Case(f"{label}-{mode}", run, error, where, field_needle, needle))

        if "unsafe" in expected:  # the constructor casts unsafely, adding defaults
            error, needle = expected["unsafe"]

            def construct(root, field=field, value=value):
                the_type(root)(**{field: value})

            if error is not OverflowError:
                field_needle = "unexpected attribute" if error is FieldsError else None
                field_needle = field_needle or ("x" if field == "nested" else f"`{field}'")
                cases.append(
                    Case(f"{label}-constructor", construct, error, None, field_needle, needle)
                )
        if "safe" in expected:  # attribute assignment casts safely

            def assign(root, field=field, value=value):
                obj = the_type(root)()
                setattr(obj, field, value)

            error, needle = expected["safe"]
            field_needle = None
            if error is FieldsError:  # no defaults here: the other field is missing
                field_needle, needle = "missing attributes", "(y)"
            field_needle = field_needle or ("x" if field == "nested" else f"`{field}'")
            cases.append(Case(f"{label}-assignment", assign, error, None, field_needle, needle))
    return cases


def missing_field_cases() -> list[Case]:
    cases = []
    for mode in MODES:

        def missing(root, mode=mode):
            obj = the_type(root)()
            data = obj.as_dict()
            del data["vec"], data["names"]
            obj.from_dict(data, casting=mode, add_defaults=False)

        cases.append(
            Case(
                f"missing-fields-{mode}",
                missing,
                FieldsError,
                FORMAT,
                "missing attributes",
                "(vec, names)",
            )
        )

        def unexpected(root, mode=mode):
            the_type(root)().from_dict({"zz": 1}, casting=mode, add_defaults=True)

        cases.append(
            Case(
                f"unexpected-field-{mode}",
                unexpected,
                FieldsError,
                FORMAT,
                "unexpected attribute",
                "(zz)",
            )
        )

        def nested_missing(root, mode=mode):
            obj = the_type(root)()
            data = obj.as_dict()
            data["nested"] = {}
            obj.from_dict(data, casting=mode, add_defaults=False)

        cases.append(
            Case(
                f"nested-missing-field-{mode}",
                nested_missing,
                FieldsError,
                f"{FORMAT}.nested_type",
                "missing attributes",
                "(x)",
            )
        )
    return cases


CASES = value_cases() + missing_field_cases()


@pytest.mark.parametrize("case", params(CASES))
def test_value_corpus(case, root):
    check_case(case, root)
