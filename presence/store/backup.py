"""Backups of one center: every key, as Redis itself serialises it.

`dump` reads every key of the center with its expiry and its ``DUMP``
payload in ONE script call (``center_dump.lua``), so the copy is consistent
(no item half moved between an agent and a queue) while servers keep
running, on the embedded Redis, an external one, or a cluster node alike.
`restore` writes them back (`dump`/`write` and `read`/`restore`: the
Redis calls and the files apart) with ``RESTORE … ABSTTL``: a key keeps the expiry
it had (a finished item still expires when it would have), and one whose
time has passed is not restored.

The backup is a folder: ``<center>.keys.gz``, a gzip of msgpack records
``[key, expires-at ms or -1, payload]``, and ``manifest.json`` (format,
center, time, Redis version, key count, SHA-256 of the keys file), written
last, so a folder with a manifest holds a whole backup. A ``DUMP`` payload
carries its RDB version: restore into the same Redis or Valkey version, or a
newer one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from presence.store import Store
from presence.store.keys import scan_match

FORMAT = 1
MANIFEST = "manifest.json"
BATCH = 500


class BackupError(Exception):
    """A backup cannot be written or restored; the message says why."""


@dataclass(frozen=True, slots=True)
class Summary:
    center: str
    keys: int
    path: Path


def keys_file(folder: Path, center: str) -> Path:
    return folder / f"{center}.keys.gz"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key of a center as read in one step: (key, expires-at ms or -1, payload)."""

    center: str
    taken_ms: int
    redis_version: str
    rows: list[tuple[bytes, int, bytes]]


async def dump(store: Store) -> Snapshot:
    """Read every key of the store's center, in one script call."""
    now = store.now_ms()
    reply = await store.scripts.raw("center_dump", store.keys.prefix, now, scan_match(store.keys.prefix))
    info = await store.redis.info("server")
    rows = [(bytes(reply[i]), int(reply[i + 1]), bytes(reply[i + 2])) for i in range(0, len(reply), 3)]
    version = str(info.get("valkey_version") or info.get("redis_version") or "")
    return Snapshot(store.keys.center, now, version, rows)


def write(snapshot: Snapshot, folder: Path) -> Summary:
    """Write a snapshot into `folder` (created if missing): the keys, then the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    target = keys_file(folder, snapshot.center)
    tmp = target.with_suffix(".tmp")
    with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        for row in snapshot.rows:
            out.write(msgpack.packb(list(row), use_bin_type=True))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, target)
    manifest = {
        "format": FORMAT,
        "center": snapshot.center,
        "created_ms": snapshot.taken_ms,
        "redis_version": snapshot.redis_version,
        "keys": len(snapshot.rows),
        "file": target.name,
        "sha256": digest,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Summary(snapshot.center, len(snapshot.rows), folder)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist: {folder} holds no whole backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, this presence reads {FORMAT}")
    return manifest


def read(folder: Path, center: str | None = None) -> tuple[dict[str, Any], list[tuple[bytes, int, bytes]]]:
    """The backup in `folder` (of `center`, when given): its manifest and its
    keys, checked against the manifest's digest and count."""
    manifest = read_manifest(folder)
    if center is not None and manifest["center"] != center:
        raise BackupError(f"the backup in {folder} is of center {manifest['center']!r}, not {center!r}")
    path = folder / str(manifest["file"])
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise BackupError(f"{path} does not match its manifest (SHA-256 differs): the backup is damaged")
    unpacker = msgpack.Unpacker(raw=True, max_buffer_size=0)
    unpacker.feed(gzip.decompress(blob))
    out = [(bytes(k), int(t), bytes(p)) for k, t, p in unpacker]
    if len(out) != manifest["keys"]:
        raise BackupError(f"{path} holds {len(out)} keys, its manifest says {manifest['keys']}")
    return manifest, out


async def center_keys(store: Store) -> list[bytes]:
    return [k async for k in store.redis.scan_iter(match=scan_match(store.keys.prefix), count=1000)]


async def restore(store: Store, rows: list[tuple[bytes, int, bytes]], *, replace: bool = False) -> int:
    """Write a backup's `rows` (`read`) into the store's center; returns the
    keys restored. A center that already has keys there is refused unless
    `replace`, which deletes them first (the backup then is the whole center)."""
    existing = await center_keys(store)
    if existing and not replace:
        raise BackupError(
            f"center {store.keys.center!r} already has {len(existing)} keys in this Redis: "
            "restore into an empty one, or pass --replace to delete them first"
        )
    for i in range(0, len(existing), BATCH):
        await store.redis.delete(*existing[i : i + BATCH])
    now = store.now_ms()
    restored = 0
    for i in range(0, len(rows), BATCH):
        pipe = store.redis.pipeline(transaction=False)
        for key, expires, payload in rows[i : i + BATCH]:
            if 0 <= expires <= now:
                continue  # its time passed since the backup
            pipe.restore(key, max(expires, 0), payload, replace=True, absttl=True)
            restored += 1
        await pipe.execute()
    return restored
