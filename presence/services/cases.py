"""What a case means beyond its Redis calls: opening one from a contact,
the sender's customer record, the expected wait, and moves that wake the
router.

Both transports use these: the channel adapters and the case routes
(``presence/http/``) and the case messages of the sockets
(``presence/ws/cases.py``), so a rule holds wherever a change comes from.
The Redis side of each step is ``presence/store/cases.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from presence.auth import sign_link
from presence.center import Center
from presence.router.dispatcher import Dispatcher
from presence.store import Store, new_work_id
from presence.store import cases as case_store


async def customer_of(
    store: Store, *, phone: str = "", email: str = "", name: str = ""
) -> tuple[dict[str, Any], str, bool]:
    """(customer for the offer, customer id or "", is a lead) for a sender.

    A sender found in the directory (by phone, then email) brings its whole
    profile (the screen pop); anyone else is a lead with what they told us.
    """
    found = await case_store.find_customer(store, phone=phone, email=email)
    if found is not None:
        return found, str(found["id"]), False
    customer: dict[str, Any] = {k: v for k, v in (("name", name), ("phone", phone), ("email", email)) if v}
    customer["lead"] = True
    return customer, "", True


async def open_case(
    store: Store,
    dispatcher: Dispatcher,
    center: Center,
    *,
    channel: str,
    queue: str,
    subject: str,
    customer: dict[str, Any],
    customer_id: str,
    lead: bool,
    payload: dict[str, Any],
    case: dict[str, Any],
    message: dict[str, Any] | None,
    dedupe: str = "",
    lookup: list[str] | None = None,
    register: list[str] | None = None,
    on_match: str = "join",
    reopen_closed: bool = True,
    priority: int = 0,
    skills: dict[str, int] | None = None,
) -> case_store.Intake:
    """Store the contact as a new case or as part of its thread; wake the router.

    One script call (``store/lua/case_intake.lua``): a refused contact
    (an unknown queue) stores nothing and raises `ScriptError`.
    """
    now = store.now_ms()
    data = {
        "channel": channel,
        "queue": queue,
        "priority": priority,
        "skills": skills or {},
        "subject": subject,
        "customer": customer,
        "payload": payload,
        "created_at": now,
    }
    fields = {
        "subject": subject[:1000],
        "customer_id": customer_id,
        "customer_name": str(customer.get("name") or ""),
        "lead": lead,
        **case,
    }
    result = await case_store.intake(
        store,
        work_id=new_work_id(now / 1000),
        queue=queue,
        channel=channel,
        priority=priority,
        data=data,
        skills=skills or {},
        case=fields,
        message=message,
        dedupe=dedupe,
        lookup=lookup or [],
        register=register or [],
        on_match=on_match,
        reopen_closed=reopen_closed,
        ttl_days=center.cases.thread_days,
    )
    if result.woke:
        dispatcher.wake((result.woke,))
    return result


async def move(
    store: Store,
    dispatcher: Dispatcher,
    wid: str,
    mode: str,
    by: str,
    *,
    holder_only: str = "",
    to_agent: str = "",
    to_queue: str = "",
    note: str = "",
) -> str:
    """Transfer, reassign, push or pull an item; wakes the queues it left
    waiting and returns its new state."""
    state, woke = await case_store.transfer(
        store, wid, mode, by, holder_only=holder_only, to_agent=to_agent, to_queue=to_queue, note=note
    )
    dispatcher.wake(woke)
    return state


async def hang_up(store: Store, dispatcher: Dispatcher, call_id: str, reason: str) -> tuple[str, str]:
    """A call ended by the telephony system: (work id, "abandoned"|"ended"|"already")."""
    wid, outcome, woke = await case_store.call_end(store, call_id, reason)
    dispatcher.wake(woke)
    return wid, outcome


async def position(store: Store, wid: str) -> dict[str, Any]:
    """Position in the waiting set and expected wait of a queued item.

    expected wait = position x average handle time / agents, where the
    average is over the queue's last 50 handle times (accept to complete)
    and agents are the queue's members signed in with a routable status.
    Unknown (null) without handle times or without such agents.
    """
    f = await case_store.wait_figures(store, wid)
    if f is None:
        return {}
    aht = f.handle_ms / f.samples / 1000 if f.samples else None
    ewt = round(f.position * aht / f.staffed, 1) if aht is not None and f.staffed > 0 else None
    return {
        "position": f.position,
        "expected_wait_seconds": ewt,
        "estimate": {
            "average_handle_seconds": round(aht, 1) if aht is not None else None,
            "samples": f.samples,
            "agents": f.staffed,
        },
    }


async def details(store: Store, wid: str, item: dict[str, Any]) -> dict[str, Any]:
    """What GET /api/v1/work/{id} adds: the case and, while queued, the position."""
    extra: dict[str, Any] = {}
    case = await case_store.get_case(store, wid)
    if case is not None:
        extra["case"] = case
    if item.get("state") == "queued":
        extra.update(await position(store, wid))
    return extra


# -- the customer's own view (the signed status link) -------------------------------------

STATUS_LINK: Final = "status"
SURVEY_LINK: Final = "survey"


def status_token(secret: str, center: str, wid: str, *, named: bool) -> str:
    """The token of a case's status link (``/status/<token>``): signed, no
    expiry; `named`: the link names its center (every center but the default)."""
    return sign_link(secret, STATUS_LINK, center, wid, named=named)


def status_path(secret: str, center: str, wid: str, *, named: bool) -> str:
    return f"/status/{status_token(secret, center, wid, named=named)}"


def survey_path(secret: str, center: str, wid: str, ended_ms: int, days: int, *, named: bool) -> str:
    """The signed survey link of a case completed at `ended_ms`, valid `days` after it ("" when none)."""
    if days <= 0 or not ended_ms:
        return ""
    exp = int(ended_ms // 1000) + days * 86400
    return f"/survey/{sign_link(secret, SURVEY_LINK, center, wid, exp, named=named)}"


def webhook_links(
    secret: str, center: Center, center_id: str, *, named: bool
) -> Callable[[str, dict[str, Any]], dict[str, str]]:
    """What the webhooks add for the customer: the status link of a new case
    (``case.created``) and the survey link of a completed item (``work.completed``)."""

    def links(kind: str, data: dict[str, Any]) -> dict[str, str]:
        wid = str(data.get("work_id") or "")
        if not wid:
            return {}
        if kind == "case.created":
            return {"status_path": status_path(secret, center_id, wid, named=named)}
        if kind == "work.completed":
            days = center.cases.survey_days
            path = survey_path(secret, center_id, wid, int(data.get("ts") or 0), days, named=named)
            if path:
                return {"survey_path": path, "status_path": status_path(secret, center_id, wid, named=named)}
        return {}

    return links


async def customer_view(store: Store, wid: str) -> dict[str, Any] | None:
    """What the customer may see of their case: its status and subject, the
    messages they sent and the replies sent to them, never the notes or
    who handled it."""
    case = await case_store.get_case(store, wid)
    if not case or "status" not in case:
        return None
    item = await store.get_work(wid, history=False) or {}
    return {
        "state": item.get("state"),
        "ended_at": item.get("ended_at"),
        "csat": case.get("csat"),
        "work_id": wid,
        "status": case.get("status"),
        "subject": case.get("subject") or "",
        "created": case.get("created"),
        "updated": case.get("updated"),
        "closed": case.get("closed"),
        "messages": [
            {
                "text": str(m.get("text") or ""),
                "subject": str(m.get("subject") or ""),
                "via": m.get("via") or "",
            }
            for m in case.get("messages", [])
        ],
        "replies": [
            {"text": str(r.get("text") or ""), "ts": r.get("ts"), "message": r.get("message", 0)}
            for r in case.get("replies", [])
        ],
    }


async def customer_writes(
    store: Store, dispatcher: Dispatcher, center: Center, wid: str, text: str
) -> case_store.Intake:
    """A message the customer added on their status page: it joins the case
    and is routed like any message (to the holder, or the item routes again)."""
    case = await case_store.get_case(store, wid, timeline=False) or {}
    return await open_case(
        store,
        dispatcher,
        center,
        channel=str(case.get("channel") or "web"),
        queue=str(case.get("queue") or center.intake.form_queue),
        subject=str(case.get("subject") or text[:120]),
        customer={"name": str(case.get("customer_name") or "")},
        customer_id=str(case.get("customer_id") or ""),
        lead=bool(case.get("lead")),
        payload={"via": "status"},
        case={"source": "status"},
        message={"channel": "web", "via": "status", "from": "customer", "text": text},
        lookup=[f"case:{wid}"],
        reopen_closed=True,
    )
