"""Rendering stored run reports for people."""
