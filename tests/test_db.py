"""The SQL store's own duties: persistence, migrations, connection set-up and failures.

The behaviour it shares with MemoryStore is tested in tests/test_store.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from core.db import SqlStore, create_engine_for, upgrade
from core.db.engine import WRITE, describe_failure
from core.db.models import Base, ProfileRow, UserRow
from core.errors import ConfigurationError, StoreError
from core.types import (
    Answer,
    ConversationKey,
    Fact,
    Feedback,
    Rating,
    Role,
    UserProfile,
    UserRef,
)

REPO = Path(__file__).resolve().parent.parent
KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
OTHER = ConversationKey("telegram", None, "-100200", None)
ANN = UserRef("slack", "U1", "Ann")
BOB = UserRef("slack", "U2", "Bob")
CAROL = UserRef("telegram", "42", "Carol")


def test_everything_survives_a_new_engine(database_url: str) -> None:
    engine = create_engine_for(database_url)
    first = SqlStore(engine)
    first.append(KEY, Role.USER, "hi", user=ANN)
    answer = first.append(KEY, Role.ASSISTANT, "hello", model_version="v1")
    first.reset(KEY)
    later = first.append(KEY, Role.USER, "after the reset", user=ANN)
    feedback = Feedback(answer_id=answer.id, user=BOB, rating=Rating.BAD, correction="No.")
    first.save_feedback(feedback)
    profile = UserProfile(
        display_name="Bob",
        facts=(Fact("vegetarian"), Fact("has a cat", 0.7, answer.id, learned=True)),
        learn_facts=False,
    )
    first.save_profile(BOB, profile)
    first.redeem_link_code(first.create_link_code(BOB), CAROL)
    engine.dispose()

    engine = create_engine_for(database_url)
    second = SqlStore(engine)
    assert second.history(KEY, 10) == [later]
    assert second.answer(answer.id) == Answer(message=answer, conversation=KEY)
    assert second.feedback_for(answer.id) == [feedback]
    assert second.profile(BOB) == profile
    assert second.profile(CAROL) == profile
    assert second.linked_identities(CAROL) == [CAROL, BOB]
    assert second.append(KEY, Role.USER, "again", user=ANN).id > later.id
    engine.dispose()


def test_people_are_stored_once_and_keep_their_latest_name(database_url: str) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    store.append(KEY, Role.USER, "hi", user=ANN)
    store.append(OTHER, Role.USER, "hi", user=UserRef(ANN.platform, ANN.id, "Annie"))
    store.append(OTHER, Role.USER, "hi", user=UserRef(ANN.platform, ANN.id))  # no name given

    with engine.connect() as connection:
        names = connection.execute(select(UserRow.display_name)).scalars().all()
    engine.dispose()
    assert names == ["Annie"]


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    upgrade(database_url)  # a second upgrade finds nothing to do
    engine = create_engine_for(database_url)
    script = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini")))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == script.get_current_head()
    engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """``alembic downgrade revision`` on the database at ``url``, in one transaction."""
    engine = create_engine_for(url)
    config = Config(str(REPO / "alembic.ini"))
    with engine.execution_options(**WRITE).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    engine.dispose()


def test_0002_downgrades_and_upgrades_keeping_every_message_and_feedback(
    database_url: str,
) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    question = store.append(KEY, Role.USER, "hi", user=ANN, platform_message_id="1")
    answer = store.append(KEY, Role.ASSISTANT, "hello", model_version="v1")
    feedback = Feedback(answer_id=answer.id, user=BOB, rating=Rating.GOOD)
    store.save_feedback(feedback)
    store.claim_event("slack", "Ev1")

    downgrade(database_url, "0001")
    assert "events" not in inspect(engine).get_table_names()
    with engine.connect() as connection:  # today's store cannot read revision 0001
        kept = connection.execute(text("SELECT id, user_id FROM messages ORDER BY id")).all()
        given = connection.execute(text("SELECT answer_id, rating FROM feedback")).all()
    assert [row.id for row in kept] == [question.id, answer.id]
    assert kept[0].user_id is not None
    assert given == [(answer.id, "good")]

    upgrade(database_url)
    assert store.history(KEY, 10) == [question, answer]
    assert store.feedback_for(answer.id) == [feedback]
    assert store.claim_event("slack", "Ev1") is True
    engine.dispose()


def test_0003_reads_old_profiles_and_downgrades_keeping_each_identitys_profile(
    database_url: str,
) -> None:
    downgrade(database_url, "0002")
    engine = create_engine_for(database_url)
    with engine.execution_options(**WRITE).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, platform, platform_user_id, display_name, created_at)"
                " VALUES (7, 'slack', 'U2', 'Bob', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO profiles (user_id, language, preferences, facts, updated_at)"
                """ VALUES (7, 'fr', '{}', '["vegetarian", "likes jazz"]', CURRENT_TIMESTAMP)"""
            )
        )

    upgrade(database_url)
    store = SqlStore(engine)
    old = UserProfile(language="fr", facts=(Fact("vegetarian"), Fact("likes jazz")))
    assert store.profile(BOB) == old
    assert store.linked_identities(BOB) == [BOB]
    learned = Fact("has a cat", 0.8, 12, learned=True)
    store.save_profile(BOB, replace(old, facts=(*old.facts, learned), learn_facts=False))
    assert store.redeem_link_code(store.create_link_code(BOB), CAROL) == BOB

    downgrade(database_url, "0002")
    assert "link_codes" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        rows = connection.execute(
            select(UserRow.platform_user_id, ProfileRow.facts).join(
                ProfileRow, ProfileRow.user_id == UserRow.id
            )
        ).all()
    facts = ["vegetarian", "likes jazz", "has a cat"]
    assert sorted(rows) == [(CAROL.id, facts), (BOB.id, facts)]  # each keeps a copy

    upgrade(database_url)
    assert store.profile(CAROL) == replace(old, facts=tuple(Fact(t) for t in facts))
    assert store.linked_identities(CAROL) == [CAROL]
    engine.dispose()


def test_ids_of_forgotten_messages_are_never_given_again(database_url: str) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    store.append(KEY, Role.USER, "hi", user=ANN)
    private = ConversationKey("telegram", None, "42", None)
    store.append(private, Role.USER, "hello", user=CAROL)
    last = store.append(private, Role.ASSISTANT, "hi Carol")
    store.forget(CAROL)

    # Feedback buttons still name the forgotten answer; no new message may take its id.
    assert store.append(KEY, Role.ASSISTANT, "later").id > last.id
    assert store.answer(last.id) is None
    engine.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "parley.db"
    engine = create_engine_for(f"sqlite:///{path}")
    upgrade(engine)

    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.scalar(select(func.count()).select_from(UserRow)) == 0
    engine.dispose()
    assert path.is_file()


def test_the_alembic_command_migrates_the_database_in_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "cli" / "parley.db"
    env = {**os.environ, "PARLEY_DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )

    engine = create_engine_for(f"sqlite:///{path}")
    assert SqlStore(engine).append(KEY, Role.USER, "hi", user=ANN).id == 1
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://parley:s3cret@127.0.0.1:1/parley",
        "postgresql://parley:s3cret@127.0.0.1:1/x",
    ],
)
def test_an_unreachable_database_raises_store_error_naming_the_setting(url: str) -> None:
    engine = create_engine_for(url)
    store = SqlStore(engine)

    for attempt in (lambda: store.history(KEY, 5), lambda: store.append(KEY, Role.USER, "hi")):
        with pytest.raises(StoreError, match="PARLEY_DATABASE_URL") as raised:
            attempt()
        assert "s3cret" not in str(raised.value)
        assert "127.0.0.1:1" in str(raised.value)
    with pytest.raises(StoreError, match="PARLEY_DATABASE_URL"):
        upgrade(url)
    engine.dispose()


def test_failure_messages_never_show_the_password() -> None:
    url = make_url("postgresql+psycopg://parley:s3cret@db.example/parley")
    message = describe_failure(url, RuntimeError("login with s3cret refused\nmore detail"))

    assert message == (
        "The database at postgresql+psycopg://parley:***@db.example/parley cannot be reached"
        " or written (login with *** refused); check PARLEY_DATABASE_URL."
    )


def test_a_sqlite_file_that_cannot_be_created_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")

    with pytest.raises(StoreError, match="PARLEY_DATABASE_URL"):
        create_engine_for(f"sqlite:///{tmp_path / 'taken' / 'parley.db'}")


@pytest.mark.parametrize("url", ["not a url", "mysql+pymysql://parley@localhost/parley"])
def test_an_unusable_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="PARLEY_DATABASE_URL"):
        create_engine_for(url)
