"""Cache layer: data source/sink base classes, cache file sets, index helpers."""
