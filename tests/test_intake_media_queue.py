"""The scaled web process waits for a ``media`` worker longer than Redis's socket timeout.

redis-py gives up on any read that takes longer than the client's socket timeout (5 s by
default), and reading a file on a busy worker often does (loading Whisper alone can). The
web process's reader must still get the result: here a stand-in worker, on the real Redis,
leaves it after 6 seconds.
"""

from __future__ import annotations

import json
import threading

import redis
import redis.asyncio

from core.media import MediaKind, Reading
from tests.conftest import REDIS_URL
from workers.media_queue import CeleryMediaReader, data_key, result_key


async def test_a_reading_slower_than_the_socket_timeout_comes_back(
    redis_client: redis.Redis,
) -> None:
    done = Reading(kind=MediaKind.VOICE, text="hello there", source="Whisper tiny.en")
    seen: list[object] = []

    def slow_worker(key: str) -> None:
        seen.append(redis_client.get(data_key(key)))
        redis_client.rpush(result_key(key), json.dumps(done.to_json()))

    keys: list[str] = []

    def enqueue(key: str, kind: MediaKind, mime: str | None) -> None:
        keys.append(key)
        threading.Timer(6.0, slow_worker, args=(key,)).start()

    client = redis.asyncio.Redis.from_url(REDIS_URL)  # the default 5 s socket timeout
    reader = CeleryMediaReader(redis=client, enqueue=enqueue, wait_seconds=30)
    try:
        reading = await reader.read(MediaKind.VOICE, b"OggS...", "audio/ogg")
    finally:
        await client.aclose()
    assert reading == done
    assert seen == [b"OggS..."]
    [key] = keys
    assert redis_client.exists(data_key(key), result_key(key)) == 0, "both deleted once read"
