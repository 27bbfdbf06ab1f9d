"""The websocket protocol: every message, both encodings, close codes.

This module owns the wire of `/ws/agent` and `/ws/supervisor`: the
encodings, the version, the close and error codes, what each endpoint takes
and sends (`AGENT`, `SUPERVISOR`) and the builders of the server's replies.
The messages themselves are msgspec Structs in `presence.schema.messages`:
a client frame is decoded straight into one, which is all its validation,
and ``/asyncapi.json`` is generated from them (`presence.http.asyncapi`).
`docs/protocol.md` documents the same messages with examples. It is pure:
no I/O, so it is tested byte for byte.

Two subprotocols carry the same messages:

* ``presence.v1.json``: UTF-8 JSON objects in text frames (orjson);
* ``presence.v1.msgpack``: msgpack maps in binary frames.

Every message is a map with a ``type``. A client message may carry a ``ref``
(string or integer, at most 64 characters) and the reply to it (``ok``,
``pong`` or ``error``) echoes it. A command sent without a ref gets no
``ok`` (it succeeded unless an ``error`` comes back; errors are always
sent), so a client that fires commands without waiting costs one frame
less per command. Events the server pushes (``status``,
``offer`` ...) never carry a ref: they reach every socket of the agent.

Errors never close the socket: a malformed frame or a bad field gets an
``error`` naming the field. Only a bad token (4401), a wrong role (4403), an
oversized frame (1009) or abuse (1008) closes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, get_args

import msgpack
import msgspec
import orjson

from presence.schema import explain, messages
from presence.schema.messages import ClientMessage

VERSION: Final = 1
JSON: Final = "presence.v1.json"
MSGPACK: Final = "presence.v1.msgpack"
SUBPROTOCOLS: Final = (MSGPACK, JSON)


# How long the answer to an agent's action sent with a `ref` is kept: the
# same message sent again with the same ref meanwhile (a retry after
# `unavailable`) gets that answer instead of being applied a second time.
REF_KEPT_SECONDS: Final = messages.REF_KEPT_SECONDS


class Close(IntEnum):
    """Close codes the server uses; `CLOSE_MEANINGS` says what a client should do on each."""

    NORMAL = 1000
    INVALID_DATA = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTART = 1012
    TRY_AGAIN = 1013
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    UNKNOWN_AGENT = 4404
    TOO_SLOW = 4408


CLOSE_MEANINGS: Final[dict[Close, str]] = {
    Close.NORMAL: "normal close (also: no frame at all for PRESENCE_HEARTBEAT_TIMEOUT seconds); "
    "reconnect when needed",
    Close.INVALID_DATA: "a text frame that is not valid UTF-8; fix the client",
    Close.POLICY: "abuse: origin not allowed, or messages (or websocket pings and pongs) faster than "
    "the rate limit; do not retry at once",
    Close.TOO_BIG: "a frame over PRESENCE_MAX_FRAME bytes; fix the client",
    Close.INTERNAL: "the server failed on this socket (logged); retry with backoff",
    Close.RESTART: "the server is shutting down; reconnect (to another process)",
    Close.TRY_AGAIN: "Redis is unreachable; retry with backoff",
    Close.UNAUTHORIZED: "missing, malformed, forged or expired token; get a new token",
    Close.FORBIDDEN: "the token's role may not use this endpoint; use the right token",
    Close.UNKNOWN_AGENT: "the token's subject is not an agent of this center (or was removed)",
    Close.TOO_SLOW: "the client stopped reading (a wallboard whose queue stayed full for 5 s); "
    "reconnect for a fresh snapshot",
}


class ErrorCode:
    """The ``code`` of an ``error`` reply; `ERROR_MEANINGS` says when each is sent."""

    BAD_FRAME = "bad_frame"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


ERROR_MEANINGS: Final[dict[str, str]] = {
    ErrorCode.BAD_FRAME: "not decodable in the socket's encoding (or the wrong frame kind)",
    ErrorCode.BAD_MESSAGE: "decodable, but not a map",
    ErrorCode.UNKNOWN_TYPE: "type is not a message this endpoint takes",
    ErrorCode.INVALID: "a field is missing, of the wrong type, too long, or not an allowed value",
    ErrorCode.NOT_FOUND: "no such agent or work item",
    ErrorCode.NOT_YOURS: "the work item is not offered to / held by this agent",
    ErrorCode.CONFLICT: "the item is not in a state that allows this",
    ErrorCode.FORBIDDEN: "the token may not do this",
    ErrorCode.UNAVAILABLE: "Redis did not answer; try again",
    ErrorCode.INTERNAL: "the server failed (logged)",
}


class ProtocolError(Exception):
    """A client message that cannot be served; becomes an ``error`` reply."""

    def __init__(self, code: str, message: str, *, field: str | None = None, ref: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.ref = ref

    def to_message(self) -> dict[str, Any]:
        return error(self.code, self.message, field=self.field, ref=self.ref)


# -- what each endpoint takes ------------------------------------------------


class Inbound:
    """The messages one endpoint accepts: a tagged union of Structs
    (`presence.schema.messages`) and its two decoders, built once."""

    __slots__ = ("json", "msgpack", "types", "union")

    def __init__(self, union: Any) -> None:
        self.union = union
        self.types: dict[str, type[ClientMessage]] = {messages.tag(t): t for t in get_args(union)}
        self.json = msgspec.json.Decoder(union)
        self.msgpack = msgspec.msgpack.Decoder(union)

    def __iter__(self) -> Iterator[str]:
        return iter(self.types)

    def __contains__(self, kind: object) -> bool:
        return kind in self.types


AGENT_MESSAGES: Final = Inbound(messages.AgentInbound)
SUPERVISOR_MESSAGES: Final = Inbound(messages.SupervisorInbound)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One websocket endpoint: where it is, whose token it takes, what it
    accepts and what it sends (the published document comes from these)."""

    path: str
    role: str
    inbound: Inbound
    outbound: Any  # a union of `messages.ServerMessage` Structs
    description: str


