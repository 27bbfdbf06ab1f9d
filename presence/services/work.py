"""Work item intake: validation of a new item and its submission.

Shared by `POST /api/v1/work`, its batch form (``presence/http/work.py``)
and the demo, so one rule rejects a bad item wherever it comes from, and
nothing half-made is ever stored (the item is written by one script, or not
at all). The channel adapters open cases instead
(``presence/services/cases.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from presence.center import NAME_RE, PRIORITY_MAX, PRIORITY_MIN
from presence.problems import Problem
from presence.router.dispatcher import Dispatcher
from presence.store import Store, new_work_id

MAX_PAYLOAD = 64 * 1024
CUSTOMER_FIELDS = ("id", "name", "phone", "email")


@dataclass(frozen=True, slots=True)
class WorkRequest:
    channel: str
    queue: str
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    subject: str = ""
    customer: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def data(self, now_ms: int) -> dict[str, Any]:
        """What is stored with the item and carried, as is, by its offer."""
        return {
            "channel": self.channel,
            "queue": self.queue,
            "priority": self.priority,
            "skills": self.skills,
            "subject": self.subject,
            "customer": self.customer,
            "payload": self.payload,
            "created_at": now_ms,
        }


def _invalid(field: str, message: str) -> Problem:
    return Problem(422, f"{field} {message}", field=field, code="invalid")


def parse_work(body: Any) -> WorkRequest:
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object", code="bad_body")
    allowed = {"channel", "queue", "priority", "skills", "subject", "customer", "payload"}
    for k in body:
        if k not in allowed:
            raise _invalid(str(k), f"is not a known field (expected {', '.join(sorted(allowed))})")
    channel, queue = body.get("channel"), body.get("queue")
    for name, v in (("channel", channel), ("queue", queue)):
        if not isinstance(v, str) or not NAME_RE.match(v):
            raise _invalid(name, "is required: a name of letters, digits, _ . @ -")
    priority = body.get("priority", 0)
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not PRIORITY_MIN <= priority <= PRIORITY_MAX
    ):
        raise _invalid("priority", f"must be a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}")
    if "skills" not in body:
        raise _invalid("skills", "is required: an object of skill name to minimum level 1-10 ({} for none)")
    skills = body["skills"]
    if not isinstance(skills, dict):
        raise _invalid("skills", "must be an object of skill name to minimum level 1-10")
    for s, lvl in skills.items():
        if not NAME_RE.match(s):
            raise _invalid(f"skills.{s}", "is not a valid skill name")
        if isinstance(lvl, bool) or not isinstance(lvl, int) or not 1 <= lvl <= 10:
            raise _invalid(f"skills.{s}", "must be a level from 1 to 10")
    subject = body.get("subject", "")
    if not isinstance(subject, str) or len(subject) > 1000:
        raise _invalid("subject", "must be a string of at most 1000 characters")
    customer = body.get("customer", {})
    if not isinstance(customer, dict):
        raise _invalid("customer", "must be an object (id, name, phone, email and free fields)")
    for f in CUSTOMER_FIELDS:
        if f in customer and not isinstance(customer[f], str | int | None):
            raise _invalid(f"customer.{f}", "must be a string")
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        raise _invalid("payload", "must be an object")
    if len(orjson.dumps(payload)) + len(orjson.dumps(customer)) > MAX_PAYLOAD:
        raise _invalid("payload", f"with customer must be at most {MAX_PAYLOAD} bytes of JSON")
    assert isinstance(channel, str) and isinstance(queue, str)
    return WorkRequest(channel, queue, priority, dict(skills), subject, customer, payload)


async def submit(
    store: Store, dispatcher: Dispatcher, req: WorkRequest, idempotency_key: str = ""
) -> tuple[str, bool]:
    """Store the item and wake the router for its queue; (id, created).

    A refusal by the script (an unknown queue or channel) raises `ScriptError`.
    """
    if len(idempotency_key) > 200:
        raise Problem(400, "Idempotency-Key must be at most 200 characters", field="Idempotency-Key")
    now = store.now_ms()
    wid, created = await store.create_work(
        new_work_id(now / 1000),
        req.queue,
        req.channel,
        req.priority,
        req.data(now),
        req.skills,
        idempotency_key,
    )
    if created:
        dispatcher.wake((req.queue,))
    return wid, created
