"""The store's lean command packing (`client._pack`) writes the very bytes
redis-py's `pack_command` writes, and leaves to redis-py what it would
refuse or treat specially."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from redis.asyncio.connection import Connection

from presence.store.client import _pack, closed_transport


class _Level(enum.IntEnum):
    HIGH = 1


class _Name(str):
    pass


CASES: list[tuple[Any, ...]] = [
    ("FCALL", "work_create__many_0123456789ab", 1, "presence:{c}:", 1733000000000, 9, 20, 8, "", 0),
    ("FCALL", "f", 1, "k", b"\x81\xa1a\xc3", b"", "", -7, 0.25, 1e-05, 12345678901234567890),
    ("GET", "caf\u00e9 \U0001f600", "x" * 10_000, b"y" * 7_000),
    ("SET", "k", -0.0, 1e20, float("nan"), float("inf"), -(2**70)),
]


@pytest.mark.parametrize("args", CASES)
def test_the_bytes_are_redis_pys(args: tuple[Any, ...]) -> None:
    packed = _pack(args)
    assert packed is not None
    assert b"".join(packed) == b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "k", True),  # redis-py refuses a bool
        ("SET", "k", memoryview(b"v")),
        ("SET", "k", bytearray(b"v")),
        ("FUNCTION LOAD", "REPLACE", "src"),  # a two-word name, split by redis-py
        ("SET", "k", None),
        ("SET", "k", _Level.HIGH),  # redis-py packs an IntEnum by its repr
        ("SET", "k", _Name("v")),  # a str subclass: redis-py's to encode
    ],
)
def test_what_redis_py_treats_apart_is_left_to_it(args: tuple[Any, ...]) -> None:
    assert _pack(args) is None


def test_a_write_to_a_transport_uvloop_closed_is_a_lost_connection() -> None:
    closed = RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")
    assert closed_transport(closed)
    assert not closed_transport(RuntimeError("something else went wrong"))
    assert not closed_transport(OSError("closed"))


async def test_a_connection_redis_py_closed_under_the_call_is_a_lost_connection() -> None:
    """redis-py's cluster client, on a cluster that is down, disconnects every
    connection of every node, also those other tasks are using: their write
    then finds the writer gone, inside redis-py."""
    conn = Connection()  # never connected: its writer is None, as after that disconnect
    with pytest.raises(AttributeError) as raised:
        await conn._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
    assert closed_transport(raised.value)
    # the same words raised by our own code are a bug, not Redis
    with pytest.raises(AttributeError) as ours:
        None.writelines  # type: ignore[attr-defined]  # noqa: B018
    assert not closed_transport(ours.value)
