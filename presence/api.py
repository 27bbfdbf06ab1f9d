"""The HTTP API: health, the center's admin API, and work items.

Handlers are thin: authenticate, parse, call the store, answer JSON. Every
refusal is a problem+json (`presence.problems`); a Redis outage is a 503,
never a hang or a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence import cases
from presence.auth import AuthError, Claims, bearer, verify
from presence.center import Invalid, parse_agent, parse_queue
from presence.problems import SCRIPT_STATUS, Problem
from presence.store import ScriptError, new_work_id
from presence.work import WorkRequest, parse_work, submit
from presence.ws import Context

MAX_BODY = 256 * 1024


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def require(request: Request, *roles: str) -> Claims:
    try:
        claims = verify(ctx_of(request).secret, bearer(request.headers.get("authorization")))
    except AuthError as exc:
        raise Problem(
            401,
            str(exc),
            code="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="presence"'},
        ) from None
    if claims.role not in roles:
        raise Problem(
            403,
            f"this needs a {' or '.join(roles)} token; yours is {claims.role}",
            code="forbidden",
        )
    return claims


async def read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise Problem(415, "send the body as application/json", code="media_type")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, f"the body must be at most {MAX_BODY} bytes", code="too_large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", code="bad_json") from None


def script_problem(exc: ScriptError) -> Problem:
    return Problem(SCRIPT_STATUS.get(exc.code, 400), exc.message, field=exc.field, code=exc.code)


# -- health --------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return json({"status": "ok"})


async def readyz(request: Request) -> Response:
    ctx = ctx_of(request)
    try:
        await ctx.store.ping()
    except Exception as exc:  # any failure to reach Redis means not ready
        return Problem(503, f"Redis is not answering: {type(exc).__name__}", code="not_ready").response()
    if not ctx.hub.listening.is_set():
        return Problem(503, "the event listener is not subscribed yet", code="not_ready").response()
    return json({"status": "ready"})


# -- admin API -----------------------------------------------------------------

ADMIN = ("supervisor", "service")
ANY = ("agent", "supervisor", "service")


async def list_agents(request: Request) -> Response:
    require(request, *ADMIN)
    store = ctx_of(request).store
    profiles = await store.list_agents()
    views = {v["agent_id"]: v for v in await store.views([p["id"] for p in profiles])} if profiles else {}
    return json({"agents": [{**p, "live": views.get(p["id"])} for p in profiles]})


async def get_agent(request: Request) -> Response:
    claims = require(request, *ANY)
    aid = request.path_params["agent_id"]
    if claims.role == "agent" and claims.sub != aid:
        raise Problem(403, "an agent may only read its own profile", code="forbidden")
    store = ctx_of(request).store
    profile = await store.get_agent(aid)
    if profile is None:
        raise Problem(404, f"no agent {aid}", code="not_found")
    views = await store.views([aid])
    return json({**profile, "live": views[0] if views else None})


async def put_agent(request: Request) -> Response:
    require(request, *ADMIN)
    aid = request.path_params["agent_id"]
    try:
        agent = parse_agent(aid, await read_json(request))
    except Invalid as exc:
        raise Problem(422, exc.message, field=exc.field, code="invalid") from None
    ctx = ctx_of(request)
    try:
        outcome, woke = await ctx.store.put_agent(agent)
    except ScriptError as exc:
        raise script_problem(exc) from None
    ctx.dispatcher.wake(woke)
    profile = await ctx.store.get_agent(aid)
    return json(profile, status=201 if outcome == "created" else 200)


async def delete_agent(request: Request) -> Response:
    require(request, *ADMIN)
    try:
        await ctx_of(request).store.delete_agent(request.path_params["agent_id"])
    except ScriptError as exc:
        raise script_problem(exc) from None
    return Response(status_code=204)


async def list_queues(request: Request) -> Response:
    require(request, *ANY)
    return json({"queues": await ctx_of(request).store.list_queues()})


async def get_queue(request: Request) -> Response:
    require(request, *ANY)
    name = request.path_params["name"]
    queue = await ctx_of(request).store.get_queue(name)
    if queue is None:
        raise Problem(404, f"no queue {name}", code="not_found")
    return json(queue)


async def put_queue(request: Request) -> Response:
    require(request, *ADMIN)
    name = request.path_params["name"]
    try:
        queue = parse_queue(name, await read_json(request))
    except Invalid as exc:
        raise Problem(422, exc.message, field=exc.field, code="invalid") from None
    ctx = ctx_of(request)
    outcome = await ctx.store.put_queue(queue)
    ctx.dispatcher.wake((name,))
    return json(await ctx.store.get_queue(name), status=201 if outcome == "created" else 200)


async def delete_queue(request: Request) -> Response:
    require(request, *ADMIN)
    try:
        await ctx_of(request).store.delete_queue(request.path_params["name"])
    except ScriptError as exc:
        raise script_problem(exc) from None
    return Response(status_code=204)


async def list_statuses(request: Request) -> Response:
    require(request, *ANY)
    return json({"statuses": await ctx_of(request).store.statuses()})


async def list_channels(request: Request) -> Response:
    require(request, *ANY)
    return json({"channels": await ctx_of(request).store.channels()})


# -- work items ----------------------------------------------------------------


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
            results[i] = _item_problem(i, Problem(422, res.message, field=res.field, code=res.code))
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
    try:
        woke = await ctx.store.cancel(wid, reason)
    except ScriptError as exc:
        raise script_problem(exc) from None
    ctx.dispatcher.wake(woke)
    item = await ctx.store.get_work(wid, history=False)
    return json({"id": wid, "state": item["state"] if item else "abandoned"})


ROUTES = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/api/v1/agents", list_agents),
    Route("/api/v1/agents/{agent_id}", get_agent, methods=["GET"]),
    Route("/api/v1/agents/{agent_id}", put_agent, methods=["PUT"]),
    Route("/api/v1/agents/{agent_id}", delete_agent, methods=["DELETE"]),
    Route("/api/v1/queues", list_queues),
    Route("/api/v1/queues/{name}", get_queue, methods=["GET"]),
    Route("/api/v1/queues/{name}", put_queue, methods=["PUT"]),
    Route("/api/v1/queues/{name}", delete_queue, methods=["DELETE"]),
    Route("/api/v1/statuses", list_statuses),
    Route("/api/v1/channels", list_channels),
    Route("/api/v1/work", create_work, methods=["POST"]),
    Route("/api/v1/work:batch", create_work_batch, methods=["POST"]),
    Route("/api/v1/work/{work_id}", get_work, methods=["GET"]),
    Route("/api/v1/work/{work_id}/cancel", cancel_work, methods=["POST"]),
]