AGENT: Final = Endpoint(
    "/ws/agent",
    "agent",
    AGENT_MESSAGES,
    messages.AgentOutbound,
    "An agent's panel (browser tab, softphone, desktop app): its status, its offers "
    "and its work. The token's role is agent, its subject the agent id.",
)
SUPERVISOR: Final = Endpoint(
    "/ws/supervisor",
    "supervisor",
    SUPERVISOR_MESSAGES,
    messages.SupervisorOutbound,
    "A wallboard or supervisor console: every agent's view, the queues and the live KPIs, "
    "and moves by force. The token's role is supervisor.",
)
ENDPOINTS: Final = (AGENT, SUPERVISOR)


# -- codecs ---------------------------------------------------------------


def encode_json(msg: Mapping[str, Any]) -> str:
    return orjson.dumps(msg).decode()


def encode_msgpack(msg: Mapping[str, Any]) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)  # type: ignore[no-any-return]


ENCODERS: Final[dict[str, Callable[[Mapping[str, Any]], str | bytes]]] = {
    JSON: encode_json,
    MSGPACK: encode_msgpack,
}


def encode(msg: Mapping[str, Any], subprotocol: str) -> str | bytes:
    return ENCODERS[subprotocol](msg)


_ANY_JSON: Final = msgspec.json.Decoder()
_ANY_MSGPACK: Final = msgspec.msgpack.Decoder()


def decode(frame: str | bytes, subprotocol: str, spec: Inbound) -> ClientMessage:
    """Decode and validate one client frame in one pass; raise ProtocolError
    naming the field (as a path) otherwise."""
    try:
        if subprotocol == JSON:
            if isinstance(frame, bytes):
                raise ProtocolError(
                    ErrorCode.BAD_FRAME, "presence.v1.json takes text frames, got a binary frame"
                )
            return spec.json.decode(frame)  # type: ignore[no-any-return]
        if isinstance(frame, str):
            raise ProtocolError(
                ErrorCode.BAD_FRAME, "presence.v1.msgpack takes binary frames, got a text frame"
            )
        # the frame's size is already bounded by the server (PRESENCE_MAX_FRAME)
        return spec.msgpack.decode(frame)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise _refusal(exc, frame, subprotocol, spec) from None
    except msgspec.DecodeError as exc:
        raise _not_valid(subprotocol, exc) from None
    except RecursionError:
        # msgspec recurses into nested values, even those of fields it skips
        raise ProtocolError(ErrorCode.BAD_FRAME, _TOO_DEEP) from None


