"""Errors as ``application/problem+json`` (RFC 9457), each with a stable ``code``.

Handlers raise :class:`Problem`; the app turns it (and Starlette's own 404 and 405) into a
problem document: ``type`` (a URN naming the code), ``title``, ``status``, ``detail``,
``code``, and any extra members. Clients branch on ``code``, never on ``detail``'s wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from worker.errors import CableIngestError

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:cable-ingest:problem:"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(CableIngestError):
    """A request refused with an HTTP ``status`` and a stable ``code``; ``detail`` for people."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def document(self) -> dict[str, Any]:
        """The problem document."""
        return {
            "type": TYPE_PREFIX + self.code,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }

    def response(self) -> Response:
        """The problem as a response."""
        return Response(
            orjson.dumps(self.document()), self.status, self.headers, media_type=MEDIA_TYPE
        )


class ClientGone(CableIngestError):
    """Signal: the client disconnected mid-request; nothing is answered."""


def not_found(what: str) -> Problem:
    """404 ``not_found``: the same answer whether a thing is absent or above one's clearance."""
    return Problem(404, "not_found", f"no {what}")


async def handle_problem(_request: Request, error: Exception) -> Response:
    """Exception handler: a :class:`Problem` as its document."""
    assert isinstance(error, Problem)
    return error.response()


async def handle_http_exception(_request: Request, error: Exception) -> Response:
    """Exception handler: Starlette's own errors (unknown route, wrong method) as problems."""
    assert isinstance(error, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(error.status_code, f"http_{error.status_code}")
    problem = Problem(error.status_code, code, str(error.detail), headers=error.headers)
    return problem.response()


async def handle_client_gone(_request: Request, _error: Exception) -> Response:
    """Exception handler: the client left; answer briefly (nobody reads it) and log nothing."""
    return Problem(400, "client_gone", "the client disconnected").response()
