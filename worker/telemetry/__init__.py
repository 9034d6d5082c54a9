"""Logs and metrics: JSON log lines, Prometheus text."""
