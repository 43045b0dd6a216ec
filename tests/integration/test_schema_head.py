"""A state database already at the newest schema is used without loading Alembic (issue 13: start-up
cost of every command); ``SCHEMA_HEAD`` must name the newest migration, or a new one would never run.
SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import text

from connector.store.database import MIGRATIONS, SCHEMA_HEAD, make_engine, require_state, upgrade

ROOT = Path(__file__).resolve().parents[2]


def test_schema_head_is_the_newest_migration() -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


CHILD = """
import sys
from connector.store.database import make_engine, require_state, upgrade
engine = make_engine(sys.argv[1])
upgrade(engine)
require_state(engine)
print("alembic" in sys.modules)
"""


def test_a_database_at_the_head_is_opened_without_alembic_and_an_older_one_is_migrated(
    state_url: str, tmp_path: Path
) -> None:
    Path(tmp_path / "state").mkdir(exist_ok=True)
    engine = make_engine(state_url)
    upgrade(engine, "i17_scim_groups")  # an older schema: upgrade must still migrate it
    run = [sys.executable, "-c", CHILD, state_url]
    first = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)
    assert first.stdout.strip() == "True"  # migrated with Alembic
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == SCHEMA_HEAD
    second = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)
    assert second.stdout.strip() == "False"  # already at the head: Alembic never loaded
    require_state(engine)
    engine.dispose()
