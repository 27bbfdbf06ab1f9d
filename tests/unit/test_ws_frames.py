"""The websocket wire's own reading of a whole client frame
(`presence.ws.wire.one_frame`, taken only where the websockets parser waits
between frames, `_between_frames`): the same message as websockets reads,
and nothing it would read otherwise."""

from __future__ import annotations

import os
import struct

import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.server import ServerProtocol

from presence.ws.wire import _between_frames, one_frame


def _frame(head: int, payload: bytes, *, mask: bytes | None = None, long: bool = False) -> bytes:
    """A client frame byte by byte: `head` (FIN, RSV, opcode), masked with
    `mask` (None: unmasked), its length in 8 bytes when `long`."""
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if long:
        out = struct.pack("!BBQ", head, bit | 127, n)
    elif n < 126:
        out = struct.pack("!BB", head, bit | n)
    else:
        out = struct.pack("!BBH", head, bit | 126, n)
    if mask is None:
        return out + payload
    return out + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _open() -> tuple[ClientProtocol, ServerProtocol]:
    """A client and a server protocol past the handshake."""
    client = ClientProtocol(websockets.uri.parse_uri("ws://test/"))
    server = ServerProtocol()
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    request = server.events_received()[0]
    server.send_response(server.accept(request))
    client.receive_data(b"".join(server.data_to_send()))
    assert server.state is State.OPEN and client.state is State.OPEN
    return client, server


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 1000, 65535])
@pytest.mark.parametrize("text", [True, False])
def test_a_whole_frame_reads_as_websockets_reads_it(size: int, text: bool) -> None:
    client, server = _open()
    payload = os.urandom(size)
    if text:
        client.send_text(payload)
    else:
        client.send_binary(payload)
    data = b"".join(client.data_to_send())
    assert _between_frames(server)
    assert one_frame(data, 1 << 20) == ("text" if text else "bytes", payload)
    server.receive_data(data)
    [event] = server.events_received()
    assert isinstance(event, Frame) and event.data == payload and event.fin
    assert _between_frames(server)  # and the parser is where it was


@pytest.mark.parametrize(
    "data",
    [
        _frame(0x01, b"part", mask=b"abcd"),  # not final: a fragmented message
        _frame(0x80, b"more", mask=b"abcd"),  # a continuation
        _frame(0xC1, b"rsv1", mask=b"abcd"),  # an extension bit
        _frame(0x89, b"ping", mask=b"abcd"),  # control frames: websockets answers them
        _frame(0x8A, b"pong", mask=b"abcd"),
        _frame(0x88, b"\x03\xe8", mask=b"abcd"),
        _frame(0x83, b"bad opcode", mask=b"abcd"),
        _frame(0x81, b"unmasked"),  # refused by websockets (1002)
        _frame(0x81, b"x" * 200, mask=b"abcd", long=True),  # 8-byte length
        _frame(0x81, b"two", mask=b"abcd") + _frame(0x81, b"frames", mask=b"abcd"),
        _frame(0x81, b"truncated", mask=b"abcd")[:-1],
        _frame(0x81, b"x" * 300, mask=b"abcd")[:3],
        b"\x81",
    ],
)
def test_anything_but_one_whole_data_frame_is_left_to_websockets(data: bytes) -> None:
    assert one_frame(data, 1 << 20) is None


def test_a_frame_over_the_size_limit_is_left_to_websockets() -> None:
    data = _frame(0x81, b"x" * 1025, mask=b"abcd")
    assert one_frame(data, 1025) is not None
    assert one_frame(data, 1024) is None  # websockets closes it 1009


def test_between_frames_only_where_the_parser_waits_for_a_frame() -> None:
    client, server = _open()
    client.send_text(b"x" * 300)
    data = b"".join(client.data_to_send())
    for cut in (1, 2, 4, 8, len(data) - 1):
        server.receive_data(data[:cut])
        assert not _between_frames(server), cut  # in the middle of a frame
        server.receive_data(data[cut:])
        assert server.events_received() and _between_frames(server)
    # in the middle of a fragmented message: its continuation is websockets'
    client.send_text(b"first", fin=False)
    server.receive_data(b"".join(client.data_to_send()))
    assert server.events_received() and not _between_frames(server)
    client.send_continuation(b"last", fin=True)
    server.receive_data(b"".join(client.data_to_send()))
    assert server.events_received() and _between_frames(server)
