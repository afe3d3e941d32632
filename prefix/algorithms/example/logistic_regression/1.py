# Autonomous (API v2): logistic regression by minibatch gradient descent on two
# labelled sets, each on its own channel: `sample`/`label` (the main group, which
# writes the model) and `extra_sample`/`extra_label`. Each epoch shuffles both
# data loaders (DataLoader.batches, seeded), interleaves their minibatches in
# proportion to the sizes of the sets (mux, seeded) and takes one gradient step
# per minibatch on the stacked features (Batch.column). The model is an
# `example/model/1`: `score` (linear_score/1) computes its logit.
#
# Every seed derives from the parameter `seed` through numpy's RandomState (a
# frozen stream), only element-wise numpy is used (no BLAS call, whose threads
# may change the order of sums) and the exponential is the C library's (numpy's
# vectorized exp differs in the last bits between numpy versions): the same
# parameters give the same model bit for bit, on every run, with any --jobs and
# any launcher, under numpy 1.26 and 2.x alike.

import math

import numpy

from beat_backend.data_loaders import mux


def minibatches(loader, sample, label, size, seed):
    """(features as float64, 1.0 for the positive class) of each shuffled minibatch."""
    for batch in loader.batches(size, shuffle=True, seed=seed):
        features = batch.column(sample, "features").astype(numpy.float64)
        yield features, batch.column(label, "value")


def sigmoid(z):
    """1 / (1 + e**-z), without overflow."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Algorithm:
    def setup(self, parameters):
        self.learning_rate = float(parameters["learning_rate"])
        self.epochs = int(parameters["epochs"])
        self.batch_size = int(parameters["batch_size"])
        self.l2 = float(parameters["l2"])
        self.seed = int(parameters["seed"])
        return True

    def process(self, data_loaders, outputs):
        main = data_loaders.loaderOf("sample")
        extra = data_loaders.loaderOf("extra_sample")
        sets = [(main, "sample", "label"), (extra, "extra_sample", "extra_label")]

        # the classes (value -> name) and the feature size, in one ordered pass
        names, dimension = {}, 0
        for loader, sample, label in sets:
            for batch in loader.batches(256):
                values, labels = batch.column(label, "value"), batch.column(label, "name")
                names.update(zip(values.tolist(), labels.tolist()))
                dimension = batch.column(sample, "features").shape[1]
        classes = sorted(names)
        if len(classes) != 2:
            raise ValueError("expected 2 classes, got %d: %s" % (len(classes), classes))

        seeds = numpy.random.RandomState(self.seed).randint(0, 2**31, size=(self.epochs, 3))
        sizes = [loader.count() for loader, _, _ in sets]
        weights, bias = numpy.zeros(dimension), 0.0
        for main_seed, extra_seed, mux_seed in seeds.tolist():
            streams = [
                minibatches(loader, sample, label, self.batch_size, seed)
                for (loader, sample, label), seed in zip(sets, (main_seed, extra_seed))
            ]
            for features, values in mux(streams, weights=sizes, seed=mux_seed):
                target = (values == classes[1]).astype(numpy.float64)
                logits = (features * weights).sum(axis=1) + bias
                error = numpy.array([sigmoid(z) for z in logits.tolist()]) - target
                gradient = (features * error[:, None]).sum(axis=0) / len(error)
                weights = weights - self.learning_rate * (gradient + self.l2 * weights)
                bias = bias - self.learning_rate * float(error.sum() / len(error))

        outputs["model"].write(
            {
                "weights": weights,
                "bias": numpy.float64(bias),
                "classes": [names[classes[0]], names[classes[1]]],
            },
            end_data_index=main.data_index_end,
        )
        return True
