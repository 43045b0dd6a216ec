"""Telling operators how the service is doing: Prometheus metrics, JSON log lines."""
