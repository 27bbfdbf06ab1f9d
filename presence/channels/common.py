"""What every channel adapter shares: field checks, customer lookup, and
the one call that turns an inbound contact into a case (or joins its thread).

An adapter validates its whole payload first (a `Problem` naming the field),
then makes one script call (``store/lua/case_intake.lua``): a malformed or
refused payload stores nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from presence import cases
from presence.api import ctx_of, json
from presence.center import NAME_RE, PRIORITY_MAX, PRIORITY_MIN, Center
from presence.problems import Problem
from presence.store import ScriptError, new_work_id

TEXT_MAX = 64 * 1024
REF_MAX = 500


def center_of(request: Request) -> Center:
    center: Center = request.app.state.center
    return center


def invalid(field: str, message: str) -> Problem:
    return Problem(422, f"{field} {message}", field=field, code="invalid")


def text(
    body: dict[str, Any], name: str, *, required: bool = False, max_len: int = 1000, what: str = "a string"
) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise invalid(name, f"is required ({what})")
        return ""
    if not isinstance(value, str):
        raise invalid(name, f"must be {what}")
    if len(value) > max_len:
        raise invalid(name, f"must be at most {max_len} characters")
    return value


def obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object", code="bad_body")
    return body


def known_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for k in body:
        if k not in allowed:
            raise invalid(str(k), f"is not a known field (expected {', '.join(sorted(allowed))})")


def priority_of(body: dict[str, Any]) -> int:
    p = body.get("priority", 0)
    if isinstance(p, bool) or not isinstance(p, int) or not PRIORITY_MIN <= p <= PRIORITY_MAX:
        raise invalid("priority", f"must be a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}")
    return p


def skills_of(body: dict[str, Any]) -> dict[str, int]:
    skills = body.get("skills", {})
    if not isinstance(skills, dict):
        raise invalid("skills", "must be an object of skill name to minimum level 1-10")
    for s, lvl in skills.items():
        if not NAME_RE.match(s):
            raise invalid(f"skills.{s}", "is not a valid skill name")
        if isinstance(lvl, bool) or not isinstance(lvl, int) or not 1 <= lvl <= 10:
            raise invalid(f"skills.{s}", "must be a level from 1 to 10")
    return dict(skills)


async def customer_of(
    request: Request, *, phone: str = "", email: str = "", name: str = ""
) -> tuple[dict[str, Any], str, bool]:
    """(customer for the offer, customer id or "", is a lead) for a sender.

    A sender found in the directory (by phone, then email) brings its whole
    profile (the screen pop); anyone else is a lead with what they told us.
    """
    found = await cases.find_customer(ctx_of(request).store, phone=phone, email=email)
    if found is not None:
        return found, str(found["id"]), False
    customer: dict[str, Any] = {k: v for k, v in (("name", name), ("phone", phone), ("email", email)) if v}
    customer["lead"] = True
    return customer, "", True


async def open_case(
    request: Request,
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
) -> cases.Intake:
    """Store the contact as a new case or as part of its thread; wake the router."""
    ctx = ctx_of(request)
    center = center_of(request)
    now = ctx.store.now_ms()
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
    try:
        result = await cases.intake(
            ctx.store,
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
    except ScriptError as exc:
        raise Problem(422, exc.message, field=exc.field, code=exc.code) from None
    if result.woke:
        ctx.dispatcher.wake((result.woke,))
    return result


def intake_response(result: cases.Intake, **extra: Any) -> Response:
    body = {
        "id": result.work_id,
        "outcome": result.outcome,
        "agent_id": result.holder or None,
        **extra,
    }
    status = 201 if result.outcome == "created" else 200
    headers = {"Location": f"/api/v1/work/{result.work_id}"}
    return json(body, status=status, headers=headers)
