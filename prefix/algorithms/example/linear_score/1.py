# Sequential (API v2) with two groups: the model arrives on its own channel
# and is read once in prepare(); process() scores one sample per call.
# `linalg` (example/linalg/1) is bound by the loader.

import numpy


class Algorithm:
    def prepare(self, data_loaders):
        data, _, _ = data_loaders.loaderOf("model")[0]
        self.weights = numpy.asarray(data["model"].weights, dtype=numpy.float64)
        self.bias = float(data["model"].bias)
        return True

    def process(self, inputs, data_loaders, outputs):
        features = inputs["sample"].data.features
        value = linalg.score(self.weights, self.bias, [features])[0]  # noqa: F821
        outputs["score"].write({"value": numpy.float64(value)})
        return True
