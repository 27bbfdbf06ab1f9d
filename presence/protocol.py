"""The websocket protocol: every message, both encodings, close codes.

This module is the single source of truth for what travels on `/ws/agent`
and `/ws/supervisor`; `docs/protocol.md` documents the same messages with
examples. It is pure: no I/O, so it is tested byte for byte.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import msgpack
import orjson

VERSION: Final = 1
JSON: Final = "presence.v1.json"
MSGPACK: Final = "presence.v1.msgpack"
SUBPROTOCOLS: Final = (MSGPACK, JSON)


class Close(IntEnum):
    """Close codes the server uses, and what a client should do on each."""

    NORMAL = 1000
    POLICY = 1008  # abuse (rate, size, origin): do not retry at once
    TOO_BIG = 1009  # a frame over the size limit
    INTERNAL = 1011  # the server failed; retry with backoff
    RESTART = 1012  # the server is shutting down; reconnect (elsewhere)
    TRY_AGAIN = 1013  # Redis unreachable; retry with backoff
    UNAUTHORIZED = 4401  # missing, bad or expired token: get a new token
    FORBIDDEN = 4403  # the token's role may not use this endpoint
    UNKNOWN_AGENT = 4404  # the token's subject is not an agent of this center


class ErrorCode:
    BAD_FRAME = "bad_frame"  # not decodable in the socket's encoding
    BAD_MESSAGE = "bad_message"  # decodable, but not a map with a type
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"  # a field is missing or of the wrong type or value
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    CONFLICT = "conflict"  # the item is not in a state that allows this
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"  # Redis did not answer; try again
    INTERNAL = "internal"


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


# -- field specifications ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class F:
    """One field of a client message."""

    name: str
    kind: type | tuple[type, ...]
    required: bool = True
    max_len: int = 256
    what: str = "a string"

    def check(self, data: Mapping[str, Any], ref: Any) -> Any:
        if self.name not in data or data[self.name] is None:
            if self.required:
                raise ProtocolError(
                    ErrorCode.INVALID,
                    f"{self.name} is required ({self.what})",
                    field=self.name,
                    ref=ref,
                )
            return None
        value = data[self.name]
        if isinstance(value, bool) and bool not in _kinds(self.kind):
            raise ProtocolError(
                ErrorCode.INVALID, f"{self.name} must be {self.what}", field=self.name, ref=ref
            )
        if not isinstance(value, self.kind):
            raise ProtocolError(
                ErrorCode.INVALID, f"{self.name} must be {self.what}", field=self.name, ref=ref
            )
        if isinstance(value, str) and len(value) > self.max_len:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"{self.name} must be at most {self.max_len} characters",
                field=self.name,
                ref=ref,
            )
        return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _s(name: str, required: bool = True, max_len: int = 256, what: str = "a string") -> F:
    return F(name, str, required, max_len, what)


WORK_ID = _s("work_id", what="a work item id")
AGENT_ID = _s("agent_id", max_len=64, what="an agent id")

# Messages an agent socket accepts, by type.
AGENT_MESSAGES: Final[dict[str, tuple[F, ...]]] = {
    "ping": (F("ts", (int, float), required=False, what="a number"),),
    "status.set": (
        _s("status", max_len=64, what="a status name"),
        _s("reason", False, 128, "a reason code"),
    ),
    "offer.accept": (WORK_ID,),
    "offer.decline": (WORK_ID, _s("reason", False, 500)),
    "work.wrapup": (WORK_ID,),
    "work.complete": (WORK_ID, _s("disposition", False, 200)),
    "snapshot.get": (),
    # cases (presence/ws/cases.py): a note on the case timeline; a handoff to
    # another agent or a queue; a call control relayed to the telephony system
    "work.note": (WORK_ID, _s("text", max_len=4000, what="the note's text")),
    "work.transfer": (
        WORK_ID,
        _s("to_agent", False, 64, "an agent id"),
        _s("to_queue", False, 64, "a queue name"),
        _s("note", False, 4000, "a handoff note"),
    ),
    "call.control": (
        WORK_ID,
        _s("action", max_len=16, what="answer, hold, resume, mute, unmute, transfer or hangup"),
        _s("target", False, 256, "a transfer target (extension, number or SIP address)"),
    ),
}

# Messages a supervisor socket accepts, by type.
SUPERVISOR_MESSAGES: Final[dict[str, tuple[F, ...]]] = {
    "ping": AGENT_MESSAGES["ping"],
    "agent.status.set": (
        AGENT_ID,
        _s("status", max_len=64, what="a status name"),
        _s("reason", False, 128, "a reason code"),
    ),
    "snapshot.get": (),
    # cases (presence/ws/cases.py): move an item by force
    "work.reassign": (WORK_ID, AGENT_ID, _s("note", False, 4000, "a handoff note")),
    "work.push": (WORK_ID, AGENT_ID),
    "work.pull": (WORK_ID,),
}


@dataclass(frozen=True, slots=True)
class Message:
    """A validated client message."""

    type: str
    ref: Any
    data: dict[str, Any]


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


def _load(frame: str | bytes, subprotocol: str) -> Any:
    if subprotocol == JSON:
        if isinstance(frame, bytes):
            raise ProtocolError(ErrorCode.BAD_FRAME, "presence.v1.json takes text frames, got a binary frame")
        try:
            return orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not valid JSON: {exc}") from None
    if isinstance(frame, str):
        raise ProtocolError(ErrorCode.BAD_FRAME, "presence.v1.msgpack takes binary frames, got a text frame")
    try:
        # the frame's size is already bounded by the server (PRESENCE_MAX_FRAME)
        return msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"frame is not valid msgpack: {type(exc).__name__}"
        ) from None


def decode(frame: str | bytes, subprotocol: str, spec: Mapping[str, tuple[F, ...]]) -> Message:
    """Parse and validate one client frame; raise ProtocolError naming the field."""
    obj = _load(frame, subprotocol)
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a map with a type")
    ref = obj.get("ref")
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, str | int) or len(str(ref)) > 64):
        raise ProtocolError(
            ErrorCode.INVALID,
            "ref must be a string or integer of at most 64 characters",
            field="ref",
        )
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID, "type is required (a string)", field="type", ref=ref)
    fields = spec.get(kind)
    if fields is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind[:64]!r} (expected one of {', '.join(sorted(spec))})",
            field="type",
            ref=ref,
        )
    data = {f.name: f.check(obj, ref) for f in fields}
    return Message(kind, ref, data)


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
) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "version": VERSION,
        "agent": dict(agent),
        "offers": offers,
        "work": work,
        "statuses": statuses,
        "channels": channels,
        "server_time": server_time,
    }


def supervisor_snapshot(
    agents: list[dict[str, Any]],
    queues: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    channels: list[dict[str, Any]],
    server_time: int,
) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "version": VERSION,
        "agents": agents,
        "queues": queues,
        "statuses": statuses,
        "channels": channels,
        "server_time": server_time,
    }


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
