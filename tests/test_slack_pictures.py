"""Pictures that come with a Slack reply (the /explain charts): after the text, once each."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.explainer import LINE, PictureExplainer
from tests.fakes.slack import (
    BOT_USER,
    FakeSlack,
    app_mention,
    dm,
)
from tests.slack_fixtures import (
    Harness,
    harness,
)

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
