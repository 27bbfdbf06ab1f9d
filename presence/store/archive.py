"""The Redis reads of the archive (presence/services/archive.py): which items
finished in a time range, and each one whole (item, history, case, comments,
customer messages, replies), before the retention (PRESENCE_RETENTION_DAYS) lets
them expire; and the retention given to items that finished without one
(`retain_all`, ``presence retain``).

Finished items are found by a SCAN of the center's item hashes, not by the
event stream, so an item older than the stream's days (PRESENCE_HISTORY_DAYS)
is found too; it costs one pass over the center's keys per run (the
scheduled archive runs once a day).
"""

from __future__ import annotations

from typing import Any

import msgpack

from presence.store import Store, item_history
from presence.store.keys import scan_match

FINAL = (b"completed", b"abandoned")
PAGE = 500


def _unpack(raw: Any) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False)
    except Exception:  # a record this version cannot read is kept as text
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


async def _item_ids(store: Store) -> list[bytes]:
    """The id of every item of the center (a SCAN of its `work:<id>` hashes,
    not their `:history` or `:declined`, nor `work:open`)."""
    prefix = store.keys.work("")
    open_key = store.keys.work_open.encode()
    ids: list[bytes] = []
    async for k in store.redis.scan_iter(match=scan_match(prefix), count=1000, _type="hash"):
        if k != open_key and b":" not in k[len(prefix) :]:
            ids.append(k[len(prefix) :])
    return ids


async def finished_between(store: Store, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
    """(ended at ms, work id) of every item that ended in [start, end), in order."""
    ids = await _item_ids(store)
    out: list[tuple[int, str]] = []
    for i in range(0, len(ids), PAGE):
        pipe = store.redis.pipeline(transaction=False)
        for wid in ids[i : i + PAGE]:
            pipe.hmget(store.keys.work(wid.decode()), "state", "ended_at")
        for wid, (state, ended) in zip(ids[i : i + PAGE], await pipe.execute(), strict=True):
            if state in FINAL and ended and start_ms <= int(float(ended)) < end_ms:
                out.append((int(float(ended)), wid.decode()))
    return sorted(set(out))


async def retain_all(store: Store) -> int:
    """Give every finished item without an expiry the one the retention would
    have given it (``work_retain.lua``); returns how many got one."""
    ids = await _item_ids(store)
    n = 0
    for i in range(0, len(ids), PAGE):
        reply = await store.scripts.call("work_retain", store.keys.prefix, store.now_ms(), *ids[i : i + PAGE])
        n += int(reply[0])
    return n


async def records(store: Store, work_ids: list[str]) -> list[dict[str, Any]]:
    """Each item whole: {"work": the item with its history, "case": its case
    fields or None, "comments": [...], "messages": [...], "replies": [...]
    (the agents' replies sent to the customer)}; an item gone since it was
    listed is left out."""
    out: list[dict[str, Any]] = []
    k = store.keys
    for i in range(0, len(work_ids), PAGE):
        page = work_ids[i : i + PAGE]
        pipe = store.redis.pipeline(transaction=False)
        for wid in page:
            pipe.hgetall(k.work(wid))
            pipe.lrange(k.work_history(wid), 0, -1)
            pipe.hgetall(k.case(wid))
            pipe.lrange(k.case_comments(wid), 0, -1)
            pipe.lrange(k.case_messages(wid), 0, -1)
            pipe.lrange(k.case_replies(wid), 0, -1)
        raw = await pipe.execute()
        for j in range(len(page)):
            h, hist, case, comments, messages, replies = raw[6 * j : 6 * j + 6]
            if not h:
                continue
            work = store.work_view(h, page[j])
            work["history"] = item_history(h, hist, page[j])
            out.append(
                {
                    "work": work,
                    "case": {kk.decode(): v.decode("utf-8", "replace") for kk, v in case.items()} or None,
                    "comments": [_unpack(x) for x in comments],
                    "messages": [_unpack(x) for x in messages],
                    "replies": [_unpack(x) for x in replies],
                }
            )
    return out
