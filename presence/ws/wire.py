"""The websocket wire: uvicorn's Sans-I/O websockets protocol, held to the
rules the app keeps for messages.

uvicorn answers control frames itself, below the ASGI app: a client could
send pings as fast as its link allows and every one was parsed and answered
(150,000 pongs a second), slowing every other socket of the process, while
the app's rate limit never saw them. Here each ping and pong a client sends
is charged to the socket's own budget (`Budget`, which the app fills with
the same token bucket its messages use); a socket over it is closed 1008,
like a message flood, and its pongs are not sent.

More differs from uvicorn's class: a text frame that is not UTF-8 is
closed 1007 without an ERROR and traceback in the log (any client could
otherwise fill the operators' log at will), and a close from the app never
waits behind a full send buffer (a client that stopped reading would
otherwise keep its socket forever). A message reaches the app decoded once
(`Wire.send_receive_event_to_app`), through a queue bound to the socket's
loop (`_Inbox`).

A server's data frames are not masked and (with permessage-deflate off,
as `presence serve` runs) not transformed: the bytes of one message's frame
are the same for every socket of a subprotocol. `framed` serializes a frame
once and `Wire.write_framed` writes it straight to the transport, past the
ASGI send chain (Starlette, uvicorn, the websockets protocol): a wallboard
flush costs each socket one write, not a frame built and a chain of
coroutines run per socket (docs/PERFORMANCE.md, "Presence changes").

A client's message usually comes as one whole frame in one read. Where
the websockets parser waits between frames, such a read (final, masked,
text or binary, no extension bits, within the size limit) is unmasked
here and handed to the app (`one_frame`), past the parser's generators and
uvicorn's dispatch of its events: at a few hundred messages a second they
cost more than the rest of the message's way in. Anything else (a frame
in pieces, several in one read, a fragment, a control frame, a frame the
parser refuses) is the parser's, as before; a read taken here leaves it
where it was, waiting for the next frame.

`presence serve` gives this class to uvicorn (``ws=Wire``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

try:  # what websockets unmasks with: its C speedup, else its Python
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

from presence.protocol import Close

log = logging.getLogger("presence.ws")

# the key of the socket's `Wire` in the ASGI scope's "extensions": the app
# fills its `budget` and writes frames with `write_framed`
WIRE = "presence.wire"
# Messages a socket's queue to the app holds before reading from the client
# pauses (`Wire.send_receive_event_to_app`); the app's own rate limit
# closes a socket that floods.
READ_AHEAD = 4


def framed(payload: str | bytes) -> bytes:
    """One message as a whole, unmasked data frame (text for a str, binary
    for bytes): what the websockets protocol would write for it on a
    server's socket without extensions."""
    if isinstance(payload, str):
        data, head = payload.encode(), 0x81
    else:
        data, head = payload, 0x82
    n = len(data)
    if n < 126:
        return bytes((head, n)) + data
    if n < 65536:
        return bytes((head, 126)) + n.to_bytes(2, "big") + data
    return bytes((head, 127)) + n.to_bytes(8, "big") + data


class Budget:
    """What a socket may still send: `allow` is called once per control frame
    (the app sets it to its rate limit's ``allow`` once the socket is
    accepted); None until then, which allows everything."""

    __slots__ = ("allow",)

    def __init__(self) -> None:
        self.allow: Callable[[], bool] | None = None


# the generators the websockets parser is suspended in between two frames:
# its frame loop (`Protocol.parse`), waiting in `StreamReader.at_eof` for
# the first byte of the next frame
_FRAME_LOOP = Protocol.parse.__code__
_AT_FRAME_START = StreamReader.at_eof.__code__


def _between_frames(conn: Protocol) -> bool:
    """Whether the websockets parser of `conn` waits for the next frame with
    nothing buffered: a whole frame that arrives then may be parsed here."""
    if conn.reader.buffer or conn.current_size is not None:
        return False
    outer = getattr(conn.parser, "gi_yieldfrom", None)
    # a server's parser runs the handshake, then the frame loop inside it
    loop = (
        getattr(outer, "gi_yieldfrom", None) if getattr(outer, "gi_code", None) is not _FRAME_LOOP else outer
    )
    if getattr(loop, "gi_code", None) is not _FRAME_LOOP:
        return False
    return getattr(getattr(loop, "gi_yieldfrom", None), "gi_code", None) is _AT_FRAME_START


