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
import itertools
import os
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from functools import cache
from importlib import resources
from typing import Any, Final

from redis.exceptions import ClusterDownError, OutOfMemoryError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from presence.protocol import REF_KEPT_SECONDS
from presence.store.client import Client, closed_transport, execute, execute_many, is_cluster, shard_of
from presence.store.replication import Replication

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
    "_lib_queue",  # waiting: wait score, new items, enqueue, overflow bookkeeping, waiting list
    "_lib_route",  # offers and assignments
    "_lib_work",  # requeue, release, finish, complete, reroute, wrap-up, ownership
    "_lib_presence",  # an agent's status and lost sockets
    "_lib_router",  # the router's decision (route.lua's), and routing inside a batched call
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
# Scripts that only read: registered with the `no-writes` flag, so Redis
# runs them when it is full (maxmemory reached, noeviction) and a snapshot,
# the checker and /metrics still answer. Every other function may write, and
# a full Redis refuses it with OOM before it starts: a change is applied
# whole or not at all, never half (docs/RELIABILITY.md). They are also the
# changes there are none of to wait for replicas on (store/replication.py).
READ_ONLY = frozenset(
    {
        "agent_roster",
        "agent_snapshot",
        "center_dump",
        "check",
        "composing_marks",
        "queue_stats",
        "queue_waiting",
        "views",
        "work_position",
    }
)

# What Redis answers a command of a script with while the cluster moves the
# keys' slot (a migration: the keys that left are "non local"; a failover:
# the node is no longer the slot's primary): caught by a batched call's
# pcall, it is the store being unavailable for a moment, not a bug.
_MOVING: Final = (
    "non local key",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
    "MOVED",
    "ASK ",
    "MASTERDOWN",
    "LOADING",
)

BATCHED = ("agent_status", "offer_accept", "offer_decline", "work_complete", "work_create", "work_wrapup")

# The body of a batched script runs as a function of its own ARGV; pcall
# turns a runtime error in one call into that call's reply, so the others
# still get theirs. ARGV of the variant: now, arity, the inline routing
# budget and scan (0: none), the batch's retry key and how long to keep its
# reply (ms; "" and 0: none), then `arity` arguments per call. Their events
# go out as one pub/sub message (events_begin / events_publish,
# _lib_core.lua). With a budget, the queues the calls added work to or freed
# an agent in are routed once after them, in the same call (route_later,
# _lib_router.lua). Reply: {the calls' replies, queues that may have more}.
# The batch's retry key (one made here, see `_REMEMBER`) keeps that whole
# reply, so redis-py's retry of the batch gets it again: one look-up and one
# SET per batch instead of per call; the calls keyed by a client's ref keep
# their own. The look-up (`recall`, _lib_config.lua) reads the settings
# token in the same MGET. Its key is only ``ref:<retry key>``: a key made
# here is used by one call and never again, so it needs no script name.
_MANY = """
local function __one(ARGV)
{body}
end
local __bk, __bttl = ARGV[5], ARGV[6]
if __bk ~= '' then
  __bk = key('ref', __bk)
  local __seen = recall(__bk)
  if __seen then return cmsgpack.unpack(__seen) end
end
local __out, __arity, __calls = {{}}, tonumber(ARGV[2]), {{}}
for __i = 7, #ARGV, __arity do
  local __a = {{ARGV[1]}}
  for __j = 0, __arity - 1 do __a[#__a + 1] = ARGV[__i + __j] end
  __calls[#__calls + 1] = __a
end
batch_of(__calls)
route_inline_begin(tonumber(ARGV[3]), tonumber(ARGV[4]))
events_begin()
for _, __a in ipairs(__calls) do
  local __ok, __r = pcall(__one, __a)
  if __ok then __out[#__out + 1] = __r
  else __out[#__out + 1] = {{'internal', '', type(__r) == 'table' and tostring(__r.err) or tostring(__r)}} end
end
local __more = route_inline_end()
events_publish()
if __bk ~= '' then redis.call('SET', __bk, cmsgpack.pack({{__out, __more}}), 'PX', __bttl) end
return {{__out, __more}}
"""


