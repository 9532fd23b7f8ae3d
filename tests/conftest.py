"""Shared fixtures. Each section belongs to one area; keep additions in their own section."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

from core.db import SqlStore, create_engine_for, upgrade
from core.memory import MemoryStore
from core.store import Store

# Property tests explore new examples on developers' machines; CI replays a fixed set, so
# that a submission's verdict never depends on the draw. (Failures found locally are kept
# in .hypothesis/ and replayed first.)
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# ---------------------------------------------------------------------------------------
# Stores: one suite, three backends (memory, a SQLite file, a fresh PostgreSQL database).
#
# PostgreSQL tests use the server at PARLEY_TEST_POSTGRES_URL and are skipped when it is
# unreachable, unless PARLEY_REQUIRE_SERVICES=1 makes that a failure (CI).
# ---------------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL server, for creating databases."""
    engine = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        cause = str(exc.orig).strip().splitlines()[0]
        reason = f"PostgreSQL at {where} (PARLEY_TEST_POSTGRES_URL) is unreachable: {cause}"
        if os.environ.get("PARLEY_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_server: Engine) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database, dropped after the test."""
    name = f"parley_test_{secrets.token_hex(6)}"
    with postgres_server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = postgres_server.url.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with postgres_server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a migrated SQLite file in a folder that did not exist before."""
    path = tmp_path_factory.mktemp("store") / "data" / "parley.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database on each SQL backend."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """An empty store on each backend: the suite that keeps them interchangeable."""
    if request.param == "memory":
        yield MemoryStore()
        return
    engine = create_engine_for(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield SqlStore(engine)
    finally:
        engine.dispose()


# ------------------------------------ end of stores ------------------------------------


# ---------------------------------------------------------------------------------------
# Redis: the server at PARLEY_TEST_REDIS_URL, shared; tests use key prefixes of their own.
# Skipped when unreachable, unless PARLEY_REQUIRE_SERVICES=1 makes that a failure (CI).
# ---------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the shared test Redis server."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        reason = f"Redis at {REDIS_URL} (PARLEY_TEST_REDIS_URL) is unreachable: {exc}"
        if os.environ.get("PARLEY_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    yield client
    client.close()


# ---------------------------------------------------------------------------------------
# The real packaged model, loaded once per session (tests/model_fixtures.py).
# ---------------------------------------------------------------------------------------

# A real OpenAI-compatible server: llama.cpp's, serving the packaged GGUF (tests/llama_server.py).
from tests.llama_server import llama_server, own_llama_server  # noqa: E402
from tests.model_fixtures import generator, test_settings  # noqa: E402

# ---------------------------------------------------------------------------------------
# Local fake chat platforms (tests/telegram_fixtures.py, tests/slack_fixtures.py).
# ---------------------------------------------------------------------------------------
from tests.slack_fixtures import slack  # noqa: E402
from tests.telegram_fixtures import telegram  # noqa: E402

__all__ = ["generator", "llama_server", "own_llama_server", "slack", "telegram", "test_settings"]
