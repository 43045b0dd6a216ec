"""The optional capabilities the jobs ask for (issue 15, Deliver 4): exactly the adapters that have
one are seen to have it, and docs/architecture.md's protocol table names the same adapters.

The jobs and commands check capabilities (``isinstance(target, RefreshableKnownAddresses)``), not
adapter classes; a capability that an adapter lost in a refactoring (a method renamed or moved to a
helper) would turn a job into a silent no-op ("nothing to pull"), so it is checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.compliance.base import ListsAllUsers, RefreshableKnownAddresses
from connector.compliance.batch_file import BatchFileComplianceDirectory
from connector.compliance.dry_run import DryRunComplianceDirectory
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.compliance.scim import ScimComplianceDirectory
from connector.directory.base import CountableDirectory, CountableUsers, RefreshableMirror, ReloadableDirectory
from connector.directory.graph import GraphDirectory
from connector.directory.ldap import LdapDirectory
from connector.directory.ldif import LdifDirectory
from connector.directory.mirror import MirrorDirectory

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
DIRECTORIES: tuple[type, ...] = (LdifDirectory, LdapDirectory, GraphDirectory, MirrorDirectory)
TARGETS: tuple[type, ...] = (
    EmbeddedComplianceDirectory,
    ScimComplianceDirectory,
    BatchFileComplianceDirectory,
    DryRunComplianceDirectory,
)
CAPABILITIES: dict[type, tuple[type, ...]] = {
    RefreshableMirror: DIRECTORIES,
    ReloadableDirectory: DIRECTORIES,
    CountableDirectory: DIRECTORIES,
    CountableUsers: DIRECTORIES,
    RefreshableKnownAddresses: TARGETS,
    ListsAllUsers: TARGETS,
}


def documented_adapters(protocol: type) -> set[str]:
    """The adapters the protocol table of docs/architecture.md names for ``protocol``."""
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{protocol.__name__}` ("):
            return set(re.findall(r"`([A-Za-z]+)`", line.split("|")[3]))
    raise AssertionError(f"{protocol.__name__} has no row in the protocol table")


@pytest.mark.parametrize("protocol", list(CAPABILITIES), ids=lambda p: p.__name__)
def test_exactly_the_documented_adapters_have_the_capability(protocol: type) -> None:
    having = {adapter.__name__ for adapter in CAPABILITIES[protocol] if issubclass(adapter, protocol)}
    assert having, f"no adapter has {protocol.__name__}"
    assert having == documented_adapters(protocol)


def test_the_known_capabilities_fall_where_the_jobs_expect_them() -> None:
    assert issubclass(ScimComplianceDirectory, RefreshableKnownAddresses)  # the refresh_known job pulls from it
    assert not issubclass(EmbeddedComplianceDirectory, RefreshableKnownAddresses)  # local: nothing to pull
    assert issubclass(MirrorDirectory, RefreshableMirror) and not issubclass(LdapDirectory, RefreshableMirror)
    assert issubclass(LdifDirectory, ReloadableDirectory) and not issubclass(MirrorDirectory, ReloadableDirectory)
