"""Data-flow layer: database-output sources, view runners, inputs, outputs, loaders."""
