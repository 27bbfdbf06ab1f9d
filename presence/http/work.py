"""Work items over HTTP: intake (one, or a batch), reads and cancel.

Intake goes through ``presence/services/work.py``, the same path as the
demo; the item is written by one script or not at all.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.common import ANY, ctx_of, json, read_json, require
from presence.http.errors import script_problem
from presence.problems import Problem
from presence.services import cases
from presence.services.work import WorkRequest, parse_work, submit
from presence.store import ScriptError, new_work_id


async def create_work(request: Request) -> Response:
    require(request, "service", "supervisor")
    req = parse_work(await read_json(request))
    ctx = ctx_of(request)
    wid, created = await submit(ctx.store, ctx.dispatcher, req, request.headers.get("idempotency-key", ""))
    item = await ctx.store.get_work(wid, history=False)
    state = item["state"] if item else "queued"
    body = {
        "id": wid,
        "state": state,
        "queue": req.queue,
        "channel": req.channel,
        "created_at": item.get("created") if item else None,
    }
    return json(
        body,
        status=201 if created else 200,
        headers={"Location": f"/api/v1/work/{wid}"} if created else None,
    )


MAX_BATCH = 500


def _item_problem(i: int, exc: Problem) -> dict[str, Any]:
    problem = exc.body()
    if exc.field is not None:
        problem["field"] = f"items[{i}].{exc.field}"
    return {"status": exc.status, "problem": problem}


async def create_work_batch(request: Request) -> Response:
    """``POST /api/v1/work:batch``: up to MAX_BATCH items in one request.

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
    require(request, "service", "supervisor")
    body = await read_json(request)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise Problem(400, "the body must be an object with a non-empty list `items`", field="items")
    if len(items) > MAX_BATCH:
        raise Problem(413, f"items must hold at most {MAX_BATCH} work items", field="items", code="too_large")
    ctx = ctx_of(request)
    results: list[dict[str, Any]] = [{} for _ in items]
    todo: list[tuple[int, WorkRequest]] = []
    rows: list[tuple[str, str, str, int, dict[str, Any], dict[str, int], str]] = []
    now = ctx.store.now_ms()
    for i, raw in enumerate(items):
        try:
            key = ""
            if isinstance(raw, dict) and "idempotency_key" in raw:
                raw = dict(raw)
                key = raw.pop("idempotency_key")
                if not isinstance(key, str) or len(key) > 200:
                    raise Problem(
                        422, "idempotency_key must be a string of at most 200 characters",
                        field="idempotency_key",
                    )  # fmt: skip
            req = parse_work(raw)
        except Problem as exc:
            results[i] = _item_problem(i, exc)
            continue
        todo.append((i, req))
        rows.append(
            (new_work_id(now / 1000), req.queue, req.channel, req.priority, req.data(now), req.skills, key)
        )
    # one pipeline of work_create scripts: one round trip for the whole batch
    outcomes = await ctx.store.create_work_many(rows) if rows else []
    woke: set[str] = set()
    for (i, req), res in zip(todo, outcomes, strict=True):
        if isinstance(res, ScriptError):
            results[i] = _item_problem(i, script_problem(res))
            continue
        wid, created = res
        status = 201 if created else 200
        results[i] = {"status": status, "id": wid, "queue": req.queue, "channel": req.channel}
        if created:
            woke.add(req.queue)
            results[i]["state"] = "queued"  # at intake; the router may have moved it on since
    ctx.dispatcher.wake(woke)
    return json({"items": results}, status=207)


async def get_work(request: Request) -> Response:
    claims = require(request, *ANY)
    wid = request.path_params["work_id"]
    item = await ctx_of(request).store.get_work(wid)
    if item is None:
        raise Problem(404, f"no work item {wid}", code="not_found")
    if claims.role == "agent" and item.get("agent_id") != claims.sub:
        raise Problem(403, "an agent may only read its own work items", code="forbidden")
    item["id"] = item["work_id"]
    # the case (fields, comments, messages) and, while queued, position and expected wait
    item.update(await cases.details(ctx_of(request).store, wid, item))
    return json(item)


async def cancel_work(request: Request) -> Response:
    require(request, "service", "supervisor")
    wid = request.path_params["work_id"]
    reason = "cancelled"
    if int(request.headers.get("content-length") or 0) > 0:
        body = await read_json(request)
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"][:200]
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
