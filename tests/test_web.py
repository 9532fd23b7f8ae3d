"""The web process: health check and metrics, on a real database."""

from __future__ import annotations

from pathlib import Path

import httpx

from bots.web import create_app
from config.settings import Settings
from config.wiring import Parley, open_store
from core.db import SqlStore, create_engine_for
from core.store import Store
from tests.factories import make_message, make_service


def make_parley(tmp_path: Path, database_url: str | None = None) -> Parley:
    settings = Settings(data_dir=tmp_path, database_url=database_url, _env_file=None)  # type: ignore[call-arg]
    # A database that is down cannot be migrated: connect to it without opening it.
    store: Store = (
        open_store(settings)
        if database_url is None
        else SqlStore(create_engine_for(settings.storage.sqlalchemy_url))
    )
    service, _, generator = make_service(store=store)
    return Parley(settings, store, generator, service)


async def test_health_and_metrics(tmp_path: Path) -> None:
    parley = make_parley(tmp_path)
    await parley.service.handle(make_message("hello")).collect()
    app = create_app(parley, [])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://web"
    ) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "model": "echo-1"}
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'parley_replies_total{kind="answer"}' in metrics.text
    assert "parley_first_token_seconds_bucket" in metrics.text
    parley.close()


async def test_health_reports_a_database_that_is_down(tmp_path: Path) -> None:
    parley = make_parley(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/parley")
    app = create_app(parley, [])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://web"
    ) as client:
        health = await client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert "PARLEY_DATABASE_URL" in health.json()["database"]
    parley.close()
