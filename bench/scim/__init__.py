"""Benchmark: create users at a local scim2-server, sequentially vs. the connector's way."""
