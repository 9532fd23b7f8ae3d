"""Parley on a real OpenAI-compatible server: llama.cpp's, serving the packaged model.

Only the engine settings change (``PARLEY_ENGINE=openai`` and the server's URL and model);
the console, the conversation service, feedback and /explain are the ones people use. The
faults are real too: the server killed mid-answer, never started, too slow, rate limited.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.console import PROMPT_BOT
from config.settings import Settings
from config.wiring import Parley, build_embedded
from core.responder import APOLOGY
from core.types import ConversationKey, Message, Rating, Reply, ReplyKind, Role, UserRef
from tests.console_process import console_process
from tests.fakes.openai_server import RateLimitingProxy
from tests.llama_server import ALIAS, LlamaServer, free_port

pytestmark = pytest.mark.slow

SAM = UserRef(platform="console", id="sam", display_name="Sam")


def engine_settings(base_url: str, tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "engine": "openai",
        "openai_base_url": base_url,
        "openai_model": ALIAS,
        "openai_context_tokens": 2048,
        "temperature": 0.0,
        "max_new_tokens": 48,
        "sentiment": False,
        "media": False,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def parley(llama_server: LlamaServer, tmp_path: Path) -> Iterator[Parley]:
    built = build_embedded(engine_settings(llama_server.base_url, tmp_path))
    yield built
    built.close()


async def say(parley: Parley, text: str) -> tuple[str, Reply]:
    stream = parley.service.handle(Message(platform="console", chat="sam", user=SAM, text=text))
    shown = "".join([delta async for delta in stream])
    return shown, stream.result


async def test_answers_stream_from_the_server_and_feedback_and_explain_work(
    parley: Parley,
) -> None:
    shown, reply = await say(parley, "What is the capital of France?")
    assert reply.kind is ReplyKind.ANSWER, reply
    assert reply.model_version == ALIAS
    assert "Paris" in shown
    assert reply.answer_id is not None
    answer = parley.store.answer(reply.answer_id)
    assert answer is not None
    assert answer.message.context is not None
    assert answer.message.context.budget_tokens == 2048 - 48

    _, thanks = await say(parley, "/feedback good")
    assert "Thanks" in thanks.text
    assert [f.rating.value for f in parley.store.feedback_for(reply.answer_id)] == ["good"]

    _, explained = await say(parley, "/explain")
    assert ALIAS in explained.text
    assert "prompt tokens" in explained.text


def _console(stdin: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The console on the openai engine, with none of the caller's own settings."""
    return console_process(
        stdin,
        tmp_path / "data",
        "--name",
        "Sam",
        clean=True,
        **{
            "PARLEY_SENTIMENT": "false",
            "PARLEY_MEDIA": "false",
            "PARLEY_ENGINE": "openai",
            "PARLEY_OPENAI_MODEL": ALIAS,
            **env,  # a test may name another model
        },
    )


def test_the_console_chats_through_the_server(llama_server: LlamaServer, tmp_path: Path) -> None:
    script = "Hello!\nWhat is the capital of France?\n/feedback good\n/explain\n/quit\n"
    run = _console(script, tmp_path, PARLEY_OPENAI_BASE_URL=llama_server.base_url)
    assert run.returncode == 0, run.stderr
    assert f"Parley is ready ({ALIAS})" in run.stdout
    answers = run.stdout.split(PROMPT_BOT)[1:]
    assert len(answers) == 4
    assert all(a.strip() and "Sorry" not in a for a in answers[:2])
    assert "Paris" in answers[1]
    assert "Thanks" in answers[2]
    assert "prompt tokens" in answers[3]


