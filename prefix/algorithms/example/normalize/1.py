# Sequential (API v2): one output unit per input unit, same data indices.

import numpy


class Algorithm:
    def setup(self, parameters):
        self.scale = float(parameters["scale"])
        return True

    def process(self, inputs, data_loaders, outputs):
        sample = inputs["sample"].data
        features = numpy.asarray(sample.features, dtype=numpy.float64)
        norm = numpy.linalg.norm(features)
        if norm > 0:
            features = features * (self.scale / norm)
        outputs["normalized"].write(
            {"id": sample.id, "features": features.astype(numpy.float32)}
        )
        return True
