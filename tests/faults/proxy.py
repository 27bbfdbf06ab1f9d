"""TCP proxies on 127.0.0.1 in front of Redis: `BlackholeProxy` turns a
connection into a half-open one; `Meddler` breaks or withholds one reply.

`freeze` stops forwarding on the chosen flows without closing them: both
sockets stay open, bytes sent either way are read and dropped, nobody gets a
FIN or a RST. That is what a partition, a NAT or a firewall that forgot the
flow, or a peer host that vanished looks like from the client's side. New
connections are forwarded normally (the path is back; the old flow is lost).

The proxy runs its own event loop in a thread, so a test may block (a sync
HTTP call) while the server behind it still reaches Redis."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from tests.helpers import free_port


@dataclass
class Flow:
    """One client connection and its upstream twin."""

    subscriber: bool = False  # the client sent SSUBSCRIBE/SUBSCRIBE on it
    frozen: bool = False
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class BlackholeProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.flows: list[Flow] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blackhole-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> BlackholeProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            for flow in self.flows:
                for w in flow.writers:
                    w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def freeze(self, *, subscribers_only: bool = True) -> int:
        """Blackhole the open flows (only the pub/sub ones by default);
        returns how many."""

        def mark() -> int:
            n = 0
            for flow in self.flows:
                if flow.subscriber or not subscribers_only:
                    flow.frozen = True
                    n += 1
            return n

        async def on_loop() -> int:
            return mark()

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(5)

    def subscribers(self) -> int:
        """How many open flows carry a subscription."""

        async def on_loop() -> int:
            return sum(1 for f in self.flows if f.subscriber and not f.frozen)

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(5)

    # -- the loop ------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        flow = Flow(writers=[writer, up_writer])
        self.flows.append(flow)
        await asyncio.gather(
            self._pump(reader, up_writer, flow, sniff=True),
            self._pump(up_reader, writer, flow, sniff=False),
            return_exceptions=True,
        )
        for w in flow.writers:
            w.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flow: Flow, *, sniff: bool
    ) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                if not flow.frozen:
                    writer.close()
                return
            if sniff and not flow.subscriber:
                # the command's name, as the client sends it (RESP):
                # *2\r\n$10\r\nSSUBSCRIBE\r\n...
                head = data[:32].lower()
                flow.subscriber = b"\r\nssubscribe\r\n" in head or b"\r\nsubscribe\r\n" in head
            if flow.frozen:
                continue  # dropped: no forwarding, no close
            writer.write(data)
            await writer.drain()


class Meddler:
    """A TCP proxy in front of Redis. Once armed, the next command naming
    `needle` reaches Redis, and its reply is then dropped with the connection
    broken (`mode` "drop") or kept back with the connection left open
    ("hold"). Counts the commands naming `needle` that it forwarded (`seen`)
    and the replies it dropped or kept back (`dropped`). Runs on the test's
    own event loop."""

    def __init__(self, upstream_port: int, needle: bytes, mode: str) -> None:
        self.upstream_port = upstream_port
        self.needle = needle
        self.mode = mode
        self.armed = False
        self.seen = 0
        self.dropped = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.BaseTransport] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        await asyncio.sleep(0.1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        links: list[asyncio.BaseTransport] = [writer.transport, up_writer.transport]
        self._links.update(links)
        doomed = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.needle in data:
                    self.seen += data.count(self.needle)
                    if self.armed:
                        self.armed = False
                        doomed.set()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if doomed.is_set():
                    # Redis has run it and answered: the answer never arrives
                    self.dropped += 1
                    if self.mode == "drop":
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    continue  # "hold": swallowed, the connection stays open
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for link in links:
            link.abort()
            self._links.discard(link)
