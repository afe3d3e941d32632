"""Asset layer: prefix storage, schema validation and asset declarations."""
