"""Performance workloads of beat_backend, each measured beside its baseline.

Run ``python -m benchmarks`` (``--quick`` for a short run); figures are
printed as a table and written to ``benchmarks/RESULTS.md``.
"""
