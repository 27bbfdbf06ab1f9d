"""Schemathesis against the published OpenAPI document (`/openapi.json`):
every operation, generated inputs (valid and invalid), with a supervisor
token. No answer is a 500, every status and body is one the document
declares, and the document served equals the one tested."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from presence.app import create_app
from presence.config import Settings
from presence.http import openapi
from tests.harness import ServerProcess, token

pytestmark = pytest.mark.timeout(120)

DOCUMENT = openapi.document(create_app(Settings()).routes)
schema = schemathesis.openapi.from_dict(DOCUMENT)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_served_document_is_the_tested_one(fuzz_server: ServerProcess) -> None:
    served = httpx.get(f"{fuzz_server.http}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.json()["paths"].keys() == DOCUMENT["paths"].keys()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms(case: schemathesis.Case, fuzz_server: ServerProcess) -> None:
    response = case.call(
        base_url=fuzz_server.http,
        headers={"Authorization": f"Bearer {token('supervisor', 'fuzz')}"},
        timeout=10,
    )
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    case.validate_response(
        response,
        checks=CHECKS,
    )
