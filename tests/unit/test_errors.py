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
from presence.store.scripts import Scripts


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


@pytest.mark.parametrize(
    "said",
    [
        "ERR Script attempted to access a non local key in a cluster node script: work_create",
        "READONLY You can't write against a read only replica.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    ],
)
async def test_a_batched_call_the_cluster_refused_is_unavailable_not_a_bug(
    said: str, caplog: pytest.LogCaptureFixture
) -> None:
    # what a batched call's pcall makes of a command the moving cluster refused
    refused = Scripts.outcome("work_create", [b"internal", b"", said.encode()])
    assert isinstance(refused, ScriptError) and refused.code == "unavailable", refused
    assert said in refused.message

    async def raise_it(request: Request) -> Response:
        raise refused

    app = Starlette(routes=[Route("/x", raise_it)], exception_handlers=errors.HANDLERS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    caplog.set_level(logging.WARNING, logger="presence.app")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/x")
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.json()["type"].endswith("/unavailable")
    assert not any(rec.levelno >= logging.ERROR for rec in caplog.records)
    # a script that raised for its own reasons is still the server's fault
    bug = Scripts.outcome("work_create", [b"internal", b"", b"attempt to index a nil value"])
    assert isinstance(bug, ScriptError) and bug.code == "internal"
