"""Compliance directory targets: where users and org memberships are provisioned."""
