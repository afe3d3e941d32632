# Sequential analyzer (API v2) for the threshold loop: compares each decision
# with its label and averages the thresholds the loop evaluator accepted
# (`tuning'). Writes the results once, after the last unit.

import numpy


class Algorithm:
    def setup(self, parameters):
        self.count = self.correct = 0
        self.threshold_sum = 0.0
        return True

    def process(self, inputs, data_loaders, output):
        self.count += 1
        self.correct += int(inputs["decision"].data.value) == int(inputs["label"].data.value)
        self.threshold_sum += float(inputs["tuning"].data.value)

        if not inputs.hasMoreData():
            output.write(
                {
                    "accuracy": numpy.float32(self.correct / self.count),
                    "mean_threshold": numpy.float32(self.threshold_sum / self.count),
                    "count": numpy.int32(self.count),
                }
            )
        return True