def one_frame(data: bytes, max_size: int | None) -> tuple[Literal["text", "bytes"], bytes] | None:
    """The message of `data` when it is exactly one whole, masked, final
    text or binary frame without extension bits of at most `max_size`
    bytes (its type, "text" or "bytes", and its unmasked payload); None for
    anything else, which the websockets parser then reads (and refuses
    when it must: an unmasked frame, a bad opcode, a frame too large)."""
    if len(data) < 6:
        return None
    head, second = data[0], data[1]
    if head not in (0x81, 0x82) or not second & 0x80:
        return None
    n = second & 0x7F
    at = 2
    if n == 126:
        n, at = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        return None
    if len(data) != at + 4 + n or (max_size is not None and n > max_size):
        return None
    payload = apply_mask(data[at + 4 :], data[at : at + 4])
    return ("text" if head == 0x81 else "bytes"), payload


class _Inbox(asyncio.Queue[Any]):
    """The queue of a socket's messages to the app, bound to the socket's
    loop from the start: asyncio's finds its loop anew on each wait, and on
    Python 3.11 each look-up is a getpid system call (one per message)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._bound = loop

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        return self._bound


class Wire(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with control frames on budget."""

    budget: Budget
    _pongs_due: bool
    _closed_here: bool
    _failed: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox(self.loop)
        self.budget = Budget()
        self._pongs_due = False
        self._closed_here = False
        self._failed = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # the app's task is created but not started yet: it finds the wire
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WIRE] = self

    async def run_asgi(self) -> None:
        try:
            await super().run_asgi()
        finally:
            # The scope names this wire and this wire holds the scope: a cycle,
            # which only the collector's full passes free, and those are rare in
            # a server (app.GC_THRESHOLDS; a full pass waits for a quarter more
            # long-lived objects). Every closed socket's wire, scope, buffers and
            # transport waited for one: in the soak ~30 reconnections a minute
            # grew the RSS ~0.6 MB a minute (docs/RELIABILITY.md, "conn16").
            # The app is done with the scope here; the cycle goes with it.
            extensions = self.scope.get("extensions")
            if extensions is not None:
                extensions.pop(WIRE, None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The websockets protocol's parser is a generator suspended in its own
        # method, holding the protocol: a cycle (it stays suspended even after
        # a clean close), so every closed socket's protocol and its read
        # buffer waited for the collector's rare full pass ("cyc16", as the
        # scope's above). No data arrives once the connection is lost.
        self.conn.parser = None  # type: ignore[assignment]

    def handle_parser_exception(self) -> None:
        # uvicorn's, but the connection is half-closed instead of closed: the
        # close frame (1002, 1007, 1009, ...) goes out with a FIN after it,
        # and what the client still sends is read and dropped (websockets'
        # `discard`) until it closes its side or `close_timeout` passes.
        # Closed at once with the rest of a refused frame unread, the socket
        # was reset, and a reset can destroy the close frame before the
        # client reads it: it would never learn why (seen under load, a
        # 64 KiB frame refused 1009). Data read after this is only dropped.
        if self._failed:
            return
        self._failed = True
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._abort_unless_closed()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn.state is State.OPEN and not self.close_sent and not conn.extensions and _between_frames(conn):
            # One read, one whole message (how clients send): parsed here, not
            # by the websockets parser's generators and uvicorn's dispatch of
            # its events, which cost more than the rest of a small message's
            # way in; anything else goes to them as before.
            limit = conn.max_message_size
            if conn.max_fragment_size is not None:
                limit = conn.max_fragment_size if limit is None else min(limit, conn.max_fragment_size)
            message = one_frame(data, limit)
            if message is not None:
                self.curr_msg_data_type, payload = message
                self.frames = [payload]
                self.send_receive_event_to_app()
                return
        super().data_received(data)
        # One read may hold thousands of pings, whose pongs the parser has
        # already queued: they are written once the whole read is charged,
        # so a socket that went over its budget in it gets none of them.
        if self._pongs_due:
            self._pongs_due = False
            output = self.conn.data_to_send()
            if not self.close_sent and not self.transport.is_closing():
                self.transport.write(b"".join(output))

    def write_framed(self, frame: bytes) -> bool:
        """Write a frame made by `framed` now, if the socket can take it as
        is: open, accepted, not closing, its send buffer not full, no
        extension negotiated and nothing of the protocol's own waiting to go
        out first. False otherwise: then send the message the usual way (the
        ASGI send), which waits for room or raises for a socket gone."""
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.conn.writes
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

    def _charge(self) -> bool:
        allow = self.budget.allow
        return allow is None or allow()

    def handle_ping(self) -> None:
        if self.close_sent:
            self.conn.data_to_send()  # closing: no more pongs
        elif self._charge():
            self._pongs_due = True
        else:
            self._over_budget()

    def handle_pong(self, event: Frame) -> None:
        if self.close_sent:
            return
        if self._charge():
            super().handle_pong(event)
        else:
            self._over_budget()

    def _over_budget(self) -> None:
        self.conn.data_to_send()  # the pongs queued for this read: never sent
        log.info("closing a socket of %s over its frame budget (control frames)", self._peer())
        self._close(Close.POLICY, "message rate limit exceeded")

    def send_receive_event_to_app(self) -> None:
        """One message to the app: a text frame decoded once (uvicorn's
        class decoded it again after this layer's UTF-8 check), and reading
        paused only once READ_AHEAD messages wait. uvicorn pauses after every
        message and resumes when the app takes it, which for a socket whose
        app is waiting (the usual case) was two epoll_ctl system calls per
        message for nothing; the queue stays bounded all the same."""
        frames, self.frames = self.frames, []
        if self.close_sent:
            # past `websocket.close`: dropped, reads stay on for the peer's close reply
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                # the client's fault, not the operator's: one line, no traceback
                log.info("closing a socket of %s: text frame not UTF-8 (%s)", self._peer(), exc.reason)
                self._close(Close.INVALID_DATA, "text frame is not valid UTF-8")
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused and self.queue.qsize() >= READ_AHEAD:
            self.read_paused = True
            self.transport.pause_reading()

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and self._stalled():
            # the client is not reading: write the close frame past the full
            # buffer instead of waiting for room that may never come
            self._close(message.get("code", Close.NORMAL), message.get("reason", "") or "", at_once=False)
            return
        if message["type"] == "websocket.send":
            # waited for here, not in uvicorn's send: this layer may close the
            # socket meanwhile, and the frame must then not go out after it
            await self.writable.wait()
        if self._closed_here:
            # closed by this layer (flood, bad frame, not reading): for the
            # app the client is gone, as if it had left, not a misuse of a
            # closed socket
            if message["type"] == "websocket.close":
                return
            raise ClientDisconnected()
        await super().send(message)

    def _stalled(self) -> bool:
        return (
            self.handshake_complete
            and not self.writable.is_set()
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
        )

    def _close(self, code: int, reason: str, *, at_once: bool = True) -> None:
        """Close the socket from here, telling the app (a disconnect on its
        queue), and abort the connection if the client has not taken the
        close frame within ``close_timeout`` (one that does not read would
        hold it forever).

        An abusive client's connection is closed at once: nothing it sends
        is read any more (a flood would still cost a parse per frame). One
        that stopped reading is still read from (and what it sends dropped)
        until it takes the close frame: closing a socket with unread input
        resets it, and the client would never see the close code.
        """
        if self.close_sent or self.conn.state is not State.OPEN:
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = self._closed_here = True
        self._abort_unless_closed()
        if at_once:
            self.transport.close()
        elif self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def _abort_unless_closed(self) -> None:
        """Abort the connection if it is still open ``close_timeout`` from now
        (a client that never takes the close frame, or never closes its side)."""
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"
