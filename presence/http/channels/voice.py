"""Phone / CTI intake: call arrival and hang-up events from a PBX or cloud
telephony system.

``POST /api/v1/channels/voice/calls`` takes a call arrival (call id, caller
number, dialled number, IVR digits). The IVR map (``[intake.voice] ivr``)
picks the queue by digits, else the dialled number (``numbers``), else the
default queue. The caller is looked up in the customer directory, so the
offer carries the customer's profile (the screen pop). A repeated arrival of
the same call id is answered with the existing item and changes nothing.

``POST /api/v1/channels/voice/calls/{call_id}/hangup``: a call still waiting
(queued or ringing an agent) ends as abandoned; a call in progress ends the
conversation (the agent gets ``call.state`` "ended" and the item moves to
wrap-up).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.channels.common import (
    center_of,
    customer_of,
    intake_response,
    invalid,
    known_fields,
    obj,
    priority_of,
    skills_of,
    text,
)
from presence.http.common import ctx_of, json, read_json, require
from presence.services import cases

CALL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$")
DIGITS_RE = re.compile(r"^[0-9*#]{0,32}$")
NUMBER_RE = re.compile(r"^\+?[0-9A-Za-z_.:@*#()\- ]{1,64}$")
FIELDS = {"call_id", "from", "to", "digits", "caller_name", "priority", "skills", "subject"}


def _call_id(value: str) -> str:
    if not CALL_ID_RE.match(value):
        raise invalid("call_id", "must be 1-128 letters, digits or _ . : @ + -")
    return value


async def call_arrived(request: Request) -> Response:
    require(request, "service", "supervisor")
    body = obj(await read_json(request))
    known_fields(body, FIELDS)
    call_id = _call_id(
        text(body, "call_id", required=True, max_len=128, what="the telephony system's call id")
    )
    caller = text(body, "from", required=True, max_len=64, what="the caller's number")
    dialled = text(body, "to", max_len=64, what="the dialled number")
    for name, value in (("from", caller), ("to", dialled)):
        if value and not NUMBER_RE.match(value):
            raise invalid(name, "must be a phone number or SIP user")
    digits = text(body, "digits", max_len=32, what="the IVR digits the caller pressed")
    if not DIGITS_RE.match(digits):
        raise invalid("digits", "must be the keys pressed: 0-9, * and #")
    priority, skills = priority_of(body), skills_of(body)
    intake = center_of(request).intake
    queue = intake.ivr.get(digits) if digits else None
    queue = queue or intake.numbers.get(dialled) or intake.voice_queue
    customer, customer_id, lead = await customer_of(
        request, phone=caller, name=text(body, "caller_name", max_len=200)
    )
    subject = text(body, "subject", max_len=1000) or f"Call from {caller}"
    ctx = ctx_of(request)
    result = await cases.open_case(
        ctx.store,
        ctx.dispatcher,
        ctx.center,
        channel="voice",
        queue=queue,
        subject=subject,
        customer=customer,
        customer_id=customer_id,
        lead=lead,
        payload={"call_id": call_id, "from": caller, "to": dialled, "digits": digits},
        case={"source": f"voice:{dialled}" if dialled else "voice", "category": digits, "call_id": call_id},
        message=None,
        dedupe=f"call:{call_id}",
        register=[f"call:{call_id}"],
        on_match="duplicate",
        priority=priority,
        skills=skills,
    )
    return intake_response(result, queue=queue, customer=customer)


async def call_hangup(request: Request) -> Response:
    require(request, "service", "supervisor")
    call_id = _call_id(request.path_params["call_id"])
    reason = "hangup"
    if int(request.headers.get("content-length") or 0) > 0:
        body = obj(await read_json(request))
        known_fields(body, {"reason"})
        reason = text(body, "reason", max_len=200) or reason
    ctx = ctx_of(request)
    wid, outcome = await cases.hang_up(ctx.store, ctx.dispatcher, call_id, reason)
    return json({"id": wid, "outcome": outcome})


ROUTES = [
    Route("/api/v1/channels/voice/calls", call_arrived, methods=["POST"]),
    Route("/api/v1/channels/voice/calls/{call_id}/hangup", call_hangup, methods=["POST"]),
]