def test_a_server_that_is_not_running_is_one_clear_error_at_start(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    run = _console("hello\n", tmp_path, PARLEY_OPENAI_BASE_URL=nowhere)
    assert run.returncode == 2
    assert "Cannot reach the model server" in run.stderr
    assert "PARLEY_OPENAI_BASE_URL" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_model_name_the_server_does_not_serve_is_one_clear_error_at_start(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    run = _console(
        "hello\n",
        tmp_path,
        PARLEY_OPENAI_BASE_URL=llama_server.base_url,
        PARLEY_OPENAI_MODEL="gpt-nope",
    )
    assert run.returncode == 2
    assert f"it serves: {ALIAS}" in run.stderr
    assert "Traceback" not in run.stderr


async def test_a_server_killed_mid_answer_ends_it_with_the_apology_and_answers_again_later(
    own_llama_server: LlamaServer, tmp_path: Path
) -> None:
    settings = engine_settings(
        own_llama_server.base_url, tmp_path, max_new_tokens=400, answer_time_limit_s=60
    )
    parley = build_embedded(settings)
    try:
        stream = parley.service.handle(
            Message(platform="console", chat="sam", user=SAM, text="Tell me a long story.")
        )
        shown = [await anext(stream)]
        own_llama_server.kill()
        shown += [delta async for delta in stream]
        reply = stream.result
        assert reply.kind is ReplyKind.ERROR
        assert reply.text.endswith(APOLOGY)
        assert "".join(shown).endswith(APOLOGY)

        own_llama_server.start()  # back on the same port: the next message is answered
        _, again = await say(parley, "Hello!")
        assert again.kind is ReplyKind.ANSWER
    finally:
        parley.close()


async def test_a_slow_server_is_cut_off_at_the_time_limit(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    # The limit leaves a loaded 2-core machine time for the first token; 200 tokens at 3 s
    # each would take ten minutes, and any answer longer than 10 tokens outlasts the limit
    # (greedy answers vary in length with the per-process canary in the prompt: at 1 s a
    # token, one answer ended by itself after 20 s).
    slow = RateLimitingProxy(llama_server.base_url, limited=0, delay_s=3.0)
    slow.start()
    settings = engine_settings(slow.base_url, tmp_path, max_new_tokens=200, answer_time_limit_s=30)
    parley = build_embedded(settings)
    try:
        started = time.perf_counter()
        shown, reply = await say(parley, "Count from 1 to 100, one number per line.")
        assert 29 < time.perf_counter() - started < 40  # ended by the limit, not the model
        assert reply.kind is ReplyKind.ANSWER, reply  # what came in time is the answer
        assert shown.strip()
        assert reply.answer_id is not None
        answer = parley.store.answer(reply.answer_id)
        assert answer is not None
        assert answer.message.text == shown.strip()
    finally:
        parley.close()
        slow.stop()


async def test_a_429_is_retried_after_what_retry_after_says(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    proxy = RateLimitingProxy(llama_server.base_url, limited=1, retry_after="1")
    proxy.start()
    parley = build_embedded(engine_settings(proxy.base_url, tmp_path))
    try:
        shown, reply = await say(parley, "Hello!")
        assert reply.kind is ReplyKind.ANSWER, reply
        assert shown.strip()
        [refused] = proxy.refused_at
        [forwarded] = proxy.forwarded_at
        assert forwarded - refused >= 1.0
    finally:
        parley.close()
        proxy.stop()


async def test_telegram_answers_through_the_server(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    from tests.fakes.telegram import ADA, FakeTelegram, callback_query, private_message
    from tests.telegram_fixtures import button_data, running, with_buttons

    parley = build_embedded(engine_settings(llama_server.base_url, tmp_path))
    chat = ADA["id"]
    try:
        async with FakeTelegram() as telegram, running(telegram, parley.service):
            telegram.push(private_message("What is the capital of France?"))
            await telegram.wait_until(lambda: with_buttons(telegram, chat), within=120)
            [shown] = with_buttons(telegram, chat)
            telegram.push(callback_query(button_data(shown, "👍"), telegram.as_message(shown)))
            await telegram.wait_until(lambda: telegram.callback_answers, within=30)
            telegram.push(private_message("/explain"))
            await telegram.wait_until(lambda: len(telegram.messages(chat)) >= 2, within=60)
            await telegram.settle(quiet=0.5)
            texts = telegram.texts(chat)
        assert "Paris" in shown.text
        assert texts[-1].startswith(f"My last answer came from {ALIAS}")
        [answer] = [
            t
            for t in parley.store.history(ConversationKey("telegram", None, str(chat)), 10)
            if t.role is Role.ASSISTANT
        ]
        assert answer.model_version == ALIAS
        assert [f.rating for f in parley.store.feedback_for(answer.id)] == [Rating.GOOD]
        assert telegram.errors == []
    finally:
        parley.close()


async def test_slack_answers_through_the_server(llama_server: LlamaServer, tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from bots.slack import build_slack
    from tests.fakes.slack import TEAM, FakeSlack, SlackSender, dm
    from tests.slack_fixtures import GOOD, SECRET, settings_for

    parley = build_embedded(engine_settings(llama_server.base_url, tmp_path))
    try:
        async with FakeSlack() as slack:
            adapter = build_slack(parley.inbox, settings_for(slack), edit_interval=0.05)
            sender = SlackSender(Starlette(routes=adapter.routes()), signing_secret=SECRET)
            assert (await sender.event(dm("What is the capital of France?"))).status_code == 200
            await adapter.drain()
            (answer,) = slack.in_thread("D1", None)
            await sender.press(answer, GOOD, user="U1")
            await adapter.drain()
            await sender.event(dm("/explain"))
            await adapter.drain()
            shown = [m.shown for m in slack.in_thread("D1", None)]
        assert "Paris" in answer.shown
        assert answer.edits >= 1, "the answer grew in place"
        assert shown[-1].startswith(f"My last answer came from {ALIAS}")
        answer_id = int(answer.buttons[0]["value"])
        assert [f.rating for f in parley.store.feedback_for(answer_id)] == [Rating.GOOD]
        stored = parley.store.history(ConversationKey("slack", TEAM, "D1", None), 10)
        assert next(t.model_version for t in stored if t.role is Role.ASSISTANT) == ALIAS
    finally:
        parley.close()


async def test_explain_attributes_with_local_weights_loaded_on_first_use(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    from tests.model_fixtures import MODEL_CACHE
    from workers.remote_explain import LazyModelExplainer

    settings = engine_settings(
        llama_server.base_url,
        tmp_path,
        explain_model="packaged:smollm2-135m-instruct",
        model_cache_dir=MODEL_CACHE,
    )
    parley = build_embedded(settings)
    try:
        explainer = parley.explainer
        assert isinstance(explainer, LazyModelExplainer)
        _, reply = await say(parley, "What is the capital of France?")
        assert reply.kind is ReplyKind.ANSWER
        assert not explainer.loaded  # nothing loaded until someone asks why
        _, explained = await say(parley, "/explain")
        assert explainer.loaded
        assert f"My last answer came from {ALIAS}" in explained.text
        assert "What drove my last answer most" in explained.text
        assert [name for name, _ in explained.attachments] == ["explain.png"]
    finally:
        parley.close()
