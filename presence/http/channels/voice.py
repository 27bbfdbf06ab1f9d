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

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.channels.common import center_of, customer_of, intake_response
from presence.http.common import Body, ctx_of, json, path_param, require, takes
from presence.schema.channels import CallInput, HangupInput
from presence.services import cases


@takes(CallInput)
async def call_arrived(request: Request, body: Body[CallInput]) -> Response:
    await require(request, "service", "supervisor")
    call = await body()
    call_id, caller, dialled, digits = call.call_id, call.from_, call.to or "", call.digits or ""
    intake = center_of(request).intake
    queue = intake.ivr.get(digits) if digits else None
    queue = queue or intake.numbers.get(dialled) or intake.voice_queue
    customer, customer_id, lead = await customer_of(request, phone=caller, name=call.caller_name or "")
    subject = call.subject or f"Call from {caller}"
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
        priority=call.priority,
        skills=call.skills,
    )
    return intake_response(request, result, queue=queue, customer=customer)


@takes(HangupInput, required=False)
async def call_hangup(request: Request, body: Body[HangupInput]) -> Response:
    await require(request, "service", "supervisor")
    call_id = path_param(request, "call_id")
    reason = (await body()).reason or "hangup"
    ctx = ctx_of(request)
    wid, outcome = await cases.hang_up(ctx.store, ctx.dispatcher, call_id, reason)
    return json({"id": wid, "outcome": outcome})


ROUTES = [
    Route("/api/v1/channels/voice/calls", call_arrived, methods=["POST"]),
    Route("/api/v1/channels/voice/calls/{call_id}/hangup", call_hangup, methods=["POST"]),
]
