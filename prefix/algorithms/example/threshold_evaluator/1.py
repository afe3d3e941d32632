# Sequential loop evaluator (API v2): the processor proposes thresholds, this
# algorithm knows the ground truth.
#
# read():     called each time the processor moves to its next unit; keeps the
#             score and label seen so far.
# validate(): error rate of the proposed threshold on the units read so far;
#             accepted when at most `max_error', or at the `max_attempts'th try.
# write():    called for every processor write; writes the last accepted threshold.

import numpy


class Algorithm:
    def setup(self, parameters):
        self.max_error = float(parameters["max_error"])
        self.max_attempts = int(parameters["max_attempts"])
        self.scores = []
        self.positives = []
        self.attempts = 0
        self.accepted = 0.0
        return True

    def read(self, inputs):
        self.scores.append(float(inputs["score"].data.value))
        self.positives.append(int(inputs["label"].data.value) == 1)
        self.attempts = 0
        return True

    def error_rate(self, threshold):
        if not self.scores:
            return 0.0
        decisions = numpy.asarray(self.scores) >= threshold
        return float(numpy.mean(decisions != numpy.asarray(self.positives)))

    def validate(self, request):
        self.attempts += 1
        rate = self.error_rate(float(request.value))
        accepted = rate <= self.max_error or self.attempts >= self.max_attempts
        if accepted:
            self.accepted = float(request.value)
        return (accepted, {"accepted": numpy.bool_(accepted), "error_rate": numpy.float64(rate)})

    def write(self, outputs, processor_output_name, end_data_index):
        outputs["tuning"].write({"value": numpy.float64(self.accepted)}, end_data_index)
        return True
