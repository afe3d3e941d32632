"""Result values as plain Python (``_format/plain.py``, #16): a float is the shortest text that
reads back as the same value of its declared type, under numpy 1.26 and 2.x."""

from __future__ import annotations

import json

import numpy
import pytest

from beat_backend._format.plain import plain_value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (numpy.float32(0.96), "0.96"),  # not 0.9599999785423279
        (numpy.float32(1 / 3), "0.33333334"),
        (numpy.float32(1.0), "1.0"),
        (numpy.float32(3e-08), "3e-08"),
        (numpy.float32(1e30), "1e+30"),
        (numpy.float16(0.1), "0.1"),
        (numpy.float64(0.96), "0.96"),
        (numpy.float64(1 / 3), "0.3333333333333333"),
        (numpy.float32("nan"), "NaN"),
        (numpy.float32("-inf"), "-Infinity"),
    ],
)
def test_float_results_are_the_shortest_text_of_their_type(value, text):
    result = plain_value(value)
    assert type(result) is float and json.dumps(result) == text
    if numpy.isfinite(value):
        assert type(value)(json.loads(text)) == value  # reads back as the same value


def test_other_result_values_are_plain_python():
    values = {
        "count": numpy.int32(20),
        "flag": numpy.bool_(True),
        "name": numpy.str_("é"),
        "scores": numpy.array([0.96, 0.5], dtype=numpy.float32),
        "matrix": numpy.array([[1, 2], [3, 4]], dtype=numpy.int64),
        "scalar": numpy.array(0.1, dtype=numpy.float32),
        "nested": {"x": numpy.float32(0.7), "items": [numpy.float32(0.2)]},
    }
    assert json.dumps(plain_value(values)) == json.dumps(
        {
            "count": 20,
            "flag": True,
            "name": "é",
            "scores": [0.96, 0.5],
            "matrix": [[1, 2], [3, 4]],
            "scalar": 0.1,
            "nested": {"x": 0.7, "items": [0.2]},
        }
    )
