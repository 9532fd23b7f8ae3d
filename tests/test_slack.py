"""Parley on Slack: the real slack-bolt and slack_sdk against a local fake Slack.

Every request is signed like Slack signs it and posted to the adapter's Starlette route;
every Web API call goes over HTTP to :class:`tests.fakes.slack_server.FakeSlack`, whose
record of each message is what the person would finally see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from bots.slack import SlackAdapter, build_slack
from config.settings import Settings
from core.errors import ConfigurationError, StoreError
from core.explanation import Explainer
from core.generator import EchoGenerator, FinishReason, GenerationRequest, GenerationResult
from core.memory import MemoryStore
from core.store import Store
from core.types import ConversationKey, Rating, Role
from tests.factories import make_service
from tests.fakes.explainer import LINE, PictureExplainer
from tests.fakes.slack_server import (
    BOT_ID,
    BOT_SCOPES,
    BOT_USER,
    TEAM,
    FakeSlack,
    SentMessage,
    SlackSender,
    app_mention,
    dm,
    event_callback,
    next_ts,
    sign,
)

SECRET = "test-signing-secret"
GOOD, BAD = "parley_feedback_good", "parley_feedback_bad"
REPO = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class PacedGenerator(EchoGenerator):
    """The echo generator with a pause before each word, so that streaming shows."""

    delay: float = 0.01

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        text = self.replies.pop(0) if self.replies else "a paced answer"
        words = text.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(self.delay)
            yield word if i == 0 else " " + word
        yield GenerationResult(
            text=text,
            model_version=self.model_version,
            prompt_tokens=1,
            completion_tokens=len(words),
            finish_reason=FinishReason.STOP,
        )


class DownStore(MemoryStore):
    """A memory store whose database can be switched off for claiming events."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def claim_event(self, platform: str, event_id: str) -> bool:
        if self.down:
            raise StoreError("The database is unreachable (test)")
        return super().claim_event(platform, event_id)


@dataclass
class Harness:
    """A Slack workspace with Parley installed: the fake, the adapter and a signed sender."""

    slack: FakeSlack
    adapter: SlackAdapter
    sender: SlackSender
    store: Store
    generator: EchoGenerator
    log: list[httpx.Response] = field(default_factory=list)

    async def send(self, event: dict[str, object], **kwargs: object) -> httpx.Response:
        """Deliver one event and wait until Parley has finished with it."""
        response = await self.sender.event(event, **kwargs)  # type: ignore[arg-type]
        await self.adapter.drain()
        return response

    async def command(self, text: str, channel: str = "D1", user: str = "U1") -> httpx.Response:
        response = await self.sender.command(
            text, response_url=self.slack.response_url(), channel=channel, user=user
        )
        await self.adapter.drain()
        return response

    async def press(self, message: SentMessage, action: str, user: str = "U1") -> httpx.Response:
        response = await self.sender.press(message, action, user=user)
        await self.adapter.drain()
        return response

    def history(self, chat: str = "D1", thread: str | None = None) -> list[tuple[Role, str]]:
        key = ConversationKey("slack", TEAM, chat, thread)
        return [(turn.role, turn.text) for turn in self.store.history(key, 100)]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def settings_for(slack: FakeSlack, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": FakeSlack.TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.api_url,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def harness(
    slack: FakeSlack,
    *,
    replies: list[str] | None = None,
    generator: EchoGenerator | None = None,
    store: Store | None = None,
    edit_interval: float = 0.03,
    max_new_tokens: int = 50,
    prompt_budget: int = 200,
    explainer: Explainer | None = None,
) -> Harness:
    generator = generator or EchoGenerator(replies=list(replies or []))
    service, store, generator = make_service(
        store=store,
        generator=generator,
        max_new_tokens=max_new_tokens,
        prompt_budget=prompt_budget,
        explainer=explainer,
    )
    adapter = build_slack(service, settings_for(slack), edit_interval=edit_interval)
    sender = SlackSender(Starlette(routes=adapter.routes()), signing_secret=SECRET)
    return Harness(slack, adapter, sender, store, generator)


