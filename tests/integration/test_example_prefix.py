"""The bundled example prefix's libraries and algorithms, run in-process with fakes.

Every value an algorithm writes is checked against its declared dataformat
(``from_dict(..., casting="safe", add_defaults=False)``), as real outputs do.
"""

from __future__ import annotations

import json

import numpy
import pytest
from _fakes import FakeInputs, FakeLoader, FakeLoaderList, FakeLoopChannel, FakeOutputs, unit
from _paths import EXAMPLE_PREFIX

import beat_backend
from beat_backend._cli.main import main
from beat_backend.algorithm import Algorithm
from beat_backend.data_loaders import DataLoader, DataLoaderList
from beat_backend.dataformat import DataFormat
from beat_backend.library import Library
from beat_backend.testing import MemoryDataSource

PREFIX = EXAMPLE_PREFIX

LIBRARIES = ["example/stats/1", "example/linalg/1"]
ALGORITHMS = [
    "example/normalize/1",
    "example/train_linear/1",
    "example/linear_score/1",
    "example/accuracy/1",
    "example/threshold_evaluator/1",
    "example/threshold_processor/1",
    "example/logistic_regression/1",
]


class UserFailure(Exception):
    pass


def load(name):
    algorithm = Algorithm(str(PREFIX), name)
    assert algorithm.valid, algorithm.errors
    return algorithm


def check_written(algorithm, output_name, written):
    """Every written value is a complete, safely castable value of the output's format."""
    if algorithm.isAnalyzer:
        fmt = algorithm.result_dataformat()
    else:
        fmt = DataFormat(str(PREFIX), algorithm.output_map[output_name])
    for data, _ in written:
        fmt.type().from_dict(data, casting="safe", add_defaults=False)


def two_clusters(n=40, seed=3):
    """``n`` samples per class: class 0 around (-1, -1, 0), class 1 around (1, 1, 0)."""
    rng = numpy.random.default_rng(seed)
    negatives = rng.normal([-1.0, -1.0, 0.0], 0.5, size=(n, 3))
    positives = rng.normal([1.0, 1.0, 0.0], 0.5, size=(n, 3))
    features = numpy.vstack([negatives, positives]).astype(numpy.float32)
    values = [0] * n + [1] * n
    order = rng.permutation(2 * n)
    samples = [unit(id=numpy.uint64(i), features=features[k]) for i, k in enumerate(order)]
    labels = [
        unit(value=numpy.uint8(values[k]), name=("impostor", "genuine")[values[k]]) for k in order
    ]
    return samples, labels


# ---------------------------------------------------------------------------
# declarations


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_declarations_are_valid_under_the_schemas(name):
    data = json.loads((PREFIX / f"algorithms/{name}.json").read_text(encoding="utf-8"))
    _, errors = beat_backend.validate("algorithm", data)
    assert errors == []
    algorithm = load(name)
    assert algorithm.api_version == 2
    assert len(algorithm.description) <= 100
    assert all(f.valid for f in algorithm.dataformats.values())


@pytest.mark.parametrize("name", LIBRARIES)
def test_library_declarations_are_valid_under_the_schema(name):
    data = json.loads((PREFIX / f"libraries/{name}.json").read_text(encoding="utf-8"))
    assert beat_backend.validate("library", data)[1] == []
    assert Library(str(PREFIX), name).valid


def test_types():
    assert [load(n).type for n in ALGORITHMS] == [
        "sequential",
        "autonomous",
        "sequential",
        "sequential",
        "sequential_loop_evaluator",
        "sequential_loop_processor",
        "autonomous",
    ]
    assert load("example/accuracy/1").isAnalyzer
    assert load("example/threshold_processor/1").splittable is False


def test_check_reports_the_libraries_and_algorithms_ok(capsys):
    main(["check", "--json", str(PREFIX)])
    document = json.loads(capsys.readouterr().out)
    mine = {
        (a["kind"], a["name"]): a
        for a in document["assets"]
        if a["kind"] in ("library", "algorithm")
        or a["name"] in ("example/threshold/1", "example/feedback/1")
    }
    expected = {("library", n) for n in LIBRARIES} | {("algorithm", n) for n in ALGORITHMS}
    expected |= {("dataformat", "example/threshold/1"), ("dataformat", "example/feedback/1")}
    assert expected <= set(mine)
    assert [a for a in mine.values() if not a["ok"]] == []


