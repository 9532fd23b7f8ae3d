"""Parley's persistent store in SQLite (embedded) or PostgreSQL (scaled).

::

    from core.db import SqlStore, create_engine_for, upgrade

    engine = create_engine_for(settings.storage.database_url)  # e.g. sqlite:///data/parley.db
    upgrade(engine)                                    # create or migrate the tables
    store = SqlStore(engine)                           # a core.store.Store

From a shell, ``alembic upgrade head`` in the repository root does what :func:`upgrade`
does, for the database in ``PARLEY_DATABASE_URL``.
"""

from __future__ import annotations

from core.db.engine import create_engine_for, upgrade
from core.db.sql_store import SqlStore

__all__ = ["SqlStore", "create_engine_for", "upgrade"]
