"""Directory look-ups for candidates, in batches, with every form the address was seen in.

A candidate's canonical address (erin@acme.com) may be held by the directory
only in the form the mail was sent to (erin@acme.net, frank@mail.acme.com), so
those forms are asked too; the canonical form's answer wins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from connector.directory.base import Directory
from connector.domain.directory import DirectoryAnswer
from connector.domain.evidence import AddressEvidence
from connector.errors import RetriableError
from connector.policy.addresses import InvalidAddress, normalise_address

log = logging.getLogger(__name__)
LOOKUP_BATCH = 500


def _forms(evidence: AddressEvidence) -> list[str]:
    forms = [evidence.address]
    for seen in evidence.seen_as:
        try:
            form = normalise_address(seen)
        except InvalidAddress:
            continue
        if form not in forms:
            forms.append(form)
    return forms


def lookup_candidates(
    directory: Directory, candidates: Sequence[AddressEvidence]
) -> dict[str, DirectoryAnswer | RetriableError]:
    """Canonical address -> the directory's answer, or the error that kept it from answering."""
    forms = {e.address: _forms(e) for e in candidates}
    queries = list(dict.fromkeys(form for group in forms.values() for form in group))
    found: dict[str, DirectoryAnswer | RetriableError] = {}
    for start in range(0, len(queries), LOOKUP_BATCH):
        chunk = queries[start : start + LOOKUP_BATCH]
        try:
            answers = directory.lookup(chunk)
        except RetriableError as exc:
            log.warning("directory unavailable: %s", exc)
            found.update({query: exc for query in chunk})
            continue
        found.update({query: answers.get(query) for query in chunk})
    result: dict[str, DirectoryAnswer | RetriableError] = {}
    for address, group in forms.items():
        answers_for = [found[form] for form in group]
        errors = [a for a in answers_for if isinstance(a, RetriableError)]
        if errors:
            result[address] = errors[0]  # never decide on a partial answer
            continue
        result[address] = next((a for a in answers_for if a is not None), None)
    return result
