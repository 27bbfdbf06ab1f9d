"""One websocket contract: the same message types, per endpoint and
direction, in the schemas, the handlers, ``/asyncapi.json`` and
docs/protocol.md; the document is valid AsyncAPI 3.0 (the official JSON
Schema, vendored under tests/schemas/) and every reference in it resolves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from starlette.requests import Request

from presence import protocol
from presence.app import create_app
from presence.config import Settings
from presence.http import asyncapi
from presence.schema import messages as m
from presence.schema.common import NOT_BLANK
from presence.ws import agent, supervisor

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "protocol.md"
SPEC = ROOT / "tests" / "schemas" / "asyncapi-3.0.0.json"
HANDLERS = {"agent": agent.HANDLERS, "supervisor": supervisor.HANDLERS}
Table = dict[tuple[str, str], set[str]]  # (endpoint role, "receive" | "send") -> types


def _schemas() -> Table:
    out: Table = {}
    for ep in protocol.ENDPOINTS:
        out[ep.role, "receive"] = set(ep.inbound.types)
        out[ep.role, "send"] = {m.tag(cls) for cls in ep.outbound.__args__}
    return out


def _handlers() -> Table:
    return {(role, "receive"): {m.tag(cls) for cls in table} for role, table in HANDLERS.items()}


def _asyncapi(doc: dict[str, Any]) -> Table:
    out: Table = {(ep.role, d): set() for ep in protocol.ENDPOINTS for d in ("receive", "send")}
    for op in doc["operations"].values():
        role = op["channel"]["$ref"].rsplit("/", 1)[1]
        for ref in op["messages"]:
            out[role, op["action"]].add(_resolve(doc, ref["$ref"])["name"])
    return out


_LEADING_NAMES = re.compile(r"^#### ((?:`[^`]+`(?:, )?)+)", re.M)
_TABLE_TYPE = re.compile(r"^\| `([^`]+)` \|", re.M)


def _docs(text: str) -> Table:
    """The types docs/protocol.md documents: per endpoint section (``## ...
    `/ws/agent```), the ``#### `type``` headings of its "Server → ..."
    subsections and the first column of its "... → server" tables."""
    out: Table = {(ep.role, d): set() for ep in protocol.ENDPOINTS for d in ("receive", "send")}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0]
        ep = next((e for e in protocol.ENDPOINTS if f"`{e.path}`" in title), None)
        if ep is None:
            continue
        for sub in re.split(r"^### ", section, flags=re.M)[1:]:
            heading = sub.splitlines()[0]
            if heading.startswith("Server →"):
                for names in _LEADING_NAMES.findall(sub):
                    out[ep.role, "send"].update(re.findall(r"`([^`]+)`", names))
            elif "→ server" in heading:
                out[ep.role, "receive"].update(_TABLE_TYPE.findall(sub))
    return out


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    # a channel's message is itself a reference to the component
    return _resolve(doc, node["$ref"]) if isinstance(node, dict) and set(node) == {"$ref"} else node


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(json.dumps(asyncapi.document()))


def test_every_message_type_is_in_the_schemas_handlers_document_and_docs(doc: dict[str, Any]) -> None:
    schemas, handlers, published, documented = (
        _schemas(),
        _handlers(),
        _asyncapi(doc),
        _docs(DOCS.read_text()),
    )
    for key in schemas:
        where = {"schemas": schemas[key], "asyncapi": published[key], "docs/protocol.md": documented[key]}
        if key[1] == "receive":
            where["handlers"] = handlers[key]
        every = set().union(*where.values())
        missing = {name: sorted(every - types) for name, types in where.items() if every - types}
        assert not missing, f"{key}: message types missing from {missing}"


def test_handlers_are_exactly_the_endpoint_structs() -> None:
    for ep in protocol.ENDPOINTS:
        assert set(HANDLERS[ep.role]) == set(ep.inbound.types.values()), ep.role


def test_lua_events_are_described() -> None:
    """Every event type a Lua script publishes is a message some endpoint sends."""
    lua = "".join(p.read_text() for p in (ROOT / "presence" / "store" / "lua").glob("*.lua"))
    emitted = set(re.findall(r"type = '([a-z_.]+)'", lua)) | set(
        re.findall(r"emit_agent\(\w+, '([a-z_.]+)'\)", lua)
    )
    assert {"offer", "status", "load", "queue.updated"} <= emitted  # the patterns still find them
    sent = {t for (_, d), types in _schemas().items() if d == "send" for t in types}
    assert emitted <= sent, sorted(emitted - sent)


def test_the_checker_sees_a_missing_type(doc: dict[str, Any]) -> None:
    """The comparison can fail: a type dropped from the docs or the document shows."""
    text = DOCS.read_text().replace("| `work.pull` |", "| `work.pulled` |")
    assert "work.pull" not in _docs(text)["supervisor", "receive"]
    assert "work.pulled" in _docs(text)["supervisor", "receive"]
    text = DOCS.read_text().replace("#### `call.state`", "#### call state")
    assert "call.state" not in _docs(text)["agent", "send"]
    ops = {k: v for k, v in doc["operations"].items() if k != "agent.send.offer"}
    assert "offer" not in _asyncapi({**doc, "operations": ops})["agent", "send"]


def test_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors, errors[:5]
    # and the validator does check: a wrong action is refused
    bad = json.loads(json.dumps(doc))
    bad["operations"]["agent.receive.ping"]["action"] = "publish"
    assert not validator.is_valid(bad)


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc))
    assert len(refs) > 100
    for ref in set(refs):
        _resolve(doc, ref)


def test_document_content(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {"/ws/agent", "/ws/supervisor"}
    for channel in doc["channels"].values():
        assert [s["name"] for s in channel["x-subprotocols"]] == list(protocol.SUBPROTOCOLS)
        assert channel["bindings"]["ws"]["headers"]["properties"]["Sec-WebSocket-Protocol"]["enum"] == list(
            protocol.SUBPROTOCOLS
        )
        assert {c["code"] for c in channel["x-close-codes"]} == {int(c) for c in protocol.Close}
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["properties"]["code"]["enum"] == list(protocol.ERROR_MEANINGS)
    # a rule of the schema layer is in the document as it is in the decoder
    note = schemas["WorkNote"]["properties"]["text"]
    assert note["maxLength"] == 4000 and note["pattern"] == NOT_BLANK
    assert schemas["CallControl"]["properties"]["action"]["enum"][0] == "answer"
    ping = doc["operations"]["agent.receive.ping"]
    assert [_resolve(doc, r["$ref"])["name"] for r in ping["reply"]["messages"]] == ["pong", "error"]
    snap = doc["operations"]["supervisor.receive.snapshot.get"]["reply"]["messages"][0]["$ref"]
    assert _resolve(doc, snap)["payload"] == {"$ref": "#/components/schemas/SupervisorSnapshot"}


def test_docs_close_codes_match() -> None:
    table = DOCS.read_text().split("### Close codes", 1)[1].split("##", 1)[0]
    assert {int(c) for c in re.findall(r"^\| (\d{4}) \|", table, re.M)} == {int(c) for c in protocol.Close}


async def test_served_with_the_host_asked() -> None:
    assert any(getattr(r, "path", None) == "/asyncapi.json" for r in create_app(Settings()).routes)
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "path": "/asyncapi.json",
        "query_string": b"",
        "headers": [(b"host", b"presence.example:8443")],
    }
    r = await asyncapi.asyncapi_json(Request(scope))
    assert r.status_code == 200 and r.media_type == "application/json"
    server = json.loads(bytes(r.body))["servers"]["presence"]
    assert (server["host"], server["protocol"]) == ("presence.example:8443", "wss")
