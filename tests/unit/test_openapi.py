"""The published OpenAPI document covers every HTTP route of the app."""

from __future__ import annotations

import re

from presence.app import create_app
from presence.config import Settings
from presence.http import openapi


def _app_routes() -> list[tuple[str, str]]:
    return openapi.routes_of(create_app(Settings()).routes)


def test_every_route_is_described() -> None:
    missing = openapi.undocumented(create_app(Settings()).routes)
    assert not missing, f"describe these routes in presence/http/openapi.py OPERATIONS: {missing}"


def test_no_stale_descriptions() -> None:
    stale = set(openapi.OPERATIONS) - set(_app_routes())
    assert not stale, f"OPERATIONS describes routes the app no longer has: {sorted(stale)}"


def test_document_shape() -> None:
    doc = openapi.document(create_app(Settings()).routes)
    assert doc["openapi"].startswith("3.1")
    for method, path in _app_routes():
        op = doc["paths"][path][method.lower()]
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"{(\w+)}", path)), (method, path)
        if path.startswith("/api/"):
            # every API route is authenticated and says how it refuses
            assert op["security"] == [{"bearer": []}], (method, path)
            for status in ("401", "403", "503"):
                body = op["responses"][status]["content"]["application/problem+json"]
                assert body["schema"] == {"$ref": "#/components/schemas/Problem"}
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(doc).replace("'", '"'))
    assert refs and set(refs) <= set(doc["components"]["schemas"])


def test_undocumented_route_is_named() -> None:
    from starlette.routing import Route

    async def endpoint(request: object) -> None:  # pragma: no cover - never called
        return None

    extra = Route("/api/v1/not-described/{x}", endpoint, methods=["POST"])
    assert openapi.undocumented([extra]) == [("POST", "/api/v1/not-described/{x}")]
    generic = openapi.document([extra])["paths"]["/api/v1/not-described/{x}"]["post"]
    assert "503" in generic["responses"]
