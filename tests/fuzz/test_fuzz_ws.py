"""Hypothesis-generated frames against a real server socket, in both
encodings: arbitrary maps, values and bytes, near-valid messages of every
type. The server answers each frame with a message, never closes the socket
(so never 1011) and the process never logs a traceback."""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from presence import protocol
from tests.harness import JSON, MSGPACK, ServerProcess, token

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=80)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = sorted(
    {
        f.encode_name
        for spec in (protocol.AGENT_MESSAGES, protocol.SUPERVISOR_MESSAGES)
        for cls in spec.types.values()
        for f in msgspec.structs.fields(cls)
    }
    | {"ref", "ts"}
)
TYPES = sorted(set(protocol.AGENT_MESSAGES) | set(protocol.SUPERVISOR_MESSAGES))
near_valid = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=20)},
    optional={
        **{name: values for name in FIELDS},
        "work_id": st.text(max_size=300) | values,
        "ref": st.text(max_size=80) | st.integers() | values,
    },
)
messages = near_valid | st.dictionaries(st.text(max_size=12), values, max_size=6) | values


# ping_interval=None: the sync client's keepalive thread draws each ping's
# payload from the global `random` module (every 20 s); a ping that fell
# while Hypothesis drew an example failed the test ("Do not use the `random`
# module inside strategies").


class Socket:
    def __init__(self, conn: ClientConnection, sub: str) -> None:
        self.sub = sub
        self.conn = conn
        first = self.recv()
        assert first["type"] == "snapshot", first

    def recv(self) -> dict[str, Any]:
        while True:
            frame = self.conn.recv(timeout=10)
            if self.sub == JSON:
                assert isinstance(frame, str), "binary frame on a JSON socket"
                msg = orjson.loads(frame)
            else:
                assert isinstance(frame, bytes), "text frame on a msgpack socket"
                msg = msgpack.unpackb(frame, raw=False)
            # pushed events (status, offers, supervisor deltas) are not answers
            if msg.get("type") in ("ok", "error", "pong", "snapshot") and (
                msg.get("type") != "snapshot" or "ref" in msg or "agent" in msg or "agents" in msg
            ):
                return msg  # type: ignore[no-any-return]

    def ask(self, frame: str | bytes) -> dict[str, Any]:
        self.conn.send(frame)
        reply = self.recv()
        assert reply["type"] in ("ok", "error", "pong", "snapshot"), reply
        if reply["type"] == "error":
            assert reply["code"] != "internal", reply
            assert isinstance(reply["message"], str) and reply["message"]
        return reply


@pytest.fixture(scope="module", params=[JSON, MSGPACK])
def agent_socket(fuzz_server: ServerProcess, request: pytest.FixtureRequest) -> Any:
    url = f"{fuzz_server.ws}/ws/agent?token={token('agent', 'bob')}"
    with connect(url, subprotocols=[request.param], max_size=2**24, ping_interval=None) as conn:
        s = Socket(conn, request.param)
        yield s
        # never closed by the server while fuzzed: no 1008, 1009, 1011
        assert conn.close_code is None, conn.close_code


@pytest.fixture(scope="module", params=[JSON, MSGPACK])
def supervisor_socket(fuzz_server: ServerProcess, request: pytest.FixtureRequest) -> Any:
    url = f"{fuzz_server.ws}/ws/supervisor?token={token('supervisor', 'sue')}"
    with connect(url, subprotocols=[request.param], max_size=2**24, ping_interval=None) as conn:
        s = Socket(conn, request.param)
        yield s
        # never closed by the server while fuzzed: no 1008, 1009, 1011
        assert conn.close_code is None, conn.close_code


def _encode(msg: Any, sub: str) -> str | bytes | None:
    try:
        if sub == JSON:
            return orjson.dumps(msg).decode()
        return msgpack.packb(msg, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, OverflowError, orjson.JSONEncodeError):
        return None  # not representable in this encoding


@SETTINGS
@given(msg=messages)
def test_agent_messages(agent_socket: Socket, msg: Any) -> None:
    frame = _encode(msg, agent_socket.sub)
    if frame is not None:
        agent_socket.ask(frame)


@SETTINGS
@given(msg=messages)
def test_supervisor_messages(supervisor_socket: Socket, msg: Any) -> None:
    frame = _encode(msg, supervisor_socket.sub)
    if frame is not None:
        supervisor_socket.ask(frame)


@SETTINGS
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_raw_frames(agent_socket: Socket, raw: str | bytes) -> None:
    """Bytes and text of any shape, in the wrong frame type too."""
    reply = agent_socket.ask(raw)
    if reply["type"] == "error":
        assert reply["code"] in (
            "bad_frame",
            "bad_message",
            "invalid",
            "unknown_type",
            "not_found",
            "not_yours",
            "conflict",
        ), reply
