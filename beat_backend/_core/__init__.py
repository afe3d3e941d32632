"""Lowest layer: errors, canonical JSON, hashing, names and paths (no numpy, no zmq)."""