# Scripts whose second run with the same arguments would apply a change
# twice or answer differently (`conflict`, `not_found`, a second item). A
# call of one is sent with a retry key and remembered under it: its reply is
# kept in Redis (key ``ref:<retry key>:<script>``, by the digest of its
# arguments; ``ref:<retry key>`` for a key made here), in the same atomic
# call as its change, and a second call with the same key and arguments
# gets that reply without running again. Two
# kinds of second call exist:
#   * redis-py's retry after a connection error (`store.client`) sends the
#     same command again; if Redis had applied it (the connection broke
#     after the command, or Redis crashed once it was in the AOF), the retry
#     now answers the first result. The key is made here, one per call (a
#     batched call's are kept together, under its first one: `_MANY`);
#   * a client's retry of an agent action answered `unavailable` (Redis
#     paused with the action already in its socket buffer): its key is the
#     agent and the message's `ref` (`retry_key`).
# Left out: reads, and what a second run leaves as the first did (the
# router's pass, timers, lease renewals, socket registration, locks).
REMEMBERED = frozenset(
    {
        "agent_delete",
        "agent_put",
        "agent_status",
        "call_control",
        "call_end",
        "case_csat",
        "case_intake",
        "case_status",
        "customer_put",
        "offer_accept",
        "offer_decline",
        "queue_delete",
        "queue_put",
        "work_cancel",
        "work_complete",
        "work_create",
        "work_note",
        "work_reply",
        "work_transfer",
        "work_wrapup",
    }
)
# Remembered scripts whose second run of the same call (the same arguments,
# the clock included, as redis-py's retry sends them) finds what the first
# left and answers as it did: they need no key made here, only a client's
# ref (whose retry comes with a new clock). work_complete.lua: an item the
# same agent completed at the same instant with the same disposition;
# work_create.lua: an item of the id it was sent (made here, never reused)
# that exists (`made_before`, one EXISTS per batch).
ANSWERS_ITS_RETRY = frozenset({"work_complete", "work_create"})
# how long a reply is kept: under a client's ref (its retries come within
# seconds; a ref must not be reused for another action meanwhile), and
# under a key made here (redis-py retries within about a second)
REF_TTL_MS = REF_KEPT_SECONDS * 1000
RETRY_TTL_MS = 10_000

# The body of a remembered script: its last two arguments are the retry key
# and how long to keep the reply (ms), taken off before the body sees ARGV.
# Under a client's key the reply is kept with the digest of the arguments
# (leaving out ARGV[1], the clock, which a client's retry changes): a ref
# reused for another action is that action. A key made here (``~...``) is
# never reused, so it needs neither the digest nor the script's name in its
# key (``ref:~...``: fewer bytes in the AOF per call). An empty key: the call is kept by its
# batch's key (`_MANY`).
_REMEMBER = """
local __ttl = ARGV[#ARGV]
ARGV[#ARGV] = nil
local __rk = ARGV[#ARGV]
ARGV[#ARGV] = nil
local __run = function()
{body}
end
if __rk == '' then return __run() end
local __made = string.sub(__rk, 1, 1) == '~'
local __key = __made and key('ref', __rk) or key('ref', __rk, '{name}')
local __sig = ''
if not __made then __sig = redis.sha1hex(table.concat(ARGV, '\\0', 2)) end
local __seen = recall(__key)
if __seen then
  local __was = cmsgpack.unpack(__seen)
  if __was[1] == __sig then return __was[2] end
end
local __reply = __run()
redis.call('SET', __key, cmsgpack.pack({{__sig, __reply}}), 'PX', __ttl)
return __reply
"""

_NO_LEDGER = ("", 0)  # a batched script that is not remembered
_retry_key: ContextVar[str | None] = ContextVar("presence_retry_key", default=None)
_BOOT = os.urandom(6).hex()
_serial = itertools.count(1)


