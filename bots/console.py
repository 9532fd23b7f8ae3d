"""Chat with Parley in a terminal: no token, no outside service.

Usage::

    python -m bots.console              # the embedded default: SQLite under data/, packaged model
    python -m bots.console --name Ada   # tell Parley your name
    PARLEY_MODEL=/path/to/model python -m bots.console

Answers stream as the model writes them. Commands: /help, /reset, /retry, /feedback
good|bad [correction], /explain, /quit (or Ctrl-D). Ctrl-C, or /cancel typed while an answer
is written, stops the answer; at the prompt, Ctrl-C quits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from config.startup import entry_point, start
from config.wiring import build_embedded
from core.conversation import ConversationService
from core.turn_commands import stops_an_answer
from core.types import Message, Reply, UserRef

__all__ = ["main", "run_console"]

PLATFORM = "console"
QUIT = {"/quit", "/exit", "/q"}
PROMPT_USER = "you> "
PROMPT_BOT = "parley> "


def _in_daemon_thread(read: Callable[[], str]) -> asyncio.Future[str]:
    """Run a blocking read in a daemon thread, so that quitting never waits for a keypress."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value or "")

    def run() -> None:
        try:
            value, error = read(), None
        except BaseException as exc:  # handed over to the event loop as the future's error
            value, error = None, exc
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="parley-console-input", daemon=True).start()
    return future


async def _read_line(stdin: TextIO, stdout: TextIO, prompt: str = PROMPT_USER) -> str | None:
    """One line from the person, or ``None`` at end of input."""
    if stdin is sys.stdin and stdin.isatty():
        try:
            return await _in_daemon_thread(lambda: input(prompt))
        except EOFError:
            return None
    stdout.write(prompt)
    stdout.flush()
    line = await _in_daemon_thread(stdin.readline)
    return line.rstrip("\r\n") if line else None


class _Lines:
    """The person's lines, one read at a time, which may start while an answer is written.

    A line typed during an answer is read then: /cancel stops that answer; any other line
    waits for the answer to end and is taken next, as if typed at the prompt.
    """

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._next: asyncio.Future[str | None] | None = None

    async def take(self) -> str | None:
        """The next line: one read ahead, or one read now with the prompt."""
        if self._next is None:
            return await _read_line(self._stdin, self._stdout)
        if not self._next.done():
            self._stdout.write(PROMPT_USER)  # the read under way showed none
            self._stdout.flush()
        line, self._next = await self._next, None
        return line

    async def peek(self) -> str | None:
        """The next line, read without a prompt and left to take (cancelling this stops no read)."""
        if self._next is None:
            self._next = asyncio.ensure_future(_read_line(self._stdin, self._stdout, prompt=""))
        return await asyncio.shield(self._next)

    def drop(self) -> None:
        """Forget the line :meth:`peek` returned (it was handled)."""
        self._next = None


async def _show(
    service: ConversationService, message: Message, lines: _Lines, out: TextIO
) -> Reply | None:
    """Stream the reply to ``message``, running any /cancel typed meanwhile.

    Returns the reply, or ``None`` when Ctrl-C stopped it.
    """
    notices: list[str] = []
    handling = ended = False

    async def cancels() -> None:
        nonlocal handling
        while not ended and (line := await lines.peek()) is not None:
            said = replace(message, text=line)
            if not stops_an_answer(said):
                return  # the next message: taken once this answer ends
            lines.drop()
            handling = True
            notices.append((await service.handle(said).collect()).text)
            handling = False

    watcher = asyncio.ensure_future(cancels())
    stream = service.handle(message)
    try:
        async for delta in stream:
            out.write(delta)
            out.flush()
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C while answering stops the answer, not the chat.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        await stream.aclose()
        out.write(" [stopped]")
    finally:
        ended = True
        if not handling:
            watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    for notice in notices:
        out.write(f"\n{PROMPT_BOT}{notice}")
    return stream.result if stream.finished else None


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def run_console(
    service: ConversationService,
    *,
    user: UserRef,
    stdin: TextIO,
    stdout: TextIO,
    pictures: Path | None = None,
) -> None:
    """Read lines, hand them to the service, and stream the replies until /quit or EOF.

    Pictures that come with a reply (the /explain chart) are saved under ``pictures``.
    """
    chat = f"{user.id}"
    lines = _Lines(stdin, stdout)
    while True:
        line = await lines.take()
        if line is None or line.strip().lower() in QUIT:
            stdout.write("\nBye!\n" if line is None else "Bye!\n")
            stdout.flush()
            return
        message = Message(platform=PLATFORM, chat=chat, user=user, text=line)
        stdout.write(PROMPT_BOT)
        reply = await _show(service, message, lines, stdout)
        if reply is not None and reply.attachments and pictures is not None:
            for name, data in reply.attachments:
                path = pictures / f"{message.sent_at:%Y%m%d-%H%M%S}-{name}"
                await asyncio.to_thread(_save, path, data)
                what = "picture" if name.endswith(".png") else "file"
                stdout.write(f"\n({what} saved to {path})")
        stdout.write("\n")
        stdout.flush()


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Start the console chat on the configured (by default embedded) deployment."""
    parser = argparse.ArgumentParser(
        prog="python -m bots.console", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--name", help="your name, for Parley to use")
    parser.add_argument(
        "--user", default=getpass.getuser(), help="your user id (default: your login)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what Parley does")
    args = parser.parse_args(argv)
    settings = start(logging.INFO if args.verbose else logging.WARNING)
    target = settings.llm.name
    if settings.llm.engine == "openai":
        target = f"{settings.openai.model or '(its only model)'} at {settings.openai.base_url}"
    print(f"Loading the model {target} …", file=sys.stderr, flush=True)
    with contextlib.closing(build_embedded(settings, quit="leave the chat (or Ctrl-D)")) as parley:
        loaded = parley.loaded
        where = (
            f"{loaded.version} on {loaded.device}, loaded in {loaded.load_seconds:.1f} s"
            if loaded is not None
            else parley.generator.model_version
        )
        print(
            f"Parley is ready ({where}). Type a message, /help for commands, /quit to leave.",
            flush=True,
        )
        user = UserRef(platform=PLATFORM, id=args.user, display_name=args.name)
        try:
            asyncio.run(
                run_console(
                    parley.service,
                    user=user,
                    stdin=sys.stdin,
                    stdout=sys.stdout,
                    pictures=settings.storage.data_dir / "pictures",
                )
            )
        except KeyboardInterrupt:
            print("\nBye!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
