"""Creating, changing and removing a center (a workspace) of the deployment.

One path for the API (``PUT/DELETE /api/v1/centers/{center}``), the command
line (``presence center apply``) and the process that serves the center:
a document (the content of a center file, as JSON) is validated by the
center file's schema and checks, its configuration written over the
center's state, and the registry entry every process follows updated.
"""

from __future__ import annotations

from typing import Any

from presence.center import Center, parse_center
from presence.problems import Problem
from presence.schema import Invalid
from presence.store import Store
from presence.store import cases as case_store
from presence.store import centers as registry
from presence.store.client import Client

__all__ = ["apply", "parse_document", "redacted", "remove", "unredacted"]

# what GET answers instead of a webhook's inline secret; sent back in a
# document, it means "keep the stored secret" (`unredacted`)
REDACTED = "*" * 16


def parse_document(center_id: str, doc: Any) -> Center:
    """A center document as the center `center_id` (`Invalid` naming the
    field): its ``center.id`` may be left out, or must be `center_id`."""
    if not isinstance(doc, dict):
        raise Invalid.at((), "must be a JSON object")
    head = doc.get("center", {})
    if isinstance(head, dict) and "id" in head and head["id"] != center_id:
        raise Invalid.at(("center", "id"), f"must match the center in the path ({center_id!r})")
    if isinstance(head, dict):
        doc = {**doc, "center": {**head, "id": center_id}}
    return parse_center(doc)


async def apply(
    redis: Client, center: Center, *, timezone: str = "UTC", retention_days: float = 90.0
) -> tuple[int, bool, list[str]]:
    """Write a center's configuration and registry entry, over what is there:
    statuses, channels, rules, queues, agents, cases and webhooks as the
    document says; the center's live state, its items and history, and every
    agent or queue the document does not name stay. Returns (revision,
    created, queues to wake). `timezone` and `retention_days`: the
    deployment's (PRESENCE_TIMEZONE, PRESENCE_RETENTION_DAYS), as for the
    default center."""
    created = not await registry.exists(redis, center.id)
    store = Store(redis, center.id, timezone=timezone)
    woke = await store.sync_center(center, update=True, retention_days=retention_days)
    await case_store.sync_config(store, center)
    rev = await registry.put(redis, center.id, center.raw)
    return rev, created, woke


async def remove(redis: Client, center_id: str) -> int:
    """Remove a center and every key of it; refused (409) while it has open items."""
    store = Store(redis, center_id)
    waiting = await registry.open_items(store)
    if waiting:
        raise Problem(
            409,
            f"center {center_id!r} still has {waiting} open item(s); finish or cancel them first",
            code="conflict",
        )
    if not await registry.delete(redis, center_id):
        raise Problem(404, f"no center {center_id}", code="not_found")
    return await registry.purge(store)


def redacted(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as GET shows it: a webhook's inline secret hidden."""
    hooks = doc.get("webhooks")
    if not isinstance(hooks, list):
        return doc
    return {
        **doc,
        "webhooks": [
            {**h, "secret": REDACTED} if isinstance(h, dict) and "secret" in h else h for h in hooks
        ],
    }


async def unredacted(redis: Client, center_id: str, doc: Any) -> Any:
    """`doc` with each webhook secret given as GET shows it (`REDACTED`) put
    back as the stored secret of the center's webhook of the same name, so
    that a document read back and applied again keeps its secrets rather
    than signing with sixteen asterisks. `Invalid` naming the field when
    there is no such secret to keep (a new or renamed webhook, a new center,
    one whose stored webhook takes its secret from secret_env)."""
    hooks = doc.get("webhooks") if isinstance(doc, dict) else None
    if not isinstance(hooks, list) or not any(_hidden(h) for h in hooks):
        return doc
    stored = (await registry.document(redis, center_id)) or {}
    kept = {
        h.get("name"): h["secret"]
        for h in stored.get("webhooks") or []
        if isinstance(h, dict) and isinstance(h.get("secret"), str) and h["secret"] != REDACTED
    }
    out: list[Any] = []
    for i, hook in enumerate(hooks):
        if _hidden(hook):
            name = hook.get("name")
            if name not in kept:
                raise Invalid.at(
                    ("webhooks", i, "secret"),
                    f"is hidden ({REDACTED}, as GET shows it) but center {center_id!r} has no stored "
                    f"secret of a webhook {name!r} to keep: give the secret (or secret_env)",
                )
            hook = {**hook, "secret": kept[name]}
        out.append(hook)
    return {**doc, "webhooks": out}


def _hidden(hook: Any) -> bool:
    return isinstance(hook, dict) and hook.get("secret") == REDACTED
