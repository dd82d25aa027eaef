"""API keys: `Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key: KEY` (Anthropic SDKs).

Keys are compared with `hmac.compare_digest` on their bytes, so the time a wrong key takes
to refuse says nothing about how much of it was right. `/health` stays open (it says
whether the server is up, nothing more) so that a supervisor or a test can wait for it,
and CORS preflights (`OPTIONS`) are answered by the CORS middleware in front of this one.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from hanlin.server.errors import ApiError, anthropic_body, is_anthropic_path, openai_body

__all__ = ["OPEN_PATHS", "AuthMiddleware", "key_matches"]

#: paths answered without a key
OPEN_PATHS = frozenset({"/health", "/"})


def key_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of the presented key with the configured one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _presented_key(scope: Scope) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key") or headers.get("api-key")


class AuthMiddleware:
    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.api_key is None
            or scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope["method"] == "OPTIONS"
            or key_matches(_presented_key(scope), self.api_key)
        ):
            await self.app(scope, receive, send)
            return
        given = _presented_key(scope) is not None
        err = ApiError(
            401,
            "Invalid API key" if given else "This server needs an API key",
            code="invalid_api_key",
        )
        body = anthropic_body(err) if is_anthropic_path(scope["path"]) else openai_body(err)
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"www-authenticate", b'Bearer realm="hanlin"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
