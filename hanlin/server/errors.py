"""API errors, and how each dialect spells them.

OpenAI clients expect `{"error": {"message", "type", "param", "code"}}`; Anthropic's
`{"type": "error", "error": {"type", "message"}}`. The SDKs turn the status code into
their exception classes (404 → NotFoundError, 401 → AuthenticationError, ...) and show
the message, so every refusal here says what happened and what to do, like the CLI's
one-line errors.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["ApiError", "anthropic_body", "error_response", "is_anthropic_path", "openai_body"]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    503: "server_error",
    500: "server_error",
}


class ApiError(Exception):
    """A request the server refuses or could not serve, with the HTTP status to answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}


def is_anthropic_path(path: str) -> bool:
    return path.startswith("/v1/messages")


def openai_body(err: ApiError) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message,
            "type": _OPENAI_TYPES.get(err.status, "invalid_request_error"),
            "param": err.param,
            "code": err.code,
        }
    }


def anthropic_body(err: ApiError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPES.get(err.status, "api_error"), "message": err.message},
    }


def error_response(err: ApiError, path: str) -> JSONResponse:
    body = anthropic_body(err) if is_anthropic_path(path) else openai_body(err)
    return JSONResponse(body, status_code=err.status, headers=err.headers)