_NAMES: Final = {JSON: "JSON", MSGPACK: "msgpack"}
_TOO_DEEP: Final = "frame is nested too deeply"


def _not_valid(subprotocol: str, exc: msgspec.DecodeError) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FRAME, f"frame is not valid {_NAMES[subprotocol]}: {exc}")


_REF: Final[Any] = messages.Ref | None


def _refusal(
    exc: msgspec.ValidationError, frame: str | bytes, subprotocol: str, spec: Inbound
) -> ProtocolError:
    """The error reply for a well-formed frame that is not a valid message.

    Only refused frames pay for this second, untyped decode: it tells a frame
    that is no map, or has no type, from a bad field, and finds the `ref` to
    echo, which the failed decode could not return. The ref is checked first,
    so a bad ref is never echoed.
    """
    try:
        obj = _ANY_JSON.decode(frame) if isinstance(frame, str) else _ANY_MSGPACK.decode(frame)
    except msgspec.DecodeError as err:
        return _not_valid(subprotocol, err)
    except RecursionError:
        return ProtocolError(ErrorCode.BAD_FRAME, _TOO_DEEP)
    if not isinstance(obj, dict):
        return ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a map with a type")
    # (a binary key is allowed here, as msgpack's own decoder did: it is no field)
    if not all(isinstance(k, str | bytes) for k in obj):
        return ProtocolError(ErrorCode.BAD_FRAME, "frame is not valid msgpack: map keys must be strings")
    try:
        ref = msgspec.convert(obj.get("ref"), _REF)
    except msgspec.ValidationError:
        return ProtocolError(
            ErrorCode.INVALID, "ref must be a string or integer of at most 64 characters", field="ref"
        )
    kind = obj.get("type")
    if not isinstance(kind, str):
        return ProtocolError(ErrorCode.INVALID, "type is required (a string)", field="type", ref=ref)
    cls = spec.types.get(kind)
    if cls is None:
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind[:64]!r} (expected one of {', '.join(sorted(spec))})",
            field="type",
            ref=ref,
        )
    field, message = _explained(cls, obj, exc)
    return ProtocolError(ErrorCode.INVALID, message, field=field, ref=ref)


# Readings of msgspec's errors, by message type and msgspec's text. Reading
# one walks the Struct's annotations (~0.3 ms); a client repeating a bad
# message must not cost that each time. The text and the type decide the
# reading unless the error lies in a map's key or value (`[...]`, `key`),
# where the data does: those are never kept. Bounded: past it, no caching.
_READINGS: Final[dict[tuple[type[ClientMessage], str], tuple[str | None, str]]] = {}
_READINGS_MAX: Final = 1024


def _explained(cls: type[ClientMessage], obj: Any, exc: msgspec.ValidationError) -> tuple[str | None, str]:
    key = (cls, str(exc))
    reading = _READINGS.get(key)
    if reading is None:
        found = explain(cls, obj, exc)
        reading = (found.field, f"{found.field} {found.message}") if found.path else (None, found.message)
        if len(_READINGS) < _READINGS_MAX and "[...]" not in key[1] and "`key`" not in key[1]:
            _READINGS[key] = reading
    return reading


# -- server messages ------------------------------------------------------


def error(code: str, message: str, *, field: str | None = None, ref: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if field is not None:
        msg["field"] = field
    if ref is not None:
        msg["ref"] = ref
    return msg


def ok(ref: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "ok", "ref": ref, **extra}


def pong(ref: Any, ts: Any, server_time: int) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "pong", "server_time": server_time}
    if ref is not None:
        msg["ref"] = ref
    if ts is not None:
        msg["ts"] = ts
    return msg


