"""What the tests of real processes share: free ports, a Redis server, Celery workers.

:class:`RedisServer` is a ``redis-server`` of a test's own (so that a test may kill it);
:class:`Children` starts Parley's processes with their logs in files, and :class:`Processes`
starts Celery workers and beat as the Procfile starts them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from tests.model_fixtures import REPO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_environment(settings: Settings) -> dict[str, str]:
    """This process's environment without its ``PARLEY_*``, with ``settings`` and the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(settings.environment())
    env["PYTHONPATH"] = str(REPO)
    return env


class RedisServer:
    """A redis-server of this test's own, which it may kill and start again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own, killed after it if still running."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


class Children:
    """Named ``python`` child processes, each with its log in ``logs/<name>.log``."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def launch(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        """Start ``python *argv`` in the repository as ``name``."""
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *argv], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = process
        return process

    def logged(self, name: str, text: str) -> bool:
        """Whether ``name`` has logged ``text``; an AssertionError once it exited without."""
        if text in (self.logs / f"{name}.log").read_text(errors="replace"):
            return True
        if self.running[name].poll() is not None:
            raise self.silent(name, text)
        return False

    def silent(self, name: str, text: str) -> AssertionError:
        """The failure of ``name`` not logging ``text``, with the end of its log."""
        log = (self.logs / f"{name}.log").read_text()
        return AssertionError(f"{name} did not log {text!r}:\n{log[-3000:]}")

    def wait_for(self, name: str, text: str, within: float = 120) -> None:
        """Wait until ``name`` logs ``text``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.logged(name, text):
                return
            time.sleep(0.2)
        raise self.silent(name, text)

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.running.clear()


class Processes(Children):
    """Celery workers and beat, started as the Procfile starts them."""

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``celery -A workers.celery_app *args`` as ``name``."""
        return self.launch(name, "-m", "celery", "-A", "workers.celery_app", *args)

    def worker(self, name: str = "w1", concurrency: int = 24) -> subprocess.Popen[bytes]:
        process = self.start(
            name,
            "worker",
            "-Q",
            "generate",
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        )
        self.wait_for(name, "ready.")
        return process

    def beat(self) -> None:
        self.start("beat", "beat", "-s", str(self.logs / "schedule"), "--loglevel", "INFO")
