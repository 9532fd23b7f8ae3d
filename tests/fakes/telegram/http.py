"""Reading a Bot API request and answering with an error, as Telegram does."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.telegram.records import (
    _INT_FIELDS,
    _JPEG,
    _JSON_FIELDS,
    _PNG,
    Upload,
)


async def _params(request: web.Request) -> dict[str, Any]:
    """A request's parameters, whether sent as JSON, a form or multipart."""
    if request.content_type == "application/json":
        body = await request.read()
        loaded = json.loads(body) if body else {}
        return dict(loaded)
    params: dict[str, Any] = {}
    if request.method == "POST":
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                params[key] = Upload(value.filename, value.content_type, value.file.read())
            else:
                params[key] = value
    params.update(request.query)
    for key, value in list(params.items()):
        if key in _JSON_FIELDS and isinstance(value, str):
            params[key] = json.loads(value)
        elif key in _INT_FIELDS and isinstance(value, str):
            params[key] = int(value)
    return params


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, (0, 0) for a JPEG, ``None`` for what is no picture."""
    if data.startswith(_PNG) and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(_JPEG):
        return 0, 0  # the size is deep in the JPEG's segments; nothing here needs it
    return None


def _error(code: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": code, "description": description}, status=code
    )
