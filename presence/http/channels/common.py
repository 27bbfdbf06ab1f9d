"""What every channel adapter shares: field checks, the customer lookup and
the intake answer.

An adapter validates its whole payload first (a `Problem` naming the field),
then opens the case with one script call (`presence.services.cases.open_case`,
``store/lua/case_intake.lua``): a malformed or refused payload stores nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from presence.center import NAME_RE, PRIORITY_MAX, PRIORITY_MIN, Center
from presence.http.common import ctx_of, json
from presence.problems import Problem
from presence.services import cases
from presence.store.cases import Intake

TEXT_MAX = 64 * 1024
REF_MAX = 500


def center_of(request: Request) -> Center:
    return ctx_of(request).center


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
    """(customer for the offer, customer id or "", is a lead) for a sender."""
    return await cases.customer_of(ctx_of(request).store, phone=phone, email=email, name=name)


def intake_response(result: Intake, **extra: Any) -> Response:
    body = {
        "id": result.work_id,
        "outcome": result.outcome,
        "agent_id": result.holder or None,
        **extra,
    }
    status = 201 if result.outcome == "created" else 200
    headers = {"Location": f"/api/v1/work/{result.work_id}"}
    return json(body, status=status, headers=headers)
