"""The deployment's centers (workspaces): ``/api/v1/centers``, platform role only.

A center is created or changed by ``PUT /api/v1/centers/{center}`` with the
content of a center file as JSON (validated by the center file's schema,
`presence.schema.center.CenterFile`), listed and read by GET, and removed by
DELETE once it has no open item. No restart: the process that took the
call follows at once, every other one within a second
(``presence/workspaces.py``). A center's own supervisors and services keep
managing its agents and queues through the admin API, as before.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from presence.http.common import PLATFORM_ONLY, Body, centers_of, invalid, json, path_param, require, takes
from presence.http.openapi import Op, route
from presence.problems import Problem
from presence.schema import Invalid
from presence.schema.admin import CenterList, CenterSummary
from presence.schema.center import CenterFile
from presence.services import centers as service
from presence.store import centers as registry


async def list_centers(request: Request) -> Response:
    await require(request, *PLATFORM_ONLY)
    centers = centers_of(request)
    redis = centers.default.store.redis
    out = []
    docs = await registry.documents(redis)
    for cid, rev in sorted((await registry.revisions(redis)).items()):
        doc = docs.get(cid) or {}
        head = doc.get("center")
        name = head.get("name", cid) if isinstance(head, dict) else cid
        out.append({"id": cid, "name": name, "revision": rev, "default": cid == centers.default.center.id})
    return json({"centers": out})


async def get_center(request: Request) -> Response:
    await require(request, *PLATFORM_ONLY)
    cid = path_param(request, "center")
    doc = await registry.document(centers_of(request).default.store.redis, cid)
    if doc is None:
        raise Problem(404, f"no center {cid}", code="not_found")
    return json(service.redacted(doc))


@takes(CenterFile)
async def put_center(request: Request, body: Body[CenterFile]) -> Response:
    await require(request, *PLATFORM_ONLY)
    cid = path_param(request, "center")
    await body()  # the schema's refusals, naming the field
    centers = centers_of(request)
    redis = centers.default.store.redis
    try:
        doc = await service.unredacted(redis, cid, orjson.loads(await request.body()))
        center = service.parse_document(cid, doc)
    except Invalid as exc:
        raise invalid(exc) from None
    if cid == centers.default.center.id:
        raise Problem(
            409,
            f"center {cid!r} is this deployment's default center: change its center file and restart",
            code="conflict",
        )
    settings = request.app.state.settings
    rev, created, _ = await service.apply(
        redis,
        center,
        timezone=settings.timezone,
        retention_days=settings.retention_days,
    )
    await centers.changed(cid)
    answer = {"id": cid, "name": center.name, "revision": rev, "default": False}
    return json(answer, status=201 if created else 200)


async def delete_center(request: Request) -> Response:
    await require(request, *PLATFORM_ONLY)
    cid = path_param(request, "center")
    centers = centers_of(request)
    if cid == centers.default.center.id:
        raise Problem(409, f"center {cid!r} is this deployment's default center", code="conflict")
    await service.remove(centers.default.store.redis, cid)
    await centers.changed(cid)
    return Response(status_code=204)


ROUTES = [
    route(
        "GET",
        "/api/v1/centers",
        list_centers,
        Op("List the deployment's centers", PLATFORM_ONLY, ok=(200, CenterList)),
    ),
    route(
        "GET",
        "/api/v1/centers/{center}",
        get_center,
        Op(
            "A center's document (webhook secrets hidden)",
            PLATFORM_ONLY,
            ok=(200, CenterFile),
            problems=(404, 422),
        ),
    ),
    route(
        "PUT",
        "/api/v1/centers/{center}",
        put_center,
        Op(
            "Create or change a center from the content of a center file (nothing it had is lost)",
            PLATFORM_ONLY,
            ok=(200, CenterSummary),
            also_ok={201: CenterSummary},
            problems=(400, 409, 413, 415, 422),
            description=(
                "A webhook secret sent as GET shows it (sixteen asterisks) keeps the stored secret of the "
                "webhook of that name; with no such secret to keep it is a 422 naming the field."
            ),
        ),
    ),
    route(
        "DELETE",
        "/api/v1/centers/{center}",
        delete_center,
        Op(
            "Remove a center and all its data (refused while it has open items)",
            PLATFORM_ONLY,
            ok=(204, None),
            problems=(404, 409, 422),
        ),
    ),
]