def assert_no_repeated_edits(slack: FakeSlack) -> None:
    """Every chat.update changed what the message shows."""
    shown: dict[object, object] = {}
    for call in slack.calls:
        if call.status != 200 or call.method not in ("chat.postMessage", "chat.update"):
            continue
        view = (call.args.get("text"), call.args.get("blocks"))
        ts = call.args.get("ts")
        if call.method == "chat.update":
            assert shown.get(ts) != view, f"chat.update of {ts} changed nothing"
        shown[ts or f"new-{len(shown)}"] = view


# ---- conversations ----------------------------------------------------------------------


async def test_a_dm_conversation_streams_and_ends_with_buttons(slack: FakeSlack) -> None:
    answers = [" ".join(f"answer{turn}-word{i}" for i in range(12)) for turn in range(5)]
    h = harness(slack, generator=PacedGenerator(replies=list(answers), delay=0.01))
    for turn in range(5):
        response = await h.send(dm(f"question {turn}"))
        assert response.status_code == 200
        shown = h.slack.in_thread("D1", None)
        assert len(shown) == turn + 1, "one message per answer"
        latest = shown[-1]
        assert latest.shown == answers[turn]
        assert latest.edits >= 2, "the answer grew in place"
        assert [b["action_id"] for b in latest.buttons] == [GOOD, BAD]
        assert latest.args["unfurl_links"] is False
        assert latest.args["unfurl_media"] is False
    assert_no_repeated_edits(h.slack)
    assert len(h.history()) == 10
    # The fifth question was asked with the four earlier exchanges as context.
    assert "answer3-word0" in " ".join(t.content for t in h.generator.requests[-1].turns)
    # Each shown answer is recorded as its platform message.
    last = h.store.history(ConversationKey("slack", TEAM, "D1", None), 1)[0]
    assert last.platform_message_id == h.slack.in_thread("D1", None)[-1].ts


async def test_buttons_record_feedback(slack: FakeSlack) -> None:
    h = harness(slack, replies=["Paris is the capital."])
    await h.send(dm("capital of France?"))
    (answer,) = h.slack.in_thread("D1", None)
    answer_id = int(answer.buttons[0]["value"])

    assert (await h.press(answer, GOOD)).status_code == 200
    assert [(f.user.id, f.rating) for f in h.store.feedback_for(answer_id)] == [("U1", Rating.GOOD)]
    await h.press(answer, BAD)  # the same person changes their mind
    await h.press(answer, GOOD, user="U2")
    ratings = sorted((f.user.id, f.rating) for f in h.store.feedback_for(answer_id))
    assert ratings == [("U1", Rating.BAD), ("U2", Rating.GOOD)]
    confirmations = [(e["user"], e["channel"], e["text"]) for e in h.slack.ephemeral]
    assert len(confirmations) == 3
    assert confirmations[0][:2] == ("U1", "D1")
    assert "helpful" in confirmations[0][2]
    assert "not good" in confirmations[1][2]


async def test_parley_slash_commands(slack: FakeSlack) -> None:
    h = harness(slack, replies=["The answer."])
    await h.send(dm("a question"))
    assert (await h.command("explain")).status_code == 200
    assert (await h.command("")).status_code == 200
    await h.command("feedback bad It is 42.")
    await h.command("frobnicate")
    texts = [body["text"] for _, body in h.slack.responses]
    assert all(body["response_type"] == "ephemeral" for _, body in h.slack.responses)
    explain, help_text, feedback, unknown = texts
    assert "prompt tokens" in explain
    assert "/parley explain" in help_text
    assert "/parley reset" in help_text
    assert "correction" in feedback
    assert "/frobnicate" in unknown
    (answer,) = h.slack.in_thread("D1", None)
    feedback_given = h.store.feedback_for(int(answer.buttons[0]["value"]))
    assert [(f.rating, f.correction) for f in feedback_given] == [(Rating.BAD, "It is 42.")]
    assert len(h.slack.posted()) == 1, "commands answer only the person, never the channel"


