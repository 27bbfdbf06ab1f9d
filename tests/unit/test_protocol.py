"""The wire format, byte for byte: encodings, decoding errors that name the
field, and the decoding of events published by the Lua scripts."""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec
import orjson
import pytest

from presence import protocol
from presence.protocol import (
    AGENT_MESSAGES,
    JSON,
    MSGPACK,
    SUPERVISOR_MESSAGES,
    Close,
    ErrorCode,
    Event,
    ProtocolError,
    decode,
    decode_events,
    encode,
)
from presence.schema import messages as m

# -- pinned bytes --------------------------------------------------------------------


def test_pong_msgpack_bytes() -> None:
    assert encode(protocol.pong(1, None, 1700000000000), MSGPACK) == (
        b"\x83\xa4type\xa4pong\xabserver_time\xcf\x00\x00\x01\x8b\xcf\xe5h\x00\xa3ref\x01"
    )


def test_ok_msgpack_bytes() -> None:
    assert encode(protocol.ok(7), MSGPACK) == b"\x82\xa4type\xa2ok\xa3ref\x07"


def test_error_msgpack_bytes() -> None:
    msg = protocol.error(ErrorCode.INVALID, "status must be a status name", field="status", ref="r1")
    assert encode(msg, MSGPACK) == (
        b"\x85\xa4type\xa5error\xa4code\xa7invalid\xa7message\xbcstatus must be a status name"
        b"\xa5field\xa6status\xa3ref\xa2r1"
    )


def test_client_message_msgpack_bytes_decode() -> None:
    frame = b"\x84\xa4type\xaastatus.set\xa6status\xa5Break\xa6reason\xa6Coffee\xa3ref\x02"
    msg = decode(frame, MSGPACK, AGENT_MESSAGES)
    assert msg == m.StatusSet(status="Break", reason="Coffee", ref=2)


def test_json_is_compact_text() -> None:
    out = encode(protocol.pong("a", 5, 1700000000000), JSON)
    assert out == '{"type":"pong","server_time":1700000000000,"ref":"a","ts":5}'
    assert isinstance(out, str)


def test_same_message_in_both_encodings() -> None:
    msg = protocol.agents_delta([{"agent_id": "山田", "status": "Break", "ver": 3, "by_channel": {}}])
    assert orjson.loads(encode(msg, JSON)) == msgpack.unpackb(encode(msg, MSGPACK), raw=False) == msg


def test_subprotocols_and_close_codes() -> None:
    assert protocol.SUBPROTOCOLS == ("presence.v1.msgpack", "presence.v1.json")
    assert (Close.UNAUTHORIZED, Close.FORBIDDEN, Close.UNKNOWN_AGENT, Close.TOO_BIG) == (
        4401,
        4403,
        4404,
        1009,
    )


# -- decoding client messages --------------------------------------------------------------


def _err(frame: str | bytes, sub: str = JSON, spec: Any = AGENT_MESSAGES) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(frame, sub, spec)
    return info.value


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ("{oops", ErrorCode.BAD_FRAME, None),
        (b"{}", ErrorCode.BAD_FRAME, None),
        ("[]", ErrorCode.BAD_MESSAGE, None),
        ("null", ErrorCode.BAD_MESSAGE, None),
        ("{}", ErrorCode.INVALID, "type"),
        ('{"type": null}', ErrorCode.INVALID, "type"),
        ('{"type": "fly"}', ErrorCode.UNKNOWN_TYPE, "type"),
        ('{"type": "status.set"}', ErrorCode.INVALID, "status"),
        ('{"type": "status.set", "status": 5}', ErrorCode.INVALID, "status"),
        ('{"type": "status.set", "status": false}', ErrorCode.INVALID, "status"),
        ('{"type": "status.set", "status": "A", "reason": 1}', ErrorCode.INVALID, "reason"),
        ('{"type": "offer.accept", "work_id": [1]}', ErrorCode.INVALID, "work_id"),
        ('{"type": "offer.decline", "work_id": "w", "reason": {}}', ErrorCode.INVALID, "reason"),
        ('{"type": "work.complete", "work_id": "w", "disposition": 3}', ErrorCode.INVALID, "disposition"),
        ('{"type": "ping", "ts": true}', ErrorCode.INVALID, "ts"),
        ('{"type": "ping", "ref": [1]}', ErrorCode.INVALID, "ref"),
        ('{"type": "ping", "ref": false}', ErrorCode.INVALID, "ref"),
        ('{"type": "ping", "ref": 2.5}', ErrorCode.INVALID, "ref"),
    ],
)
def test_decode_errors_name_the_field(frame: str | bytes, code: str, field: str | None) -> None:
    err = _err(frame)
    assert (err.code, err.field) == (code, field)
    reply = err.to_message()
    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    if field is not None:
        assert field in err.message and reply["field"] == field


