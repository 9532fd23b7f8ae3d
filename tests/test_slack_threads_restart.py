"""Slack threads Parley takes part in are stored: a follow-up is answered after a restart.

Parley answers a mention in a channel thread; the adapter is then built anew (a new process:
a new app object, nothing in memory) over the same database, and a reply in that thread
without a mention is answered, as it was before the restart. A thread Parley never answered
in stays unanswered.
"""

from __future__ import annotations

from core.db import SqlStore, create_engine_for
from core.memory import MemoryStore
from core.store import Store
from tests.fakes.slack import BOT_USER, FakeSlack, app_mention, dm, next_ts
from tests.slack_fixtures import Harness, harness


def follow_up(text: str, thread: str) -> dict[str, object]:
    """A reply in a channel thread that does not mention Parley."""
    return {**dm(text, channel="C1"), "channel_type": "channel", "thread_ts": thread}


def reopened(url: str) -> Store:
    """The store as a new process opens it: a new engine over the same database."""
    return SqlStore(create_engine_for(url))


async def mentioned(slack: FakeSlack, database_url: str) -> tuple[Harness, str]:
    """Parley over the database, asked in a channel: it and the thread its answer opens."""
    before = harness(slack, replies=["First answer."], store=reopened(database_url))
    mention = app_mention(f"<@{BOT_USER}> what is up?")
    await before.send(mention)
    return before, str(mention["ts"])


async def test_a_thread_follow_up_is_answered_after_a_restart(
    slack: FakeSlack, database_url: str
) -> None:
    before, root = await mentioned(slack, database_url)
    assert [m.shown for m in slack.in_thread("C1", root)] == ["First answer."]
    await before.adapter.stop()

    after = harness(slack, replies=["Second answer."], store=reopened(database_url))
    await after.send(follow_up("and why?", root))
    await after.send(follow_up("chatter elsewhere", next_ts()))
    assert [m.shown for m in slack.in_thread("C1", root)] == ["First answer.", "Second answer."]
    assert len(slack.posted("C1")) == 2, "a thread Parley never answered in is left alone"


async def test_without_the_stored_thread_the_follow_up_is_not_answered(
    slack: FakeSlack, database_url: str
) -> None:
    _before, root = await mentioned(slack, database_url)
    # A process over another (empty) store never heard of the thread: a follow-up is chatter.
    elsewhere = harness(slack, replies=["Second answer."], store=MemoryStore())
    await elsewhere.send(follow_up("and why?", root))
    assert [m.shown for m in slack.in_thread("C1", root)] == ["First answer."]
