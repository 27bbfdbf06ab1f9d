"""Work items over HTTP: intake (one, or a batch), reads and cancel.

Intake goes through ``presence/services/work.py``, the same path as the
demo; the item is written by one script or not at all.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.common import ANY, Body, ctx_of, invalid, json, require, takes
from presence.http.errors import script_problem
from presence.problems import Problem
from presence.schema import Invalid, decode, value
from presence.schema.common import IdempotencyKey
from presence.schema.work import CancelInput, WorkBatch, WorkBatchItem, WorkInput
from presence.services import cases
from presence.services.work import new_item, submit
from presence.store import NewItem, ScriptError

IDEMPOTENCY_KEY = "Idempotency-Key"


def idempotency_key(request: Request) -> str:
    """The request's Idempotency-Key header ("" for none; 400 when too long)."""
    try:
        return str(value(request.headers.get(IDEMPOTENCY_KEY, ""), IdempotencyKey, IDEMPOTENCY_KEY))
    except Invalid as exc:
        raise Problem(400, f"{exc.field} {exc.message}", field=exc.field, code="bad_header") from None


@takes(WorkInput)
async def create_work(request: Request, body: Body[WorkInput]) -> Response:
    await require(request, "service", "supervisor")
    req = await body()
    key = idempotency_key(request)
    ctx = ctx_of(request)
    wid, created = await submit(ctx.store, ctx.dispatcher, req, key)
    item = await ctx.store.get_work(wid, history=False)
    state = item["state"] if item else "queued"
    answer = {
        "id": wid,
        "state": state,
        # outside its queue's hours an item may wait in another queue
        "queue": item["queue"] if item else req.queue,
        "channel": req.channel,
        "created_at": item.get("created") if item else None,
    }
    return json(
        answer,
        status=201 if created else 200,
        headers={"Location": f"/api/v1/work/{wid}"} if created else None,
    )


def _item_problem(i: int, exc: Problem) -> dict[str, Any]:
    problem = exc.body()
    if exc.field is not None:
        problem["field"] = f"items[{i}].{exc.field}"
        problem["pointer"] = f"/items/{i}{exc.pointer or ''}"
    return {"status": exc.status, "problem": problem}


@takes(WorkBatch)
async def create_work_batch(request: Request, body: Body[WorkBatch]) -> Response:
    """``POST /api/v1/work:batch``: up to BATCH_MAX items in one request.

    Each element of ``items`` is a body of ``POST /api/v1/work``, plus an
    optional ``idempotency_key`` (the per-item Idempotency-Key). Every item is
    validated and stored on its own (one script each), so one bad item never
    holds back or half-stores another. The reply is 207 with one result per
    item, in order: ``{status: 201, id, state: "queued", queue, channel}``,
    ``{status: 200, id, queue, channel}`` for an idempotent repeat, or
    ``{status: 4xx, problem: {...}}``. If Redis fails midway the whole request
    is a 503; items stored before that stay stored, so a client retries with
    the same idempotency keys.
    """
    await require(request, "service", "supervisor")
    try:
        items = (await body.parse()).items
    except Invalid as exc:
        # the envelope: 413 past the most items a batch holds, 400 otherwise
        status = 413 if exc.status == 413 else 400
        code = "too_large" if status == 413 else "bad_body"
        detail = (
            f"items {exc.message}" if exc.path else "the body must be an object with a non-empty list `items`"
        )
        raise Problem(status, detail, field="items", code=code) from None
    ctx = ctx_of(request)
    results: list[dict[str, Any]] = [{} for _ in items]
    todo: list[tuple[int, WorkBatchItem]] = []
    rows: list[NewItem] = []
    now = ctx.store.now_ms()
    for i, raw in enumerate(items):
        try:
            req = decode(bytes(raw), WorkBatchItem)
        except Invalid as exc:
            results[i] = _item_problem(i, invalid(exc))
            continue
        todo.append((i, req))
        rows.append(new_item(req, now, req.idempotency_key))
    # one pipeline of work_create scripts: one round trip for the whole batch
    outcomes = await ctx.store.create_work_many(rows) if rows else []
    woke: set[str] = set()
    for (i, req), res in zip(todo, outcomes, strict=True):
        if isinstance(res, ScriptError):
            problem = script_problem(res)
            if problem.field == IDEMPOTENCY_KEY:
                problem.field = "idempotency_key"
            results[i] = _item_problem(i, problem)
            continue
        status = 201 if res.created else 200
        results[i] = {"status": status, "id": res.work_id, "queue": req.queue, "channel": req.channel}
        if res.created:
            woke.add(res.queue or req.queue)
            results[i]["state"] = "queued"  # at intake; the router may have moved it on since
    # a store that routes inline routed them in the intake calls already
    if not ctx.store.scripts.routes_inline:
        ctx.dispatcher.wake(woke)
    return json({"items": results}, status=207)


async def get_work(request: Request) -> Response:
    claims = await require(request, *ANY)
    wid = request.path_params["work_id"]
    item = await ctx_of(request).store.get_work(wid)
    if item is None:
        raise Problem(404, f"no work item {wid}", code="not_found")
    if claims.role == "agent" and item.get("agent_id") != claims.sub:
        raise Problem(403, "an agent may only read its own work items", code="forbidden")
    item["id"] = item["work_id"]
    # the case (fields, comments, messages) and, while queued, position and expected wait
    ctx = ctx_of(request)
    item.update(await cases.details(ctx.store, wid, item))
    if "case" in item:
        # the customer's signed status link, for staff to pass on ({case.status_url} in a template)
        item["status_path"] = ctx.status_path(wid)
    return json(item)


@takes(CancelInput, required=False)
async def cancel_work(request: Request, body: Body[CancelInput]) -> Response:
    await require(request, "service", "supervisor")
    wid = request.path_params["work_id"]
    reason = (await body()).reason
    ctx = ctx_of(request)
    woke = await ctx.store.cancel(wid, reason)
    ctx.dispatcher.wake(woke)
    item = await ctx.store.get_work(wid, history=False)
    return json({"id": wid, "state": item["state"] if item else "abandoned"})


ROUTES = [
    Route("/api/v1/work", create_work, methods=["POST"]),
    Route("/api/v1/work:batch", create_work_batch, methods=["POST"]),
    Route("/api/v1/work/{work_id}", get_work, methods=["GET"]),
    Route("/api/v1/work/{work_id}/cancel", cancel_work, methods=["POST"]),
]

# the intake, called by the app itself past Starlette's stack (`presence.http.hot`)
HOT = {"/api/v1/work": create_work, "/api/v1/work:batch": create_work_batch}
