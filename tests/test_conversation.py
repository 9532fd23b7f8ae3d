"""The conversation service with the memory store and the echo generator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.conversation import APOLOGY
from core.errors import GenerationError, StoreError
from core.generator import EchoGenerator, GenerationRequest, GenerationResult
from core.memory import MemoryStore
from core.streaming import Streamed
from core.types import Rating, ReplyKind, Role, StoredMessage
from tests.factories import make_message, make_service, make_user


async def test_answer_streams_and_is_stored_with_its_context() -> None:
    service, store, _generator = make_service()
    stream = service.handle(make_message("hello there"))
    deltas = [d async for d in stream]
    reply = stream.result
    assert reply.kind is ReplyKind.ANSWER
    assert "".join(deltas) == reply.text == "You said: hello there"
    assert len(deltas) > 1
    history = store.history(make_message("x").key, 10)
    assert [(t.role, t.text) for t in history] == [
        (Role.USER, "hello there"),
        (Role.ASSISTANT, reply.text),
    ]
    assert history[1].id == reply.answer_id
    assert history[1].model_version == "echo-1"
    assert history[1].context is not None
    assert history[1].context.turns[-1].content == "hello there"


async def test_second_turn_sees_the_first() -> None:
    service, _, generator = make_service()
    await service.handle(make_message("one")).collect()
    await service.handle(make_message("two")).collect()
    contents = [t.content for t in generator.requests[-1].turns]
    assert contents[1:] == ["one", "You said: one", "two"]


async def test_conversations_are_kept_apart() -> None:
    service, _, generator = make_service()
    await service.handle(make_message("in chat one", chat="1")).collect()
    await service.handle(make_message("in a thread", chat="1", thread="t")).collect()
    await service.handle(make_message("in chat two", chat="2")).collect()
    for request in generator.requests:
        assert len(request.turns) == 2  # system prompt and the message itself


async def test_reset_starts_a_fresh_context() -> None:
    service, _, generator = make_service()
    await service.handle(make_message("remember me")).collect()
    reply = await service.handle(make_message("/reset")).collect()
    assert reply.kind is ReplyKind.NOTICE
    await service.handle(make_message("who am I?")).collect()
    assert [t.content for t in generator.requests[-1].turns][1:] == ["who am I?"]


async def test_feedback_on_the_last_answer_is_stored_and_replaced() -> None:
    service, store, _ = make_service()
    answer = await service.handle(make_message("2+2?")).collect()
    await service.handle(make_message("/feedback good")).collect()
    reply = await service.handle(make_message("/feedback bad It is 4.")).collect()
    assert "correction" in reply.text
    assert answer.answer_id is not None
    [feedback] = store.feedback_for(answer.answer_id)
    assert feedback.rating is Rating.BAD
    assert feedback.correction == "It is 4."
    assert feedback.user == make_user()


async def test_feedback_without_answer_or_with_bad_args_explains() -> None:
    service, _, _ = make_service()
    assert "no answer" in (await service.handle(make_message("/feedback good")).collect()).text
    await service.handle(make_message("hi")).collect()
    assert "Usage" in (await service.handle(make_message("/feedback maybe")).collect()).text


async def test_explain_lists_what_went_into_the_prompt() -> None:
    service, _, _ = make_service()
    nothing = await service.handle(make_message("/explain")).collect()
    assert "nothing to explain" in nothing.text
    await service.handle(make_message("first question")).collect()
    await service.handle(make_message("second question")).collect()
    text = (await service.handle(make_message("/explain")).collect()).text
    assert "echo-1" in text
    assert "first question" in text
    assert "second question" in text
    assert "instructions" in text


async def test_explain_reports_dropped_turns() -> None:
    service, _, _ = make_service(prompt_budget=40)
    for i in range(6):
        await service.handle(make_message(f"question number {i} with several words")).collect()
    text = (await service.handle(make_message("/explain")).collect()).text
    assert "left out" in text


@pytest.mark.parametrize("text", ["", "   ", "\n"])
async def test_empty_message_gets_a_hint(text: str) -> None:
    service, _, generator = make_service()
    reply = await service.handle(make_message(text)).collect()
    assert "empty" in reply.text
    assert generator.requests == []


async def test_unknown_command_gets_help() -> None:
    service, _, generator = make_service()
    reply = await service.handle(make_message("/frobnicate now")).collect()
    assert "/frobnicate" in reply.text
    assert "/help" in reply.text
    assert generator.requests == []


async def test_huge_message_is_refused_before_the_model() -> None:
    service, _store, generator = make_service(max_message_chars=100)
    reply = await service.handle(make_message("x" * 1_000_000)).collect()
    assert reply.kind is ReplyKind.ERROR
    assert "too long" in reply.text
    assert generator.requests == []


async def test_message_over_the_token_budget_is_refused_clearly() -> None:
    service, _, generator = make_service(prompt_budget=30)
    reply = await service.handle(make_message("word " * 100)).collect()
    assert reply.kind is ReplyKind.ERROR
    assert "too long" in reply.text
    assert generator.requests == []


async def test_model_failure_gives_one_apology_and_keeps_the_message() -> None:
    service, store, _ = make_service(generator=EchoGenerator(fail_with=GenerationError("oom")))
    stream = service.handle(make_message("hello"))
    deltas = [d async for d in stream]
    assert stream.result.kind is ReplyKind.ERROR
    assert deltas == [APOLOGY]
    assert [t.text for t in store.history(make_message("x").key, 10)] == ["hello"]


async def test_help_lists_commands() -> None:
    service, _, _ = make_service()
    text = (await service.handle(make_message("/help")).collect()).text
    for command in ("/help", "/reset", "/feedback", "/explain"):
        assert command in text


async def test_store_failure_gives_one_apology() -> None:
    class BrokenStore(MemoryStore):
        def append(self, *args: object, **kwargs: object) -> StoredMessage:  # type: ignore[override]
            raise StoreError("database is down (PARLEY_DATABASE_URL)")

    service, _, generator = make_service(store=BrokenStore())
    reply = await service.handle(make_message("hello")).collect()
    assert reply.kind is ReplyKind.ERROR
    assert reply.text == APOLOGY
    assert generator.requests == []


async def test_failure_mid_answer_continues_with_an_apology() -> None:
    class HalfGenerator(EchoGenerator):
        def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
            async def run() -> AsyncIterator[str | GenerationResult]:
                yield "The answer is"
                raise GenerationError("out of memory")

            return Streamed(run())

    service, store, _ = make_service(generator=HalfGenerator())
    stream = service.handle(make_message("hello"))
    deltas = [d async for d in stream]
    assert deltas == ["The answer is", "\n\n" + APOLOGY]
    assert stream.result.kind is ReplyKind.ERROR
    assert stream.result.text == "".join(deltas)
    history = store.history(make_message("x").key, 10)
    assert [(t.role, t.text) for t in history] == [
        (Role.USER, "hello"),
        (Role.ASSISTANT, "The answer is"),
    ]


async def test_an_answer_stopped_by_the_reader_keeps_what_was_shown() -> None:
    service, store, generator = make_service(
        generator=EchoGenerator(replies=["one two three four five"])
    )
    stream = service.handle(make_message("count"))
    seen = [await anext(stream), await anext(stream)]
    await stream.aclose()
    history = store.history(make_message("x").key, 10)
    assert [t.text for t in history] == ["count", "".join(seen).strip()]
    reply = await service.handle(make_message("/feedback bad Too short")).collect()
    assert "correction" in reply.text
    assert store.feedback_for(history[1].id)[0].correction == "Too short"
    await service.handle(make_message("next")).collect()
    assert [t.content for t in generator.requests[-1].turns][1:] == ["count", "one two", "next"]


async def test_the_platform_name_enters_the_prompt() -> None:
    service, _, generator = make_service()
    await service.handle(make_message("hi", user=make_user(name="Ada"))).collect()
    assert "The user's name is Ada." in generator.requests[0].turns[0].content