def test_errors_echo_a_valid_ref_but_not_a_bad_one() -> None:
    assert _err('{"type": "fly", "ref": "abc"}').to_message()["ref"] == "abc"
    assert _err('{"type": "status.set", "ref": 9}').to_message()["ref"] == 9
    assert "ref" not in _err('{"type": "ping", "ref": {"x": 1}}').to_message()
    assert "ref" not in _err('{"type": "ping", "ref": "' + "r" * 65 + '"}').to_message()
    assert decode('{"type": "ping", "ref": "' + "r" * 64 + '"}', JSON, AGENT_MESSAGES).ref == "r" * 64


def test_unknown_type_lists_the_known_ones() -> None:
    err = _err('{"type": "status.set"}', spec=SUPERVISOR_MESSAGES)
    assert err.code == ErrorCode.UNKNOWN_TYPE
    assert "agent.status.set" in err.message and "ping" in err.message


def test_string_length_limits() -> None:
    err = _err('{"type": "status.set", "status": "' + "S" * 65 + '"}')
    assert err.field == "status" and "64" in err.message
    ok = decode('{"type": "status.set", "status": "' + "S" * 64 + '"}', JSON, AGENT_MESSAGES)
    assert ok == m.StatusSet(status="S" * 64, reason=None)


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        (b"\xc1", ErrorCode.BAD_FRAME, None),
        (b"\x81\xa4ty", ErrorCode.BAD_FRAME, None),
        ("text", ErrorCode.BAD_FRAME, None),
        (msgpack.packb({1: 2}), ErrorCode.BAD_FRAME, None),
        (msgpack.packb("ping"), ErrorCode.BAD_MESSAGE, None),
        (msgpack.packb({"type": "ping", "ref": b"x"}), ErrorCode.INVALID, "ref"),
        (msgpack.packb({"type": "status.set", "status": b"Break"}), ErrorCode.INVALID, "status"),
        (msgpack.packb({"type": "offer.accept", "work_id": 12}), ErrorCode.INVALID, "work_id"),
    ],
)
def test_msgpack_decode_errors(frame: str | bytes, code: str, field: str | None) -> None:
    err = _err(frame, MSGPACK)
    assert (err.code, err.field) == (code, field)


def test_decode_valid_messages() -> None:
    msg = decode(msgpack.packb({"type": "ping", "ts": 1.5, "ref": 3}), MSGPACK, AGENT_MESSAGES)
    assert msg == m.Ping(ts=1.5, ref=3)
    msg = decode(
        '{"type":"agent.status.set","agent_id":"alice","status":"Break","reason":"Coffee"}',
        JSON,
        SUPERVISOR_MESSAGES,
    )
    assert msg == m.AgentStatusSet(agent_id="alice", status="Break", reason="Coffee")
    # unknown extra fields are ignored (forward compatibility within v1)
    assert decode('{"type":"snapshot.get","later":1}', JSON, AGENT_MESSAGES) == m.SnapshotGet()


