"""The Redis reads of the archive (presence/services/archive.py): which items
finished in a time range, and each one whole (item, history, case, comments,
customer messages), before the retention (PRESENCE_RETENTION_DAYS) lets
them expire.

Finished items are found by a SCAN of the center's item hashes, not by the
event stream, so an item older than the stream's days (PRESENCE_HISTORY_DAYS)
is found too; it costs one pass over the center's keys per run (the
scheduled archive runs once a day).
"""

from __future__ import annotations

import re
from typing import Any

import msgpack

from presence.store import Store

FINAL = (b"completed", b"abandoned")
PAGE = 500


def _unpack(raw: Any) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False)
    except Exception:  # a record this version cannot read is kept as text
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


async def finished_between(store: Store, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
    """(ended at ms, work id) of every item that ended in [start, end), in order."""
    prefix = store.keys.work("")
    # `work:<id>` only: not its `:history`, `:declined`, nor `work:open`
    pattern = re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"
    open_key = store.keys.work_open.encode()
    ids: list[bytes] = []
    async for k in store.redis.scan_iter(match=pattern, count=1000, _type="hash"):
        if k != open_key and b":" not in k[len(prefix) :]:
            ids.append(k)
    out: list[tuple[int, str]] = []
    for i in range(0, len(ids), PAGE):
        pipe = store.redis.pipeline(transaction=False)
        for k in ids[i : i + PAGE]:
            pipe.hmget(k, "state", "ended_at")
        for k, (state, ended) in zip(ids[i : i + PAGE], await pipe.execute(), strict=True):
            if state in FINAL and ended and start_ms <= int(float(ended)) < end_ms:
                out.append((int(float(ended)), k[len(prefix) :].decode()))
    return sorted(set(out))


async def records(store: Store, work_ids: list[str]) -> list[dict[str, Any]]:
    """Each item whole: {"work": the item with its history, "case": its case
    fields or None, "comments": [...], "messages": [...]}; an item gone since
    it was listed is left out."""
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
        raw = await pipe.execute()
        for j in range(len(page)):
            h, hist, case, comments, messages = raw[5 * j : 5 * j + 5]
            if not h:
                continue
            work = store.work_view(h)
            work["history"] = [_unpack(x) for x in hist]
            out.append(
                {
                    "work": work,
                    "case": {kk.decode(): v.decode("utf-8", "replace") for kk, v in case.items()} or None,
                    "comments": [_unpack(x) for x in comments],
                    "messages": [_unpack(x) for x in messages],
                }
            )
    return out
