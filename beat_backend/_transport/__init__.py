"""Transport layer: the BEAT message grammar, frames and channels (ZeroMQ + in-memory)."""
