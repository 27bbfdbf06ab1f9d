"""Reply templates: ``/api/v1/templates`` (list, filtered) and
``/api/v1/templates/{template_id}`` (read, create or replace, delete).

Supervisors and services write them; agents read them (the panel offers
them in the reply box and the notes). A list may be filtered by
``channel``, ``queue``, ``language`` and ``kind``: a template with no
channels (or queues, or language) is for every one, and a filter by
language also keeps the templates of the language's base (``pt`` for
``pt-BR``) and those of no language.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from presence.http import openapi
from presence.http.common import ADMIN, ANY, Body, ctx_of, invalid, json, path_param, require, takes
from presence.problems import Problem
from presence.schema import Invalid, value
from presence.schema.common import ChannelName, QueueName
from presence.schema.templates import Language, TemplateInput, TemplateKind, Templates, placeholders
from presence.schema.templates import Template as TemplateAnswer
from presence.store import templates as store_templates

# the list's filters, each checked by its schema type
FILTERS: dict[str, Any] = {
    "channel": ChannelName,
    "queue": QueueName,
    "language": Language,
    "kind": TemplateKind,
}


def _filters(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, tp in FILTERS.items():
        raw = request.query_params.get(name)
        if raw:
            try:
                out[name] = str(value(raw, tp, name))
            except Invalid as exc:
                raise invalid(exc) from None
    return out


def matches(t: dict[str, Any], f: dict[str, str]) -> bool:
    if "channel" in f and t["channels"] and f["channel"] not in t["channels"]:
        return False
    if "queue" in f and t["queues"] and f["queue"] not in t["queues"]:
        return False
    if "kind" in f and t["kind"] not in (f["kind"], "any") and f["kind"] != "any":
        return False
    if "language" in f and t["language"]:
        want = f["language"].lower()
        have = t["language"].lower()
        if have not in (want, want.split("-")[0]):
            return False
    return True


def _answer(t: dict[str, Any]) -> dict[str, Any]:
    return {**t, "placeholders": placeholders(t["text"])}


async def list_templates(request: Request) -> Response:
    await require(request, *ANY)
    f = _filters(request)
    found = [_answer(t) for t in await store_templates.all_of(ctx_of(request).store) if matches(t, f)]
    return json({"templates": found})


async def get_template(request: Request) -> Response:
    await require(request, *ANY)
    tid = path_param(request, "template_id")
    t = await store_templates.get(ctx_of(request).store, tid)
    if t is None:
        raise Problem(404, f"no template {tid}", code="not_found")
    return json(_answer(t))


@takes(TemplateInput)
async def put_template(request: Request, body: Body[TemplateInput]) -> Response:
    await require(request, *ADMIN)
    tid = path_param(request, "template_id")
    b = await body()
    store = ctx_of(request).store
    fields = {
        "name": b.name.strip(),
        "text": b.text,
        "kind": b.kind,
        "channels": list(dict.fromkeys(b.channels)),
        "queues": list(dict.fromkeys(b.queues)),
        "language": b.language,
    }
    created = await store_templates.put(store, tid, fields)
    saved = await store_templates.get(store, tid)
    assert saved is not None
    return json(_answer(saved), status=201 if created else 200)


async def delete_template(request: Request) -> Response:
    await require(request, *ADMIN)
    tid = path_param(request, "template_id")
    if not await store_templates.delete(ctx_of(request).store, tid):
        raise Problem(404, f"no template {tid}", code="not_found")
    return Response(status_code=204)


_FILTERS_DOC = (
    "Query (all optional): channel, queue, language (a template with none is for every one; "
    "a language also keeps its base language's, pt for pt-BR), kind=reply|note|any."
)
ROUTES = [
    openapi.route(
        "GET",
        "/api/v1/templates",
        list_templates,
        openapi.Op(
            "Reply templates, filtered", ANY, ok=(200, Templates), problems=(422,), description=_FILTERS_DOC
        ),
    ),
    openapi.route(
        "GET",
        "/api/v1/templates/{template_id}",
        get_template,
        openapi.Op("One reply template", ANY, ok=(200, TemplateAnswer), problems=(404, 422)),
    ),
    openapi.route(
        "PUT",
        "/api/v1/templates/{template_id}",
        put_template,
        openapi.Op(
            "Create or replace a reply template (an unknown placeholder is refused, naming text)",
            ADMIN,
            ok=(200, TemplateAnswer),
            also_ok={201: TemplateAnswer},
            problems=(400, 413, 415, 422),
        ),
    ),
    openapi.route(
        "DELETE",
        "/api/v1/templates/{template_id}",
        delete_template,
        openapi.Op("Delete a reply template", ADMIN, ok=(204, None), problems=(404, 422)),
    ),
]
