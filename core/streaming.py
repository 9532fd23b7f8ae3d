"""How answers travel through Parley: a stream of text deltas that ends in a result, and
the renderer that shows one on a platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Generic, Protocol, TypeVar

from core.types import Reply

__all__ = ["ReplyRenderer", "Streamed"]

ResultT = TypeVar("ResultT")


class Streamed(Generic[ResultT]):
    """Async iterator of text deltas whose final result is known once it ends.

    ``source`` yields ``str`` deltas and then exactly one result object::

        stream = generator.generate(request)
        async for delta in stream:
            print(delta, end="")
        print(stream.result)
    """

    def __init__(self, source: AsyncIterator[str | ResultT]) -> None:
        self._source = source
        self._result: ResultT | None = None
        self._done = False

    def __aiter__(self) -> Streamed[ResultT]:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await anext(self._source)
        except StopAsyncIteration:
            self._done = True
            if self._result is None:
                raise RuntimeError("the stream ended without a result") from None
            raise
        if isinstance(item, str):
            return item
        self._result = item
        self._done = True
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the source early (for example when the user went away)."""
        self._done = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()

    @property
    def finished(self) -> bool:
        """True once the stream has ended with its result."""
        return self._result is not None

    @property
    def result(self) -> ResultT:
        """The final result; only available once the stream has ended."""
        if self._result is None:
            raise RuntimeError("the stream has not finished yet")
        return self._result

    async def collect(self) -> ResultT:
        """Consume the rest of the stream and return its result."""
        async for _ in self:
            pass
        return self.result


class ReplyRenderer(Protocol):
    """Shows one reply on a platform while it is written: what every chat adapter renders.

    The core drives it (:class:`core.inbox.Inbox`): :meth:`add` for each streamed piece,
    then exactly one of :meth:`finish` (the reply is complete) or :meth:`fail` (it could
    not be made or shown)::

        async for delta in stream:
            await renderer.add(delta)
        shown = await renderer.finish(stream.result)
    """

    async def add(self, delta: str) -> None:
        """Take the next piece of the reply's text; show it when the platform's pace allows."""

    async def finish(self, reply: Reply) -> str | None:
        """Show the final reply (buttons, pictures); return the id of the message with the answer.

        Raises when the text cannot be shown: the caller then calls :meth:`fail`.
        """

    async def fail(self, apology: str) -> None:
        """Stop showing the reply and tell the person it failed; best effort, never raises."""
