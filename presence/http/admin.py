"""The center's admin API: agents, queues, statuses and channels.

A change made here is written by one script (``agent_put``, ``queue_put``,
...) and is seen at once by every process: the router routes by it, the
sockets get the events it publishes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.center import agent_of, queue_of
from presence.http.common import ADMIN, ANY, Body, ctx_of, invalid, json, path_param, require, takes
from presence.problems import Problem
from presence.schema import Invalid
from presence.schema.admin import WAITING_MAX, AgentInput, QueueInput


async def list_agents(request: Request) -> Response:
    await require(request, *ADMIN)
    store = ctx_of(request).store
    profiles = await store.list_agents()
    views = {v["agent_id"]: v for v in await store.views([p["id"] for p in profiles])} if profiles else {}
    return json({"agents": [{**p, "live": views.get(p["id"])} for p in profiles]})


async def get_agent(request: Request) -> Response:
    claims = await require(request, *ANY)
    aid = request.path_params["agent_id"]
    if claims.role == "agent" and claims.sub != aid:
        raise Problem(403, "an agent may only read its own profile", code="forbidden")
    store = ctx_of(request).store
    profile = await store.get_agent(aid)
    if profile is None:
        raise Problem(404, f"no agent {aid}", code="not_found")
    views = await store.views([aid])
    return json({**profile, "live": views[0] if views else None})


@takes(AgentInput)
async def put_agent(request: Request, body: Body[AgentInput]) -> Response:
    await require(request, *ADMIN)
    aid = path_param(request, "agent_id")
    try:
        agent = agent_of(aid, await body.parse())
    except Invalid as exc:
        raise invalid(exc) from None
    ctx = ctx_of(request)
    outcome, woke = await ctx.store.put_agent(agent)
    ctx.dispatcher.wake(woke)
    profile = await ctx.store.get_agent(aid)
    return json(profile, status=201 if outcome == "created" else 200)


async def delete_agent(request: Request) -> Response:
    await require(request, *ADMIN)
    await ctx_of(request).store.delete_agent(request.path_params["agent_id"])
    return Response(status_code=204)


async def list_queues(request: Request) -> Response:
    await require(request, *ANY)
    return json({"queues": await ctx_of(request).store.list_queues()})


async def get_queue(request: Request) -> Response:
    await require(request, *ANY)
    name = request.path_params["name"]
    queue = await ctx_of(request).store.get_queue(name)
    if queue is None:
        raise Problem(404, f"no queue {name}", code="not_found")
    return json(queue)


async def queue_waiting(request: Request) -> Response:
    await require(request, *ADMIN)
    name = request.path_params["name"]
    listing = await ctx_of(request).store.queue_waiting(name, WAITING_MAX)
    if listing is None:
        raise Problem(404, f"no queue {name}", code="not_found")
    return json({"queue": name, **listing})


@takes(QueueInput)
async def put_queue(request: Request, body: Body[QueueInput]) -> Response:
    await require(request, *ADMIN)
    name = path_param(request, "name")
    try:
        queue = queue_of(name, await body.parse())
    except Invalid as exc:
        raise invalid(exc) from None
    ctx = ctx_of(request)
    if queue.after_hours_queue and await ctx.store.get_queue(queue.after_hours_queue) is None:
        raise Problem(
            422,
            f"after_hours_queue names unknown queue {queue.after_hours_queue!r}",
            field="after_hours_queue",
            code="invalid",
            pointer="/after_hours_queue",
        )
    outcome = await ctx.store.put_queue(queue)
    ctx.dispatcher.wake((name,))
    return json(await ctx.store.get_queue(name), status=201 if outcome == "created" else 200)


async def delete_queue(request: Request) -> Response:
    await require(request, *ADMIN)
    await ctx_of(request).store.delete_queue(request.path_params["name"])
    return Response(status_code=204)


async def list_statuses(request: Request) -> Response:
    await require(request, *ANY)
    return json({"statuses": await ctx_of(request).store.statuses()})


async def list_channels(request: Request) -> Response:
    await require(request, *ANY)
    return json({"channels": await ctx_of(request).store.channels()})


ROUTES = [
    Route("/api/v1/agents", list_agents),
    Route("/api/v1/agents/{agent_id}", get_agent, methods=["GET"]),
    Route("/api/v1/agents/{agent_id}", put_agent, methods=["PUT"]),
    Route("/api/v1/agents/{agent_id}", delete_agent, methods=["DELETE"]),
    Route("/api/v1/queues", list_queues),
    Route("/api/v1/queues/{name}", get_queue, methods=["GET"]),
    Route("/api/v1/queues/{name}", put_queue, methods=["PUT"]),
    Route("/api/v1/queues/{name}", delete_queue, methods=["DELETE"]),
    Route("/api/v1/queues/{name}/waiting", queue_waiting, methods=["GET"]),
    Route("/api/v1/statuses", list_statuses),
    Route("/api/v1/channels", list_channels),
]
