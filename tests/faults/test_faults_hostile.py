"""Hostile and careless clients, found from outside with a raw websocket
client (`tests/faults/rawws.py`): a ping flood, text that is not UTF-8,
clients that vanish mid-send, a wallboard that stops reading."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.rawws import PING, TEXT, RawWs, frame
from tests.harness import ServerProcess, WsClient, agent, supervisor, token
from tests.integration.conftest import ServerFactory
from tests.integration.test_loadtests_smoke import run_locust

pytestmark = pytest.mark.timeout(120)


def _clean(logs: str) -> None:
    assert "ERROR" not in logs and "Traceback" not in logs, logs[-4000:]


async def _pong_ms(client: WsClient) -> float:
    start = time.perf_counter()
    waiter = await client.conn.ping()
    await asyncio.wait_for(waiter, 5)
    return (time.perf_counter() - start) * 1000


async def test_ping_flood_is_closed_1008_and_others_keep_their_latency(server: ServerProcess) -> None:
    bob = await agent(server, "bob")
    # paced, so bob stays well within his own budget (burst 200, 50/s)
    baseline = statistics.median([await _pong_ms(bob) for _ in range(30)])

    flooder = await RawWs.connect(server.port, "/ws/agent", token("agent", "alice"))
    chunk = frame(PING, b"ping") * 5000  # 50 KB of pings per write
    sent = 0
    stop = asyncio.Event()

    async def flood() -> None:
        nonlocal sent
        end = time.monotonic() + 5.0
        try:
            while not stop.is_set() and time.monotonic() < end:
                await flooder.send(chunk)
                sent += 5000
        except (ConnectionError, OSError):
            pass  # the server closed it

    async def measure() -> list[float]:
        got = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            got.append(await _pong_ms(bob))
            await asyncio.sleep(0.02)
        return got

    flooding = asyncio.create_task(flood())
    during = asyncio.create_task(measure())
    closing, pongs = await flooder.until_close(timeout=8)
    stop.set()
    await flooding
    latencies = await during
    flooder.close()

    assert closing.close_code == 1008, closing
    # the budget (PRESENCE_RATE_BURST 200 + 50/s), not the flood, sets what is answered
    assert pongs < 1000, (pongs, sent)
    assert statistics.median(latencies) < max(5.0, 3 * baseline), (baseline, latencies)
    # bob is untouched: same socket, still answered
    assert (await bob.request({"type": "ping"}))["type"] == "pong"
    _clean(server.logs())


async def test_text_frame_not_utf8_closes_1007_without_a_traceback(server: ServerProcess) -> None:
    raw = await RawWs.connect(server.port, "/ws/agent", token("agent", "alice"))
    first = await raw.recv()
    assert first.opcode == TEXT and b'"snapshot"' in first.payload
    await raw.send(frame(TEXT, b'{"type": "ping", "note": "\xff\xfe"}'))
    closing, _ = await raw.until_close()
    raw.close()
    assert closing.close_code == 1007, closing
    bob = await agent(server, "bob")
    assert (await bob.request({"type": "ping"}))["type"] == "pong"
    await asyncio.sleep(0.3)
    _clean(server.logs())


async def _churn(server: ServerProcess, rounds: int) -> None:
    """Clients that vanish at the worst moments: right after the handshake
    (the server is sending the snapshot), and right after a request (it is
    sending the reply), without a close frame (a reset)."""
    for i in range(rounds):
        who = ("alice", "bob")[i % 2]
        raw = await RawWs.connect(server.port, "/ws/agent", token("agent", who))
        raw.close()
        wall = await RawWs.connect(server.port, "/ws/supervisor", token("supervisor", f"sue{i}"))
        wall.close()
        raw = await RawWs.connect(server.port, "/ws/agent", token("agent", who))
        await raw.recv()
        await raw.send(frame(TEXT, b'{"type": "snapshot.get", "ref": 1}'))
        raw.close()


async def test_clients_coming_and_going_leave_no_error_in_the_log(server: ServerProcess) -> None:
    churn = asyncio.create_task(_churn(server, 40))
    # Locust's agents drop their connections now and then and all stop at once at the end
    out = await asyncio.to_thread(run_locust, server, 20, 10, "--stop-timeout", "2", "--lt-handle", "0.5")
    await churn
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    await asyncio.sleep(1.0)  # the server notices the last disconnects
    _clean(server.logs())


MANY = "\n".join(f'[[agents]]\nid = "a{i:02d}"\nqueues = ["support"]\n' for i in range(40))
WALL_CENTER = f'[[queues]]\nname = "support"\n\n{MANY}'


async def test_a_wallboard_that_stops_reading_is_dropped_4408_and_counted(
    server_factory: ServerFactory,
) -> None:
    fast = {"PRESENCE_RATE_PER_SECOND": "5000", "PRESENCE_RATE_BURST": "5000"}
    server = server_factory(WALL_CENTER, env=fast)
    boss = await supervisor(server, "boss")  # reads everything: must stay
    # a tiny receive window, so the server's writes back up within seconds
    stuck = await RawWs.connect(server.port, "/ws/supervisor", token("supervisor", "stuck"), rcvbuf=4096)
    statuses = ("Available", "Break")
    start = time.monotonic()
    dropped = None
    n = 0
    while time.monotonic() - start < 40 and dropped is None:
        for i in range(40):
            msg = {"type": "agent.status.set", "agent_id": f"a{i:02d}", "status": statuses[n % 2]}
            if i == 0:
                await boss.request(msg)
            else:
                await boss.send(msg)
        n += 1
        if n % 10 == 0:
            # the stuck wallboard still keeps its socket alive (it is not silent)
            with contextlib.suppress(OSError):
                await stuck.send(frame(TEXT, b'{"type": "ping"}'))
            boss.inbox.clear()
            dropped = _dropped(server)
        await asyncio.sleep(0.01)
    assert dropped == 1, f"not dropped within {time.monotonic() - start:.0f}s"
    closing, before = await stuck.until_close(timeout=10)
    stuck.close()
    assert closing.close_code == 4408, closing
    assert before > 0  # it had its snapshot and some deltas, then the close frame
    # the wallboard that reads is untouched
    assert (await boss.request({"type": "ping"}))["type"] == "pong"
    _clean(server.logs())


def _dropped(server: ServerProcess) -> float | None:
    text = httpx.get(f"{server.http}/metrics", timeout=5).text
    for fam in text_string_to_metric_families(text):
        if fam.name == "presence_websocket_dropped":
            for s in fam.samples:
                if s.name.endswith("_total") and s.labels.get("role") == "supervisor":
                    return s.value
    return None


async def _pong(raw: RawWs, ref: int) -> None:
    """The next pong, which answers `ref` (events on the way are skipped)."""
    while True:
        got = await raw.recv()
        assert got.opcode == TEXT, got
        if b'"type":"pong"' in got.payload:
            assert f'"ref":{ref}'.encode() in got.payload, got
            return


async def test_frames_split_joined_or_fragmented_are_read_as_whole_ones(server: ServerProcess) -> None:
    """The wire reads a message that comes as one whole frame in one read
    itself (`presence.ws.wire.one_frame`); the rest is the websockets
    parser's, and both must agree on where a frame starts."""
    raw = await RawWs.connect(server.port, "/ws/agent", token("agent", "alice"))
    await raw.recv()  # the snapshot

    def ping(ref: int) -> bytes:
        return frame(TEXT, b'{"type": "ping", "ref": %d}' % ref, mask=b"\x01\x02\x03\x04")

    await raw.send(ping(1))
    await _pong(raw, 1)
    # a frame in pieces: its start, then the rest with a whole frame after it
    two = ping(2) + ping(3)
    await raw.send(two[:3])
    await asyncio.sleep(0.05)
    await raw.send(two[3:])
    await _pong(raw, 2)
    await _pong(raw, 3)
    # a fragmented message, its parts in two reads, then a whole frame again
    body = b'{"type": "ping", "ref": 4}'
    first = frame(TEXT, body[:10])
    await raw.send(bytes((first[0] & 0x7F,)) + first[1:])  # FIN clear
    await asyncio.sleep(0.05)
    await raw.send(frame(0x0, body[10:]))  # the continuation, FIN set
    await _pong(raw, 4)
    await raw.send(ping(5))
    await _pong(raw, 5)
    raw.close()


