"""Schemathesis against the OpenAPI document a real server serves
(`/openapi.json`): every operation, valid and invalid inputs, with a
supervisor token.

The contract, checked on every answer: no 500; every status, media type and
body is one the document declares; data the document calls valid is
accepted (``positive_data_acceptance``: a 2xx, or a refusal that depends on
state, such as 404 for an item that does not exist) and data it calls
invalid is refused (``negative_data_rejection``: a 4xx). Schemathesis's
coverage phase (every boundary of every schema: lengths, ranges, patterns,
missing required fields, wrong types) runs in full on every operation but
the center document (PUT /api/v1/centers/{center}: 2,185 boundary cases, most
of them its queues', which PUT /api/v1/queues/{name} covers on the same
schema); its fuzzing phase draws ``PRESENCE_FUZZ_EXAMPLES`` cases per
operation (6 in the default suite; set it higher for a longer run), ten
times as many for the center document. The run is deterministic (a fixed seed,
derandomized).

What a valid request may still not find is state: a generated queue name
names no queue, a drawn Idempotency-Key may be one an earlier case used with
another body. Cases are therefore given real state before they are sent
(`with_state`): the queue and channel an item goes to exist, its
idempotency key is its own, an agent's queues exist, and a message goes to
a messaging channel of the center. Without it, an invalid item would be
refused for its unknown queue whatever else it got wrong. Nothing else is
adjusted and no operation is left out.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from presence.app import create_app
from presence.config import Settings
from presence.http import openapi
from presence.schema import Invalid, convert
from presence.schema.center import CenterFile
from presence.schema.common import CenterId, IdempotencyKey, Name
from tests.harness import DEFAULT_CENTER, ServerProcess, token, write_center
from tests.helpers import http
from tests.integration.conftest import check_center

pytestmark = pytest.mark.timeout(600)

EXAMPLES = int(os.environ.get("PRESENCE_FUZZ_EXAMPLES", "6"))
# the center document (the centers API's PUT): fuzzed with ten times the
# cases, its coverage phase left out (CONFIG)
CENTER_DOCUMENT = "PUT /api/v1/centers/{center}"
CENTER_EXAMPLES = 10 * EXAMPLES
# refusals of invalid data the check's defaults do not list: too many items
# (413) and a form without its length (411)
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "411", "413", "415", "422", "428", "429"]

# the fuzzed center: the forms are not rate-limited (the fuzzer is fast on
# purpose) and have no categories, so any category is the default queue's
CENTER = f"{DEFAULT_CENTER}\n[intake.forms]\nrate_limit = 0\n"
# state positive cases are given: a queue of its own (the fuzzer may delete
# the center's), a channel and a messaging channel of every center
QUEUE, CHANNEL, MESSAGING = "fuzz-q", "chat", "chat"

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 13,
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
        "checks": {"negative_data_rejection": {"expected-statuses": REFUSED}},
        "operations": [
            {
                # The center document: its coverage phase was 2,185 of the
                # run's 5,700 cases (40 % of the suite's longest test), most
                # of them the boundaries of its queues, which PUT
                # /api/v1/queues/{name} covers on the same schema (1,590
                # cases). Fuzzed instead, with ten times the others' cases
                # (`test_the_center_document_conforms`).
                "include-name": CENTER_DOCUMENT,
                "phases": {"coverage": {"enabled": False}},
            }
        ],
    }
)


def _auth(path: str = "") -> dict[str, str]:
    # the centers API is the platform's; every other route a supervisor's
    role = "platform" if path.startswith("/api/v1/centers") else "supervisor"
    return {"Authorization": f"Bearer {token(role, 'fuzz')}"}


# what of a center document refers to other parts of it or to the process
# (a rule names a status, an agent a queue, a webhook an environment
# variable): left out of a valid document, it stays valid and its
# acceptance no longer depends on what the fuzzer drew elsewhere
CROSS_REFERENCES = ("statuses", "rules", "intake", "cases", "webhooks")


@pytest.fixture(scope="module")
def api_server(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    path, cid = write_center(tmp / "center.toml", CENTER)
    server = ServerProcess(
        redis_server,
        path,
        env={"PRESENCE_RATE_PER_SECOND": "100000", "PRESENCE_RATE_BURST": "100000"},
        log_dir=tmp,
    ).start()
    try:
        yield server
    finally:
        server.stop()
        logs = server.logs()
        breaches = check_center(redis_server, cid)
        assert not breaches, f"invariant breaches in center {cid}: {breaches}"
        assert "Traceback" not in logs, logs[-4000:]


@pytest.fixture(scope="module")
def api_schema(api_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{api_server.http}/openapi.json", config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


def test_served_document_is_the_apps(api_server: ServerProcess) -> None:
    served = http().get(f"{api_server.http}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.json() == openapi.document(create_app(Settings()).routes)


def _valid(value: Any, tp: Any) -> bool:
    # the server's own reading (a whole number written as a float is the
    # integer it equals), so a body it accepts is never left unadjusted here
    try:
        convert(value, tp)
    except Invalid:
        return False
    return True


def with_state(case: schemathesis.Case, server: ServerProcess) -> None:
    """Give a case the state its acceptance depends on.

    Only a value that is valid is replaced, and by another valid one: a
    positive case stays positive, and a negative case keeps what makes it
    invalid (which is then what the server must refuse, not an unknown
    queue)."""
    body = case.body if isinstance(case.body, dict) else None
    path = case.operation.path
    if path == "/api/v1/work" and body is not None:
        for name, real in (("queue", QUEUE), ("channel", CHANNEL)):
            if _valid(body.get(name), Name):
                body[name] = real
        # a key the fuzzer drew may be one it already used with another body
        key = (case.headers or {}).get("Idempotency-Key")
        if key and _valid(key, IdempotencyKey):
            case.headers["Idempotency-Key"] = f"{key[:150]}-{uuid.uuid4().hex}"
    elif path == "/api/v1/agents/{agent_id}" and case.method == "PUT" and body is not None:
        if body.get("queues") and _valid(body["queues"], list[Name]):
            body["queues"] = [QUEUE]
    elif path == "/api/v1/centers/{center}":
        center = (case.path_parameters or {}).get("center")
        if _valid(center, CenterId):
            # a center of its own (never the default one, which is the file's)
            case.path_parameters = {**(case.path_parameters or {}), "center": f"fz{uuid.uuid4().hex[:12]}"}
        if case.method == "PUT" and body is not None and _valid(body, CenterFile):
            for name in CROSS_REFERENCES:
                body.pop(name, None)
            if isinstance(body.get("center"), dict):
                body["center"].pop("id", None)
            # the status an agent signs in with must be one of the document's
            if isinstance(body.get("rules"), dict):
                body["rules"].pop("login_status", None)
            for entry in body.get("agents") or []:
                entry["queues"] = []
            for entry in body.get("queues") or []:
                entry.pop("overflow_to", None)
                entry.pop("after_hours_queue", None)
                # without the queue to overflow to, the rule that needs it goes too
                if entry.get("after_hours") == "overflow":
                    entry["after_hours"] = "queue"
        return
    elif path == "/api/v1/queues/{name}" and case.method == "PUT" and body is not None:
        # the queue new items go to outside hours must exist
        if body.get("after_hours_queue") and _valid(body["after_hours_queue"], Name):
            body["after_hours_queue"] = QUEUE
    elif path == "/api/v1/channels/{channel}/messages":
        if _valid((case.path_parameters or {}).get("channel"), Name):
            case.path_parameters = {**(case.path_parameters or {}), "channel": MESSAGING}
    else:
        return
    # the fuzzer may have deleted it: make sure it is there
    http().put(
        f"{server.http}/api/v1/queues/{QUEUE}", json={}, headers=_auth(), timeout=10
    ).raise_for_status()


@schema.exclude(name=CENTER_DOCUMENT).parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case, api_server: ServerProcess) -> None:
    conforms(case, api_server)


@schema.include(name=CENTER_DOCUMENT).parametrize()
@settings(
    max_examples=CENTER_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_the_center_document_conforms(case: schemathesis.Case, api_server: ServerProcess) -> None:
    conforms(case, api_server)


def conforms(case: schemathesis.Case, api_server: ServerProcess) -> None:
    with_state(case, api_server)
    auth = _auth(case.operation.path)
    response = case.call(base_url=api_server.http, headers=auth, timeout=10)
    try:
        case.validate_response(response, checks=CHECKS, headers=auth)
    finally:
        forget_center(case, response, api_server)


def forget_center(case: schemathesis.Case, response: Any, server: ServerProcess) -> None:
    """Remove a center a case created: each one is a runtime in the server
    (its loops, its channel), and a thousand of them left running made every
    later call slower (the run's time grew with the square of the cases)."""
    if case.operation.path != "/api/v1/centers/{center}" or case.method != "PUT":
        return
    if response.status_code in (200, 201):
        cid = response.json()["id"]
        r = http().delete(
            f"{server.http}/api/v1/centers/{cid}", headers=_auth(case.operation.path), timeout=10
        )
        assert r.status_code == 204, r.text
