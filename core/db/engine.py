"""Connecting to Parley's database and bringing its tables up to date.

::

    engine = create_engine_for("sqlite:///data/parley.db")
    upgrade(engine)            # alembic upgrade head, from any working directory
    store = SqlStore(engine)

SQLite gets WAL, foreign keys and a busy timeout on every connection, and its writes take
the write lock when they begin (``BEGIN IMMEDIATE``), so concurrent writers wait for each
other instead of failing. Database failures become :class:`core.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from core.errors import ConfigurationError, StoreError

__all__ = [
    "MIGRATION_LOCK",
    "SETTING",
    "WRITE",
    "SqlPart",
    "Transactions",
    "create_engine_for",
    "describe_failure",
    "store_errors",
    "upgrade",
]

SETTING = "PARLEY_DATABASE_URL"
MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE_OPTION = "parley_write"
# Execution options that mark a write transaction (``engine.execution_options(**WRITE)``).
WRITE = {_WRITE_OPTION: True}
BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
DIALECTS = ("postgresql", "sqlite")
MIGRATION_LOCK = 0x5061726C6579  # "Parley": the advisory lock that serialises upgrades


def create_engine_for(url: str | URL) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up the way :class:`SqlStore` needs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(f"{SETTING} is not a database URL") from None
    backend = parsed.get_backend_name()
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver Parley ships
    try:
        if backend == "sqlite":
            _make_parent_folder(parsed)
            engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
            _configure_sqlite(engine)
            return engine
        if backend in ("postgres", "postgresql"):
            libpq = parsed.get_driver_name() in ("psycopg", "psycopg2")
            connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if libpq else {}
            return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        where = parsed.render_as_string(hide_password=True)
        raise ConfigurationError(f"{SETTING}={where} cannot be used: {exc}") from exc
    raise ConfigurationError(f"{SETTING} must name a sqlite or postgresql database, not {backend}")


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (``alembic upgrade head``) in one transaction."""
    engine = target if isinstance(target, Engine) else create_engine_for(target)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    try:
        with store_errors(engine), engine.execution_options(**WRITE).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if engine is not target:
            engine.dispose()


@contextmanager
def store_errors(engine: Engine) -> Iterator[None]:
    """Turn a database failure inside the block into a :class:`StoreError` for the operator."""
    try:
        yield
    except (DBAPIError, PoolTimeoutError) as exc:
        raise StoreError(describe_failure(engine.url, exc)) from exc


class Transactions:
    """One short transaction a call, on one engine: how the SQL store and registry work.

    ``with transactions(write=True) as session:`` commits at the end of the block, or
    rolls back on an exception; a write takes SQLite's write lock when it begins, and a
    database failure raises :class:`StoreError`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**WRITE)

    @contextmanager
    def __call__(self, *, write: bool) -> Iterator[Session]:
        with (
            store_errors(self.engine),
            Session(self._writer if write else self.engine) as session,
            session.begin(),
        ):
            yield session


class SqlPart:
    """A base of every part of :class:`core.db.SqlStore`: one engine, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in DIALECTS:
            raise ConfigurationError(f"Parley cannot store in {engine.dialect.name} databases")
        self._engine = engine
        self._session = Transactions(engine)


def describe_failure(url: URL, exc: Exception) -> str:
    """A one-line account of a database failure that names the setting and hides passwords."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    where = url.render_as_string(hide_password=True)
    return f"The database at {where} cannot be reached or written ({reason}); check {SETTING}."


def _make_parent_folder(url: URL) -> None:
    """Create the folder of a SQLite file so that a fresh install can start."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri"):
        return
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the folder {folder} for {SETTING}: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    """Per-connection pragmas and explicit transactions for SQLite."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module; ``_on_begin`` emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Deleted rows (/forget, retention) are overwritten, not left in free pages.
            cursor.execute("PRAGMA secure_delete = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write that starts as a reader cannot always upgrade its lock once another
        # writer has committed (SQLITE_BUSY, no retry); taking the lock first avoids that.
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
