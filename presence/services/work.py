"""Work item intake: the submission of a new item.

Shared by `POST /api/v1/work`, its batch form (``presence/http/work.py``)
and the demo. The item's shape and rules are its schema
(``presence/schema/work.py``, `WorkInput`), decoded before it gets here;
nothing half-made is ever stored (the item is written by one script, or not
at all). The channel adapters open cases instead
(``presence/services/cases.py``).
"""

from __future__ import annotations

from typing import Any

from presence.router.dispatcher import Dispatcher
from presence.schema.work import WorkInput
from presence.store import NewItem, Store, new_work_id


def item_data(req: WorkInput, now_ms: int) -> dict[str, Any]:
    """What is stored with the item and carried, as is, by its offer."""
    return {
        "channel": req.channel,
        "queue": req.queue,
        "priority": req.priority,
        "skills": req.skills,
        "subject": req.subject,
        "customer": req.customer,
        "payload": req.payload,
        "created_at": now_ms,
    }


def new_item(req: WorkInput, now_ms: int, idempotency_key: str = "") -> NewItem:
    """The store's record of a new item. With an idempotency key it carries
    the body's digest (`WorkInput.digest`), so a reuse of the key with a
    different body is refused."""
    return NewItem(
        new_work_id(now_ms / 1000),
        req.queue,
        req.channel,
        req.priority,
        item_data(req, now_ms),
        req.skills,
        idempotency_key,
        req.digest() if idempotency_key else "",
    )


async def submit(
    store: Store, dispatcher: Dispatcher, req: WorkInput, idempotency_key: str = ""
) -> tuple[str, bool]:
    """Store the item and wake the router for its queue; (id, created).

    A refusal by the script (an unknown queue or channel, a reused
    idempotency key with another body) raises `ScriptError`.
    """
    it = new_item(req, store.now_ms(), idempotency_key)
    made = await store.intake_work(
        it.work_id,
        it.queue,
        it.channel,
        it.priority,
        it.data,
        it.skills,
        it.idempotency_key,
        digest=it.digest,
    )
    # a store that routes inline routed it in the intake call already; outside
    # its queue's hours an item may wait in another queue
    if made.created and not store.scripts.routes_inline:
        dispatcher.wake((made.queue or req.queue,))
    return made.work_id, made.created
