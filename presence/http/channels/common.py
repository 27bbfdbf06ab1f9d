"""What every channel adapter shares: the customer lookup and the intake
answer.

An adapter's payload is decoded by its schema first (``presence/schema/channels.py``:
a problem naming the field), then the case is opened with one script call
(`presence.services.cases.open_case`, ``store/lua/case_intake.lua``): a
malformed or refused payload stores nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from presence.center import Center
from presence.http.common import ctx_of, json
from presence.services import cases
from presence.store.cases import Intake


def center_of(request: Request) -> Center:
    return ctx_of(request).center


async def customer_of(
    request: Request, *, phone: str = "", email: str = "", name: str = ""
) -> tuple[dict[str, Any], str, bool]:
    """(customer for the offer, customer id or "", is a lead) for a sender."""
    return await cases.customer_of(ctx_of(request).store, phone=phone, email=email, name=name)


def status_url(request: Request, work_id: str) -> str:
    """The case's signed self-service link (``/status/<token>``), absolute."""
    return str(request.base_url).rstrip("/") + ctx_of(request).status_path(work_id)


def intake_response(request: Request, result: Intake, **extra: Any) -> Response:
    body = {
        "id": result.work_id,
        "outcome": result.outcome,
        "agent_id": result.holder or None,
        **extra,
        "status_url": status_url(request, result.work_id),
    }
    status = 201 if result.outcome == "created" else 200
    headers = {"Location": f"/api/v1/work/{result.work_id}"}
    return json(body, status=status, headers=headers)
