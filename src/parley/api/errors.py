"""The one error shape of the REST API, and the handlers that make every failure use it.

`{"error": {"code": "...", "message": "...", "fields": {"email": ["..."]}}}` with the statuses of
DESIGN.md §4. Handlers raise `ApiError` (or a subclass). A database that cannot answer now
(stopped, restarting, every pooled connection busy past its wait, a statement past its timeout)
becomes 503 with Retry-After, whichever handler met it; anything else unexpected becomes a logged
500 with no stack trace in the body.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

from parley.store import database_unavailable

log = logging.getLogger(__name__)

FieldErrors = dict[str, list[str]]

# Default codes for HTTP errors raised by the framework itself (routing, body size, methods).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


UNAVAILABLE_RETRY_AFTER_SECONDS = 1
"""The Retry-After of a 503: a restarting database is back within seconds, and a client that
retries sooner only adds to the load."""


class ApiError(Exception):
    """An error answered to the client in the documented shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: FieldErrors | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}


def bad_request(message: str = "malformed request") -> ApiError:
    return ApiError(400, "bad_request", message)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str = "not allowed") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, fields: FieldErrors | None = None) -> ApiError:
    return ApiError(409, "conflict", message, fields=fields)


def invalid(fields: FieldErrors, message: str = "validation failed") -> ApiError:
    return ApiError(422, "invalid", message, fields=fields)


def rate_limited(retry_after: float) -> ApiError:
    seconds = max(1, round(retry_after + 0.499))
    return ApiError(429, "rate_limited", "too many requests", headers={"Retry-After": str(seconds)})


def unavailable(message: str) -> ApiError:
    """503 with Retry-After: nothing was done, and the same request may succeed shortly."""
    return ApiError(
        503,
        "unavailable",
        message,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


def error_body(code: str, message: str, fields: FieldErrors | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _respond(
    status: int, code: str, message: str, fields: FieldErrors | None, headers: dict[str, str]
) -> Response:
    response = jsonify(error_body(code, message, fields))
    response.status_code = status
    response.headers.update(headers)
    return response


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def handle_api_error(error: ApiError) -> Response:
        return _respond(error.status, error.code, error.message, error.fields, error.headers)

    @app.errorhandler(HTTPException)
    async def handle_http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "error")
        headers = {}
        if status == 405 and error.get_headers():
            headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
        return _respond(status, code, error.description or code, None, headers)

    @app.errorhandler(Exception)
    async def handle_unexpected(error: Exception) -> Response:
        if database_unavailable(error):
            log.warning("the database could not answer a request: %r", error)
            answer = unavailable("the database is unavailable; try again shortly")
            return _respond(answer.status, answer.code, answer.message, None, answer.headers)
        log.exception("unhandled error in request handler", exc_info=error)
        return _respond(500, "internal", "internal server error", None, {})
