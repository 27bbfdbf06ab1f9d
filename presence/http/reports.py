"""Reports: ``GET /api/v1/reports/{kpis,agents,events}`` as JSON or CSV.

* ``kpis``: the KPIs of a time range, one row per ``group_by`` value
  (queue, channel, agent, customer, type, source, hour, day or center);
  the counts by type, source and customer are its offered/answered/
  abandoned/handled columns grouped that way.
* ``agents``: per agent, time in each status and reason, handle time,
  occupancy.
* ``events``: the raw event history of the range (routing and status).

``from`` and ``to`` are ISO 8601 (a date, or a date-time; without an offset
it is the center's time zone, ``PRESENCE_TIMEZONE``) or epoch milliseconds;
the range is [from, to), by default today until now. Within the raw
streams' retention figures come from the events themselves, exact to the
millisecond; a range reaching further back is answered from the hourly
roll-ups (whole hours; ``"source": "rollup"`` says so).

``?format=csv`` answers a CSV file that Excel opens as it is: UTF-8 with a
byte-order mark (so non-ASCII text is not garbled), CRLF line ends, fields
quoted when needed, and text cells that would start a formula (= + - @)
prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from presence.http import openapi
from presence.http.common import ctx_of, json, require
from presence.kpi import replay, rollup
from presence.kpi.aggregates import Agg
from presence.problems import Problem
from presence.store import Store

GROUPS = ("queue", "channel", "agent", "customer", "type", "source", "15m", "hour", "day", "center")
# Time buckets: their length in ms (a day's is its wall-clock length)
STEPS = {"15m": 900_000, "hour": 3600_000, "day": 86400_000}
KPI_COLUMNS = (
    "offered",
    "answered",
    "abandoned",
    "answered_in_sl",
    "abandoned_in_sl",
    "service_level",
    "asa",
    "max_answer_wait",
    "aht",
    "handled",
    "abandonment_rate",
    "fcr",
    "transfers",
    "csat",
    "csat_count",
    "occupancy",
    "utilisation",
    "handle_time",
    "available_time",
    "logged_in_time",
)
MAX_DAYS = 366
MAX_BUCKETS = 24 * 62  # hour rows in one report
MAX_EVENTS = 200_000
STREAM_ROWS = 1000  # rows of the events report written per chunk
Row = dict[str, Any]  # one row of a report
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# -- parameters ----------------------------------------------------------------


def parse_time(value: str, tz: ZoneInfo, field: str) -> int:
    """Epoch ms from epoch ms digits or ISO 8601; naive times are in `tz`."""
    v = value.strip()
    if v.isdigit():
        return int(v)
    try:
        if len(v) == 10:
            d = date.fromisoformat(v)
            return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(
            422,
            f"{field} must be an ISO 8601 date or time, or epoch milliseconds",
            field=field,
            code="invalid",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp() * 1000)


def iso(ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def time_range(request: Request, now: int, tz: ZoneInfo) -> tuple[int, int]:
    q = request.query_params
    midnight = int(
        datetime.fromtimestamp(now / 1000, tz).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        * 1000
    )
    start = parse_time(q["from"], tz, "from") if q.get("from") else midnight
    end = parse_time(q["to"], tz, "to") if q.get("to") else now
    if end <= start:
        raise Problem(422, "to must be after from", field="to", code="invalid")
    if end - start > MAX_DAYS * 86400_000:
        raise Problem(422, f"a report covers at most {MAX_DAYS} days", field="to", code="invalid")
    return start, end


# -- output --------------------------------------------------------------------


def cell(v: Any) -> str:
    """One CSV cell: numbers plainly, None empty, formulas defused."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".")
    s = str(v)
    return "'" + s if s.startswith(FORMULA_START) else s


