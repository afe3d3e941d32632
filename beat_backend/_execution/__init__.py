"""Execution layer: wiring from configurations, algorithm/database/loop executors."""
