"""Hypothesis-generated HTTP bodies against the intake and admin routes:
arbitrary JSON values, near-valid items and raw bytes under any content
type. Every answer is a success or a problem+json refusal, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import ServerProcess, token

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=15,
)
names = st.sampled_from(["support", "billing", "chat", "voice", "alice", "x" * 70, "", "a b", "é", "../x"])
work_bodies = st.fixed_dictionaries(
    {},
    optional={
        "channel": names | values,
        "queue": names | values,
        "skills": st.dictionaries(st.text(max_size=10), values, max_size=3) | values,
        "priority": st.integers(min_value=-200, max_value=200) | values,
        "subject": st.text(max_size=1200) | values,
        "customer": st.dictionaries(st.sampled_from(["id", "name", "phone", "email", "x"]), values) | values,
        "payload": values,
    },
)
agent_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": values,
        "capacity": st.integers(min_value=-5, max_value=200_000) | values,
        "skills": st.dictionaries(st.text(max_size=10), values, max_size=3) | values,
        "queues": st.lists(names | values, max_size=3) | values,
        "extension": values,
    },
)
queue_bodies = st.fixed_dictionaries(
    {},
    optional={
        "title": values,
        "strategy": st.sampled_from(["most_available", "least_active", "longest_idle", "x"]) | values,
        "push_timeout": st.floats(min_value=-10, max_value=1e6) | values,
        "auto_accept": values,
        "priority": values,
        "wrapup_seconds": values,
        "service_level_target": values,
    },
)
# percent-encoded, so any text reaches the handler as the path parameter
path_ids = (
    st.text(min_size=1, max_size=80).filter(lambda s: s not in (".", "..")).map(lambda s: quote(s, safe=""))
)


@pytest.fixture(scope="module")
def http(fuzz_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fuzz_server.http,
        headers={"Authorization": f"Bearer {token('supervisor', 'fuzz')}"},
        timeout=10,
    ) as client:
        yield client


def _sane(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json", r.text
        body = r.json()
        assert body["status"] == r.status_code and body["detail"]


def _json(body: Any) -> bytes | None:
    try:
        return orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):
        return None


@SETTINGS
@given(body=work_bodies | values, key=st.none() | st.text(max_size=250))
def test_work_intake(http: httpx.Client, body: Any, key: str | None) -> None:
    raw = _json(body)
    if raw is None:
        return
    headers = {"Content-Type": "application/json"}
    # a header value HTTP can carry (h11 refuses one that starts or ends with a space)
    if key is not None and key.isprintable() and key.isascii() and key == key.strip():
        headers["Idempotency-Key"] = key
    r = http.post("/api/v1/work", content=raw, headers=headers)
    _sane(r)
    if r.status_code in (200, 201):
        wid = r.json()["id"]
        _sane(http.post(f"/api/v1/work/{wid}/cancel", json={"reason": "fuzz"}))


@SETTINGS
@given(agent_id=path_ids, body=agent_bodies | values)
def test_agent_put(http: httpx.Client, agent_id: str, body: Any) -> None:
    raw = _json(body)
    if raw is None:
        return
    r = http.put(f"/api/v1/agents/{agent_id}", content=raw, headers={"Content-Type": "application/json"})
    _sane(r)
    _sane(http.get(f"/api/v1/agents/{agent_id}"))


@SETTINGS
@given(name=path_ids, body=queue_bodies | values)
def test_queue_put(http: httpx.Client, name: str, body: Any) -> None:
    raw = _json(body)
    if raw is None:
        return
    r = http.put(f"/api/v1/queues/{name}", content=raw, headers={"Content-Type": "application/json"})
    _sane(r)
    _sane(http.get(f"/api/v1/queues/{name}"))


@SETTINGS
@given(
    path=st.sampled_from(
        [
            "/api/v1/work",
            "/api/v1/agents/fz",
            "/api/v1/queues/fz",
            "/api/v1/work/nope/cancel",
            "/api/v1/channels/voice/calls",
            "/api/v1/channels/email/inbound",
            "/api/v1/channels/chat/messages",
        ]
    ),
    raw=st.binary(max_size=400),
    ctype=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8", "x/y"]),
)
def test_raw_bodies(http: httpx.Client, path: str, raw: bytes, ctype: str) -> None:
    method = "PUT" if path.startswith(("/api/v1/agents", "/api/v1/queues")) else "POST"
    headers = {"Content-Type": ctype} if ctype else {}
    _sane(http.request(method, path, content=raw, headers=headers))
