"""Load the Lua scripts of `store/lua/` and call them.

Each ``<area>_<verb>.lua`` file is one atomic state change. `_lib.lua` is
prepended to every script, so shared helpers (emit, reindex, requeue ...)
exist once in the source and each call stays a single EVALSHA. redis-py's
`Script` object retries with EVAL after a NOSCRIPT (a restarted Redis).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
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

    async def raw(self, name: str, prefix: str, now_ms: int, *args: Any) -> Any:
        return await self._scripts[name](keys=[prefix], args=[now_ms, *args])

    async def queue_on(self, pipe: Pipeline, name: str, prefix: str, now_ms: int, *args: Any) -> None:
        """Queue one script call on a pipeline; its reply comes from ``pipe.execute()``."""
        await self._scripts[name](keys=[prefix], args=[now_ms, *args], client=pipe)

    @staticmethod
    def outcome(name: str, raw: Any) -> list[Any] | ScriptError:
        """The checked reply of a queued call (as `call` returns it), or its refusal."""
        if isinstance(raw, Exception):
            raise raw
        reply = _text(raw)
        if not reply or reply[0] != "ok":
            code = reply[0] if reply else "internal"
            field = reply[1] if len(reply) > 1 else None
            message = reply[2] if len(reply) > 2 else f"{name} failed"
            return ScriptError(code, field, message)
        return list(reply[1:])

    async def call(self, name: str, prefix: str, now_ms: int, *args: Any) -> list[Any]:
        """Run a script whose reply starts with "ok" or an error code."""
        reply = _text(await self.raw(name, prefix, now_ms, *args))
        if not reply or reply[0] != "ok":
            code = reply[0] if reply else "internal"
            field = reply[1] if len(reply) > 1 else None
            message = reply[2] if len(reply) > 2 else f"{name} failed"
            raise ScriptError(code, field, message)
        return list(reply[1:])
