"""The one error path: a script's refusal raised anywhere in a route becomes
the problem its code maps to (`presence.problems.SCRIPT_STATUS`)."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http import errors
from presence.problems import SCRIPT_STATUS
from presence.store import ScriptError


async def _get(code: str, field: str | None) -> httpx.Response:
    """GET a route that raises the refusal, in an app with the app's handlers."""

    async def refuse(request: Request) -> Response:
        raise ScriptError(code, field, f"refused with {code}")

    app = Starlette(routes=[Route("/x", refuse)], exception_handlers=errors.HANDLERS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/x")


@pytest.mark.parametrize(
    ("code", "status"),
    [("not_found", 404), ("not_yours", 403), ("conflict", 409), ("invalid", 422), ("internal", 500)],
)
async def test_a_script_refusal_is_answered_by_its_code(code: str, status: int) -> None:
    assert SCRIPT_STATUS[code] == status
    r = await _get(code, "work_id")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": f"https://presence.dev/problems/{code}",
        "title": r.json()["title"],
        "status": status,
        "detail": f"refused with {code}",
        "field": "work_id",
    }


async def test_an_unknown_code_is_a_bad_request_without_a_field() -> None:
    r = await _get("odd", None)
    assert r.status_code == 400
    assert r.json()["type"].endswith("/odd") and "field" not in r.json()


async def test_a_script_that_failed_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="presence.app")
    assert (await _get("internal", "")).status_code == 500
    assert any("script failed on GET /x" in r.getMessage() for r in caplog.records)
