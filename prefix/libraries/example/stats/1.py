# Summary statistics of feature matrices: one row per sample, one column per
# feature. Everything is computed in float64.

import numpy


def as_matrix(rows):
    """Stacks feature vectors into a float64 matrix (n_samples x n_features)"""
    return numpy.atleast_2d(numpy.asarray(rows, dtype=numpy.float64))


def mean(matrix):
    """Mean feature vector"""
    return matrix.mean(axis=0)


def covariance(matrix):
    """Maximum-likelihood covariance (divides by n; zeros for a single sample)"""
    centered = matrix - mean(matrix)
    return centered.T @ centered / len(matrix)


def pooled_covariance(groups):
    """Within-class covariance: the class covariances weighted by class size"""
    total = sum(len(g) for g in groups)
    return sum(covariance(g) * len(g) for g in groups) / total
