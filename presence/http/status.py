"""The customer's self-service status link: ``/status/{token}``.

Every case gets a signed, unguessable link (`presence.services.cases.status_path`,
signed by `presence.auth.sign_link`; no account, nothing stored for it). It
is in the web form's thank-you page and in every intake answer (so the email
gateway's auto-reply can carry it). The page shows the case's status, the
customer's messages and the replies sent to them (never internal notes or
who handled it), in English or Japanese, and takes a new message, which
joins the case and is routed like any other (``store/lua/case_intake.lua``).
The same as JSON: ``GET /status/{token}`` with ``Accept: application/json``,
and ``POST /status/{token}/messages``. (Not under ``/api/``: every route
there takes a bearer token; here the signed link is the key.)
A forged or altered link is a 404 that tells nothing.

A link of a center other than the default one names it (`customer_link`):
with no token on these routes, the link is what says whose case it is, and
the request then acts on that center only, as a token's center selects it
on the others.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from presence.auth import AuthError, check_link, link_center
from presence.context import Context
from presence.http import openapi
from presence.http.common import (
    FORM,
    JSON,
    Body,
    centers_of,
    ctx_of,
    json,
    path_param,
    rate_limited,
    takes,
    use_center,
    wants_json,
)
from presence.problems import Problem
from presence.schema.cases import CustomerMessageInput, CustomerStatus
from presence.services import cases
from presence.store.cases import Intake

WORDS = {
    "en": {
        "title": "Your request",
        "ref": "Reference",
        "status": "Status",
        "opened": "Opened",
        "you": "You wrote",
        "us": "Our reply",
        "none": "No messages yet.",
        "add": "Add a message",
        "send": "Send",
        "sent": "Thank you: your message was added to your request.",
        "gone": "This link is not valid.",
        "survey": "Your request is complete. How did we do? Rate us",
    },
    "ja": {
        "title": "お問い合わせの状況",
        "ref": "受付番号",
        "status": "状況",
        "opened": "受付日時",
        "you": "お客様のメッセージ",
        "us": "担当者からの返信",
        "none": "メッセージはまだありません。",
        "add": "メッセージを追加",
        "send": "送信",
        "sent": "ありがとうございます。メッセージをお問い合わせに追加しました。",
        "gone": "このリンクは無効です。",
        "survey": "お問い合わせの対応が完了しました。アンケートにご協力ください",
    },
}
# The default case statuses (presence/center.py) in the customer's language;
# a center's own statuses are shown as configured, as on the agent panel.
STATUSES = {
    "ja": {"New": "受付済み", "In progress": "対応中", "Waiting close": "完了確認中", "Closed": "完了"},
}


def lang_of(request: Request, chosen: str = "") -> str:
    chosen = chosen or request.query_params.get("lang", "")
    if chosen in WORDS:
        return chosen
    return "ja" if request.headers.get("accept-language", "").lower().startswith("ja") else "en"


async def customer_link(request: Request, purpose: str, missing: str) -> str:
    """The work id of the request's signed link (`purpose`: status or survey),
    a 404 saying `missing` for a forged, altered or expired one. The link
    names its center (none: the default one), and the request then acts on
    that center, as a token's center selects it on the other routes."""
    centers = centers_of(request)
    token = path_param(request, "token")
    center = link_center(token)
    try:
        # the signature is checked first: a forged link reads nothing from Redis
        wid = check_link(centers.default.secret, purpose, center or centers.default.center.id, token)
    except AuthError:
        raise Problem(404, missing, code="not_found") from None
    if center is not None and await use_center(request, center) is None:
        # a center removed since it sent the link
        raise Problem(404, missing, code="not_found")
    return wid


async def _work_id(request: Request) -> str:
    return await customer_link(request, cases.STATUS_LINK, "no such status link")


async def _view(ctx: Context, wid: str) -> dict[str, Any]:
    view = await cases.customer_view(ctx.store, wid)
    if view is None:
        raise Problem(404, "no such status link", code="not_found")
    # a completed case not rated yet offers its survey, while the link is valid
    days = ctx.center.cases.survey_days
    ended = int(view.get("ended_at") or 0)
    fresh = ended and ended + days * 86400_000 > ctx.store.now_ms()
    if view.get("state") == "completed" and not view.get("csat") and fresh:
        view["survey_path"] = ctx.survey_path(wid, ended)
    return view


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else ""


def status_words(status: str, lang: str) -> str:
    return STATUSES.get(lang, {}).get(status, status)


def heading(ctx: Context, title: str) -> str:
    """A customer page's heading: the center's name over the page's title
    (not its id, when it was given no name: "default" means nothing to a customer)."""
    e = html.escape
    name = ctx.center.name if ctx.center.name != ctx.center.id else ""
    named = f'<p id="center" dir="auto">{e(name)}</p>' if name else ""
    return f"{named}<h1>{e(title)}</h1>"