@pytest.mark.parametrize(
    ("frame", "field", "words"),
    [
        # the rules the case handlers used to check themselves, now in the Structs
        ('{"type": "work.note", "work_id": "w", "text": "  "}', "text", "not blank"),
        ('{"type": "work.note", "work_id": "w", "text": "' + "x" * 4001 + '"}', "text", "4000"),
        ('{"type": "work.transfer", "work_id": "w"}', "to_agent", "to_queue"),
        (
            '{"type": "work.transfer", "work_id": "w", "to_agent": "bob", "to_queue": "q"}',
            "to_agent",
            "exactly one",
        ),
        ('{"type": "work.transfer", "work_id": "w", "to_agent": "no one"}', "to_agent", "agent id"),
        ('{"type": "call.control", "work_id": "w", "action": "fly"}', "action", "hangup"),
        (
            '{"type": "call.control", "work_id": "w", "action": "hold", "target": 5}',
            "target",
            "transfer target",
        ),
    ],
)
def test_rules_across_and_within_fields(frame: str, field: str, words: str) -> None:
    err = _err(frame)
    assert (err.code, err.field) == (ErrorCode.INVALID, field)
    assert err.message.startswith(field) and words in err.message, err.message


def test_valid_case_messages() -> None:
    msg = decode(
        '{"type":"work.transfer","work_id":"w","to_queue":"tier2","to_agent":""}', JSON, AGENT_MESSAGES
    )
    assert msg == m.WorkTransfer(work_id="w", to_queue="tier2", to_agent="")
    msg = decode('{"type":"call.control","work_id":"w","action":"hangup"}', JSON, AGENT_MESSAGES)
    assert msg == m.CallControl(work_id="w", action="hangup")


@pytest.mark.parametrize("sub", [JSON, MSGPACK])
def test_deep_nesting_in_an_ignored_field_is_a_bad_frame(sub: str) -> None:
    """msgspec recurses even into a field it skips: past Python's recursion
    limit that is a bad frame, not a failure of the socket."""
    depth = 100_000
    if sub == JSON:
        frame: str | bytes = '{"type":"ping","x":' + "[" * depth + "]" * depth + "}"
    else:
        frame = b"\x82\xa4type\xa4ping\xa1x" + b"\x91" * depth + b"\xc0"
    assert _err(frame, sub).code == ErrorCode.BAD_FRAME
    assert _err("[" * depth + "]" * depth if sub == JSON else b"\x91" * depth + b"\xc0", sub).code in (
        ErrorCode.BAD_FRAME,
        ErrorCode.BAD_MESSAGE,
    )


def test_every_type_decodes_in_both_encodings() -> None:
    """One Struct per type, the same in JSON and msgpack."""
    for spec in (AGENT_MESSAGES, SUPERVISOR_MESSAGES):
        for kind, cls in spec.types.items():
            fields = {f.encode_name: "w" for f in msgspec.structs.fields(cls) if f.required}
            if cls is m.AgentStatusSet:
                fields["agent_id"] = "alice"
            raw = {"type": kind, "ref": "r", **fields}
            if cls in (m.WorkReassign, m.WorkPush):
                raw["agent_id"] = "bob"
            if cls is m.WorkTransfer:
                raw["to_queue"] = "tier2"
            if cls is m.CallControl:
                raw["action"] = "hold"
            one = decode(orjson.dumps(raw).decode(), JSON, spec)
            assert type(one) is cls and one.ref == "r"
            assert decode(msgpack.packb(raw), MSGPACK, spec) == one


