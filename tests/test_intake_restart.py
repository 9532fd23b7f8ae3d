"""A voice note outlives the process reading it: ``kill -9``, a new process, one answer.

The real web process (``python -m bots.web``, embedded: the model in-process, here the echo
generator) takes Telegram's webhooks from this test and talks to the fake Bot API server
that runs in the test. The voice note's download is slow; while it is being read the person
sends a text, the process is killed, and a new one is started over the same database. The
person gets exactly one reply to the voice note, then the answer to the text, and nothing
twice (the fake server counts every message sent).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bots.telegram import SECRET_HEADER, WEBHOOK_PATH
from config.settings import Settings
from core.db import SqlStore, create_engine_for
from core.generator import EchoGenerator, WordTokenCounter
from core.types import utcnow
from tests.fakes.telegram import ADA, FakeTelegram, private_message, voice_message
from tests.media_fixtures import needs_media_tools, speech
from tests.model_fixtures import REPO
from tests.process_fixtures import free_port

pytestmark = [
    pytest.mark.slow,
    needs_media_tools,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

SECRET = "intake-Secret_1"
LEASE_S = 2


class EchoModel(EchoGenerator):
    """The echo generator as ``PARLEY_GENERATOR`` builds it: it counts tokens and closes."""

    tokens = WordTokenCounter()

    def close(self) -> None:
        """Nothing to release."""


def echo(settings: Settings) -> EchoModel:
    """The factory named by ``PARLEY_GENERATOR``."""
    return EchoModel()


QUESTION = "What time is the meeting tomorrow?"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class WebProcess:
    """``python -m bots.web`` on a port of its own, with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bots.web", "--port", str(self.port)],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, within: float = 120) -> None:
        """Wait for /healthz (the fake server in this loop answers the start-up meanwhile)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"the web process did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "PARLEY_GENERATOR": "tests.test_intake_restart:echo",
        "PARLEY_SENTIMENT": "false",
        "PARLEY_ONE_ANSWER_AT_A_TIME": "false",
        "PARLEY_INTAKE_LEASE_S": str(LEASE_S),
        "PARLEY_TELEGRAM_WEBHOOK_SECRET": SECRET,
    }
    return env


def one_reply_each(telegram: FakeTelegram, file_id: str) -> None:
    """One reply to the voice note (read again by the second process), then the text's
    answer, and nothing sent twice."""
    sent = telegram.messages(ADA["id"])
    assert len(sent) == 2, [m.text for m in sent]
    assert len(telegram.calls_to("sendMessage")) == 2
    heard, answer = (m.text for m in sent)
    assert words(heard) == words(f"I heard {QUESTION} You said: {QUESTION}"), heard
    assert answer == "You said: And what about tomorrow?"
    assert telegram.downloads == [f"documents/{file_id}.bin"] * 2


async def post(web: WebProcess, update: dict[str, Any]) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            web.url + WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET}
        )
    return response.status_code


async def test_a_voice_note_being_read_when_the_process_dies_is_answered_once_in_order(
    environment: dict[str, str], tmp_path: Path
) -> None:
    async with FakeTelegram() as telegram:
        environment |= {
            "PARLEY_TELEGRAM_TOKEN": telegram.token,
            "PARLEY_TELEGRAM_API_URL": telegram.api_url,
        }
        recording = speech(QUESTION)
        file_id = telegram.add_file(recording)
        telegram.download_delay = 30.0  # the first process dies while it waits for the bytes
        first = WebProcess(
            environment | {"PARLEY_TELEGRAM_WEBHOOK_URL": "https://parley.example" + WEBHOOK_PATH},
            tmp_path / "web1.log",
        )
        try:
            await first.wait_ready()
            voice = voice_message(file_id, duration=2, size=len(recording))
            assert await post(first, voice) == 200
            await telegram.wait_until(lambda: telegram.downloads, within=30)
            text = private_message("And what about tomorrow?")
            assert await post(first, text) == 200  # stored behind the voice note, acknowledged
        finally:
            first.kill()
        assert telegram.messages(ADA["id"]) == []  # nothing was answered before the kill

        telegram.download_delay = 0.0
        second = WebProcess(
            environment | {"PARLEY_TELEGRAM_WEBHOOK_URL": "https://parley.example" + WEBHOOK_PATH},
            tmp_path / "web2.log",
        )
        try:
            await second.wait_ready()
            await telegram.wait_until(lambda: len(telegram.messages(ADA["id"])) >= 2, within=120)
            await telegram.settle(quiet=1.0, within=30)
        finally:
            await asyncio.to_thread(second.stop)

    one_reply_each(telegram, file_id)
    assert "taking over the telegram message" in (tmp_path / "web2.log").read_text()
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    store = SqlStore(create_engine_for(settings.storage.sqlalchemy_url))
    later = utcnow() + timedelta(days=1)
    assert store.stalled_intakes("telegram", later) == [], "the intake is closed once shown"
    store.dispose()
