"""Render every failure as RFC 9457 problem details with a machine-readable ``code``.

Domain errors (``NexaPodError``) carry their code and status; request validation
errors become ``protocol.*`` codes; anything unexpected is logged and answered with
a 500 that names no internals. Client input never reaches that last case.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nexapod.errors import NexaPodError

__all__ = ["PROBLEM_MEDIA_TYPE", "install_problem_handlers", "problem_response"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://nexapod.org/problems/"
VALIDATION_ERRORS_MAX = 20
logger = logging.getLogger("nexapod.coordinator")


def problem_response(
    status: int, code: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": code.replace(".", ": ").replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    headers = {"Retry-After": str(extra["retry_after_s"])} if "retry_after_s" in extra else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NexaPodError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)


async def _domain_error(request: Request, exc: NexaPodError) -> JSONResponse:
    return problem_response(
        exc.http_status, exc.code, exc.detail, instance=request.url.path, **exc.extra
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())[:VALIDATION_ERRORS_MAX]
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem_response(
            400,
            "protocol.malformed_json",
            "the request body is not valid JSON",
            instance=request.url.path,
        )
    fields = [
        {
            "location": ".".join(str(part) for part in error.get("loc", ())),
            "message": str(error.get("msg", "")),
        }
        for error in errors
    ]
    first = fields[0] if fields else {"location": "", "message": "invalid"}
    return problem_response(
        422,
        "protocol.invalid_request",
        f"{first['location']}: {first['message']}",
        instance=request.url.path,
        errors=fields,
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "protocol.not_found", 405: "protocol.method_not_allowed"}
    code = codes.get(exc.status_code, f"protocol.http_{exc.status_code}")
    return problem_response(exc.status_code, code, str(exc.detail), instance=request.url.path)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("request.failed", extra={"path": request.url.path})
    return problem_response(
        500,
        "internal",
        "the coordinator failed; the operator has the log",
        instance=request.url.path,
    )
