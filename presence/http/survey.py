"""The customer's satisfaction survey (CSAT): ``/survey/{token}``.

After completion, a case's signed survey link (`presence.services.cases.survey_path`:
valid ``[cases] survey_days`` after the completion) is sent with the
``work.completed`` webhook (``survey_path``, for the channel's gateway to
send on) and shown on the customer's status page. The page asks for a score
from 1 to 5 and a comment; the answer is taken once per case
(``store/lua/case_csat.lua``), counted as CSAT for the agent and the queue
(the KPIs: reports, CSV, wallboard) and sent as the ``csat`` webhook event.
A forged, altered or expired link is a 404 that tells nothing.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from presence.http import openapi
from presence.http.common import FORM, Body, ctx_of, json, rate_limited, takes
from presence.http.status import customer_link, heading, lang_of
from presence.problems import Problem
from presence.schema.cases import SurveyForm, SurveyInput
from presence.services import cases
from presence.store import ScriptError
from presence.store import cases as case_store

WORDS = {
    "en": {
        "title": "How did we do?",
        "ask": "How satisfied are you with how we handled your request?",
        "comment": "Anything you would like to tell us (optional)",
        "send": "Send",
        "thanks": "Thank you for your feedback.",
        "done": "This survey was already answered. Thank you.",
    },
    "ja": {
        "title": "ご対応はいかがでしたか？",
        "ask": "今回のお問い合わせへの対応にどの程度満足されましたか？",
        "comment": "ご意見・ご感想（任意）",
        "send": "送信",
        "thanks": "ご回答ありがとうございました。",
        "done": "このアンケートは回答済みです。ありがとうございました。",
    },
}


SCORES = {
    "en": ("Very poor", "Poor", "Fair", "Good", "Excellent"),
    "ja": ("とても不満", "不満", "普通", "満足", "とても満足"),
}


async def _work_id(request: Request) -> str:
    return await customer_link(request, cases.SURVEY_LINK, "no such survey link (or it has expired)")


def _page(request: Request, lang: str, body: str, status: int = 200) -> HTMLResponse:
    w = WORDS[lang]
    page = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{html.escape(w["title"])}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}
fieldset{{border:0;padding:0;display:flex;gap:.5rem;flex-wrap:wrap}}
label.score{{border:1px solid #bbb;border-radius:8px;padding:.4rem .7rem;cursor:pointer}}
textarea{{width:100%;font:inherit}}</style>
</head><body>{heading(ctx_of(request), w["title"])}{body}</body></html>
"""
    return HTMLResponse(
        page, status_code=status, headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
    )


def _thanks(request: Request, lang: str, again: bool = False) -> HTMLResponse:
    said = html.escape(WORDS[lang]["done" if again else "thanks"])
    return _page(request, lang, f'<p id="thanks" role="status">{said}</p>')


async def survey_page(request: Request) -> Response:
    wid = await _work_id(request)
    lang = lang_of(request)
    case = await case_store.get_case(ctx_of(request).store, wid, timeline=False)
    if case is None:
        raise Problem(404, "no such survey link (or it has expired)", code="not_found")
    if case.get("csat"):
        return _thanks(request, lang, again=True)
    w = WORDS[lang]
    e = html.escape
    scores = "".join(
        f'<label class="score"><input type="radio" name="score" value="{i}" required> '
        f"{i} · {e(label)}</label>"
        for i, label in enumerate(SCORES[lang], 1)
    )
    form = f"""<form method="post" action="{e(request.url.path)}">
<input type="hidden" name="lang" value="{lang}">
<p>{e(w["ask"])}</p><fieldset>{scores}</fieldset>
<p><label for="comment">{e(w["comment"])}</label><br>
<textarea id="comment" name="comment" rows="4" maxlength="4000" dir="auto"></textarea></p>
<p><button type="submit">{e(w["send"])}</button></p></form>"""
    return _page(request, lang, form)


async def _answer(request: Request, wid: str, score: int, comment: str) -> bool:
    """Store the answer; False when the case had one already."""
    try:
        await case_store.csat(ctx_of(request).store, wid, score, comment.strip())
    except ScriptError as exc:
        if exc.code == "conflict" and exc.field == "score":
            return False
        raise
    return True


@takes(SurveyForm, media=FORM)
async def survey_post(request: Request, body: Body[SurveyForm]) -> Response:
    wid = await _work_id(request)
    await rate_limited(request, "survey")
    f = await body()
    lang = lang_of(request, f.lang)
    return _thanks(request, lang, again=not await _answer(request, wid, int(f.score), f.comment))


@takes(SurveyInput)
async def survey_json(request: Request, body: Body[SurveyInput]) -> Response:
    wid = await _work_id(request)
    await rate_limited(request, "survey")
    b = await body()
    if not await _answer(request, wid, b.score, b.comment):
        raise Problem(409, "this survey was already answered", field="score", code="conflict")
    return json({"work_id": wid, "score": b.score}, status=201)


_PUBLIC = "No token: the signed link is the key. A forged, altered or expired link is 404."
ROUTES = [
    openapi.route(
        "GET",
        "/survey/{token}",
        survey_page,
        openapi.Op(
            "The customer's satisfaction survey of a completed case (HTML)",
            ok=(200, None),
            problems=(404, 422),
            media=openapi.HTML,
            description=_PUBLIC,
        ),
    ),
    openapi.route(
        "POST",
        "/survey/{token}",
        survey_post,
        openapi.Op(
            "The survey's form: a score 1-5 and a comment, once per case (HTML thanks)",
            ok=(200, None),
            problems=(400, 404, 409, 413, 415, 422, 429),
            media=openapi.HTML,
            description=_PUBLIC,
        ),
    ),
    openapi.route(
        "POST",
        "/survey/{token}/answer",
        survey_json,
        openapi.Op(
            "The survey's answer as JSON: a score 1-5 and a comment, once per case (409 after)",
            ok=(201, openapi.OBJECT),
            problems=(400, 404, 409, 413, 415, 422, 429),
            description=_PUBLIC,
        ),
    ),
]
