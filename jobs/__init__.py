"""Scheduled jobs. Each is a plain function of its dependencies and ``now``;
the CLI and the tests call exactly what a scheduler would call."""
