"""Load the Lua scripts of `store/lua/` and call them.

Each ``<area>_<verb>.lua`` file is one atomic state change. `_lib.lua` is
prepended to every script, so shared helpers (emit, reindex, requeue ...)
exist once in the source and each call stays a single EVALSHA. redis-py's
`Script` object retries with EVAL after a NOSCRIPT (a restarted Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

LUA_DIR = "store/lua"


class ScriptError(Exception):
    """A script refused a change; `code` is the protocol error code."""

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


def script_source(name: str) -> str:
    base = resources.files("presence").joinpath(LUA_DIR)
    lib = base.joinpath("_lib.lua").read_text("utf-8")
    body = base.joinpath(f"{name}.lua").read_text("utf-8")
    return f"{lib}\n-- ==== {name}.lua ====\n{body}"


# Scripts called at a high rate, one socket or request at a time: each also
# exists as a "many" variant that applies a batch of calls in one EVALSHA
# (see `Batcher`). Each call in the batch stays atomic on its own and gets
# its own reply; only the round trip and the script set-up are shared.
BATCHED = ("offer_accept", "offer_decline", "work_complete", "work_create", "work_wrapup")

# The body of a batched script runs as a function of its own ARGV; pcall
# turns a runtime error in one call into that call's reply, so the others
# still get theirs. ARGV of the variant: now, arity, then `arity` arguments
# per call. Their events go out as one pub/sub message (_lib.lua's
# events_begin / events_publish).
_MANY = """
local function __one(ARGV)
{body}
end
local __out, __arity = {{}}, tonumber(ARGV[2])
events_begin()
for __i = 3, #ARGV, __arity do
  local __a = {{ARGV[1]}}
  for __j = 0, __arity - 1 do __a[#__a + 1] = ARGV[__i + __j] end
  local __ok, __r = pcall(__one, __a)
  if __ok then __out[#__out + 1] = __r else __out[#__out + 1] = {{'internal', '', tostring(__r)}} end
end
events_publish()
return __out
"""


def many_source(name: str) -> str:
    base = resources.files("presence").joinpath(LUA_DIR)
    lib = base.joinpath("_lib.lua").read_text("utf-8")
    body = base.joinpath(f"{name}.lua").read_text("utf-8")
    return f"{lib}\n-- ==== {name}.lua, batched ====" + _MANY.format(body=body)


def script_names() -> list[str]:
    base = resources.files("presence").joinpath(LUA_DIR)
    return sorted(
        p.name[:-4] for p in base.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_")
    )


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


class Scripts:
    """Every script of the store, registered on one client."""

    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in script_names()
        }
        for name in BATCHED:
            self._scripts[f"{name}:many"] = redis.register_script(many_source(name))

    async def raw(self, name: str, prefix: str, now_ms: int, *args: Any) -> Any:
        return await self._scripts[name](keys=[prefix], args=[now_ms, *args])

    async def many(self, name: str, prefix: str, now_ms: int, calls: list[tuple[Any, ...]]) -> list[Any]:
        """Run the batched variant of `name`: one raw reply per call, in order."""
        arity = len(calls[0])
        flat = [a for call in calls for a in call]
        return await self._scripts[f"{name}:many"](keys=[prefix], args=[now_ms, arity, *flat])  # type: ignore[no-any-return]

    @staticmethod
    def outcome(name: str, raw: Any) -> list[Any] | ScriptError:
        """A raw reply checked: its values after "ok", or the script's refusal."""
        reply = _text(raw)
        if not reply or reply[0] != "ok":
            code = reply[0] if reply else "internal"
            field = reply[1] if len(reply) > 1 else None
            message = reply[2] if len(reply) > 2 else f"{name} failed"
            return ScriptError(code, field, message)
        return list(reply[1:])

    async def call(self, name: str, prefix: str, now_ms: int, *args: Any) -> list[Any]:
        """Run a script whose reply starts with "ok" or an error code."""
        outcome = self.outcome(name, await self.raw(name, prefix, now_ms, *args))
        if isinstance(outcome, ScriptError):
            raise outcome
        return outcome


class Batcher:
    """Coalesce the calls of one `BATCHED` script from many sockets.

    A call waits for the batch in flight (if any) to come back, then goes
    with every call that arrived meanwhile in one EVALSHA: under load the
    batches grow by themselves, and an idle server adds no delay (the first
    call leaves on the next turn of the event loop). The calls of one socket
    keep their order: the server handles a socket's messages one at a time,
    so its next call is made only after this one's reply.
    """

    MAX = 512

    def __init__(self, scripts: Scripts, name: str, prefix: str, now_ms: Callable[[], int]) -> None:
        self._scripts = scripts
        self._name = name
        self._prefix = prefix
        self._now_ms = now_ms
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self.calls = 0  # script calls sent (tests check the batching)

    async def __call__(self, *args: Any) -> list[Any]:
        """The call's "ok" reply without its first element; raises ScriptError."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        if self._task is None:
            self._task = asyncio.create_task(self._flush(), name=f"batch:{self._name}")
        outcome = Scripts.outcome(self._name, await future)
        if isinstance(outcome, ScriptError):
            raise outcome
        return outcome

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.MAX], self._pending[self.MAX :]
                try:
                    replies = await self._scripts.many(
                        self._name, self._prefix, self._now_ms(), [args for args, _ in batch]
                    )
                except asyncio.CancelledError:
                    # shutting down: nobody is left to send the rest
                    for _, future in batch + self._pending:
                        future.cancel()
                    self._pending = []
                    raise
                except Exception as exc:
                    # this batch failed (Redis away): its callers get the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.calls += 1
                for (_, future), reply in zip(batch, replies, strict=True):
                    if not future.done():
                        future.set_result(reply)
        finally:
            self._task = None
