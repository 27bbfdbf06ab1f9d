"""Whether an error is a lost Redis connection that redis-py did not raise as one.

Below the store so that a background loop (`presence.tasks`) can tell one
from a bug too; the store re-exports it (`presence.store.client`).
"""

from __future__ import annotations

import os


def closed_transport(exc: BaseException) -> bool:
    """Whether `exc` is redis-py writing to a connection uvloop has already
    closed (its node was just killed): a RuntimeError, not a ConnectionError,
    but a lost connection all the same. Or using one its cluster client
    closed under the call: on a cluster that is down (a primary killed) it
    disconnects every connection of every node (`RedisCluster.aclose`),
    those other tasks are using too, whose reader or writer is then None
    (an AttributeError raised inside redis-py)."""
    if isinstance(exc, RuntimeError):
        return "closed" in str(exc)
    if isinstance(exc, AttributeError) and "'NoneType' object has no attribute" in str(exc):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and f"{os.sep}redis{os.sep}" in tb.tb_frame.f_code.co_filename
    return False
