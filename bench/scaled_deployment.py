"""The scaled deployment in this process tree, for the benchmarks' ``celery`` rows.

Its own Redis server, a database, one generation worker process (``celery worker -P
threads``) whose ``PARLEY_GENERATOR`` is :func:`worker_generator`, and the benchmark's
process as the web side. The worker imports this module as ``bench.scaled_deployment``, so it
imports no other script.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import SecretStr

from config import Settings
from core.generator import FinishReason, GenerationRequest, GenerationResult
from core.streaming import Streamed
from core.types import Message, ReplyKind, UserRef
from workers.batching import BatchedGenerator
from workers.model import load_tokenizer

WORKER = (sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--without-gossip")
ROOT = Path(__file__).resolve().parent.parent
"""The worker runs here, so that ``python -m`` finds ``bench.scaled_deployment``."""


def worker_generator(settings: Settings) -> BatchedGenerator:
    """``PARLEY_GENERATOR`` of the benchmark's Celery worker: answers of a fixed length."""
    natural = os.environ.get("PARLEY_BENCH_NATURAL_LENGTH") == "1"
    generator = BatchedGenerator.from_settings(settings)
    if natural:
        return generator
    loaded = generator.loaded
    generator.close()
    return BatchedGenerator(loaded, settings, stop_token_ids=())


class ScaledDeployment:
    """The scaled deployment in this process tree: its own Redis server, a database, one
    generation worker process (``celery worker -P threads``), and this process as the web
    side, which accepts each request as a message and streams its answer back from Redis."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.port = _free_port()
        database = args.database_url or f"sqlite:///{self.folder / 'parley.db'}"
        self.settings = settings.model_copy(
            update={
                "deployment": "scaled",
                "database_url": SecretStr(database),
                "redis_url": SecretStr(f"redis://127.0.0.1:{self.port}/0"),
                "max_new_tokens": args.max_new_tokens,
                "sentiment": False,
                "data_dir": self.folder,
                "generator": "bench.scaled_deployment:worker_generator",
            }
        )
        self.natural = args.natural_length
        self.processes: list[subprocess.Popen[bytes]] = []
        self.chats = itertools.count()

    def __enter__(self) -> ScaledDeployment:
        from config.wiring import build_web

        self.processes.append(
            subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )
        env = dict(os.environ, PARLEY_BENCH_NATURAL_LENGTH="1" * self.natural)
        env.update(self.settings.environment())
        log_path = self.folder / "worker.log"
        self.processes.append(
            subprocess.Popen(
                [*WORKER, "-Q", "generate", "-P", "threads", "-c", "32", "--loglevel", "INFO"],
                env=env,
                cwd=ROOT,
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        self.parley = build_web(self.settings)
        self.tokens = load_tokenizer(self.settings)
        deadline = time.monotonic() + 300
        while "ready." not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline or self.processes[-1].poll() is not None:
                raise SystemExit(f"the Celery worker did not start; see {log_path}")
            time.sleep(0.5)
        return self

    def __exit__(self, *_: object) -> None:
        self.parley.close()
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def submit(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        """Accept the request's question as a new private chat's message; stream its answer."""
        chat = next(self.chats)
        message = Message(
            platform="bench",
            chat=f"chat-{chat}",
            user=UserRef("bench", f"person-{chat}"),
            text=request.turns[-1].content,
        )
        service = self.parley.service
        replies = service.reply(await service.accept(message))
        tokens = self.tokens

        async def answer() -> AsyncIterator[str | GenerationResult]:
            async for delta in replies:
                yield delta
            reply = replies.result
            # The fixed-length answer has exactly max_new_tokens; natural ones are re-counted.
            count = tokens.count_text(reply.text) if self.natural else request.max_new_tokens
            yield GenerationResult(
                text=reply.text,
                model_version=reply.model_version or "",
                prompt_tokens=0,
                completion_tokens=count if reply.kind is ReplyKind.ANSWER else 0,
                finish_reason=FinishReason.LENGTH,
            )

        return Streamed(answer())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
