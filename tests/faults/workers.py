"""Agents that behave like real ones under faults: they reconnect with
jittered exponential backoff (to the next server when theirs is gone), go
Available, accept every new offer after a short think time and complete it.

Offers found in a snapshot after a reconnect are ignored on purpose: they
were made to the socket that died, and must time out and be re-queued by the
server (the fault under test). Work found in hand is completed, so nothing
an agent had accepted is ever left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.harness import ServerProcess, WsClient, agent


@dataclass
class Worker:
    agent_id: str
    servers: list[ServerProcess]
    think: tuple[float, float] = (0.05, 0.3)
    connects: list[int] = field(default_factory=list)  # port of each accepted socket
    completed: set[str] = field(default_factory=set)
    offers: dict[str, float] = field(default_factory=dict)  # open offers on the live socket
    closes: list[int | None] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    snapshots: int = 0
    client: WsClient | None = None

    async def connect(self, deadline: float) -> WsClient:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        i = 0
        while True:
            target = self.servers[i % len(self.servers)]
            try:
                client = await agent(target, self.agent_id)
            except (OSError, InvalidHandshake, InvalidStatus, ConnectionClosed, TimeoutError):
                if loop.time() > deadline:
                    raise
                # full jitter: a crowd of agents must not retry in step
                await asyncio.sleep(random.uniform(0, backoff))
                backoff = min(backoff * 2, 1.0)
                i += 1
                continue
            self.connects.append(target.port)
            self.snapshots += 1
            return client

    async def run(self, stop: asyncio.Event, limit: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + limit
        while not stop.is_set():
            self.client = client = await self.connect(deadline)
            self.offers.clear()
            tasks: set[asyncio.Task[None]] = set()
            try:
                if client.snapshot["agent"]["status"] != "Available":
                    await client.send({"type": "status.set", "status": "Available"})
                for item in client.snapshot["work"]:
                    await client.send({"type": "work.complete", "work_id": item["work_id"]})
                while not stop.is_set():
                    try:
                        msg = await client.recv(0.2)
                    except TimeoutError:
                        continue
                    self._on(msg, client, tasks)
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd else None)
            finally:
                for t in tasks:
                    t.cancel()
                with contextlib.suppress(Exception):
                    await client.close()

    def _on(self, msg: dict[str, Any], client: WsClient, tasks: set[asyncio.Task[None]]) -> None:
        kind = msg.get("type")
        if kind == "offer":
            wid = msg["work_id"]
            self.offers[wid] = asyncio.get_running_loop().time()
            t = asyncio.create_task(self._accept_later(client, wid))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        elif kind == "offer.rescinded":
            self.offers.pop(msg["work_id"], None)
        elif kind == "work.assigned":
            self.offers.pop(msg["work_id"], None)
            t = asyncio.create_task(self._complete(client, msg["work_id"]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        elif kind == "work.updated" and msg.get("state") == "completed":
            self.completed.add(msg["work_id"])
        elif kind == "error" and msg.get("code") not in ("conflict", "not_found"):
            # conflict / not_found: the offer timed out while we thought
            self.errors.append(msg)

    async def _accept_later(self, client: WsClient, wid: str) -> None:
        await asyncio.sleep(random.uniform(*self.think))
        with contextlib.suppress(ConnectionClosed):
            await client.send({"type": "offer.accept", "work_id": wid})

    async def _complete(self, client: WsClient, wid: str) -> None:
        await asyncio.sleep(0.02)
        with contextlib.suppress(ConnectionClosed):
            await client.send({"type": "work.complete", "work_id": wid})


async def start(workers: list[Worker], stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(w.run(stop)) for w in workers]
