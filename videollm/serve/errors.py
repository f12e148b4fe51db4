"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`, the same on both engines.

The shape and the `type` names are vLLM's (its `ErrorResponse`), so a client sees one error format
whichever engine serves it; `code` is the HTTP status.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class APIError(Exception):
    """A request the server refuses: HTTP status plus a message that names the problem and the fix."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param)


def error_type(status: int) -> str:
    return TYPES.get(status) or HTTPStatus(status).phrase


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": status}}
