# Synthetic two-class dataset: 2-D Gaussian blobs generated in code.
#
# No raw data and no download: the samples of a set are drawn from
# numpy.random.default_rng(seed), so they are identical on every run. The
# index holds one entry per sample (its identifier and class); the features are
# regenerated in setup() from the same parameters.

from collections import namedtuple

import numpy

from beat.backend.python.database import View

#: class value -> class name (value 0 is the negative class)
CLASS_NAMES = ("negative", "positive")

#: centres of the two blobs and the standard deviation of each coordinate
CENTERS = numpy.array([[-1.0, -1.0], [1.0, 1.0]])
SPREAD = 0.8

#: identifier of the first sample of each set (identifiers are unique across sets)
FIRST_ID = {"train": 0, "dev": 100000, "test": 200000}

Entry = namedtuple("Entry", ["sample_id", "label"])


def generate(size, seed):
    """Labels (uint8, balanced, shuffled) and features (float32, ``size x 2``)."""
    rng = numpy.random.default_rng(seed)
    labels = rng.permutation(numpy.arange(size) % 2).astype(numpy.uint8)
    noise = rng.normal(0.0, SPREAD, size=(size, 2))
    features = (CENTERS[labels] + noise).astype(numpy.float32)
    return labels, features


class Blobs(View):
    """One entry per sample; outputs ``sample`` and ``label`` give one unit per sample.

    Parameters: ``set`` (train, dev or test), ``size`` (number of samples) and
    ``seed`` (of the random generator).
    """

    def __init__(self):
        super(Blobs, self).__init__()
        self.output_member_map = {"sample": "sample_id", "label": "sample_id"}

    def index(self, root_folder, parameters):
        labels, _ = generate(parameters["size"], parameters["seed"])
        first = FIRST_ID[parameters["set"]]
        return [Entry(first + i, int(label)) for i, label in enumerate(labels)]

    def setup(self, root_folder, parameters, objs, start_index=None, end_index=None):
        super(Blobs, self).setup(root_folder, parameters, objs, start_index, end_index)
        _, self.features = generate(parameters["size"], parameters["seed"])
        self.first_id = FIRST_ID[parameters["set"]]
        return True

    def get(self, output, index):
        obj = self.objs[index]

        if output == "sample":
            return {
                "id": numpy.uint64(obj.sample_id),
                "features": self.features[obj.sample_id - self.first_id],
            }
        elif output == "label":
            return {"value": numpy.uint8(obj.label), "name": CLASS_NAMES[obj.label]}

        raise KeyError(output)
