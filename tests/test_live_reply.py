"""The renderer every platform shares (bots.live_reply), over an in-memory chat."""

from __future__ import annotations

import asyncio

from bots.live_reply import LiveReply, Pacer, Shown
from core.types import Reply, ReplyKind


class Busy(Exception):
    """The in-memory chat's 429."""


class MemoryChat(LiveReply):
    """A chat that keeps its messages in a dict; ``limit`` characters a message."""

    final_attempts = 3

    def __init__(self, *, limit: int = 20, busy: int = 0) -> None:
        super().__init__(pacer=Pacer(0.0), where="memory chat")
        self.limit = limit
        self.busy = busy  # how many of the next requests get a 429
        self.shown: dict[str, tuple[str, int | None]] = {}
        self.requests: list[str] = []
        self.pictures: list[str] = []

    def _split(self, text: str) -> list[str]:
        return [text[i : i + self.limit] for i in range(0, len(text), self.limit)]

    def _retry_after(self, error: Exception) -> float | None:
        return 0.01 if isinstance(error, Busy) else None

    async def _request(self, what: str) -> None:
        self.requests.append(what)
        if self.busy:
            self.busy -= 1
            raise Busy

    async def _send(self, text: str, buttons: int | None) -> str:
        await self._call(lambda: self._request("send"))
        name = f"m{len(self.shown) + 1}"
        self.shown[name] = (text, buttons)
        return name

    async def _edit(self, shown: Shown, text: str, buttons: int | None) -> str:
        await self._call(lambda: self._request("edit"))
        assert self.shown[shown.id] != (text, buttons), "an edit that changes nothing"
        self.shown[shown.id] = (text, buttons)
        return shown.id

    async def _delete(self, shown: Shown) -> None:
        await self._call(lambda: self._request("delete"))
        del self.shown[shown.id]

    async def _upload(self, name: str, data: bytes) -> None:
        await self._call(lambda: self._request("upload"))
        self.pictures.append(name)

    def _picture_failed(self, name: str, error: Exception) -> bool:
        return True

    async def _apologise(self, apology: str) -> None:
        await self._call(lambda: self._request("apology"))
        self.shown["apology"] = (apology, None)


async def test_a_long_answer_continues_in_new_messages_with_buttons_on_the_last() -> None:
    chat = MemoryChat(limit=10)
    for word in ["one", "two", "three", "four", "five", "six"]:
        await chat.add(word + " ")
        await asyncio.sleep(0.001)
    answer = Reply(kind=ReplyKind.ANSWER, text="one two three four five six", answer_id=7)
    assert await chat.finish(answer) == "m3"
    assert chat.shown == {
        "m1": ("one two th", None),
        "m2": ("ree four f", None),
        "m3": ("ive six", 7),
    }


async def test_a_final_text_shorter_than_the_streamed_one_deletes_the_surplus() -> None:
    chat = MemoryChat(limit=5)
    await chat.add("a long streamed text")
    await asyncio.sleep(0.01)
    await chat.finish(Reply(kind=ReplyKind.ANSWER, text="short", answer_id=1))
    assert chat.shown == {"m1": ("short", 1)}


async def test_a_reply_that_is_no_answer_keeps_the_streamed_text_and_no_buttons() -> None:
    chat = MemoryChat()
    await chat.add("partial")
    await chat.finish(Reply(kind=ReplyKind.ERROR, text="Sorry"))
    assert list(chat.shown.values()) == [("partial", None)]


async def test_a_429_on_the_final_text_is_waited_out_then_the_pictures_follow() -> None:
    chat = MemoryChat(busy=2)
    reply = Reply(
        kind=ReplyKind.ANSWER, text="done", answer_id=3, attachments=(("chart.png", b"png"),)
    )
    assert await chat.finish(reply) == "m1"
    assert chat.requests == ["send", "send", "send", "upload"]
    assert chat.pictures == ["chart.png"]


async def test_a_failed_reply_stops_streaming_and_apologises() -> None:
    chat = MemoryChat()
    await chat.add("half an ans")
    await chat.fail("Sorry, something went wrong.")
    await chat.add("wer")  # too late: nothing more is shown
    await asyncio.sleep(0.01)
    assert chat.shown["apology"] == ("Sorry, something went wrong.", None)
    assert "edit" not in chat.requests