async def test_a_mention_is_answered_in_its_thread_and_the_thread_continues(
    slack: FakeSlack,
) -> None:
    h = harness(slack, replies=["First answer.", "Second answer."])
    mention = app_mention(f"<@{BOT_USER}> what is up?")
    await h.send(mention)
    # Slack also delivers the mention as a plain channel message: answered once only.
    await h.send({**mention, "type": "message", "channel_type": "channel"})
    root = mention["ts"]
    assert [m.shown for m in h.slack.in_thread("C1", root)] == ["First answer."]
    assert h.slack.in_thread("C1", None) == []
    # In a channel each turn names its speaker, as Slack shows them (users.info).
    assert h.generator.requests[0].turns[-1].content == "Ada: what is up?"

    follow_up = {**dm("and why?", channel="C1"), "channel_type": "channel", "thread_ts": root}
    await h.send(follow_up)
    assert [m.shown for m in h.slack.in_thread("C1", root)] == ["First answer.", "Second answer."]
    assert h.history("C1", root) == [
        (Role.USER, "what is up?"),
        (Role.ASSISTANT, "First answer."),
        (Role.USER, "and why?"),
        (Role.ASSISTANT, "Second answer."),
    ]
    # /parley carries no thread: in a channel it acts on the person's latest thread.
    await h.command("explain", channel="C1")
    ((_, explained),) = h.slack.responses
    assert "prompt tokens" in explained["text"]
    # Chatter that does not address Parley is left alone.
    await h.send({**dm("lunch?", channel="C1"), "channel_type": "channel"})
    other = {**dm("hm", channel="C1"), "channel_type": "channel", "thread_ts": next_ts()}
    await h.send(other)
    assert len(h.slack.posted("C1")) == 2


async def test_a_retried_event_is_answered_once(slack: FakeSlack) -> None:
    h = harness(slack)
    event = dm("hello")
    first = await h.send(event, event_id="EvRETRY1")
    retry = await h.send(event, event_id="EvRETRY1", retry_num=1)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert len(h.slack.posted()) == 1
    assert len(h.history()) == 2


async def test_a_retry_whose_original_was_never_processed_is_answered(slack: FakeSlack) -> None:
    h = harness(slack)
    response = await h.send(dm("are you there?"), event_id="EvLOST", retry_num=2)
    assert response.status_code == 200
    assert [m.shown for m in h.slack.posted()] == ["You said: are you there?"]


async def test_forged_and_stale_requests_are_refused(slack: FakeSlack) -> None:
    h = harness(slack)
    body = h.sender.event_body(dm("hi"))
    now = int(time.time())
    forged = await h.sender.post(
        body, content_type="application/json", signature=sign("wrong", body, now)
    )
    stale = now - 10 * 60
    old = await h.sender.post(
        body, content_type="application/json", timestamp=stale, signature=sign(SECRET, body, stale)
    )
    unsigned = await h.sender.post(body, content_type="application/json", signature="v0=")
    assert [r.status_code for r in (forged, old, unsigned)] == [401, 401, 401]
    await h.adapter.drain()
    assert h.slack.calls == []
    assert h.history() == []


async def test_malformed_requests_get_4xx_and_nothing_breaks(slack: FakeSlack) -> None:
    h = harness(slack)
    broken = await h.sender.post(b'{"type": "event_callback", ', content_type="application/json")
    bad_payload = await h.sender.post(
        b"payload=%7Bnope", content_type="application/x-www-form-urlencoded"
    )
    not_utf8 = await h.sender.post(b"\xff\xfe{", content_type="application/json")
    strange = await h.sender.post(
        json.dumps({"type": "event_callback", "event_id": "Ev9", "event": [1, 2]}).encode(),
        content_type="application/json",
    )
    assert 400 <= broken.status_code < 500
    assert 400 <= bad_payload.status_code < 500
    assert 400 <= not_utf8.status_code < 500
    assert strange.status_code == 400  # JSON, but not in a shape Slack sends
    assert (await h.send(dm("still fine?"))).status_code == 200
    assert [m.shown for m in h.slack.posted()] == ["You said: still fine?"]


async def test_url_verification(slack: FakeSlack) -> None:
    h = harness(slack)
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()
    response = await h.sender.post(body, content_type="application/json")
    assert response.status_code == 200
    assert "c-123" in response.text


