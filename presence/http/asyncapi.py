"""The published AsyncAPI 3.0 description of the websockets (`GET /asyncapi.json`).

Generated, never written by hand: the channels are the endpoints of
`presence.protocol` (`AGENT`, `SUPERVISOR`), their messages the Structs of
`presence.schema.messages` in both directions, the payload schemas msgspec's
JSON Schema of those Structs (`schema_components`), and the subprotocols,
close codes and error codes come from `presence.protocol`. An operation is
named from the server's side, as AsyncAPI does: it *receives* what a client
sends (``agent.receive.status.set``) and *sends* the events and replies
(``agent.send.offer``). `docs/protocol.md` stays the readable guide; a unit
test holds the two, the schemas and the handlers to the same message types.
"""

from __future__ import annotations

import functools
from typing import Any, Final, get_args

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence import protocol
from presence.http import openapi
from presence.protocol import Endpoint
from presence.schema import messages as m

VERSION: Final = "3.0.0"
PATH: Final = "/asyncapi.json"
_SCHEMAS: Final = "#/components/schemas/{name}"
CONTENT_TYPES: Final = {protocol.JSON: "application/json", protocol.MSGPACK: "application/vnd.msgpack"}
_FRAMES: Final = {protocol.JSON: "text", protocol.MSGPACK: "binary"}


def _name(cls: type[msgspec.Struct]) -> str:
    return cls.__name__


def _structs(union: Any) -> list[type[msgspec.Struct]]:
    return list(get_args(union))


def _reply(endpoint: Endpoint, cls: type[msgspec.Struct]) -> list[type[msgspec.Struct]]:
    """What answers a client message (presence/ws/session.py): ``pong`` a
    ping, the snapshot a ``snapshot.get``, ``ok`` any other command; any may
    be answered with ``error``."""
    if cls is m.Ping:
        return [m.Pong, m.Error]
    if cls is m.SnapshotGet:
        snapshot = next(t for t in _structs(endpoint.outbound) if m.tag(t) == "snapshot")
        return [snapshot, m.Error]
    return [m.Ok, m.Error]


def _message(cls: type[msgspec.Struct], client: bool) -> dict[str, Any]:
    doc = (cls.__doc__ or "").strip()
    summary = doc.split("\n\n")[0].replace("\n", " ")
    return {
        "name": m.tag(cls),
        "title": m.tag(cls),
        "summary": summary,
        "payload": {"$ref": _SCHEMAS.format(name=_name(cls))},
        "tags": [{"name": "client" if client else "server"}],
    }


def _binding() -> dict[str, Any]:
    return {
        "ws": {
            "method": "GET",
            "query": {
                "type": "object",
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "the bearer token, for browsers (no headers on a browser websocket)",
                    }
                },
            },
            "headers": {
                "type": "object",
                "properties": {
                    "Sec-WebSocket-Protocol": {
                        "type": "string",
                        "enum": list(protocol.SUBPROTOCOLS),
                        "description": "the encoding; a client that asks for neither gets presence.v1.json",
                    },
                    "Authorization": {"type": "string", "description": "Bearer <token>"},
                },
            },
            "bindingVersion": "0.1.0",
        }
    }


def _close_codes() -> list[dict[str, Any]]:
    return [
        {"code": int(c), "name": c.name.lower(), "meaning": protocol.CLOSE_MEANINGS[c]}
        for c in protocol.Close
    ]


def _subprotocols() -> list[dict[str, str]]:
    return [{"name": s, "contentType": CONTENT_TYPES[s], "frames": _FRAMES[s]} for s in protocol.SUBPROTOCOLS]


_DESCRIPTION: Final = """\
Real-time presence, offers and work for agents (`/ws/agent`) and live views for
supervisors (`/ws/supervisor`). The readable guide, with examples, is docs/protocol.md.

Two subprotocols (`Sec-WebSocket-Protocol`) carry the same messages:

{subprotocols}

Every message is a map with a string `type`. A client message may carry a `ref`
(a string or an integer of at most 64 characters) that its reply echoes; unknown
extra fields are ignored. A bad message gets an `error` naming the field; errors
never close the socket. The close codes:

{close_codes}
"""