# ---------------------------------------------------------------------------
# libraries


def test_linalg_uses_stats_under_an_alias():
    linalg = Library(str(PREFIX), "example/linalg/1")
    assert linalg.uses == {"stats": "example/stats/1"}
    assert linalg.documentation.startswith("Linear two-class classifiers")
    module = linalg.load()
    matrix = module.stats.as_matrix([[1.0, 2.0], [3.0, 6.0]])
    numpy.testing.assert_allclose(module.stats.mean(matrix), [2.0, 4.0])
    numpy.testing.assert_allclose(module.stats.covariance(matrix), [[1.0, 2.0], [2.0, 4.0]])


@pytest.mark.parametrize("method", ["lda", "nearest_mean", "least_squares"])
def test_linalg_fit_separates_two_clusters(method):
    module = Library(str(PREFIX), "example/linalg/1").load()
    samples, labels = two_clusters()
    features = [s.features for s in samples]
    positives = [int(lab.value) == 1 for lab in labels]
    weights, bias = module.fit(features, positives, method, 1e-3)
    scores = module.score(weights, bias, features)
    assert scores.dtype == numpy.float64
    assert numpy.mean((scores > 0) == numpy.asarray(positives)) > 0.95
    with pytest.raises(ValueError, match="both classes"):
        module.fit(features[:2], [True, True])
    with pytest.raises(ValueError, match="unknown method `svm'"):
        module.fit(features, positives, "svm")


# ---------------------------------------------------------------------------
# algorithms


def run_sequential(runner, inputs, loaders, outputs=None, output=None):
    runner.prepare(loaders)
    while inputs.hasMoreData():
        inputs.next()
        assert runner.process(inputs=inputs, data_loaders=loaders, outputs=outputs, output=output)


def test_normalize():
    algorithm = load("example/normalize/1")
    runner = algorithm.runner()
    assert runner.setup({"scale": 2.0})
    samples = [
        unit(id=numpy.uint64(7), features=numpy.array([3.0, 4.0], dtype=numpy.float32)),
        unit(id=numpy.uint64(8), features=numpy.zeros(3, dtype=numpy.float32)),
    ]
    inputs, outputs = FakeInputs(sample=samples), FakeOutputs("normalized")
    run_sequential(runner, inputs, FakeLoaderList(), outputs)
    written = outputs["normalized"].written
    check_written(algorithm, "normalized", written)
    assert [int(d["id"]) for d, _ in written] == [7, 8]
    numpy.testing.assert_allclose(written[0][0]["features"], [1.2, 1.6], rtol=1e-6)
    assert written[0][0]["features"].dtype == numpy.float32
    assert not written[1][0]["features"].any()
    with pytest.raises(ValueError, match="must be picked within interval"):
        algorithm.runner().setup({"scale": 0.0})


@pytest.mark.parametrize("method", ["lda", "nearest_mean", "least_squares"])
def test_train_linear_writes_one_model(method):
    algorithm = load("example/train_linear/1")
    runner = algorithm.runner()
    assert runner.setup({"method": method})
    samples, labels = two_clusters()
    loaders = FakeLoaderList(FakeLoader("train", sample=samples, label=labels))
    assert runner.prepare(loaders)
    outputs = FakeOutputs("model")
    assert runner.process(data_loaders=loaders, outputs=outputs)
    written = outputs["model"].written
    check_written(algorithm, "model", written)
    assert len(written) == 1
    model, end = written[0]
    assert end == len(samples) - 1
    assert model["classes"] == ["impostor", "genuine"]
    scores = numpy.vstack([s.features for s in samples]) @ model["weights"] + model["bias"]
    truth = numpy.array([int(lab.value) == 1 for lab in labels])
    assert numpy.mean((scores > 0) == truth) > 0.95


def test_train_linear_parameters_and_errors():
    algorithm = load("example/train_linear/1")
    assert algorithm.parameters["method"]["choice"] == ["lda", "nearest_mean", "least_squares"]
    with pytest.raises(ValueError, match="must be one of"):
        algorithm.runner().setup({"method": "svm"})
    runner = algorithm.runner(exc=UserFailure)
    runner.setup({})
    samples, labels = two_clusters(n=3)
    loaders = FakeLoaderList(FakeLoader("train", sample=samples, label=labels[:1] * 6))
    with pytest.raises(UserFailure, match="expected 2 classes, got 1"):
        runner.process(data_loaders=loaders, outputs=FakeOutputs("model"))


