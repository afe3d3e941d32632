# Sequential analyzer (API v2): counts decisions unit by unit and writes the
# results once, after the last unit (so they cover the whole index range).
# Label value 1 is the positive class; a score >= 0 is a positive decision. (The
# platform's algorithm schemas v2/v3 give analyzers no parameters: the threshold
# is fixed here.)

import numpy


def _rate(count, total):
    return numpy.float32(count / total if total else 0.0)


THRESHOLD = 0.0


class Algorithm:
    def setup(self, parameters):
        self.threshold = THRESHOLD
        self.positives = self.negatives = 0
        self.false_accepts = self.false_rejects = 0
        return True

    def process(self, inputs, data_loaders, output):
        accepted = float(inputs["score"].data.value) >= self.threshold
        if int(inputs["label"].data.value) == 1:
            self.positives += 1
            self.false_rejects += not accepted
        else:
            self.negatives += 1
            self.false_accepts += accepted

        if not inputs.hasMoreData():
            count = self.positives + self.negatives
            errors = self.false_accepts + self.false_rejects
            output.write(
                {
                    "accuracy": _rate(count - errors, count),
                    "error_rate": _rate(errors, count),
                    "false_accept_rate": _rate(self.false_accepts, self.negatives),
                    "false_reject_rate": _rate(self.false_rejects, self.positives),
                    "count": numpy.int32(count),
                }
            )
        return True