@functools.cache
def _body() -> dict[str, Any]:
    """Everything but the servers (which name the host that was asked)."""
    structs: dict[str, type[msgspec.Struct]] = {}
    for ep in protocol.ENDPOINTS:
        for cls in [*ep.inbound.types.values(), *_structs(ep.outbound)]:
            structs[_name(cls)] = cls
    _, schemas = msgspec.json.schema_components(list(structs.values()), ref_template=_SCHEMAS)
    schemas["Error"]["properties"]["code"] = {
        "enum": list(protocol.ERROR_MEANINGS),
        "description": "; ".join(f"{k}: {v}" for k, v in protocol.ERROR_MEANINGS.items()),
    }
    inbound = {_name(c) for ep in protocol.ENDPOINTS for c in ep.inbound.types.values()}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ep in protocol.ENDPOINTS:
        ins = list(ep.inbound.types.values())
        outs = _structs(ep.outbound)
        here = f"#/channels/{ep.role}"
        channels[ep.role] = {
            "address": ep.path,
            "title": ep.path,
            "description": f"{ep.description} Send one message per frame, in the subprotocol's encoding.",
            "servers": [{"$ref": "#/servers/presence"}],
            "messages": {_name(c): {"$ref": f"#/components/messages/{_name(c)}"} for c in [*ins, *outs]},
            "bindings": _binding(),
            "x-subprotocols": _subprotocols(),
            "x-close-codes": _close_codes(),
        }
        for cls in ins:
            operations[f"{ep.role}.receive.{m.tag(cls)}"] = {
                "action": "receive",
                "channel": {"$ref": here},
                "summary": f"a client sends {m.tag(cls)}",
                "messages": [{"$ref": f"{here}/messages/{_name(cls)}"}],
                "reply": {
                    "channel": {"$ref": here},
                    "messages": [{"$ref": f"{here}/messages/{_name(r)}"} for r in _reply(ep, cls)],
                },
            }
        for cls in outs:
            operations[f"{ep.role}.send.{m.tag(cls)}"] = {
                "action": "send",
                "channel": {"$ref": here},
                "summary": f"the server sends {m.tag(cls)}",
                "messages": [{"$ref": f"{here}/messages/{_name(cls)}"}],
            }
    return {
        "asyncapi": VERSION,
        "info": {
            "title": "presence websockets",
            "version": str(protocol.VERSION),
            "description": _DESCRIPTION.format(
                subprotocols="\n".join(
                    f"* `{s['name']}`: {s['contentType']} in {s['frames']} frames" for s in _subprotocols()
                ),
                close_codes="\n".join(f"* {c['code']} ({c['name']}): {c['meaning']}" for c in _close_codes()),
            ),
        },
        "defaultContentType": CONTENT_TYPES[protocol.JSON],
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": {
                name: _message(cls, client=name in inbound) for name, cls in sorted(structs.items())
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "in the Authorization header",
                },
                "token": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "the same token in the query, for browsers",
                },
            },
        },
        "x-subprotocols": _subprotocols(),
        "x-close-codes": _close_codes(),
    }


def document(host: str = "localhost:8000", secure: bool = False) -> dict[str, Any]:
    """The AsyncAPI document, with the server at `host` (``wss`` when `secure`)."""
    return {
        **_body(),
        "servers": {
            "presence": {
                "host": host,
                "protocol": "wss" if secure else "ws",
                "description": "this presence server (any process of a deployment)",
                "security": [
                    {"$ref": "#/components/securitySchemes/bearer"},
                    {"$ref": "#/components/securitySchemes/token"},
                ],
            }
        },
    }


async def asyncapi_json(request: Request) -> Response:
    doc = document(request.url.netloc, request.url.scheme == "https")
    return Response(orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-cache"})


ROUTE: Final = Route(PATH, asyncapi_json, methods=["GET"])
openapi.describe(
    "GET", PATH, openapi.Op("The AsyncAPI 3 description of the websockets", ok=(200, {"type": "object"}))
)
