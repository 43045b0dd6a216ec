"""Config messages an admin can act on: what YAML made of an unquoted off, where secrets go, which key was meant.

Each message names the key path; an inline secret's value never appears in a message
or in the error's traceback.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import parse_settings
from connector.config.messages import did_you_mean
from connector.errors import ConfigError

BASE: dict[str, Any] = {
    "sources": [{"name": "gw", "path": "mail.log"}],
    "domains": {"acme.com": {"org": "Acme"}},
    "directory": {"type": "ldif", "path": "dir.ldif"},
}


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, Path("/etc/connector"))
    return dict(caught.value.problems)


def from_yaml(text: str) -> dict[str, str]:
    return problems_of(yaml.safe_load(text))


def test_unquoted_off_is_explained_with_the_quoted_form() -> None:
    found = from_yaml(
        """
sources: [{name: gw, path: mail.log}]
domains:
  acme.com: {org: Acme, method: off}
  globex.com: {org: Globex, method: "off"}
directory: {type: ldif, path: dir.ldif}
"""
    )
    assert found == {"domains['acme.com'].method": 'YAML reads an unquoted off as false: quote it (method: "off")'}


def test_a_boolean_where_no_word_fits_keeps_the_plain_message() -> None:
    found = from_yaml(
        """
sources: [{name: gw, path: mail.log}]
domains: {acme.com: {org: Acme, method: yes}}
directory: {type: ldif, path: dir.ldif}
"""
    )
    assert found["domains['acme.com'].method"] == "Input should be 'smartcreate', 'autocreate', 'auto' or 'off'"


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ({"state": {"url": "postgresql://connector@db/c", "password": "hunter2-inline"}}, "state.password"),
        (
            {
                "directory": {
                    "type": "ldap",
                    "servers": ["ldaps://dc1.acme.com"],
                    "base_dn": "dc=acme,dc=com",
                    "bind_dn": "cn=svc,dc=acme,dc=com",
                    "bind_password": "hunter2-inline",
                }
            },
            "directory.bind_password",
        ),
        (
            {"target": {"type": "scim", "url": "https://scim.example/v2", "bearer_token": "hunter2-inline"}},
            "target.bearer_token",
        ),
    ],
)
def test_an_inline_secret_says_where_secrets_go_and_is_never_repeated(where: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, **where}, Path("/etc/connector"))
    assert dict(caught.value.problems)[key] == (
        "a secret is never written in the file: use {env: NAME} or {file: PATH}"
    )
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value.problems)
    assert "hunter2-inline" not in shown


def test_a_misspelled_key_gets_did_you_mean_at_every_level() -> None:
    found = problems_of(
        {
            "sources": [{"name": "gw", "path": "mail.log", "fromat": "exim"}],
            "domains": {"acme.com": {"org": "Acme", "threshhold": 3}},
            "directory": {"type": "ldif", "path": "dir.ldif", "schema_prest": "auto"},
            "scheduler": {"jobs": {"decide": {"cron": "0 * * * *", "enabeld": False}}},
            "safety": {"limits": {"max_per_runn": 5}},
            "reprots": {},
        }
    )
    assert found == {
        "sources[0].fromat": "Extra inputs are not permitted (did you mean 'format'?)",
        "domains['acme.com'].threshhold": "Extra inputs are not permitted (did you mean 'threshold'?)",
        "directory.schema_prest": "Extra inputs are not permitted (did you mean 'schema_preset'?)",
        "scheduler.jobs.decide.enabeld": "Extra inputs are not permitted (did you mean 'enabled'?)",
        "safety.limits.max_per_runn": "Extra inputs are not permitted (did you mean 'max_per_run'?)",
        "reprots": "Extra inputs are not permitted (did you mean 'reports'?)",
    }


def test_a_key_like_no_other_lists_the_keys_of_its_level() -> None:
    found = problems_of({**BASE, "directory": {"type": "ldif", "path": "dir.ldif", "colour": "red"}})
    assert found == {"directory.colour": "Extra inputs are not permitted (known keys here: path, schema_preset, type)"}


def test_misspelled_values_and_union_tags_get_did_you_mean() -> None:
    found = problems_of(
        {
            **BASE,
            "domains": {"acme.com": {"org": "Acme", "method": "smartcreat"}},
            "directory": {"type": "ldif", "path": "dir.ldif", "schema_preset": "activedirectory"},
            "target": {"type": "scmi"},
        }
    )
    assert found["domains['acme.com'].method"].endswith("or 'off' (did you mean 'smartcreate'?)")
    assert found["directory.schema_preset"].endswith("(did you mean 'active_directory'?)")
    assert found["target"].endswith("(did you mean 'scim'?)")


def test_did_you_mean_stays_quiet_when_nothing_is_close() -> None:
    assert did_you_mean("decdie", ["decide", "digest"]) == " (did you mean 'decide'?)"
    assert did_you_mean("zzz", ["decide", "digest"]) == ""


@pytest.mark.parametrize(
    ("key", "value"), [("evidence_grace_days", 1e12), ("runs_days", 1e12), ("evidence_grace_days", "inf")]
)
def test_an_absurd_retention_is_a_named_config_error_not_an_overflow(key: str, value: object) -> None:
    problems = problems_of({**BASE, "retention": {key: value}})
    assert list(problems) == [f"retention.{key}"]
