"""Streamed: text deltas first, then the result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.streaming import Streamed


async def _source(*items: object) -> AsyncIterator[object]:
    for item in items:
        yield item


async def test_deltas_then_result() -> None:
    stream: Streamed[int] = Streamed(_source("a", "b", 42))  # type: ignore[arg-type]
    assert [d async for d in stream] == ["a", "b"]
    assert stream.result == 42


async def test_result_before_end_is_an_error() -> None:
    stream: Streamed[int] = Streamed(_source("a", 1))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not finished"):
        _ = stream.result
    assert await stream.collect() == 1


async def test_source_without_result_is_an_error() -> None:
    stream: Streamed[int] = Streamed(_source("a"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="without a result"):
        await stream.collect()


async def test_errors_of_the_source_reach_the_reader() -> None:
    async def failing() -> AsyncIterator[str]:
        yield "partial"
        raise ValueError("boom")

    stream: Streamed[int] = Streamed(failing())
    with pytest.raises(ValueError, match="boom"):
        await stream.collect()
