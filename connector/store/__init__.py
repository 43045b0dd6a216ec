"""State store: SQLAlchemy models, repository functions, Alembic migrations."""
