"""HTTP errors as RFC 9457 problem details (``application/problem+json``).

Every refusal of the HTTP API is a `Problem`: a status, a short title, a
sentence saying what was wrong and, for a bad field, which one (``field``,
as a person names it: ``items[2].skills.english``) and where it is in the
body (``pointer``, a JSON Pointer: ``/items/2/skills/english``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    411: "Length required",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid field",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        pointer: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.code = code
        self.headers = headers or {}
        self.pointer = pointer

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": f"https://presence.dev/problems/{self.code or self.status}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        if self.pointer is not None:
            out["pointer"] = self.pointer
        return out

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type=MEDIA_TYPE,
            headers=self.headers,
        )


# Lua script error codes -> HTTP status (presence/http/errors.py answers with
# it; an unknown code is a 400). "internal": a script that raised instead of
# refusing (a batched call's pcall caught it), the server's fault.
# "closed": voice intake into a queue outside its hours that refuses it (its
# message is the problem's detail, for the IVR to speak).
SCRIPT_STATUS = {
    "not_found": 404,
    "not_yours": 403,
    "conflict": 409,
    "closed": 409,
    "invalid": 422,
    "internal": 500,
    "unavailable": 503,
}
