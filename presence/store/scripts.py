"""Load the Lua scripts of `store/lua/` and call them.

Each ``<area>_<verb>.lua`` file is one atomic state change. All of them,
with the shared helpers of the ``_lib_<area>.lua`` parts (joined in the
order of `LIBRARY`), are loaded into Redis as ONE function library
(``FUNCTION LOAD``) and called with ``FCALL``: the helpers are defined once
per load, not on every call as a prefix of an EVAL script would be
(~90,000 instructions per call, docs/PERFORMANCE.md). Each call is still a
single atomic step. The library and its functions are named after
a digest of the source, so processes running different versions of
presence (a rolling upgrade) each call their own; a Redis that lost its
functions (a new one, a ``FUNCTION FLUSH``) is given the library again on
the first call that misses it. Needs Redis 7 or Valkey 7.2 or later.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

LUA_DIR = "store/lua"

# The parts of the shared helpers, in the order they are joined. A helper is
# a local of the library, so a part may use what the parts before it define
# and nothing after: the order is the dependency order (each part's header
# names what it relies on). Every other file of LUA_DIR is a script.
LIBRARY = (
    "_lib_core",  # enter, key, hmget; events, counters, stream and history (emit, bump, record)
    "_lib_config",  # the center's settings: rules, statuses, channels, queue strategies
    "_lib_webhook",  # webhook streams, and the hooks for item events
    "_lib_case",  # a case's view and status, and the hooks for its item's moves
    "_lib_agent",  # an agent's view, load, ready index and fitness
    "_lib_queue",  # waiting: wait score, new items, enqueue, overflow bookkeeping
    "_lib_route",  # offers and assignments
    "_lib_work",  # requeue, release, finish, complete, reroute, wrap-up, ownership
    "_lib_presence",  # an agent's status and lost sockets
)


class ScriptError(Exception):
    """A script refused a change; `code` is the protocol error code."""

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


def _lua(name: str) -> str:
    return resources.files("presence").joinpath(LUA_DIR).joinpath(f"{name}.lua").read_text("utf-8")


# Scripts called at a high rate, one socket or request at a time: each also
# exists as a "many" variant that applies a batch of calls in one FCALL
# (see `Batcher`). Each call in the batch stays atomic on its own and gets
# its own reply; only the round trip and the script set-up are shared.
BATCHED = ("offer_accept", "offer_decline", "work_complete", "work_create", "work_wrapup")

# The body of a batched script runs as a function of its own ARGV; pcall
# turns a runtime error in one call into that call's reply, so the others
# still get theirs. ARGV of the variant: now, arity, then `arity` arguments
# per call. Their events go out as one pub/sub message (events_begin /
# events_publish, _lib_core.lua).
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


def script_names() -> list[str]:
    """Every script (a file of LUA_DIR not named like a library part)."""
    base = resources.files("presence").joinpath(LUA_DIR)
    return sorted(
        p.name[:-4] for p in base.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_")
    )


@cache
def helpers() -> str:
    """The shared helpers: the LIBRARY parts, joined in their order."""
    return "\n".join(f"-- ==== {part}.lua ====\n{_lua(part)}" for part in LIBRARY)


def _bodies() -> dict[str, str]:
    """Every callable script's code by name: the files, and the batched variants."""
    out = {name: _lua(name) for name in script_names()}
    for name in BATCHED:
        out[f"{name}:many"] = _MANY.format(body=out[name])
    return out


def script_source(name: str) -> str:
    """Script `name` (or ``<name>:many``) as a stand-alone EVAL script, for
    tools and tests that run one script on a bare client."""
    # the helpers' own KEYS and ARGV locals hide the script's globals: keep them first
    return (
        f"local __keys, __args = KEYS, ARGV\n{helpers()}\n"
        f"enter(__keys, __args)\n-- ==== {name} ====\n{_bodies()[name]}"
    )


@cache
def library() -> tuple[str, dict[str, str]]:
    """The function library of every script: its source, and the function
    name of each script (``work_create:many`` included)."""
    lib, bodies = helpers(), _bodies()
    digest = hashlib.sha1("\0".join([lib, *(f"{n}\0{b}" for n, b in sorted(bodies.items()))]).encode())
    tag = digest.hexdigest()[:12]
    functions = {name: f"{name.replace(':', '__')}_{tag}" for name in bodies}
    parts = [f"#!lua name=presence_{tag}", lib]
    for name, body in sorted(bodies.items()):
        parts.append(
            f"-- ==== {name} ====\n"
            f"redis.register_function('{functions[name]}', function(keys, args)\n"
            f"enter(keys, args)\n{body}\nend)"
        )
    return "\n".join(parts), functions


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


class Scripts:
    """Every script of the store, called on one client."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._source, self._functions = library()
        self._loaded = False

    async def _load(self) -> None:
        # REPLACE: loading the same library twice (two processes starting at
        # once, a reload after a miss) is harmless
        try:
            await self._redis.function_load(self._source, replace=True)
        except ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise RuntimeError(
                    f"presence needs Redis 7.0 or later, or Valkey 7.2 or later (FUNCTION LOAD): {exc}"
                ) from exc
            raise
        self._loaded = True

    def function(self, name: str) -> str:
        """The Redis function of script `name` (for a caller's own pipeline)."""
        return self._functions[name]

    async def ensure_loaded(self, *, again: bool = False) -> None:
        """Load the library unless loaded (`again`: a call found it missing)."""
        if again or not self._loaded:
            await self._load()

    async def _fcall(self, name: str, prefix: str, args: list[Any]) -> Any:
        fn = self._functions[name]
        if not self._loaded:
            await self._load()
        try:
            return await self._redis.fcall(fn, 1, prefix, *args)
        except ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
        # a Redis without our library (a new one, or its functions flushed)
        await self._load()
        return await self._redis.fcall(fn, 1, prefix, *args)

    async def raw(self, name: str, prefix: str, now_ms: int, *args: Any) -> Any:
        return await self._fcall(name, prefix, [now_ms, *args])

    async def many(self, name: str, prefix: str, now_ms: int, calls: list[tuple[Any, ...]]) -> list[Any]:
        """Run the batched variant of `name`: one raw reply per call, in order."""
        arity = len(calls[0])
        flat = [a for call in calls for a in call]
        return await self._fcall(f"{name}:many", prefix, [now_ms, arity, *flat])  # type: ignore[no-any-return]

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
