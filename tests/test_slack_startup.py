"""The Slack app starting up: uvicorn, the manifest, tokens and settings."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bots.slack import build_slack
from core.errors import ConfigurationError
from tests.factories import make_inbox, make_service
from tests.fakes.slack import (
    BOT_SCOPES,
    FakeSlack,
    SlackSender,
    dm,
    sign,
)
from tests.slack_fixtures import (
    REPO,
    SECRET,
    settings_for,
)

# ---- start-up and the app --------------------------------------------------------------


async def test_served_by_uvicorn(slack: FakeSlack) -> None:
    import uvicorn

    from bots.slack.__main__ import http_app

    service, _, _ = make_service()
    adapter = build_slack(make_inbox(service), settings_for(slack))
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
    good = build_slack(make_inbox(service), settings_for(slack))
    await good.start()
    bad = build_slack(make_inbox(service), settings_for(slack, slack_bot_token="xoxb-wrong"))
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