def test_replies_and_snapshots_match_their_structs() -> None:
    """What the builders make is what the published Structs describe."""
    view = {
        "agent_id": "alice",
        "name": "Alice",
        "status": "Break",
        "reason": "Coffee",
        "since": 1,
        "capacity": 100,
        "load": 25,
        "by_channel": {"chat": 1},
        "items": 1,
        "connected": True,
        "idle_since": 0,
        "ver": 3,
    }
    queue = {
        "name": "support",
        "title": "Support",
        "priority": 10,
        "waiting": 1,
        "oldest_created": 5,
        "ready": 1,
        "members": 2,
        "logged_in": 1,
        "routable": 1,
        "service_level_seconds": 20,
    }
    statuses = [{"name": "Break", "routable": False, "reasons": ["Coffee"]}]
    channels = [{"name": "chat", "weight": 25, "cap": 0}]
    agent_side = [
        protocol.ok(1),
        protocol.ok("r", wrapup_until=5),
        protocol.ok(2, note={"author": "alice", "text": "hi", "ts": 5}),
        protocol.ok(3, state="queued"),
        protocol.pong(None, None, 5),
        protocol.pong("a", 1.5, 5),
        protocol.error(ErrorCode.INVALID, "status must be a status name", field="status", ref=7),
        protocol.agent_snapshot(view, [], [], statuses, channels, 5),
    ]
    supervisor_side = [
        protocol.supervisor_snapshot([view], [queue], statuses, channels, 5),
        protocol.agents_delta([view]),
        protocol.queues_delta([queue], 5),
        protocol.kpis({"today": {}}, [], [], [], 5),
    ]
    for msg in agent_side:
        assert msgspec.convert(msg, protocol.AGENT.outbound), msg
    for msg in supervisor_side + agent_side[:-1]:
        assert msgspec.convert(msg, protocol.SUPERVISOR.outbound), msg
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(protocol.agents_delta([{"agent_id": "alice"}]), protocol.SUPERVISOR.outbound)


# -- events published by Lua -------------------------------------------------------


def _one(raw: bytes) -> Event:
    """The single event of a payload (a lone event, not a batch)."""
    events = decode_events(raw)
    assert len(events) == 1
    return events[0]


def _lua_event(header: dict[str, Any], blob: bytes | None = None) -> bytes:
    """Build a payload the way emit() (_lib_core.lua) does: a fixarray of 1 or 2."""
    if blob is None:
        return b"\x91" + msgpack.packb(header)
    return b"\x92" + msgpack.packb(header) + blob


def test_decode_event_splices_the_stored_item() -> None:
    blob = msgpack.packb(
        {"subject": "こんにちは", "customer": {"name": "山田 花子"}, "payload": {"n": [1, 2]}, "type": "x"},
        use_bin_type=True,
    )
    raw = _lua_event({"type": "offer", "to": "alice", "work_id": "w1", "expires_at": 5}, blob)
    ev = _one(raw)
    assert ev.to == "alice" and ev.supervisors is False
    assert ev.message == {
        "type": "offer",  # the header wins over the item's fields
        "work_id": "w1",
        "expires_at": 5,
        "subject": "こんにちは",
        "customer": {"name": "山田 花子"},
        "payload": {"n": [1, 2]},
    }


def test_decode_event_header_only_and_routing_fields() -> None:
    ev = _one(
        _lua_event({"type": "status", "to": "bob", "sup": 1, "agent_id": "bob", "by_channel": [], "ver": 4})
    )
    assert ev.to == "bob" and ev.supervisors is True
    assert "to" not in ev.message and "sup" not in ev.message
    assert ev.message["by_channel"] == {}  # Lua's empty table is a map here
    ev = _one(_lua_event({"type": "queue.updated", "sup": 1, "queue": "support"}))
    assert (
        ev.to is None
        and ev.supervisors is True
        and ev.message == {"type": "queue.updated", "queue": "support"}
    )


