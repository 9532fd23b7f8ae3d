"""Isolation: one person's or chat's context, profile and feedback never reach another's.

Many people talk at once, each planting unique secrets in their private chat, their
profile and their feedback, and a secret per group chat. Every prompt the model received
and every answer anyone got is then checked against everybody else's secrets.
"""

from __future__ import annotations

import asyncio
import secrets

from core.db import SqlStore, create_engine_for
from core.generator import EchoGenerator
from core.types import Reply
from tests.factories import make_message, make_service, make_user

PEOPLE = 24
GROUPS = 4


async def test_no_secret_crosses_people_or_chats(sqlite_url: str) -> None:
    engine = create_engine_for(sqlite_url)
    store = SqlStore(engine)
    generator = EchoGenerator()
    service, _, _ = make_service(store=store, generator=generator, prompt_budget=400)
    people = [make_user(f"p{i}", f"Person {i}") for i in range(PEOPLE)]
    private = {p.id: f"priv{secrets.token_hex(5)}" for p in people}
    profile = {p.id: f"prof{secrets.token_hex(5)}" for p in people}
    feedback = {p.id: f"corr{secrets.token_hex(5)}" for p in people}
    group_of = {p.id: f"group{i % GROUPS}" for i, p in enumerate(people)}
    group_secret = {f"group{g}": f"grp{secrets.token_hex(5)}" for g in range(GROUPS)}
    replies: list[tuple[str, str, Reply]] = []  # (person, chat, reply)

    async def talk(person_index: int) -> None:
        user = people[person_index]
        mine, group = f"dm-{user.id}", group_of[user.id]

        async def say(text: str, chat: str) -> None:
            message = make_message(text, user=user, chat=chat, is_group=chat == group)
            replies.append((user.id, chat, await service.handle(message).collect()))
            await asyncio.sleep(0)

        await say(f"remember the code {private[user.id]}", mine)
        await say(f"/profile fact my badge is {profile[user.id]}", mine)
        await say(f"/feedback bad it should have said {feedback[user.id]}", mine)
        if person_index < GROUPS:  # the first member of each group plants its secret
            await say(f"the group password is {group_secret[group]}", group)
        await say("what do you know about me?", mine)
        await say("and what was said here?", group)
        await say("what is my code?", mine)

    await asyncio.gather(*(talk(i) for i in range(PEOPLE)))

    everything = {*private.values(), *profile.values(), *feedback.values(), *group_secret.values()}

    def allowed(person: str, chat: str) -> set[str]:
        mine = {private[person], profile[person]}
        return mine | ({group_secret[chat]} if chat in group_secret else set())

    assert len(generator.requests) == PEOPLE * 4 + GROUPS
    for request in generator.requests:
        asked = store.message(int(request.request_id or 0))
        assert asked is not None
        assert asked.user is not None
        prompt = "\n".join(turn.content for turn in request.turns)
        chat = _chat_of(store, asked.id)
        forbidden = everything - allowed(asked.user.id, chat)
        leaked = [s for s in forbidden if s in prompt]
        assert leaked == [], f"prompt for {asked.user.id} in {chat} holds {leaked}"
    for person, chat, reply in replies:
        forbidden = everything - allowed(person, chat)
        leaked = [s for s in forbidden if s in reply.text]
        assert leaked == [], f"reply to {person} in {chat} holds {leaked}"
    # And each person's own secrets did reach their own prompts (the test can fail).
    own = [r.text for p, c, r in replies if p == "p0" and c == "dm-p0" and "code" in r.text.lower()]
    assert any(private["p0"] in text for text in own)
    assert any(profile["p0"] in "\n".join(t.content for t in r.turns) for r in generator.requests)
    engine.dispose()


def _chat_of(store: SqlStore, message_id: int) -> str:
    """The chat a stored message belongs to."""
    from sqlalchemy import select

    from core.db.models import ConversationRow, MessageRow

    with store._session(write=False) as s:
        return str(
            s.scalar(
                select(ConversationRow.chat)
                .join(MessageRow, MessageRow.conversation_id == ConversationRow.id)
                .where(MessageRow.id == message_id)
            )
        )
