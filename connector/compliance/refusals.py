"""When a target's refusal of one user or alias (``target_rejected``) is tried again.

A refusal is an answer about this request: sent again unchanged, it is refused
again. So it is not retried every run (no hammering the server with the same
refused request, however much new mail the address receives), but as soon as
something that shapes the request or the server's answer may have changed:

- the target's configuration (another server, other settings);
- the connector's version (a fix in how requests are built, such as the end of
  the refusal of special-use domains like ``.local`` before any request);
- the domain's rule (as for every decision);
- a person who fixed the cause on the server or in the directory
  (``connector sync --recheck``).

The decision is stored with the fingerprint it was made under
(``refusal_fingerprint``); the due rule (``connector/store/repository.py: _due``)
decides it again when the current one differs. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from pydantic import BaseModel

from connector import __version__

RETRY_HINT = (
    "retried by `connector sync --recheck`, or by the first run after the target's configuration "
    "or the connector's version changes"
)
"""How a person gets a refused address tried again (``explain``, docs/targets.md)."""


def target_fingerprint(target: BaseModel, version: str = __version__) -> str:
    """Changes when the target's settings or the connector's version change.

    Secrets are references (``{env: NAME}``, ``{file: PATH}``) in the settings: a new
    token under the same name is no new configuration, and no secret is hashed.
    """
    data = {"target": target.model_dump(mode="json"), "version": version}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def refusal_fingerprint(rule_fingerprint: str, target_fingerprint: str) -> str:
    """What a refusal is stored under: the domain's rule and the target (33 characters, fits the column)."""
    return f"{rule_fingerprint}/{target_fingerprint}"


def refusal_fingerprints(rule_fingerprints: Mapping[str, str], target: BaseModel) -> dict[str, str]:
    """Managed domain -> the fingerprint a refusal of one of its addresses is stored under now."""
    current = target_fingerprint(target)
    return {domain: refusal_fingerprint(rule, current) for domain, rule in rule_fingerprints.items()}
