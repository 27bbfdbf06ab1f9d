"""A socket's frames while its own request is in flight (`Conn.hold`): its
change's event goes out in the reply's write, one write instead of two, and
nothing waits longer than HOLD_MAX or overtakes a frame held before it."""

from __future__ import annotations

import asyncio
from typing import Any

from presence import protocol
from presence.ws import hub
from presence.ws.hub import Conn, fanout
from presence.ws.wire import framed


class Transport:
    """The part of `Wire` a Conn writes to: every write it takes, in order
    (`full` refuses them, as a socket whose send buffer is full)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.full = False

    def write_framed(self, frame: bytes) -> bool:
        if self.full:
            return False
        self.writes.append(frame)
        return True


async def _idle_conn() -> tuple[Conn, Transport, list[Any]]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    t = Transport()
    conn = Conn(send, protocol.JSON, "agent", "a1", t)  # type: ignore[arg-type]
    conn.sender = asyncio.create_task(conn.run_sender())
    await asyncio.sleep(0)  # the sender waits, idle
    return conn, t, sent


def _event(n: int) -> str:
    return protocol.encode({"type": "status", "ver": n}, protocol.JSON)  # type: ignore[return-value]


async def test_the_event_of_a_request_in_flight_goes_out_with_its_reply() -> None:
    conn, t, sent = await _idle_conn()
    conn.hold()
    conn.push(_event(1))
    assert t.writes == []
    await conn.send_message(protocol.ok("r1"))
    ok = protocol.encode(protocol.ok("r1"), protocol.JSON)
    assert t.writes == [framed(ok) + framed(_event(1))]
    # released: the next frame is written at once, on its own
    conn.push(_event(2))
    assert t.writes[1:] == [framed(_event(2))] and sent == []
    conn.close()


async def test_a_held_frame_waits_no_longer_than_hold_max(monkeypatch: Any) -> None:
    monkeypatch.setattr(hub, "HOLD_MAX", 0.01)
    conn, t, _ = await _idle_conn()
    conn.hold()
    conn.push(_event(1))
    await asyncio.sleep(0.05)
    assert t.writes == [framed(_event(1))]
    conn.release()  # a request without a reply (no ref)
    conn.close()


async def test_held_frames_keep_their_order_through_the_queue() -> None:
    conn, t, sent = await _idle_conn()
    conn.hold()
    conn.push(_event(1))
    t.full = True  # the reply cannot be written at once: all goes the slow way
    await conn.send_message(protocol.ok("r1"))
    conn.push(_event(2))
    for _ in range(5):
        await asyncio.sleep(0)
    texts = [m["text"] for m in sent]
    assert texts[0] == protocol.encode(protocol.ok("r1"), protocol.JSON)
    assert texts[1:] == [_event(1), _event(2)] and t.writes == []
    conn.close()


async def test_several_messages_go_to_each_idle_socket_in_one_write() -> None:
    """A flush's messages (periodic figures, the views, the queues) reach an
    idle wallboard in one write, framed once per subprotocol; a busy one gets
    them queued in order, and a frame too large to go at once goes alone."""
    (a, ta, _), (b, tb, _) = await _idle_conn(), await _idle_conn()
    kpis, views = {"type": "kpis", "n": 1}, {"type": "agents", "agents": []}
    b._queue.append("earlier")  # b is behind: everything waits its turn
    assert fanout([a, b], kpis, views) == 2
    want = framed(protocol.encode(kpis, protocol.JSON)) + framed(protocol.encode(views, protocol.JSON))
    assert ta.writes == [want] and tb.writes == []
    assert list(b._queue) == [
        "earlier",
        protocol.encode(kpis, protocol.JSON),
        protocol.encode(views, protocol.JSON),
    ]
    large = {"type": "kpis", "agents": ["x" * hub.WRITE_AT_ONCE_MAX]}
    fanout([a], large, views)
    assert ta.writes == [want]  # nothing more at once: the large one first, through the queue
    assert list(a._queue) == [protocol.encode(large, protocol.JSON), protocol.encode(views, protocol.JSON)]
    a.close()
    b.close()


async def test_a_reply_written_with_nothing_held_counts_as_sent(monkeypatch: Any) -> None:
    """`sent_at` tells a stalled reader (`push_supervisors` drops one that
    took nothing for SUPERVISOR_STALL): a reply written on its own is a frame
    taken too, like one written with held frames."""
    clock = [100.0]
    monkeypatch.setattr(hub.time, "monotonic", lambda: clock[0])
    conn, t, _ = await _idle_conn()
    conn.hold()
    clock[0] = 160.0
    assert conn.release(framed(_event(1)))
    assert t.writes == [framed(_event(1))] and conn.sent_at == 160.0
    t.full = True
    clock[0] = 200.0
    conn.hold()
    assert not conn.release(framed(_event(2)))  # not written: not counted
    assert conn.sent_at == 160.0
    conn.close()


async def test_one_message_and_several_take_the_same_path() -> None:
    """`fanout` of one message: written at once to an idle socket, held for
    a request in flight, queued behind a socket's backlog."""
    (a, ta, _), (b, tb, _), (c, tc, _) = await _idle_conn(), await _idle_conn(), await _idle_conn()
    b.hold()
    c._queue.append("earlier")
    assert fanout([a, b, c], {"type": "status", "ver": 1}) == 3
    assert ta.writes == [framed(_event(1))] and tb.writes == [] and tc.writes == []
    assert list(c._queue) == ["earlier", _event(1)]
    assert b.release()
    assert tb.writes == [framed(_event(1))]
    for conn in (a, b, c):
        conn.close()


async def test_nothing_overtakes_a_snapshot_asked_for(monkeypatch: Any) -> None:
    """A hold for `snapshot.get` lasts until the reply: an event let go after
    HOLD_MAX reached the client before the snapshot read earlier, which
    then replaced the event's newer view with its older one."""
    monkeypatch.setattr(hub, "HOLD_MAX", 0.01)
    conn, t, _ = await _idle_conn()
    conn.hold(bounded=False)
    conn.push(_event(2))  # flushed after the snapshot's read (ver 1)
    await asyncio.sleep(0.05)
    assert t.writes == []
    snapshot = {"type": "snapshot", "agent": {"ver": 1}, "ref": "s"}
    await conn.send_message(snapshot)
    assert t.writes == [framed(protocol.encode(snapshot, protocol.JSON)) + framed(_event(2))]
    conn.close()
