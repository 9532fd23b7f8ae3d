"""Alembic environment for Parley's database, used by :func:`core.db.upgrade` and the CLI.

The database comes from, in order: a connection passed in ``config.attributes["connection"]``,
a URL in ``config.attributes["url"]``, the ``sqlalchemy.url`` option of ``alembic.ini``,
the ``PARLEY_DATABASE_URL`` environment variable, and finally ``sqlite:///data/parley.db``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from core.db.engine import MIGRATION_LOCK, SETTING, WRITE, create_engine_for
from core.db.models import Base, UTCDateTime

DEFAULT_URL = "sqlite:///data/parley.db"

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """The URL to migrate when no connection was passed in."""
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    return str(url or os.environ.get(SETTING) or DEFAULT_URL)


def render_item(kind: str, obj: Any, _context: Any) -> str | Literal[False]:
    """Render Parley's own column types as plain SQLAlchemy ones in new revisions."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_offline() -> None:
    """Write the migration SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=database_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    """Run the migrations on a connection, inside its transaction."""
    if connection.dialect.name == "postgresql":
        # Processes starting together (bot, workers) migrate one after the other.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Migrate the database this environment was given."""
    if context.is_offline_mode():
        run_offline()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_online(connection)
        return
    engine = create_engine_for(database_url())
    try:
        with engine.execution_options(**WRITE).begin() as connection:
            run_online(connection)
    finally:
        engine.dispose()


main()