def labelled_loader(channel, samples, labels, sample="sample", label="label"):
    """A real DataLoader over packed ``example/sample/1`` and ``example/label/1`` units."""
    formats = {name: DataFormat(str(PREFIX), f"example/{name}/1") for name in ("sample", "label")}
    loader = DataLoader(channel)
    loader.add(sample, MemoryDataSource([vars(s) for s in samples], dataformat=formats["sample"]))
    loader.add(label, MemoryDataSource([vars(x) for x in labels], dataformat=formats["label"]))
    return loader


def fit_logistic(parameters, n=40):
    """(written, samples, labels) of logistic_regression/1 on two clusters + an extra set."""
    algorithm = load("example/logistic_regression/1")
    runner = algorithm.runner()
    assert runner.setup(parameters)
    samples, labels = two_clusters(n)
    extra_samples, extra_labels = two_clusters(n // 2, seed=4)
    loaders = DataLoaderList()
    loaders.add(labelled_loader("train", samples, labels))
    loaders.add(labelled_loader("dev", extra_samples, extra_labels, "extra_sample", "extra_label"))
    assert runner.prepare(loaders)
    outputs = FakeOutputs("model")
    assert runner.process(data_loaders=loaders, outputs=outputs)
    written = outputs["model"].written
    check_written(algorithm, "model", written)
    return written, samples, labels


def test_logistic_regression_writes_one_model():
    written, samples, labels = fit_logistic({"seed": 3})
    assert len(written) == 1
    model, end = written[0]
    assert end == len(samples) - 1
    assert model["classes"] == ["impostor", "genuine"]
    assert model["weights"].dtype == numpy.float64 and model["weights"].shape == (3,)
    scores = numpy.vstack([s.features for s in samples]) @ model["weights"] + model["bias"]
    truth = numpy.array([int(lab.value) == 1 for lab in labels])
    assert numpy.mean((scores > 0) == truth) > 0.95


def test_logistic_regression_depends_only_on_its_seed():
    first = fit_logistic({"seed": 3, "epochs": 5})[0][0][0]
    again = fit_logistic({"seed": 3, "epochs": 5})[0][0][0]
    assert first["weights"].tobytes() == again["weights"].tobytes()  # bit for bit
    assert first["bias"] == again["bias"]
    other = fit_logistic({"seed": 4, "epochs": 5})[0][0][0]
    assert other["weights"].tobytes() != first["weights"].tobytes()


def test_logistic_regression_parameters():
    algorithm = load("example/logistic_regression/1")
    assert {k: v["default"] for k, v in algorithm.parameters.items()} == {
        "learning_rate": 0.5,
        "epochs": 30,
        "batch_size": 16,
        "l2": 0.001,
        "seed": 0,
    }
    with pytest.raises(ValueError, match="must be picked within interval"):
        algorithm.runner().setup({"batch_size": 0})
    runner = algorithm.runner(exc=UserFailure)
    runner.setup({})
    samples, labels = two_clusters(n=3)
    loaders = DataLoaderList()
    loaders.add(labelled_loader("train", samples, labels[:1] * 6))
    loaders.add(labelled_loader("dev", samples, labels[:1] * 6, "extra_sample", "extra_label"))
    with pytest.raises(UserFailure, match="expected 2 classes, got 1"):
        runner.process(data_loaders=loaders, outputs=FakeOutputs("model"))


def test_linear_score_reads_the_model_in_prepare():
    algorithm = load("example/linear_score/1")
    runner = algorithm.runner()
    assert runner.setup({})
    model = unit(weights=numpy.array([1.0, -2.0]), bias=0.5, classes=["a", "b"])
    samples = [
        unit(id=numpy.uint64(0), features=numpy.array([1.0, 1.0], dtype=numpy.float32)),
        unit(id=numpy.uint64(1), features=numpy.array([3.0, 0.0], dtype=numpy.float32)),
    ]
    inputs = FakeInputs(sample=samples)
    loaders = FakeLoaderList(FakeLoader("main", sample=samples), FakeLoader("model", model=[model]))
    outputs = FakeOutputs("score")
    run_sequential(runner, inputs, loaders, outputs)
    check_written(algorithm, "score", outputs["score"].written)
    assert [d["value"] for d, _ in outputs["score"].written] == [-0.5, 3.5]


def test_accuracy_writes_once_after_the_last_unit():
    algorithm = load("example/accuracy/1")
    runner = algorithm.runner()
    assert runner.setup({})
    scores = [unit(value=v) for v in (2.0, -1.0, 0.5, -3.0, 0.0)]
    labels = [unit(value=numpy.uint8(v), name=str(v)) for v in (1, 0, 0, 1, 1)]
    inputs = FakeInputs(score=scores, label=labels)
    result = FakeOutputs("result")["result"]
    run_sequential(runner, inputs, FakeLoaderList(), output=result)
    check_written(algorithm, "result", result.written)
    assert len(result.written) == 1
    values, end = result.written[0]
    assert end is None
    # decisions (>= 0): 1 0 1 0 1; truth: 1 0 0 1 1 -> one false accept, one false reject
    assert values == {
        "accuracy": numpy.float32(0.6),
        "error_rate": numpy.float32(0.4),
        "false_accept_rate": numpy.float32(0.5),
        "false_reject_rate": numpy.float32(1 / 3),
        "count": 5,
    }
    assert all(type(v) is numpy.float32 for k, v in values.items() if k != "count")


def test_threshold_loop_pair():
    """The processor negotiates a threshold per unit; the evaluator knows the labels."""
    evaluator_algorithm = load("example/threshold_evaluator/1")
    processor_algorithm = load("example/threshold_processor/1")
    evaluator = evaluator_algorithm.runner()
    processor = processor_algorithm.runner()
    assert evaluator.setup({"max_error": 0.0, "max_attempts": 20})
    assert processor.setup({"step": 0.5})
    assert evaluator.prepare(FakeLoaderList()) and processor.prepare(FakeLoaderList())

    # scores of positives are above 1.2, negatives below 0.8
    values = [(2.0, 1), (-1.0, 0), (0.8, 0), (1.2, 1), (3.0, 1), (0.1, 0)]
    scores = [unit(value=s) for s, _ in values]
    labels = [unit(value=numpy.uint8(v), name=str(v)) for _, v in values]
    evaluator_inputs = FakeInputs(score=scores, label=labels)
    tuning = FakeOutputs("tuning")
    # like RemotelySyncedOutput: each processor write makes the evaluator write
    decisions = FakeOutputs(
        "decision", on_write=lambda name, end: evaluator.write(tuning, name, end)
    )
    processor_inputs = FakeInputs(score=scores)
    channel = FakeLoopChannel(evaluator)
    while processor_inputs.hasMoreData():
        processor_inputs.next()
        evaluator_inputs.next()
        assert evaluator.read(evaluator_inputs)
        assert processor.process(
            inputs=processor_inputs,
            data_loaders=FakeLoaderList(),
            outputs=decisions,
            loop_channel=channel,
        )

    check_written(processor_algorithm, "decision", decisions["decision"].written)
    check_written(evaluator_algorithm, "tuning", tuning["tuning"].written)
    assert [int(d["value"]) for d, _ in decisions["decision"].written] == [1, 0, 0, 1, 1, 0]
    thresholds = [float(d["value"]) for d, _ in tuning["tuning"].written]
    assert len(thresholds) == len(values)
    assert thresholds[-1] == 1.0  # separates 0.8 from 1.2 with a 0.5 step
    assert all(isinstance(r["value"], numpy.float64) for r in channel.requests)


def test_threshold_evaluator_gives_up_after_max_attempts():
    evaluator = load("example/threshold_evaluator/1").runner()
    evaluator.setup({"max_error": 0.0, "max_attempts": 2})
    inputs = FakeInputs(score=[unit(value=1.0)], label=[unit(value=numpy.uint8(0), name="0")])
    inputs.next()
    evaluator.read(inputs)
    accepted, answer = evaluator.validate(unit(value=0.0))  # accepts 1.0 >= 0.0: wrong
    assert (accepted, answer["error_rate"]) == (False, 1.0)
    assert answer["accepted"] is numpy.False_
    accepted, answer = evaluator.validate(unit(value=0.0))
    assert accepted is True and answer["error_rate"] == 1.0