def agent_snapshot(
    agent: Mapping[str, Any],
    offers: list[dict[str, Any]],
    work: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    channels: list[dict[str, Any]],
    server_time: int,
    center: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    msg = {
        "type": "snapshot",
        "version": VERSION,
        "agent": dict(agent),
        "offers": offers,
        "work": work,
        "statuses": statuses,
        "channels": channels,
        "server_time": server_time,
    }
    if center is not None:
        msg["center"] = dict(center)
    return msg


def supervisor_snapshot(
    agents: list[dict[str, Any]],
    queues: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    channels: list[dict[str, Any]],
    server_time: int,
    center: Mapping[str, str] | None = None,
    composing: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    msg = {
        "type": "snapshot",
        "version": VERSION,
        "agents": agents,
        "queues": queues,
        "statuses": statuses,
        "channels": channels,
        "server_time": server_time,
        "composing": composing or [],
    }
    if center is not None:
        msg["center"] = dict(center)
    return msg


# Waiting items listed per queue in the supervisors' ``queues`` and
# ``snapshot`` messages (the wallboard's waiting list, in routing order); the
# queue's ``waiting`` counts them all, and GET /api/v1/queues/{name}/waiting
# lists more.
WAITING_LISTED: Final = 25


def agents_delta(agents: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "agents", "agents": agents}


def queues_delta(queues: list[dict[str, Any]], server_time: int) -> dict[str, Any]:
    return {"type": "queues", "queues": queues, "server_time": server_time}


# The windows of the ``kpis`` message: since midnight (center time zone) and
# the last 15, 30 and 60 minutes.
KPI_WINDOWS: Final = ("today", "15m", "30m", "60m")


def kpis(
    center: dict[str, Any],
    queues: list[dict[str, Any]],
    channels: list[dict[str, Any]],
    agents: list[dict[str, Any]],
    server_time: int,
) -> dict[str, Any]:
    """Live KPIs for supervisors, pushed at least every second (presence/kpi/live.py).

    ``center``, each of ``queues`` and each of ``channels`` carry one figures
    map per window in `KPI_WINDOWS` (offered, answered, abandoned,
    service_level, asa, aht, abandonment_rate, occupancy, utilisation, fcr
    ...; a ratio with nothing to divide is null). ``center`` and each queue
    add waiting, longest_wait (s), logged_in, routable and staffing_needed
    (Erlang C); each queue adds staffed and the ``staffing`` details. Each
    of ``agents`` has ``today`` and ``60m`` maps with time_in_status.
    The full shape is in docs/kpis.md (section "The kpis message").
    """
    return {
        "type": "kpis",
        "version": VERSION,
        "windows": list(KPI_WINDOWS),
        "center": center,
        "queues": queues,
        "channels": channels,
        "agents": agents,
        "server_time": server_time,
    }


# -- events from Redis ----------------------------------------------------

# Header fields only used to route an event inside the server.
ROUTING_FIELDS: Final = ("to", "sup")
# Agent-view events: sent to the agent as is, and coalesced for supervisors.
AGENT_VIEW_TYPES: Final = frozenset({"status", "load"})
# Supervisor messages of figures computed every so often (the live KPIs, at
# least every second): the hub sends them with its next coalesced flush, in
# the same write as that flush's deltas, not at once.
PERIODIC_TYPES: Final = frozenset({"kpis"})
# Item events that change the agent's load (``offer``, ``offer.rescinded``,
# ``work.assigned``, ``work.updated``) carry the agent's new view in field
# ``agent`` instead of a separate ``load`` event: the agent applies it as a
# ``load``, and supervisors get only the view, coalesced like a ``load``.
VIEW_FIELD: Final = "agent"


@dataclass(frozen=True, slots=True)
class Event:
    """An event published by a Lua script, decoded once per process."""

    message: dict[str, Any]
    to: str | None
    supervisors: bool


def decode_events(raw: bytes) -> list[Event]:
    """Decode a pub/sub payload: one event, or an array of events (a script
    that made many changes publishes them as one message, in order)."""
    parts = msgpack.unpackb(raw, raw=False)
    if parts and isinstance(parts[0], list):
        return [_event(p) for p in parts]
    return [_event(parts)]


def _event(parts: list[Any]) -> Event:
    """One event: a msgpack array [header] or [header, item]. The item
    (stored at intake) is merged under the header, so an ``offer`` carries
    channel, queue, subject, customer and payload exactly as posted."""
    head: dict[str, Any] = parts[0]
    msg: dict[str, Any] = dict(parts[1]) if len(parts) > 1 and isinstance(parts[1], dict) else {}
    to = head.pop("to", None)
    sup = bool(head.pop("sup", False))
    msg.update(head)
    # Lua cannot tell an empty map from an empty list: both arrive as [].
    if msg.get("by_channel") == []:
        msg["by_channel"] = {}
    view = msg.get(VIEW_FIELD)
    if isinstance(view, dict) and view.get("by_channel") == []:
        view["by_channel"] = {}
    return Event(msg, to, sup)
