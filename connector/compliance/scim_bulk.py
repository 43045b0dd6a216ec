"""Creating many users with SCIM Bulk (RFC 7644 3.7), for a server that offers it.

Bulk requests respect ``bulk.maxOperations`` and ``bulk.maxPayloadSize`` (a user too
large for one request alone is POSTed); two are in flight. Each operation of the answer
is read on its own (``scim_responses.bulk_answers``): a user the server refused fails
only itself, a created one is recorded with what its answer shows stored, and a 409, an
operation the server did not answer and anything unclear go the single way, which looks
the user up first (never a duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from connector.compliance.base import NewUser
from connector.compliance.scim_answers import dropped_addresses
from connector.compliance.scim_created import CreatedLedger, create_guarded
from connector.compliance.scim_http import NOT_JSON, AmbiguousWriteError, error_text, json_body
from connector.compliance.scim_mapping import bulk_batches, bulk_create_request, operation_error, user_payload
from connector.compliance.scim_parts import ScimParts
from connector.compliance.scim_responses import BulkAnswer, bulk_answers
from connector.compliance.scim_users import ScimUsers
from connector.errors import ConnectorError, RetriableError, SkippableError

Results = list[bool | ConnectorError]


class ScimBulk:
    """The Bulk path of ``create_users`` for one SCIM target."""

    def __init__(self, parts: ScimParts, users: ScimUsers, ledger: CreatedLedger) -> None:
        self._parts = parts
        self._users = users
        self._ledger = ledger

    def create(self, users: Sequence[NewUser], todo: list[int], results: Results) -> dict[str, list[str]]:
        """Bulk requests within ``maxOperations`` and ``maxPayloadSize``, two in flight; org -> new ids.

        A user refused by our payload check fails only itself; one too large for a Bulk request of
        its own goes the single way.
        """
        features = self._parts.reads.features()
        settings = self._parts.settings
        payloads: dict[int, dict[str, Any]] = {}
        for i in todo:
            try:
                payloads[i] = user_payload(users[i], features)
            except SkippableError as exc:
                results[i] = exc
        size = max(1, min(settings.bulk_max_operations, features.bulk_max_operations))
        batches, alone = bulk_batches(payloads, size, features.bulk_max_payload)
        for i in alone:
            results[i] = create_guarded(self._users, users[i])
        new_ids: dict[str, list[str]] = {}
        # Two Bulk requests in flight: the next body is built while the server works on this one.
        with ThreadPoolExecutor(min(2, settings.concurrency)) as pool:
            for found in pool.map(lambda batch: self._send(users, batch, results), batches):
                for org, ids in found.items():
                    new_ids.setdefault(org, []).extend(ids)
        return new_ids

    def _send(
        self, users: Sequence[NewUser], payloads: dict[int, dict[str, Any]], results: Results
    ) -> dict[str, list[str]]:
        """One Bulk request (``payloads``: index in ``users`` -> body); org -> ids of the users it created."""
        indexes = list(payloads)
        by_position = {position: payloads[i] for position, i in enumerate(indexes)}
        try:
            request = bulk_create_request(by_position)
            response: requests.Response | None = self._parts.http.request(
                "POST", "/Bulk", json=request, idempotent=False
            )
        except AmbiguousWriteError:
            response = None
        if response is None or response.status_code != 200:
            for i in indexes:  # one by one: each looks itself up first
                result = create_guarded(self._users, users[i])
                # After a lost answer, a user found already there is one this Bulk created.
                results[i] = True if response is None and result is False else result
            return {}
        body = json_body(response)
        if body is NOT_JSON:  # a 200 that says nothing readable: what it did is unclear, the batch waits
            raise RetriableError(f"POST /Bulk: answer is not JSON ({error_text(response)})")
        new_ids: dict[str, list[str]] = {}
        answered: set[int] = set()
        for answer in bulk_answers(body, len(indexes)):
            answered.add(answer.position)
            i = indexes[answer.position]
            results[i] = self._outcome(users[i], answer, new_ids)
        for position in set(range(len(indexes))) - answered:  # the server skipped it (failOnErrors)
            results[indexes[position]] = create_guarded(self._users, users[indexes[position]])
        return new_ids

    def _outcome(self, user: NewUser, answer: BulkAnswer, new_ids: dict[str, list[str]]) -> bool | ConnectorError:
        """What one operation's answer means for its user: created (its id kept per org), refused, or
        the single way (409: there already?, 5xx, 429 or unreadable: it looks the user up and retries)."""
        created_id = answer.created_id
        if created_id is not None:
            new_ids.setdefault(user.org, []).append(created_id)
            if user.aliases and dropped_addresses(user.aliases, answer.response) is None:
                self._ledger.read_back_later(user)
            else:
                self._ledger.record(user, answer.response, "a Bulk POST /Users")
            return True
        if answer.refused:
            # Refused by the server: sending it again would be refused again (no second POST).
            return SkippableError(f"server refused {user.primary_address}: {operation_error(answer.operation)}")
        return create_guarded(self._users, user)
