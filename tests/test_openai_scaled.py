"""The scaled deployment with thin workers: Celery workers answering through a model server.

The workers run with ``PARLEY_ENGINE=openai`` against llama.cpp's server on the packaged
model, as thin workers in front of a vLLM server would; the web side is ``build_web``'s.
"""

from __future__ import annotations

import asyncio

import pytest

from config.settings import Settings
from config.wiring import Parley
from core.types import ReplyKind
from tests.llama_server import ALIAS, LlamaServer
from tests.test_scaled import (  # the real workers, Redis and web process of test_scaled
    Processes,
    RedisServer,
    _accept_all,
    _answered_in_order,
    _message,
    processes,
    redis_server,
    web,
)

__all__ = ["processes", "redis_server", "web"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]


@pytest.fixture
def scaled(redis_server: RedisServer, postgres_url: str, llama_server: LlamaServer) -> Settings:
    return Settings(
        deployment="scaled",
        database_url=postgres_url,
        redis_url=redis_server.url,
        engine="openai",
        openai_base_url=llama_server.base_url,
        openai_model=ALIAS,
        openai_context_tokens=2048,
        temperature=0.0,
        max_new_tokens=12,
        sentiment=False,
        media=False,
        task_time_limit_s=120,
        visibility_timeout_s=180,
        answer_wait_s=240,
        one_answer_at_a_time=False,
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_thin_workers_answer_every_message_once_in_order_through_the_server(
    web: Parley, processes: Processes
) -> None:
    processes.worker()
    messages = [
        _message(c, text, n)
        for c in range(3)
        for n, text in enumerate([f"What is {c} plus {c}?", "And times two?"])
    ]
    accepted = await _accept_all(web, messages)
    replies = await asyncio.wait_for(
        asyncio.gather(*(web.service.reply(a).collect() for a in accepted)), 300
    )

    assert [r.kind for r in replies] == [ReplyKind.ANSWER] * len(messages), replies
    assert {r.model_version for r in replies} == {ALIAS}
    _answered_in_order(web, accepted, list(replies))
    log = (processes.logs / "w1.log").read_text()
    assert f"Answering with {ALIAS}" in log
