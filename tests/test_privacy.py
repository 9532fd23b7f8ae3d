"""/forget, /export, retention and redaction, on real SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import String, Text, cast, create_engine, or_, select

from core.db import SqlStore, create_engine_for
from core.db.models import Base
from core.generator import EchoGenerator
from core.limits import LimitOptions, Limits, RedisLimiter
from core.memory import MemoryStore
from core.privacy import (
    EXPORT_NAME,
    LimitsForgetter,
    Privacy,
    RedactingFilter,
    RedisKeysForgetter,
    Retention,
    StoreForgetter,
    install_log_redaction,
)
from core.safety import Safety
from core.store import Store
from core.types import Rating, ReplyKind, Role, utcnow
from tests.factories import make_message, make_service, make_user
from workers.nightly import TrainingFilesForgetter
from workers.training import TrainingOptions, build_dataset, write_dataset


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


async def test_forget_leaves_nothing_in_any_table_redis_key_or_file(
    sql_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    engine = create_engine_for(sql_url)
    store = SqlStore(engine)
    prefix = f"parley-test:{secrets.token_hex(4)}"
    limits = Limits(
        RedisLimiter(redis_client, prefix=prefix),
        LimitOptions(person_per_minute=50, person_tokens_per_day=10_000, chat_per_minute=50),
    )
    streams = f"{prefix}:stream"
    privacy = Privacy(
        store,
        [
            LimitsForgetter(limits),
            RedisKeysForgetter(redis_client, lambda p: [f"{streams}:{i}" for i in p.message_ids]),
            TrainingFilesForgetter(store, tmp_path / "adapters"),
            StoreForgetter(store),
        ],
    )
    service, _, _ = make_service(
        store=store, safety=Safety(limits=limits, redact_stored=True), privacy=privacy
    )
    secret = f"zebra-{secrets.token_hex(6)}"
    ada = make_user("ada-7731", "Ada Quux")
    bob = make_user("bob-1", "Bob")
    for text in (f"my codeword is {secret}", "I live in Lyon", f"note {secret} again"):
        reply = await service.handle(make_message(text, user=ada)).collect()
        assert reply.kind is ReplyKind.ANSWER
        redis_client.set(f"{streams}:{reply.answer_id}", "x")  # an answer's stream
    await service.handle(make_message(f"/profile fact I like {secret}", user=ada)).collect()
    await service.handle(make_message(f"/feedback bad should say {secret}", user=ada)).collect()
    # In a group, Bob's turns stay; Ada's go.
    group = dict(chat="g1", is_group=True)
    await service.handle(make_message(f"group {secret}", user=ada, **group)).collect()  # type: ignore[arg-type]
    kept = await service.handle(make_message("hello group", user=bob, **group)).collect()  # type: ignore[arg-type]
    assert kept.answer_id is not None
    await service.rate(kept.answer_id, ada, Rating.GOOD)
    code = (await service.handle(make_message("/link", user=ada)).collect()).text.split()[4][:-1]
    linked = make_message(f"/link {code}", user=make_user("ada-tg", platform="tg"))
    assert (await service.handle(linked).collect()).text.startswith("Linked")
    assert redis_client.keys(f"{prefix}:*")
    # A nightly run's data files, waiting for training, hold Ada's feedback too.
    options = TrainingOptions(min_new_feedback=1, max_person_share=None)
    training = build_dataset(store.feedback_records(), options)
    write_dataset(training, tmp_path / "adapters" / "ft-1" / "data")
    assert secret in "".join(p.read_text() for p in (tmp_path / "adapters").rglob("*.jsonl"))

    done = await service.handle(make_message("/forget", user=ada)).collect()
    assert done.text.startswith("Done: I deleted everything")

    needles = (secret, "ada-7731", "Ada Quux", "ada-tg", "Lyon")
    scan = create_engine(sql_url)
    with scan.connect() as connection:
        for table in Base.metadata.sorted_tables:
            text_columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            json_columns = [c for c in table.columns if c.type.__class__.__name__ == "JSON"]
            columns = [*text_columns, *(cast(c, Text) for c in json_columns)]
            if not columns:
                continue
            hits = connection.execute(
                select(table).where(
                    or_(*(c.contains(needle) for c in columns for needle in needles))
                )
            ).all()
            assert hits == [], f"{table.name} still holds {hits}"
    scan.dispose()
    left = [k.decode() for k in redis_client.keys(f"{prefix}:*")]
    assert any("bob-1" in k for k in left)  # others' counters stay
    assert not [k for k in left if "ada" in k or '["test",null,"c1"]' in k], left
    # Bob's conversation is intact.
    assert [t.text for t in store.history(make_message("x", chat="g1").key, 10)][-2:] == [
        "hello group",
        "You said: Bob: hello group",
    ]
    engine.dispose()
    files = [f for f in (tmp_path / "adapters").rglob("*") if f.is_file()]
    if sql_url.startswith("sqlite:///"):
        files.extend(Path(sql_url.removeprefix("sqlite:///")).parent.iterdir())
    for file in files:
        data = file.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, f"{file.name} still holds {needle}"


async def test_export_sends_everything_held_as_json(store: Store) -> None:
    service, _, _ = make_service(store=store)
    ada = make_user("ada", "Ada")
    await service.handle(make_message("I'm vegetarian", user=ada)).collect()
    await service.handle(make_message("/feedback good", user=ada)).collect()
    await service.handle(make_message("someone else", user=make_user("bob"), chat="c2")).collect()
    reply = await service.handle(make_message("/export", user=ada)).collect()
    [(name, data)] = reply.attachments
    assert name == EXPORT_NAME
    document = json.loads(data)
    assert document["identities"] == [{"platform": "test", "id": "ada", "display_name": "Ada"}]
    assert [(m["role"], m["text"]) for m in document["messages"]] == [
        ("user", "I'm vegetarian"),
        ("assistant", "You said: I'm vegetarian"),
    ]
    assert [f["rating"] for f in document["feedback"]] == ["good"]
    assert (
        document["profile"]["facts"][0]["text"].lower().startswith("i'm vegetarian")
        or (document["profile"]["facts"])
    )
    assert "someone else" not in data.decode()
    in_group = await service.handle(make_message("/export", user=ada, is_group=True)).collect()
    assert in_group.attachments == ()
    assert "private chat" in in_group.text


async def test_stored_text_is_redacted_once_answered(store: Store) -> None:
    generator = EchoGenerator()
    service, _, _ = make_service(
        store=store, generator=generator, safety=Safety(redact_stored=True)
    )
    text = "Mail me at ada.lovelace@example.org or call +44 20 7946 0958, card 4111 1111 1111 1111"
    reply = await service.handle(make_message(text)).collect()
    # The model saw the message as written, and the person sees its answer as written.
    assert generator.requests[0].turns[-1].content == text
    assert "ada.lovelace@example.org" in reply.text
    stored = [t.text for t in store.history(make_message("x").key, 10)]
    assert stored == [
        "Mail me at [email] or call [phone], card [card]",
        "You said: Mail me at [email] or call [phone], card [card]",
    ]
    await service.handle(make_message("and now?")).collect()
    later = generator.requests[1].turns
    assert all("example.org" not in t.content for t in later)  # history is the redacted text


async def test_retention_purges_old_conversations(store: Store) -> None:
    service, _, _ = make_service(store=store)
    await service.handle(make_message("old question")).collect()
    retention = Retention(store, days=30)
    assert retention.run() == 0
    assert store.purge_before(utcnow() + timedelta(seconds=1)) == 2
    assert store.history(make_message("x").key, 10) == []
    assert Retention(MemoryStore(), days=0).run() == 0
    await service.handle(make_message("new question")).collect()
    assert [t.role for t in store.history(make_message("x").key, 10)] == [
        Role.USER,
        Role.ASSISTANT,
    ]


def test_log_lines_carry_no_personal_data(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("parley.test.privacy")
    install_log_redaction(caplog.handler)
    assert any(isinstance(f, RedactingFilter) for f in caplog.handler.filters)
    with caplog.at_level(logging.INFO, logger=log.name):
        log.warning("user wrote %s", "ada@example.org and +1 (415) 555-2671")
        log.warning("key sk-proj-abcdefghijklmnopqrstuvwx leaked, IBAN GB82 WEST 1234 5698 7654 32")
        try:
            raise ValueError("card 4111-1111-1111-1111 refused")
        except ValueError:
            log.exception("payment failed")
    text = caplog.text
    for raw in ("ada@example.org", "555-2671", "sk-proj-abc", "GB82", "4111-1111"):
        assert raw not in text
    for placeholder in ("[email]", "[phone]", "[secret]", "[iban]", "[card]"):
        assert placeholder in text
    caplog.handler.filters.clear()


async def test_export_arrives_as_a_json_document_on_telegram() -> None:
    from tests.fakes.telegram import ADA, FakeTelegram, private_message
    from tests.telegram_fixtures import replied, running

    service, _, _ = make_service()
    async with FakeTelegram() as telegram, running(telegram, service):
        telegram.push(private_message("I live in Lyon"))
        await replied(telegram, ADA["id"], 1)
        telegram.push(private_message("/export"))
        await telegram.wait_until(lambda: bool(telegram.documents(ADA["id"])))
        [document] = telegram.documents(ADA["id"])
        assert telegram.photos(ADA["id"]) == []
    assert document.filename == EXPORT_NAME
    data = json.loads(document.data)
    assert data["messages"][0]["text"] == "I live in Lyon"


async def test_export_is_uploaded_as_a_file_in_a_slack_dm() -> None:
    from tests.fakes.slack import FakeSlack
    from tests.slack_fixtures import harness

    async with FakeSlack() as slack:
        h = harness(slack, replies=["Noted."])
        await h.send(
            {
                "type": "message",
                "channel_type": "im",
                "channel": "D1",
                "user": "U1",
                "text": "I live in Lyon",
                "ts": "1700000000.000100",
            }
        )
        await h.command("export", channel="D1")
        [shared] = slack.files_in("D1", None)
    assert shared.filename == EXPORT_NAME
    assert json.loads(shared.data)["messages"][0]["text"] == "I live in Lyon"
