"""Configuration: one YAML file, validated once at the edge, passed down.

One module per part of the file (state, sources, domains, directory, target);
``settings`` assembles them and loads the file.
"""

from connector.config.base import SecretRef, StrictModel, resolve_secret
from connector.config.settings import Settings, load_settings, parse_settings

__all__ = ["SecretRef", "Settings", "StrictModel", "load_settings", "parse_settings", "resolve_secret"]