def page(ctx: Context, view: dict[str, Any], lang: str, action: str, sent: bool) -> str:
    w = WORDS[lang]
    e = html.escape
    items: list[str] = []
    replies = view["replies"]

    def answers(n: int) -> None:
        for r in replies:
            if (r.get("message") or 0) == n:
                when = e(_when(r.get("ts")))
                items.append(f'<li class="us"><small>{e(w["us"])} · {when}</small><p>{e(r["text"])}</p></li>')

    answers(0)
    for i, m in enumerate(view["messages"], 1):
        items.append(f'<li class="you"><small>{e(w["you"])}</small><p>{e(m["text"])}</p></li>')
        answers(i)
    convo = "".join(items) or f'<li class="none">{e(w["none"])}</li>'
    notice = f'<p class="sent" role="status">{e(w["sent"])}</p>' if sent else ""
    if view.get("survey_path"):
        notice += (
            f'<p><a id="survey-link" href="{e(view["survey_path"])}?lang={lang}">{e(w["survey"])}</a></p>'
        )

    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{e(w["title"])}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}}dt{{color:#555}}dd{{margin:0}}
ol{{list-style:none;padding:0;display:grid;gap:.5rem}}li{{padding:.4rem .7rem;border-radius:8px}}
li.you{{background:#eef2f7}}li.us{{background:#e6f0ff}}li p{{margin:.1rem 0 0;white-space:pre-wrap}}
textarea{{width:100%;font:inherit}}.sent{{background:#e7f7ec;padding:.5rem .7rem;border-radius:8px}}</style>
</head><body>{heading(ctx, w["title"])}{notice}
<dl><dt>{e(w["ref"])}</dt><dd><code>{e(view["work_id"])}</code></dd>
<dt>{e(w["status"])}</dt><dd id="status">{e(status_words(str(view["status"] or ""), lang))}</dd>
<dt>{e(w["opened"])}</dt><dd>{e(_when(view["created"]))}</dd></dl>
<h2 dir="auto">{e(view["subject"])}</h2>
<ol id="conversation">{convo}</ol>
<form method="post" action="{e(action)}"><input type="hidden" name="lang" value="{lang}">
<label for="text">{e(w["add"])}</label>
<textarea id="text" name="text" rows="4" required maxlength="4000" dir="auto"></textarea>
<p><button type="submit">{e(w["send"])}</button></p></form></body></html>
"""


async def status_page(request: Request) -> Response:
    wid = await _work_id(request)
    ctx = ctx_of(request)
    view = await _view(ctx, wid)
    if wants_json(request):
        return json(view, headers={"Cache-Control": "no-store"})
    lang = lang_of(request)
    sent = request.query_params.get("sent") == "1"
    body = page(ctx, view, lang, request.url.path, sent)
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


async def _customer_writes(
    request: Request, body: Body[CustomerMessageInput]
) -> tuple[CustomerMessageInput, Intake]:
    """The customer's message on the link's case (a case that exists, within
    the address's rate), joined to it: the message and the outcome."""
    wid = await _work_id(request)
    ctx = ctx_of(request)
    await _view(ctx, wid)
    await rate_limited(request, "status")
    msg = await body()
    return msg, await cases.customer_writes(ctx.store, ctx.dispatcher, ctx.center, wid, msg.text.strip())


@takes(CustomerMessageInput, media=FORM)
async def status_post(request: Request, body: Body[CustomerMessageInput]) -> Response:
    msg, _ = await _customer_writes(request, body)
    lang = lang_of(request, msg.lang)
    # post, redirect, get: a reload does not send the message again
    return RedirectResponse(f"{quote(request.url.path)}?sent=1&lang={lang}", status_code=303)


@takes(CustomerMessageInput)
async def status_message(request: Request, body: Body[CustomerMessageInput]) -> Response:
    _, result = await _customer_writes(request, body)
    return json({"id": result.work_id, "outcome": result.outcome}, status=201)


_PUBLIC = "No token: the signed link is the key. A forged or altered link is 404."
ROUTES = [
    openapi.route(
        "GET",
        "/status/{token}",
        status_page,
        openapi.Op(
            "The customer's status page of their case (HTML; JSON with Accept: application/json)",
            ok=(200, CustomerStatus),
            problems=(404, 422),
            media=(openapi.HTML, JSON),
            description=_PUBLIC,
        ),
    ),
    openapi.route(
        "POST",
        "/status/{token}",
        status_post,
        openapi.Op(
            "The customer adds a message to their case from its status page (a form; 303 back to the page)",
            ok=(303, None),
            problems=(400, 404, 413, 415, 422, 429),
            media=openapi.HTML,
            description=_PUBLIC,
        ),
    ),
    openapi.route(
        "POST",
        "/status/{token}/messages",
        status_message,
        openapi.Op(
            "The customer adds a message to their case (joins it, routed like any message)",
            ok=(201, openapi.OBJECT),
            problems=(400, 404, 413, 415, 422, 429),
            description=_PUBLIC,
        ),
    ),
]