async def test_a_database_that_is_down_makes_slack_retry(slack: FakeSlack) -> None:
    store = DownStore()
    h = harness(slack, store=store)
    event = dm("hello?")
    refused = await h.send(event, event_id="EvDOWN")
    assert refused.status_code == 503
    assert h.slack.posted() == []
    store.down = False
    retried = await h.send(event, event_id="EvDOWN", retry_num=1)
    assert retried.status_code == 200
    assert [m.shown for m in h.slack.posted()] == ["You said: hello?"]


async def test_an_unreachable_postgres_answers_503(slack: FakeSlack, tmp_path: Path) -> None:
    from core.db import SqlStore, create_engine_for

    engine = create_engine_for("postgresql+psycopg://parley@127.0.0.1:1/parley")
    try:
        h = harness(slack, store=SqlStore(engine))
        response = await h.send(dm("anyone?"))
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert h.slack.posted() == []


async def test_acknowledged_before_the_answer_is_generated(slack: FakeSlack) -> None:
    h = harness(slack, generator=PacedGenerator(replies=["slow " * 7 + "slow"], delay=0.15))
    started = time.monotonic()
    response = await h.sender.event(dm("take your time"))
    acknowledged = time.monotonic() - started
    assert response.status_code == 200
    assert acknowledged < 0.5
    await h.adapter.drain()
    assert time.monotonic() - started > 1.0
    assert h.slack.posted()[0].shown == "slow " * 7 + "slow"


# ---- rendering and limits ---------------------------------------------------------------


async def test_rate_limits_are_honoured_and_the_final_text_arrives(slack: FakeSlack) -> None:
    words = [f"w{i}" for i in range(40)]
    h = harness(slack, generator=PacedGenerator(replies=[" ".join(words)], delay=0.01))
    slack.rate_limit("chat.update", times=2, retry_after=0.4)
    await h.send(dm("go"))
    (message,) = slack.posted()
    assert message.shown == " ".join(words)
    assert message.buttons
    updates = slack.calls_of("chat.update")
    limited = [i for i, call in enumerate(updates) if call.status == 429]
    assert len(limited) == 2
    for i in limited:
        if i + 1 < len(updates):
            assert updates[i + 1].at - updates[i].at >= 0.39
    assert updates[-1].status == 200


async def test_a_rate_limited_first_post_still_delivers(slack: FakeSlack) -> None:
    h = harness(slack, replies=["short and sweet"])
    slack.rate_limit("chat.postMessage", times=1, retry_after=0.2)
    await h.send(dm("hi"))
    assert [m.shown for m in slack.posted()] == ["short and sweet"]


async def test_a_10000_character_answer_is_split(slack: FakeSlack) -> None:
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 20 for i in range(14)]
    code = "```python\n" + "\n".join(f"print({i})  # a line of code" for i in range(120)) + "\n```"
    answer = "\n\n".join([*paragraphs[:7], code, *paragraphs[7:]])
    assert len(answer) > 10_000
    h = harness(
        slack,
        generator=PacedGenerator(replies=[answer], delay=0),
        max_new_tokens=5000,
        prompt_budget=6000,
    )
    await h.send(dm("write a lot"))
    parts = h.slack.in_thread("D1", None)
    assert len(parts) >= 4
    assert all(len(p.shown) <= 3000 for p in parts)
    assert all(p.shown.count("```") % 2 == 0 for p in parts)
    assert [bool(p.buttons) for p in parts] == [False] * (len(parts) - 1) + [True]
    shown = "\n".join(p.shown for p in parts)
    assert all(f"Paragraph {i}:" in shown for i in range(14))
    assert all(f"print({i})" in shown for i in range(120))


async def test_model_output_cannot_ping_or_hide_links(slack: FakeSlack) -> None:
    nasty = (
        "Hey <!channel> and <!here>, also @everyone: click <https://evil.example|your bank> "
        "or [docs](https://docs.example) **now** <@U999>"
    )
    h = harness(slack, replies=[nasty])
    await h.send(dm("say something"))
    (message,) = h.slack.posted()
    for call in h.slack.calls_of("chat.postMessage") + h.slack.calls_of("chat.update"):
        sent = json.dumps(call.args, ensure_ascii=False)
        assert "<!" not in sent
        assert "<@" not in sent
        assert "<http" not in sent
        assert "@everyone" not in sent
    assert message.args["unfurl_links"] is False
    assert message.args["unfurl_media"] is False
    assert message.blocks is not None
    assert message.blocks[0]["text"]["verbatim"] is True
    assert "&lt;!channel&gt;" in message.shown
    assert "docs (https://docs.example)" in message.shown
    assert "*now*" in message.shown


