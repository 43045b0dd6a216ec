"""Benchmark: one reconcile cycle over many managed users at a local scim2-server vs. a full rewrite."""
