"""A leader lock in Redis: one process at a time does a center's task.

The live KPIs, the roll-up and the demo each run in one process at a time,
whichever holds that task's lock: a key whose value names the holder and
whose TTL (Redis's clock) hands the task over when the holder dies.

* `acquire` takes a free lock (``SET NX PX``, atomic on its own);
* `renew` extends the TTL only if this holder still holds it, in one script
  (``lock_renew.lua``, compare-and-pexpire). A GET then a PEXPIRE would
  extend a lock that expired and was taken by another process between the
  two calls: the other's lock would live on our renewals, and both of us
  would lead. A refused renewal means the leadership was lost;
* `release` deletes the lock only if this holder still holds it
  (``lock_release.lua``, compare-and-delete), so a holder whose work
  outlived its TTL cannot delete the lock of the process that took over.

`held` is what the last call found, a hint for the caller's loop; Redis is
the truth, and every renewal checks it.
"""

from __future__ import annotations

import os
import secrets

from presence.store import Store


def holder_id() -> str:
    """Unique across hosts, processes and restarts: ``<pid>@<host>-<random>``."""
    return f"{os.getpid()}@{os.uname().nodename}-{secrets.token_hex(4)}"


class Lock:
    """The leader lock `key` (a key of `store`'s center) for `ttl_ms`, as `holder`."""

    def __init__(self, store: Store, key: str, ttl_ms: int, *, holder: str | None = None) -> None:
        prefix = store.keys.prefix
        if not key.startswith(prefix):
            raise ValueError(f"lock key {key!r} is not a key of the center (prefix {prefix!r})")
        if ttl_ms <= 0:
            raise ValueError(f"lock TTL must be positive, got {ttl_ms} ms")
        self.store = store
        self.key = key
        self.ttl_ms = ttl_ms
        self.holder = holder or holder_id()
        self.held = False
        self._below = key[len(prefix) :]  # the scripts build the key from the prefix

    async def acquire(self) -> bool:
        """Take the lock if it is free, or keep it if it is still ours; True when held."""
        taken = await self.store.redis.set(self.key, self.holder, nx=True, px=self.ttl_ms)
        # not free: still ours from an earlier hold (then renewed), or another's
        self.held = bool(taken) or await self._renew()
        return self.held

    async def renew(self) -> bool:
        """Extend the TTL if this holder still holds the lock; False: leadership lost."""
        self.held = await self._renew()
        return self.held

    async def hold(self) -> bool:
        """Keep the lock, or take it if free: the one call of a leader loop's tick."""
        if self.held and await self.renew():
            return True
        return await self.acquire()

    async def release(self) -> bool:
        """Delete the lock if this holder still holds it; False when it was not ours."""
        self.held = False
        return bool(await self._script("lock_release"))

    async def _renew(self) -> bool:
        return bool(await self._script("lock_renew", self.ttl_ms))

    async def _script(self, name: str, *args: int) -> object:
        s = self.store
        return await s.scripts.raw(name, s.keys.prefix, s.now_ms(), self._below, self.holder, *args)