async def test_bot_messages_and_edits_are_ignored(slack: FakeSlack) -> None:
    h = harness(slack)
    ignored = [
        dm("from a bot", bot_id="B9"),
        dm("from a bot", subtype="bot_message"),
        dm("from myself", user=BOT_USER, bot_id=BOT_ID),
        dm("x", subtype="message_changed", message={"text": "edited"}),
        dm("x", subtype="message_deleted"),
        dm("x", subtype="channel_join"),
    ]
    for event in ignored:
        assert (await h.send(event)).status_code == 200
    assert h.slack.posted() == []
    assert h.history() == []


async def test_empty_huge_and_file_messages_get_clear_answers(slack: FakeSlack) -> None:
    h = harness(slack)
    assert (await h.send(dm(""))).status_code == 200
    assert (await h.send(dm("x" * 1_000_000))).status_code == 200
    await h.send(dm("what is this?", subtype="file_share", files=[{"id": "F1"}]))
    empty, huge, shared = (m.shown for m in h.slack.in_thread("D1", None))
    assert "empty message" in empty
    assert "too long" in huge
    assert "1,000,000" in huge
    assert "can only read text" in shared
    assert not any(m.buttons for m in h.slack.posted())


async def test_a_failure_is_an_apology_in_the_thread_and_a_trace_in_the_log(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(slack, generator=EchoGenerator(fail_with=RuntimeError("model on fire")))
    mention = app_mention(f"<@{BOT_USER}> help")
    with caplog.at_level(logging.ERROR):
        await h.send(mention)
    (message,) = h.slack.in_thread("C1", mention["ts"])
    assert message.shown.startswith("Sorry")
    assert "model on fire" not in message.shown
    assert any(r.exc_info and "model on fire" in str(r.exc_info[1]) for r in caplog.records)


async def test_socket_mode_answers_once_and_withholds_the_ack_when_the_database_is_down(
    slack: FakeSlack,
) -> None:
    from bots.slack.__main__ import run_socket_mode

    store = DownStore()
    service, _, _ = make_service(store=store)
    settings = settings_for(slack, slack_signing_secret=None, slack_app_token=FakeSlack.APP_TOKEN)
    adapter = build_slack(service, settings)
    running = asyncio.create_task(run_socket_mode(adapter, FakeSlack.APP_TOKEN))
    try:
        await asyncio.wait_for(slack.socket_connected.wait(), 10)
        payload = event_callback(dm("over the socket"), event_id="EvSOCKET")
        with pytest.raises(TimeoutError):  # no ack: Slack will deliver it again
            await asyncio.wait_for(slack.push(payload), 0.5)
        store.down = False
        await asyncio.wait_for(slack.push(payload, retry_attempt=1), 5)
        await asyncio.wait_for(slack.push(payload, retry_attempt=2), 5)
        await adapter.drain()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert [m.shown for m in slack.posted()] == ["You said: over the socket"]


# ---- pictures -------------------------------------------------------------------------


async def explained_in_a_thread(h: Harness) -> str:
    """Ask in a channel, then ask "@Parley /explain" in the thread; return the thread's ts."""
    mention = app_mention(f"<@{BOT_USER}> what is up?")
    await h.send(mention)
    root = str(mention["ts"])
    await h.send(app_mention(f"<@{BOT_USER}> /explain", thread_ts=root))
    return root


def text_calls_before_uploads(slack: FakeSlack) -> bool:
    """True when every post and edit of text came before the first upload began."""
    methods = [call.method for call in slack.calls]
    first = methods.index("files.getUploadURLExternal")
    return not {"chat.postMessage", "chat.update", "chat.delete"} & set(methods[first:])


async def test_explain_in_a_thread_uploads_its_pictures_after_the_text(slack: FakeSlack) -> None:
    explainer = PictureExplainer()
    h = harness(slack, replies=["All is well."], explainer=explainer)
    root = await explained_in_a_thread(h)
    answer, explained = (m.shown for m in slack.in_thread("C1", root))
    assert answer == "All is well."
    assert explained.startswith(LINE)
    assert "prompt tokens" in explained
    shared = [(f.filename, f.title, f.data) for f in slack.files_in("C1", root)]
    assert shared == [
        ("explain.png", "explain.png", explainer.chart),
        ("mood.png", "mood.png", explainer.mood),
    ]
    assert len(slack.files) == 2  # nowhere else
    assert text_calls_before_uploads(slack)
    uploads = slack.calls_of("upload")
    assert [c.args["length"] for c in uploads] == [len(explainer.chart), len(explainer.mood)]


async def test_parley_explain_in_a_dm_uploads_the_pictures_there(slack: FakeSlack) -> None:
    explainer = PictureExplainer()
    h = harness(slack, replies=["Paris."], explainer=explainer)
    await h.send(dm("capital of France?"))
    await h.command("explain")
    ((_, explained),) = slack.responses
    assert explained["response_type"] == "ephemeral"
    assert explained["text"].startswith(LINE)
    assert [f.data for f in slack.files_in("D1", None)] == [explainer.chart, explainer.mood]
    assert [m.shown for m in slack.posted()] == ["Paris."]


async def test_parley_explain_in_a_channel_keeps_its_pictures_private(slack: FakeSlack) -> None:
    # A slash command's reply is for one person; Slack shows a file to the whole channel.
    h = harness(slack, replies=["Answer."], explainer=PictureExplainer())
    await h.send(app_mention(f"<@{BOT_USER}> question"))
    await h.command("explain", channel="C1")
    ((_, explained),) = slack.responses
    assert explained["response_type"] == "ephemeral"
    assert explained["text"].startswith(LINE)
    assert "mention me with /explain in the thread" in explained["text"]
    assert slack.files == []
    assert slack.calls_of("files.getUploadURLExternal") == []


async def test_without_files_write_the_text_stands_and_the_log_says_what_to_fix(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.scopes.discard("files:write")  # an app installed from an older manifest
    h = harness(slack, replies=["All is well."], explainer=PictureExplainer())
    with caplog.at_level(logging.WARNING, logger="bots.slack"):
        root = await explained_in_a_thread(h)
    answer, explained = (m.shown for m in slack.in_thread("C1", root))
    assert answer == "All is well."
    assert explained.startswith(LINE)  # no apology: the explanation stands, once
    assert len(slack.posted()) == 2
    assert slack.files == []
    # The first refusal says it all; the second picture is not tried in vain.
    assert len(slack.calls_of("files.getUploadURLExternal")) == 1
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "missing_scope" in message
    assert "files:write" in message
    assert "reinstall" in message


async def test_a_rate_limited_upload_is_retried_and_each_picture_shared_once(
    slack: FakeSlack,
) -> None:
    explainer = PictureExplainer()
    h = harness(slack, replies=["Fine."], explainer=explainer)
    slack.rate_limit("files.completeUploadExternal", times=1, retry_after=0.3)
    root = await explained_in_a_thread(h)
    assert [f.data for f in slack.files_in("C1", root)] == [explainer.chart, explainer.mood]
    completions = slack.calls_of("files.completeUploadExternal")
    assert [c.status for c in completions] == [429, 200, 200]
    assert completions[1].at - completions[0].at >= 0.29, "Retry-After must be honoured"
    assert len(slack.in_thread("C1", root)) == 2


async def test_a_failed_upload_is_logged_and_the_next_picture_still_arrives(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    explainer = PictureExplainer()
    h = harness(slack, replies=["Fine."], explainer=explainer)
    slack.break_uploads(1)  # Slack's file servers fail the first picture's bytes
    with caplog.at_level(logging.WARNING, logger="bots.slack"):
        root = await explained_in_a_thread(h)
    assert [f.data for f in slack.files_in("C1", root)] == [explainer.mood]
    answer, explained = (m.shown for m in slack.in_thread("C1", root))
    assert (answer, explained.startswith(LINE)) == ("Fine.", True)
    assert "uploading explain.png to Slack in C1 failed" in caplog.text
    assert "status: 500" in caplog.text


# ---- start-up and the app --------------------------------------------------------------


async def test_served_by_uvicorn(slack: FakeSlack) -> None:
    import uvicorn

    from bots.slack.__main__ import http_app

    service, _, _ = make_service()
    adapter = build_slack(service, settings_for(slack))
    server = uvicorn.Server(uvicorn.Config(http_app(adapter), log_level="warning"))
    # A socket that already listens: requests wait in its backlog until uvicorn is up.
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        sender = SlackSender(None, signing_secret=SECRET)
        body = sender.event_body(dm("over real HTTP"))
        now = int(time.time())
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/slack/events",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": str(now),
                    "X-Slack-Signature": sign(SECRET, body, now),
                },
            )
        assert response.status_code == 200
    finally:
        server.should_exit = True
        await serving  # the lifespan's adapter.stop() lets the answer finish
    assert [m.shown for m in slack.posted()] == ["You said: over real HTTP"]


def test_the_manifest_matches_the_adapter() -> None:
    yaml = pytest.importorskip("yaml")
    from bots.slack import EVENTS_PATH
    from core.commands import COMMANDS

    text = (REPO / "docs" / "slack-manifest.yaml").read_text(encoding="utf-8")
    manifest = yaml.safe_load(text)
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/parley"
    assert command["url"].endswith(EVENTS_PATH)
    subscriptions = manifest["settings"]["event_subscriptions"]
    assert subscriptions["request_url"].endswith(EVENTS_PATH)
    assert {"app_mention", "message.im", "message.channels"} <= set(subscriptions["bot_events"])
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "im:history", "commands", "files:write"} <= scopes
    assert scopes == BOT_SCOPES, "the fake Slack grants what the manifest asks for"
    for name in COMMANDS:
        assert f"/parley {name}" in text, f"the manifest does not document /parley {name}"


