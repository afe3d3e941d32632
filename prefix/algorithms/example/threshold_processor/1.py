# Sequential loop processor (API v2): for each unit, proposes thresholds
# around the last accepted one (t, t + step, t - step, t + 2 step, ...) through
# loop_channel.validate() until the evaluator accepts one, then writes the
# decision for the unit's score (value 1 "positive" or 0 "negative").

import numpy

MAX_PROPOSALS = 1000


class Algorithm:
    def setup(self, parameters):
        self.step = float(parameters["step"])
        self.threshold = 0.0
        return True

    def proposals(self):
        yield self.threshold
        for k in range(1, MAX_PROPOSALS):
            yield self.threshold + k * self.step
            yield self.threshold - k * self.step

    def process(self, inputs, data_loaders, outputs, loop_channel):
        for candidate in self.proposals():
            accepted, _ = loop_channel.validate({"value": numpy.float64(candidate)})
            if accepted:
                self.threshold = candidate
                break
        else:
            raise RuntimeError("the evaluator accepted none of the proposed thresholds")

        positive = float(inputs["score"].data.value) >= self.threshold
        outputs["decision"].write(
            {"value": numpy.uint8(positive), "name": "positive" if positive else "negative"}
        )
        return True
