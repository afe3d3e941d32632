# Autonomous (API v2): reads every labelled sample through the data loader,
# fits one linear model and writes it once, covering the whole index range.
# `linalg` (example/linalg/1) is bound by the loader.

import numpy


class Algorithm:
    def setup(self, parameters):
        self.regularization = float(parameters["regularization"])
        self.method = str(parameters["method"])
        return True

    def process(self, data_loaders, outputs):
        loader = data_loaders.loaderOf("sample")
        features, values, names = [], [], {}
        for i in range(loader.count()):
            data, _, _ = loader[i]
            features.append(data["sample"].features)
            label = data["label"]
            values.append(int(label.value))
            names[int(label.value)] = str(label.name)

        classes = sorted(names)
        if len(classes) != 2:
            raise ValueError("expected 2 classes, got %d: %s" % (len(classes), classes))
        positives = [value == classes[1] for value in values]
        weights, bias = linalg.fit(features, positives, self.method, self.regularization)  # noqa: F821

        outputs["model"].write(
            {
                "weights": numpy.asarray(weights, dtype=numpy.float64),
                "bias": numpy.float64(bias),
                "classes": [names[classes[0]], names[classes[1]]],
            },
            end_data_index=loader.data_index_end,
        )
        return True