@pytest.mark.parametrize(
    "data, code",
    [
        # an unmasked client frame: a protocol error
        (b"\x81\x10" + b'{"type": "ping"}', 1002),
        # a frame over PRESENCE_MAX_FRAME (64 KiB by default): too big
        (frame(TEXT, b" " * (64 * 1024 + 1)), 1009),
    ],
)
async def test_a_bad_whole_frame_is_refused_as_websockets_refuses_it(
    server: ServerProcess, data: bytes, code: int
) -> None:
    raw = await RawWs.connect(server.port, "/ws/agent", token("agent", "alice"))
    await raw.recv()
    await raw.send(data)
    closing, _ = await raw.until_close()
    raw.close()
    assert closing.close_code == code, closing


async def test_a_refused_frame_is_closed_without_a_reset_while_the_client_still_sends(
    server: ServerProcess,
) -> None:
    """The server half-closes after the close frame and drops what still
    comes: closed at once with input unread, its kernel answers that input
    with a reset, which can destroy the close frame before the client reads
    it (under load the client above saw a reset instead of 1009)."""
    raw = await RawWs.connect(server.port, "/ws/agent", token("agent", "alice"))
    await raw.recv()
    whole = frame(TEXT, b" " * (64 * 1024 + 1))
    await raw.send(whole[:1024])  # the header says too big: refused at once
    closing, _ = await raw.until_close()
    assert closing.close_code == 1009, closing
    await raw.send(whole[1024:])  # the rest of the frame, after the refusal
    await asyncio.sleep(0.2)
    try:
        # the server's FIN, not a reset (a reset: ConnectionResetError)
        assert await asyncio.wait_for(raw.reader.read(), 5) == b""
    finally:
        raw.close()
