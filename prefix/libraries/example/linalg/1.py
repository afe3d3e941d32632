# Linear two-class classifiers on feature matrices. `stats` (example/stats/1)
# is bound by the loader before this code runs.

import numpy


def _ridge_solve(matrix, vector, regularization):
    """Solves (matrix + regularization * I) x = vector"""
    return numpy.linalg.solve(matrix + regularization * numpy.eye(len(matrix)), vector)


def fit(features, positives, method="lda", regularization=1e-3):
    """Fits (weights, bias): features . weights + bias > 0 for the positive class

    features: n vectors of d values; positives: n booleans (True = positive).
    """
    x = stats.as_matrix(features)  # noqa: F821
    y = numpy.asarray(positives, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("both classes are needed to fit a linear model")
    m0 = stats.mean(x[~y])  # noqa: F821
    m1 = stats.mean(x[y])  # noqa: F821

    if method == "least_squares":
        # ridge regression of -1/+1 targets; the bias column is not penalised
        a = numpy.hstack([x, numpy.ones((len(x), 1))])
        penalty = regularization * numpy.eye(a.shape[1])
        penalty[-1, -1] = 0.0
        solution = numpy.linalg.solve(a.T @ a + penalty, a.T @ numpy.where(y, 1.0, -1.0))
        return solution[:-1], float(solution[-1])

    if method == "nearest_mean":
        weights = m1 - m0
    elif method == "lda":
        within = stats.pooled_covariance([x[~y], x[y]])  # noqa: F821
        weights = _ridge_solve(within, m1 - m0, regularization)
    else:
        raise ValueError("unknown method `%s'" % method)
    # the decision boundary goes through the middle of the two class means
    bias = -float(numpy.dot(weights, (m0 + m1) / 2.0))
    return weights, bias


def score(weights, bias, features):
    """Scores of every feature vector (a float64 array)"""
    return stats.as_matrix(features) @ numpy.asarray(weights, dtype=numpy.float64) + bias  # noqa: F821
