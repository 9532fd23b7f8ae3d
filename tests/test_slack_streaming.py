"""Replies in Slack while they are written: rate limits, long answers, safe text, failures."""

from __future__ import annotations

import json
import logging

import pytest

from core.generator import EchoGenerator
from tests.fakes.slack import (
    BOT_ID,
    BOT_USER,
    FakeSlack,
    app_mention,
    dm,
)
from tests.slack_fixtures import (
    PacedGenerator,
    harness,
)

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
