"""What Slack sends the adapter: signatures, malformed bodies, retries, a database that is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest

from bots.slack import build_slack
from tests.factories import make_inbox, make_service
from tests.fakes.slack import (
    FakeSlack,
    dm,
    event_callback,
    sign,
)
from tests.slack_fixtures import (
    SECRET,
    DownStore,
    PacedGenerator,
    harness,
    settings_for,
)


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


async def test_socket_mode_answers_once_and_withholds_the_ack_when_the_database_is_down(
    slack: FakeSlack,
) -> None:
    from bots.slack.__main__ import run_socket_mode

    store = DownStore()
    service, _, _ = make_service(store=store)
    settings = settings_for(slack, slack_signing_secret=None, slack_app_token=FakeSlack.APP_TOKEN)
    adapter = build_slack(make_inbox(service), settings)
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
