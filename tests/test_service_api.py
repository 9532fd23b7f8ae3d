"""What the inbox and the commands call on the service: buttons, profile, forget."""

from __future__ import annotations

from dataclasses import replace

from core.types import Rating, ReplyKind, Role, UserProfile
from tests.factories import make_message, make_service, make_user


async def test_buttons_rate_the_exact_answer_and_replace() -> None:
    service, store, _ = make_service()
    first = await service.handle(make_message("one")).collect()
    await service.handle(make_message("two")).collect()
    assert first.answer_id is not None
    ann, bob = make_user("ann"), make_user("bob")
    assert "helpful" in (await service.rate(first.answer_id, ann, Rating.GOOD)).text
    await service.rate(first.answer_id, ann, Rating.BAD)
    await service.rate(first.answer_id, bob, Rating.GOOD)
    ratings = {f.user.id: f.rating for f in store.feedback_for(first.answer_id)}
    assert ratings == {"ann": Rating.BAD, "bob": Rating.GOOD}
    missing = await service.rate(10_000, ann, Rating.GOOD)
    assert "can't find" in missing.text


async def test_media_gets_an_explanation_without_the_model() -> None:
    service, _, generator = make_service()
    message = make_message("look at this")
    message = replace(message, media=("photo",))
    reply = await service.handle(message).collect()
    assert "photo" in reply.text
    assert "caption" in reply.text
    assert generator.requests == []


async def test_profile_show_set_and_clear() -> None:
    service, store, generator = make_service()
    assert "don't know anything" in (await service.handle(make_message("/profile")).collect()).text
    await service.handle(make_message("/profile name Ada")).collect()
    reply = await service.handle(make_message("/profile length short")).collect()
    assert "name: Ada" in reply.text
    assert "length: short" in reply.text
    assert store.profile(make_user()) == UserProfile(
        display_name="Ada", preferences={"length": "short"}
    )
    await service.handle(make_message("hello")).collect()
    system = generator.requests[-1].turns[0].content
    assert "The user's name is Ada." in system
    assert "Keep your answers short" in system
    await service.handle(make_message("/profile clear length")).collect()
    assert store.profile(make_user()).preferences == {}
    await service.handle(make_message("/profile clear")).collect()
    assert store.profile(make_user()).is_empty()
    assert "Usage" in (await service.handle(make_message("/profile shoe size 9")).collect()).text


async def test_forget_removes_the_person() -> None:
    service, store, _ = make_service()
    await service.handle(make_message("/profile name Ada")).collect()
    answer = await service.handle(make_message("my secret is 1234")).collect()
    await service.handle(make_message("/feedback good")).collect()
    reply = await service.handle(make_message("/forget")).collect()
    assert reply.kind is ReplyKind.NOTICE
    assert "deleted" in reply.text
    assert store.history(make_message("x").key, 50) == []
    assert answer.answer_id is not None
    assert store.answer(answer.answer_id) is None
    assert store.profile(make_user()).is_empty()
    # And Parley goes on working for them.
    again = await service.handle(make_message("hello again")).collect()
    assert again.kind is ReplyKind.ANSWER
    assert [t.role for t in store.history(make_message("x").key, 50)] == [Role.USER, Role.ASSISTANT]


async def test_notices_spell_commands_the_platform_way() -> None:
    service, _, _ = make_service()
    on_slack = make_message("/help", user=make_user(platform="slack"))
    text = (await service.handle(on_slack).collect()).text
    assert "/parley feedback" in text
    assert "\n/feedback" not in text
    on_telegram = make_message("/help", user=make_user(platform="telegram"))
    assert "/parley" not in (await service.handle(on_telegram).collect()).text
