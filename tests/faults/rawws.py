"""A raw websocket client for hostile and careless peers: it writes frames
byte by byte as it likes (floods of pings, text that is not UTF-8), reads
only when told to, and may shrink its receive buffer so that a server's
writes back up at once."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import dataclass


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != 0x8 or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


def frame(opcode: int, payload: bytes = b"", mask: bytes = b"\0\0\0\0") -> bytes:
    """One masked client frame (FIN set)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


PING = 0x9
TEXT = 0x1


class RawWs:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str,
        token: str,
        *,
        subprotocol: str = "presence.v1.json",
        rcvbuf: int | None = None,
    ) -> RawWs:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the window the server sees is small from the
            # start; with small segments too, so the server's send buffer
            # (sized by the kernel from segment size and window) stays small.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # a small limit: the reader stops taking data from the socket once it holds
        # 2 x limit bytes, so a client that does not read really does not
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> Frame:
        async def read() -> Frame:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return Frame(b0 & 0x0F, await self.reader.readexactly(n))

        return await asyncio.wait_for(read(), timeout)

    async def until_close(self, timeout: float = 10.0) -> tuple[Frame, int]:
        """Read up to the close frame; returns it and how many frames came before."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        n = 0
        while True:
            f = await self.recv(max(0.01, deadline - loop.time()))
            if f.opcode == 0x8:
                return f, n
            n += 1

    def close(self) -> None:
        self.writer.transport.abort()
