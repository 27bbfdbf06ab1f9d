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


# -- the document and the handlers: one registry --------------------------------------

BODYLESS = {
    # writes that take no body at all (the path says everything)
    ("DELETE", "/api/v1/agents/{agent_id}"),
    ("DELETE", "/api/v1/queues/{name}"),
    ("DELETE", "/api/v1/templates/{template_id}"),
    ("POST", "/api/v1/work/{work_id}/pull"),
    ("DELETE", "/api/v1/centers/{center}"),
}


def test_every_request_body_is_the_one_its_handler_decodes_with() -> None:
    """Each operation's requestBody is the schema of the Struct its handler
    decodes with (`takes`), with its media types; every write that takes a
    body declares one, and a body-less write has none."""
    import msgspec

    from presence.http.common import BODIES

    routes = create_app(Settings()).routes
    doc = openapi.document(routes)
    comps = doc["components"]["schemas"]
    declared = openapi.request_body_types(routes)
    for method, path, endpoint in openapi.endpoints_of(routes):
        op = doc["paths"][path][method.lower()]
        spec = BODIES.get(endpoint)
        if method in ("GET", "HEAD") or (method, path) in BODYLESS:
            assert spec is None and "requestBody" not in op, (method, path)
            continue
        assert spec is not None, f"{method} {path} reads no declared body: give its handler @takes(...)"
        assert declared[(method, path)] is spec.type
        content = op["requestBody"]["content"]
        assert set(content) == set(spec.media), (method, path)
        assert op["requestBody"]["required"] is spec.required
        name = spec.type.__name__
        for media in content.values():
            assert media["schema"] == {"$ref": f"#/components/schemas/{name}"}, (method, path)
        # the component is msgspec's schema of that Struct (plus its rules across fields)
        _, mine = msgspec.json.schema_components([spec.type], ref_template="#/components/schemas/{name}")
        for key, value in mine[name].items():
            assert comps[name][key] == value, (name, key)


def test_path_parameters_are_declared_by_their_type() -> None:
    import msgspec

    from presence.http.common import PATH

    doc = openapi.document(create_app(Settings()).routes)
    seen = set()
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    assert p["schema"] == msgspec.json.schema(PATH[p["name"]][0]), (path, p)
                    seen.add(p["name"])
    assert seen == set(PATH)


def test_queue_documents_carry_overflow_and_relaxation() -> None:
    doc = openapi.document(create_app(Settings()).routes)
    comps = doc["components"]["schemas"]
    for name in ("QueueInput", "Queue"):
        props = comps[name]["properties"]
        assert {"overflow_to", "overflow_after", "overflow_when_unstaffed", "relax"} <= set(props), name
    # the answer always carries every setting; the body needs none of them
    assert set(comps["Queue"]["required"]) == set(comps["Queue"]["properties"])
    assert comps["QueueInput"]["required"] == []
    assert comps["QueueInput"]["properties"]["name"]["readOnly"] is True
    form = doc["paths"]["/forms/case"]["post"]["requestBody"]["content"]
    assert set(form) == {"application/x-www-form-urlencoded", "multipart/form-data"}