def test_decode_event_item_event_carries_the_agents_view() -> None:
    blob = msgpack.packb({"channel": "chat", "agent": "from the item"}, use_bin_type=True)
    view = {"agent_id": "bob", "load": 25, "by_channel": [], "ver": 9}
    ev = _one(_lua_event({"type": "offer", "to": "bob", "sup": 1, "work_id": "w1", "agent": view}, blob))
    assert ev.to == "bob" and ev.supervisors is True
    assert ev.message[protocol.VIEW_FIELD] == {"agent_id": "bob", "load": 25, "by_channel": {}, "ver": 9}
    assert ev.message["channel"] == "chat" and ev.message["work_id"] == "w1"
    held = {**view, "by_channel": {"chat": 2}}
    full = _one(_lua_event({"type": "work.updated", "to": "bob", "sup": 1, "agent": held}))
    assert full.message["agent"]["by_channel"] == {"chat": 2}


def test_fanout_encodes_once_per_subprotocol() -> None:
    """One event to many sockets costs one encode per encoding, not per socket."""
    from presence.ws.hub import Conn, fanout

    async def send(message: Any) -> None:  # never called: frames only queue here
        raise AssertionError(message)

    conns = [Conn(send, JSON, "agent", "alice") for _ in range(3)]
    conns += [Conn(send, MSGPACK, "agent", "alice") for _ in range(2)]
    msg = {"type": "status", "agent_id": "alice", "status": "Break", "ver": 9}
    assert fanout(conns, msg) == 5
    frames = [c._queue[0] for c in conns]
    assert all(f is frames[0] for f in frames[:3]) and all(f is frames[3] for f in frames[3:])
    assert frames[0] == encode(msg, JSON) and frames[3] == encode(msg, MSGPACK)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_framed_is_the_frame_websockets_writes(size: int, kind: str) -> None:
    """A frame written at once (`Wire.write_framed`) is byte for byte the one
    the websockets protocol writes for the same message on a server's socket
    (unmasked, no extension), at each length encoding's bounds."""
    from websockets.frames import Frame, Opcode

    from presence.ws.wire import framed

    if kind == "text":
        payload: str | bytes = "é" * (size // 2) + "a" * (size % 2)  # `size` bytes of UTF-8
        data = payload.encode()
        assert len(data) == size
        op = Opcode.TEXT
    else:
        payload = data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        op = Opcode.BINARY
    assert framed(payload) == Frame(op, data).serialize(mask=False, extensions=[])


def test_an_idle_socket_gets_a_frame_at_once_and_a_large_one_queued() -> None:
    """`fanout` frames each message once; an idle socket's transport takes the
    frame at once (the same bytes for every socket), a frame over
    WRITE_AT_ONCE_MAX and every frame of a busy socket go through its queue."""
    from presence.ws.hub import WRITE_AT_ONCE_MAX, Conn, fanout
    from presence.ws.wire import framed

    class Transport:  # stands for `Wire.write_framed`: what reached the socket
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write_framed(self, frame: bytes) -> bool:
            self.written.append(frame)
            return True

    async def send(message: Any) -> None:  # never called: frames only queue or go at once
        raise AssertionError(message)

    wires = [Transport() for _ in range(3)]
    conns = [Conn(send, MSGPACK, "supervisor", "w", w) for w in wires]  # type: ignore[arg-type]
    for c in conns[:2]:
        c._idle = True  # its sender waits with nothing in hand
    small = {"type": "agents", "agents": [{"agent_id": "a", "ver": 1}]}
    assert fanout(conns, small) == 3
    assert wires[0].written == wires[1].written == [framed(encode(small, MSGPACK))]
    assert wires[0].written[0] is wires[1].written[0]
    assert not wires[2].written and list(conns[2]._queue) == [encode(small, MSGPACK)]
    large = {"type": "kpis", "agents": ["x" * 100] * (WRITE_AT_ONCE_MAX // 100)}
    fanout(conns[:1], large)
    assert len(wires[0].written) == 1 and list(conns[0]._queue) == [encode(large, MSGPACK)]
    # once something is queued, later frames queue behind it, in order
    fanout(conns[:1], small)
    assert len(wires[0].written) == 1 and len(conns[0]._queue) == 2