# ---- start-up -----------------------------------------------------------------------------


async def test_start_refuses_a_token_slack_rejects(slack: FakeSlack) -> None:
    service, _, _ = make_service()
    good = build_slack(service, settings_for(slack))
    await good.start()
    bad = build_slack(service, settings_for(slack, slack_bot_token="xoxb-wrong"))
    with pytest.raises(ConfigurationError, match="PARLEY_SLACK_BOT_TOKEN"):
        await bad.start()
    await good.stop()


def test_missing_settings_stop_the_process_with_one_line(tmp_path: Path) -> None:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PARLEY_", "SLACK_"))
    }
    env["PARLEY_DATA_DIR"] = str(tmp_path)
    runs = [
        {},
        {"PARLEY_SLACK_BOT_TOKEN": "xoxb-1"},
    ]
    for extra in runs:
        done = subprocess.run(
            [sys.executable, "-m", "bots.slack"],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("parley: ")
    assert "PARLEY_SLACK_SIGNING_SECRET" in lines[0]


# ---- the done criterion -----------------------------------------------------------------


async def test_a_scripted_user_talks_rates_and_asks_for_an_explanation(slack: FakeSlack) -> None:
    answers = [f"Answer number {i}: " + " ".join(f"w{j}" for j in range(15)) for i in range(5)]
    h = harness(slack, generator=PacedGenerator(replies=list(answers), delay=0.005))
    accepted = 0
    for i in range(5):
        event = dm(f"Question {i}?")
        response = await h.send(event, event_id=f"EvTALK{i}")
        accepted += response.status_code == 200
        if i == 2:  # Slack thought Parley was slow and delivered this one again
            retry = await h.send(event, event_id=f"EvTALK{i}", retry_num=1)
            assert retry.status_code == 200
    answers_shown = h.slack.in_thread("D1", None)
    await h.press(answers_shown[0], GOOD)
    await h.press(answers_shown[3], BAD)
    await h.command("explain")

    assert accepted == 5
    assert [m.shown for m in answers_shown] == answers, "exactly one answer per message"
    assert all(m.buttons for m in answers_shown)
    assert all(m.edits >= 1 for m in answers_shown), "every answer was streamed"
    assert_no_repeated_edits(h.slack)
    assert len(h.slack.ephemeral) == 2
    first_id = int(answers_shown[0].buttons[0]["value"])
    assert [f.rating for f in h.store.feedback_for(first_id)] == [Rating.GOOD]
    ((_, explained),) = h.slack.responses
    assert "prompt tokens" in explained["text"]