def to_csv(columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """UTF-8 with BOM, CRLF, minimal quoting: what Excel opens correctly."""
    cols = list(columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(cols)
    for r in rows:
        w.writerow([cell(r.get(c)) for c in cols])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def respond(request: Request, name: str, body: dict[str, Any]) -> Response:
    fmt = request.query_params.get("format", "json")
    if fmt == "csv":
        tag = body.get("group_by") or name
        filename = f"presence-{name}-{tag}-{body['from_iso'][:10]}.csv"
        return Response(
            to_csv(body["columns"], body["rows"]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if fmt != "json":
        raise Problem(422, "format must be json or csv", field="format", code="invalid")
    return Response(orjson.dumps(body), media_type="application/json")


# -- computation ---------------------------------------------------------------


def kpi_row(key: str, value: str, a: Agg) -> dict[str, Any]:
    k = a.kpis()
    return {key: value, **{c: k[c] for c in KPI_COLUMNS}}


async def raw_available(store: Store, start: int, *, items: bool = True) -> bool:
    """Whether a range from `start` can be computed from the raw events: they
    are kept (not trimmed) and, with `items`, so are the items they name (a
    range older than the item retention, PRESENCE_RETENTION_DAYS, would lose
    its items' customers, types and times; the roll-up kept them)."""
    trimmed = await store.redis.hget(store.keys.kpi_state, "trimmed")
    if trimmed and start < int(trimmed):
        return False
    if not items:
        return True
    kept = int(await store.redis.hget(store.keys.rules, "retention_ms") or 0)
    return kept <= 0 or start >= store.now_ms() - kept


def _bucket(ms: int, group: str, tz: ZoneInfo) -> tuple[int, str]:
    """Start ms and label of the 15 minutes, hour or day (center time zone) holding `ms`."""
    dt = datetime.fromtimestamp(ms / 1000, tz)
    if group in ("15m", "hour"):
        minute = dt.minute // 15 * 15 if group == "15m" else 0
        dt = dt.replace(minute=minute, second=0, microsecond=0)
        return int(dt.timestamp() * 1000), dt.isoformat(timespec="minutes")
    dt = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(dt.timestamp() * 1000), dt.date().isoformat()


def _buckets(start: int, end: int, group: str, tz: ZoneInfo) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    b, label = _bucket(start, group, tz)
    step = STEPS[group]
    while b < end and len(out) <= MAX_BUCKETS:
        # step by wall clock and re-align: days of 23 or 25 hours stay whole
        nb, nlabel = _bucket(b + step + (3600_000 if group == "day" else 0), group, tz)
        out.append((max(b, start), min(nb, end), label))
        b, label = nb, nlabel
    return out


async def kpis_from_events(
    store: Store, start: int, end: int, group: str, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """A KPI report's rows by `group` from the raw streams, read page by page
    and folded as read, as the roll-up sums an hour: a day's report does not
    hold the day's events."""
    if group in rollup.DIMENSIONS:
        # the items' attributes are read only for a dimension made of them
        vals = (await rollup.roll_range(store, start, end, by_item=group in rollup.BY_ITEM)).get(group, {})
        return dimension_rows(group, vals)
    buckets = time_buckets(start, end, group, tz)
    _, sums = await rollup.roll_buckets(store, start, end, [lo for lo, _ in buckets], by_item=False)
    return [kpi_row(group, label, a) for (_, label), a in zip(buckets, sums, strict=True)]


def dimension_rows(group: str, vals: Mapping[str, Agg]) -> list[dict[str, Any]]:
    """A KPI report's rows by a dimension (the center's one row even when empty)."""
    if group == "center":
        return [kpi_row(group, "", vals.get("", Agg()))]
    return [kpi_row(group, k, vals[k]) for k in sorted(vals)]


def time_buckets(start: int, end: int, group: str, tz: ZoneInfo) -> list[tuple[int, str]]:
    """The start and label of each 15 minutes, hour or day of [start, end)
    (a report's time rows), at most `MAX_BUCKETS`."""
    buckets = _buckets(start, end, group, tz)
    if len(buckets) > MAX_BUCKETS:
        raise Problem(
            422, f"at most {MAX_BUCKETS} {group} rows; narrow the range", field="to", code="invalid"
        )
    return [(lo, label) for lo, _, label in buckets]


async def kpis_from_rollups(
    store: Store, start: int, end: int, group: str, tz: ZoneInfo
) -> list[dict[str, Any]]:
    hours = await rollup.read_rollups(store, start, end)
    dim = "center" if group in ("hour", "day") else group
    if group in ("hour", "day"):
        by: dict[str, Agg] = {}
        for h, r in sorted(hours.items()):
            label = _bucket(h, group, tz)[1]
            for a in r.get("center", {}).values():
                by.setdefault(label, Agg()).add(a)
        return [kpi_row(group, k, by[k]) for k in sorted(by)]
    total: rollup.Rolled = {}
    for r in hours.values():
        rollup.merge(total, {dim: r.get(dim, {})})
    vals = total.get(dim, {})
    return [kpi_row(group, k, vals[k]) for k in sorted(vals)]


# -- endpoints -----------------------------------------------------------------


async def _context(request: Request) -> tuple[Store, ZoneInfo]:
    await require(request, "supervisor", "service")
    return ctx_of(request).store, ZoneInfo(request.app.state.settings.timezone)


def _head(name: str, start: int, end: int, tz: ZoneInfo, source: str) -> dict[str, Any]:
    return {
        "report": name,
        "from": start,
        "to": end,
        "from_iso": iso(start, tz),
        "to_iso": iso(end, tz),
        "timezone": str(tz),
        "source": source,
    }


async def kpis_report(request: Request) -> Response:
    store, tz = await _context(request)
    group = request.query_params.get("group_by", "queue")
    if group not in GROUPS:
        raise Problem(422, f"group_by must be one of {', '.join(GROUPS)}", field="group_by", code="invalid")
    start, end = time_range(request, store.now_ms(), tz)
    if await raw_available(store, start):
        rows, source = await kpis_from_events(store, start, end, group, tz), "events"
    elif group == "15m":
        # the roll-ups are hourly: quarter hours come from the event history only
        raise Problem(
            422,
            f"group_by=15m needs the event history, which no longer reaches back to {iso(start, tz)}; "
            "use hour",
            field="group_by",
            code="invalid",
        )
    else:
        rows, source = await kpis_from_rollups(store, start, end, group, tz), "rollup"
    body = _head("kpis", start, end, tz, source)
    body.update(group_by=group, columns=[group, *KPI_COLUMNS], rows=rows)
    return respond(request, "kpis", body)


# What the wallboard's charts draw: one read of the day's events for all of them
CHART_GROUPS: Final = ("15m", "type", "source", "customer")


async def charts_report(request: Request) -> Response:
    store, tz = await _context(request)
    start, end = time_range(request, store.now_ms(), tz)
    if not await raw_available(store, start):
        raise Problem(
            422,
            f"the charts need the event history, which no longer reaches back to {iso(start, tz)}",
            field="from",
            code="invalid",
        )
    buckets = time_buckets(start, end, "15m", tz)
    rolled, sums = await rollup.roll_buckets(store, start, end, [lo for lo, _ in buckets])
    rows = {g: dimension_rows(g, rolled.get(g, {})) for g in CHART_GROUPS if g != "15m"}
    rows["15m"] = [kpi_row("15m", label, a) for (_, label), a in zip(buckets, sums, strict=True)]
    body = _head("charts", start, end, tz, "events")
    body["groups"] = {g: {"columns": [g, *KPI_COLUMNS], "rows": rows[g]} for g in CHART_GROUPS}
    return json(body)


async def agents_report(request: Request) -> Response:
    store, tz = await _context(request)
    start, end = time_range(request, store.now_ms(), tz)
    source = "events"
    if await raw_available(store, start):
        agents = (await rollup.roll_range(store, start, end, by_item=False)).get("agent", {})
    else:
        source = "rollup"
        total: rollup.Rolled = {}
        for r in (await rollup.read_rollups(store, start, end)).values():
            rollup.merge(total, {"agent": r.get("agent", {})})
        agents = total.get("agent", {})
    statuses = sorted({s for a in agents.values() for s in a.status_ms})
    base = (
        "answered",
        "handled",
        "aht",
        "occupancy",
        "utilisation",
        "handle_time",
        "available_time",
        "logged_in_time",
    )
    rows = []
    for aid in sorted(agents):
        a = agents[aid]
        k = a.kpis()
        row: dict[str, Any] = {"agent": aid, **{c: k[c] for c in base}}
        for s in statuses:
            row[f"time:{s}"] = a.status_ms.get(s, 0) / 1000
        rows.append(row)
    body = _head("agents", start, end, tz, source)
    body.update(group_by="agent", columns=["agent", *base, *(f"time:{s}" for s in statuses)], rows=rows)
    return respond(request, "agents", body)


EVENT_COLUMNS = ("time", "ts", "ev", "work", "agent", "queue", "channel", "details")


async def events_report(request: Request) -> Response:
    """The range's events, streamed as they are read (`replay.ordered`): a
    day's export holds a page and the clock margin's events, not the day's."""
    store, tz = await _context(request)
    start, end = time_range(request, store.now_ms(), tz)
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise Problem(422, "format must be json or csv", field="format", code="invalid")
    if not await raw_available(store, start, items=False):
        raise Problem(
            422, "the raw events of this range are past the retention (PRESENCE_HISTORY_DAYS)", field="from"
        )
    head = _head("events", start, end, tz, "events")
    rows = _event_rows(store, start, end, tz)
    if fmt == "csv":
        filename = f"presence-events-events-{head['from_iso'][:10]}.csv"
        return StreamingResponse(
            _csv_chunks(EVENT_COLUMNS, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return StreamingResponse(_json_chunks(head, rows), media_type="application/json")


async def _event_rows(store: Store, start: int, end: int, tz: ZoneInfo) -> AsyncIterator[Row | None]:
    """The report's rows, the first `MAX_EVENTS`; then None if there were more."""
    n = 0
    async for e in replay.ordered(store, start, end - 1):
        if n == MAX_EVENTS:
            yield None
            return
        n += 1
        yield {
            "time": iso(e.ts, tz),
            "ts": e.ts,
            "ev": e.ev,
            "work": e.work,
            "agent": e.agent,
            "queue": e.queue,
            "channel": e.channel,
            "details": "; ".join(f"{k}={v}" for k, v in sorted(e.extra.items()) if v != ""),
        }


async def _csv_chunks(columns: Sequence[str], rows: AsyncIterator[Row | None]) -> AsyncIterator[bytes]:
    """`to_csv`'s bytes, `STREAM_ROWS` rows at a time."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    buf.write("\ufeff")
    w.writerow(columns)
    n = 0
    async for r in rows:
        if r is None:
            break
        w.writerow([cell(r.get(c)) for c in columns])
        n += 1
        if n % STREAM_ROWS == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


async def _json_chunks(head: dict[str, Any], rows: AsyncIterator[Row | None]) -> AsyncIterator[bytes]:
    """The JSON body `respond` would give (head, columns, rows, truncated),
    `STREAM_ROWS` rows at a time."""
    opening = orjson.dumps({**head, "columns": list(EVENT_COLUMNS)})
    parts = [opening[:-1] + b',"rows":[']
    truncated, n = False, 0
    async for r in rows:
        if r is None:
            truncated = True
            break
        parts.append((b"," if n else b"") + orjson.dumps(r))
        n += 1
        if n % STREAM_ROWS == 0:
            yield b"".join(parts)
            parts = []
    parts.append(b'],"truncated":' + (b"true" if truncated else b"false") + b"}")
    yield b"".join(parts)


_RANGE = (
    "Query: from, to (ISO 8601 date or date-time, or epoch ms; default today until now), "
    "format=json|csv (CSV: UTF-8 with BOM, CRLF, for Excel)."
)
_REPORT = {"type": "object", "properties": {"columns": {"type": "array"}, "rows": {"type": "array"}}}
for _path, _summary, _extra in (
    (
        "/api/v1/reports/kpis",
        "KPIs of a time range by group",
        " group_by=queue|channel|agent|customer|type|source|15m|hour|day|center (default queue; "
        "15m: quarter hours, within the event history).",
    ),
    (
        "/api/v1/reports/charts",
        "The KPI rows the wallboard's charts draw (group_by 15m, type, source and customer) from one fold",
        " JSON only: groups.<15m|type|source|customer>.{columns, rows}.",
    ),
    ("/api/v1/reports/agents", "Agents' time in each status, handle time and occupancy", ""),
    ("/api/v1/reports/events", "The raw event history of a time range (within the retention)", ""),
):
    openapi.describe(
        "GET",
        _path,
        openapi.Op(
            _summary,
            openapi.ADMIN,
            ok=(200, _REPORT),
            problems=(422,),
            description=_RANGE + _extra + " See docs/kpis.md.",
        ),
    )

ROUTES = [
    Route("/api/v1/reports/kpis", kpis_report),
    Route("/api/v1/reports/charts", charts_report),
    Route("/api/v1/reports/agents", agents_report),
    Route("/api/v1/reports/events", events_report),
]