class retry_key:  # lower case: used as the function it was, ``with retry_key(key):``
    """Remembered calls made inside are keyed by `key` (a client's action:
    its agent and `ref`, see `ref_key`) instead of a key per call.

    A class, not a `contextmanager` generator: it is entered for every
    agent message with a ref (a generator, its wrapper and two resumptions
    each time); an exception inside goes through unchanged, the key reset."""

    __slots__ = ("_key", "_token")

    def __init__(self, key: str | None) -> None:
        self._key = key

    def __enter__(self) -> None:
        self._token = _retry_key.set(self._key)

    def __exit__(self, *exc: object) -> None:
        _retry_key.reset(self._token)


def ref_key(agent_id: str, ref: str | int) -> str:
    """The retry key of an agent's action: the agent and its `ref` (typed, so
    ``1`` and ``"1"`` are two refs)."""
    return f"{agent_id}|{'i' if isinstance(ref, int) else 's'}:{ref}"


def ledger(name: str = "") -> tuple[str, int]:
    """The retry key and reply lifetime of one remembered call of script
    `name` made now (none made here for one that answers its own retry).

    Taken in the caller's context (a batch is sent by another task)."""
    key = _retry_key.get()
    if key is not None:
        return key, REF_TTL_MS
    if name in ANSWERS_ITS_RETRY:
        return _NO_LEDGER
    return f"~{_BOOT}{next(_serial):x}", RETRY_TTL_MS


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
    for name in REMEMBERED:
        out[name] = _REMEMBER.format(name=name, body=out[name])
    for name in BATCHED:
        out[f"{name}:many"] = _MANY.format(body=out[name], name=name)
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
        flags = "'no-writes'" if name in READ_ONLY else ""
        parts.append(
            f"-- ==== {name} ====\n"
            f"redis.register_function{{function_name = '{functions[name]}', flags = {{{flags}}},\n"
            f"callback = function(keys, args)\nenter(keys, args)\n{body}\nend}}"
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

    def __init__(self, redis: Client, replication: Replication | None = None) -> None:
        self._redis = redis
        self._source, self._functions = library()
        self.replication = replication
        # one load at a time per shard (None: every primary), shared by the
        # calls that missed the library together
        self._loading: dict[str | None, asyncio.Future[None]] = {}
        self._inline = (0, 0)
        self._on_more: Callable[[list[str]], None] | None = None

    async def load(self) -> None:
        """Load the library on every primary now (a server's start), so no
        first call pays for it and a replica promoted later already has it.
        A full Redis refuses the load: then what is there is called, and a
        call that finds nothing loads it on its own shard (`_fcall`)."""
        with suppress(OutOfMemoryError):
            await self._load()

    async def _load(self, prefix: str | None = None) -> None:
        # Concurrent first calls (a seeding burst of hundreds) share one
        # load: each sending its own FUNCTION LOAD queued hundreds of
        # compilations of the whole library, and the last ones timed out.
        loading = self._loading.get(prefix)
        if loading is None:
            loading = self._loading[prefix] = asyncio.ensure_future(self._load_once(prefix))
        try:
            await asyncio.shield(loading)
        finally:
            if self._loading.get(prefix) is loading and loading.done():
                del self._loading[prefix]

    async def _load_once(self, prefix: str | None) -> None:
        # REPLACE: loading the same library twice (two processes starting at
        # once, a reload after a miss) is harmless. On a cluster redis-py
        # sends FUNCTION LOAD to every primary (a replica gets it from its
        # primary); after a miss, only to the primary that holds `prefix`:
        # a new primary (a promoted replica that missed a load, a node that
        # was given the slot) while the others may be down.
        node = shard_of(self._redis, prefix) if prefix is not None else None
        try:
            if node is None:
                await self._redis.function_load(self._source, replace=True)
            else:
                await self._redis.execute_command("FUNCTION LOAD", "REPLACE", self._source, target_nodes=node)
        except ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise RuntimeError(
                    f"presence needs Redis 7.0 or later, or Valkey 7.2 or later (FUNCTION LOAD): {exc}"
                ) from exc
            raise

    def function(self, name: str) -> str:
        """The Redis function of script `name` (for a caller's own pipeline)."""
        return self._functions[name]

    async def reload(self) -> None:
        """Load the library again, on every primary: a caller's own pipeline
        of `function` calls found it missing (as `_fcall` does for one call)."""
        await self._load()

    async def _fcall(self, name: str, prefix: str, args: list[Any]) -> Any:
        fn = self._functions[name]
        wanted = 0
        if self.replication is not None and name.split(":")[0] not in READ_ONLY:
            known = self.replication.known(prefix)
            wanted = known if known is not None else await self.replication.wanted(prefix)
        # called first, loaded on a miss: a process that starts while another
        # already loaded this version (or while Redis is full, when FUNCTION
        # LOAD is refused) calls what is there
        for attempt in range(2):
            try:
                if wanted:
                    return await self._fcall_wait(fn, prefix, args, wanted)
                return await execute(self._redis, "FCALL", fn, 1, prefix, *args)
            except (RuntimeError, AttributeError) as exc:
                if not closed_transport(exc):
                    raise
                raise RedisConnectionError(f"connection to Redis lost: {exc}") from exc
            except ResponseError as exc:
                # "unknown command": a Redis before 7; _load says so in a sentence
                missing = ("function not found", "unknown command")
                if attempt or not any(m in str(exc).lower() for m in missing):
                    raise
            # A Redis without our library (a new one, its functions flushed, a
            # primary that took the slot over): the function did not run, so
            # running it once more after the load applies the change once.
            await self._load(prefix)
        raise AssertionError("unreachable")

    async def _fcall_wait(self, fn: str, prefix: str, args: list[Any], wanted: int) -> Any:
        """FCALL then WAIT on the same connection (one pipeline): WAIT counts
        the replicas that have what this connection wrote."""
        assert self.replication is not None
        wait = ("WAIT", wanted, self.replication.timeout_ms)
        # one write on a lean lane (on a cluster, to the slot's primary);
        # None: redis-py's pipeline below (no lane free, a redirection)
        replies = await execute_many(self._redis, [("FCALL", fn, 1, prefix, *args), wait])
        if replies is not None:
            return await self._waited(prefix, wanted, *replies)
        pipe = self._redis.pipeline(transaction=False)
        pipe.fcall(fn, 1, prefix, *args)
        # pinned to the slot's primary as the client knows it; a call moved
        # meanwhile (MOVED during a resharding) is then not waited for
        node = shard_of(self._redis, prefix)
        if node is None and is_cluster(self._redis):
            # the slot map is being read again (a primary just died): no
            # node to pin WAIT to; unavailable, like the node itself
            raise ClusterDownError(f"no primary known for {prefix} yet")
        if node is None:
            pipe.execute_command(*wait)
        else:
            pipe.execute_command(*wait, target_nodes=node)
        try:
            reply, acked = await pipe.execute(raise_on_error=False)
        except AttributeError as exc:
            # redis-py's cluster pipeline, routing its commands while the
            # slot map it just re-read has no primary for the slot (one died
            # a moment ago), trips on the missing node before sending
            # anything: nothing ran, so it is the cluster being down
            if not is_cluster(self._redis):
                raise
            raise ClusterDownError(f"no primary known for {prefix} yet") from exc
        return await self._waited(prefix, wanted, reply, acked)

    async def _waited(self, prefix: str, wanted: int, reply: Any, acked: Any) -> Any:
        """The script's reply, once WAIT said enough replicas have it."""
        assert self.replication is not None
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < wanted:
            await self.replication.short(prefix, wanted, int(acked))
        return reply

    async def raw(self, name: str, prefix: str, now_ms: int, *args: Any) -> Any:
        if name in REMEMBERED:
            args = (*args, *ledger(name))
        return await self._fcall(name, prefix, [now_ms, *args])

    def route_inline(self, budget: int, scan: int, on_more: Callable[[list[str]], None]) -> None:
        """Route in the batched calls themselves from now on: an intake, a
        completion or a decline routes the queues it touched (at most
        `budget` items, `scan` candidates each, as route.lua) after the
        batch, in the same script call, and those calls no longer name the
        queues to wake. `on_more` gets the queues that may have more (the
        dispatcher's wake). A budget of 0 turns it off."""
        self._inline = (budget, scan) if budget > 0 else (0, 0)
        self._on_more = on_more if budget > 0 else None

    @property
    def routes_inline(self) -> bool:
        """Whether new items are routed by their intake call (no wake-up needed)."""
        return self._on_more is not None

    async def many(
        self,
        name: str,
        prefix: str,
        now_ms: int,
        calls: list[tuple[Any, ...]],
        ledgers: list[tuple[str, int]] | None = None,
    ) -> list[Any]:
        """Run the batched variant of `name`: one raw reply per call, in order
        (`ledgers`: each call's retry key, taken by its caller; made here
        when None)."""
        batch: tuple[str, int] = _NO_LEDGER
        if name in REMEMBERED:
            keys = ledgers if ledgers is not None else [ledger(name) for _ in calls]
            # the calls keyed here are kept by the batch, under the first one's key
            made = [kept for kept in keys if kept[0].startswith("~")]
            if made:
                batch = made[0]
            calls = [
                (*call, *(_NO_LEDGER if kept[0].startswith("~") else kept))
                for call, kept in zip(calls, keys, strict=True)
            ]
        arity = len(calls[0])
        flat = [a for call in calls for a in call]
        budget, scan = self._inline
        replies, more = await self._fcall(
            f"{name}:many", prefix, [now_ms, arity, budget, scan, *batch, *flat]
        )
        if more and self._on_more is not None:
            self._on_more([_text(q) for q in more])
        return replies  # type: ignore[no-any-return]

    @staticmethod
    def outcome(name: str, raw: Any) -> list[Any] | ScriptError:
        """A raw reply checked: its values after "ok", or the script's refusal."""
        reply = _text(raw)
        if not reply or reply[0] != "ok":
            code = reply[0] if reply else "internal"
            field = reply[1] if len(reply) > 1 else None
            message = reply[2] if len(reply) > 2 else f"{name} failed"
            if code == "internal" and any(m in message for m in _MOVING):
                # a command of a batched call that the cluster refused (the
                # center's slot migrating, its primary changing): the store
                # was unavailable to it, not the script wrong; try again
                return ScriptError(
                    "unavailable", None, f"the store is moving this center; try again ({message})"
                )
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
    with every call that arrived meanwhile in one FCALL: under load the
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
        self._pending: list[tuple[tuple[Any, ...], tuple[str, int], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self.calls = 0  # script calls sent (tests check the batching)

    async def __call__(self, *args: Any) -> list[Any]:
        """The call's "ok" reply without its first element; raises ScriptError."""
        # the loop of the batch in flight when there is one: on Python 3.11
        # each asyncio.get_running_loop() is a getpid system call
        task = self._task
        loop = task.get_loop() if task is not None else asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # the retry key is the caller's (its context), not the flushing task's
        self._pending.append((args, ledger(self._name) if self._name in REMEMBERED else _NO_LEDGER, future))
        if task is None:
            self._task = loop.create_task(self._flush(), name=f"batch:{self._name}")
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
                        self._name,
                        self._prefix,
                        self._now_ms(),
                        [args for args, _, _ in batch],
                        [kept for _, kept, _ in batch],
                    )
                except asyncio.CancelledError:
                    # shutting down: nobody is left to send the rest
                    for _, _, future in batch + self._pending:
                        future.cancel()
                    self._pending = []
                    raise
                except Exception as exc:
                    # this batch failed (Redis away): its callers get the error
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.calls += 1
                for (_, _, future), reply in zip(batch, replies, strict=True):
                    if not future.done():
                        future.set_result(reply)
        finally:
            self._task = None
