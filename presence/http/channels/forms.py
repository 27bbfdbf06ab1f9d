"""Web-to-case: ``POST /forms/case`` (``/forms/<center>/case`` for a center
other than the default one) takes a plain HTML form post
(``application/x-www-form-urlencoded`` or multipart) from a contact page
such as ``/contact`` (``presence/static/contact.html``).

The category picks the queue (``[intake.forms] categories``). Spam is kept
out by a hidden honeypot field (a filled one is thanked and dropped, so a
bot learns nothing) and a per-IP rate limit counted in Redis (429 with
Retry-After). A sender who is not in the customer directory is flagged as a
lead. The answer is a small thank-you page in the form's language (English
or Japanese), or JSON when the client asks for it (``Accept``).
"""

from __future__ import annotations

import html
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from presence.http.channels.common import center_of, customer_of, status_url
from presence.http.common import (
    FORM,
    Body,
    ctx_of,
    invalid,
    json,
    path_param,
    rate_limited,
    takes,
    use_center,
    wants_json,
)
from presence.problems import Problem
from presence.schema import Invalid
from presence.schema.channels import WebForm
from presence.services import cases

MAX_BODY = 128 * 1024

THANKS = {
    "en": (
        "Thank you",
        "Thank you for contacting us. We have received your message and will get back to you soon.",
        "Your reference",
        "Back",
        "Follow your request, and add to it, on its status page",
    ),
    "ja": (
        "ありがとうございます",
        "お問い合わせありがとうございます。内容を受け付けました。担当者より折り返しご連絡いたします。",
        "受付番号",
        "戻る",
        "お問い合わせの状況の確認・追加のご連絡はこちら",
    ),
}


def _lang(request: Request, form: FormData) -> str:
    chosen = form.get("lang")
    if isinstance(chosen, str) and chosen in THANKS:
        return chosen
    accept = request.headers.get("accept-language", "").lower()
    return "ja" if accept.startswith("ja") else "en"


def _thanks(lang: str, ref: str | None, status: int = 200, link: str = "") -> HTMLResponse:
    title, body, ref_label, back, follow = THANKS[lang]
    ref_html = f"<p>{ref_label}: <code>{html.escape(ref)}</code></p>" if ref else ""
    if link:
        ref_html += f'<p><a id="status-link" href="{html.escape(link)}?lang={lang}">{follow}</a></p>'
    page = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}</style>
</head><body><h1>{title}</h1><p>{body}</p>{ref_html}<p><a href="/contact">{back}</a></p></body></html>
"""
    return HTMLResponse(page, status_code=status)


async def _post_case(request: Request, body: Body[WebForm]) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in FORM:
        raise Problem(
            415,
            "post the form as application/x-www-form-urlencoded (or multipart/form-data)",
            code="media_type",
        )
    # The size is checked before anything is read: this route is public, and
    # a body without a length (chunked) would otherwise be buffered whole.
    try:
        length = int(request.headers["content-length"])
    except (KeyError, ValueError):
        raise Problem(411, "send the form with a Content-Length header", code="length_required") from None
    if length > MAX_BODY:
        raise Problem(413, f"the form must be at most {MAX_BODY} bytes", code="too_large")
    center = center_of(request)
    cfg = center.intake
    ctx = ctx_of(request)
    form = await body.form()
    lang = _lang(request, form)
    # counted before anything else, so a flood costs one INCR per post
    await rate_limited(request, "form", "forms")
    trap = form.get(cfg.form_honeypot) if cfg.form_honeypot else None
    if isinstance(trap, str) and trap.strip():
        # a bot filled the hidden field: thank it and keep nothing
        return json({"id": None, "outcome": "ignored"}) if wants_json(request) else _thanks(lang, None)
    try:
        posted = await body.parse()
    except Invalid as exc:
        raise invalid(exc) from None
    # the schema checked each value with the whitespace around it; this is what is used
    values: dict[str, Any] = {
        f: getattr(posted, f).strip() for f in ("name", "email", "phone", "category", "subject", "message")
    }
    category = values["category"]
    if category and cfg.categories and category not in cfg.categories:
        raise Problem(
            422,
            f"category must be one of {', '.join(sorted(cfg.categories))}",
            field="category",
            code="invalid",
        )
    queue = cfg.categories.get(category, cfg.form_queue)
    customer, customer_id, lead = await customer_of(
        request, phone=values["phone"], email=values["email"], name=values["name"]
    )
    subject = values["subject"] or values["message"][:120]
    result = await cases.open_case(
        ctx.store,
        ctx.dispatcher,
        ctx.center,
        channel="web",
        queue=queue,
        subject=subject,
        customer=customer,
        customer_id=customer_id,
        lead=lead,
        payload={"form": {k: v for k, v in values.items() if v}, "lang": lang},
        case={"source": "form", "category": category},
        message={
            "channel": "web",
            "from": values["email"] or values["phone"],
            "name": values["name"],
            "subject": values["subject"],
            "text": values["message"],
        },
    )
    link = status_url(request, result.work_id)
    if wants_json(request):
        # no `lead` here: the public reply must not tell who is a known customer
        # outside the queue's hours a new case may wait in another queue (its rule)
        where = result.woke if result.outcome == "created" and result.woke else queue
        return json(
            {"id": result.work_id, "outcome": result.outcome, "queue": where, "status_url": link}, status=201
        )
    return _thanks(lang, result.work_id, status=201, link=link)


post_case = takes(WebForm, media=FORM)(_post_case)


@takes(WebForm, media=FORM)
async def post_center_case(request: Request, body: Body[WebForm]) -> Response:
    """The form of a center other than the default one (its own contact page
    posts to ``/forms/<center>/case``): the case opens in that center, with
    its categories, rate limit and status links."""
    center = path_param(request, "center")
    if await use_center(request, center) is None:
        raise Problem(404, f"no center {center!r}", field="center", code="not_found")
    return await _post_case(request, body)


ROUTES = [
    Route("/forms/case", post_case, methods=["POST"]),
    Route("/forms/{center}/case", post_center_case, methods=["POST"]),
]
