"""One error body for every failure: {"detail": "...", "errors": ["field: problem", ...]}.

Each message names the field, header or file at fault, so a client can fix its request.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import MAX_CONFIG_DEPTH


class ErrorBody(BaseModel):
    detail: str
    errors: list[str] = []


class ApiError(Exception):
    def __init__(self, status: int, detail: str, errors: list[str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors or [], headers


def error_response(status: int, detail: str, errors=None, headers=None) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=errors or []).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "json_invalid":
        reason = (err.get("ctx") or {}).get("error", "")
        return f"body: malformed JSON ({reason})" if reason else "body: malformed JSON"
    return f"{loc}: {err.get('msg')}"


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_describe(e) for e in exc.errors()]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return error_response(400, errors[0], errors)
    return error_response(422, "invalid request: " + errors[0] if errors else "invalid request", errors)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    body_error = _body_parse_error(exc)
    if body_error is not None:
        return body_error
    return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


def _body_parse_error(exc: StarletteHTTPException) -> JSONResponse | None:
    """FastAPI answers a body that json.loads raised on with a bare 400 "There was an error
    parsing the body" (raised from the parser's exception). Name the body and the reason:
    nesting deeper than the parser's recursion allows, an integer beyond Python's digit
    limit, undecodable bytes."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None or isinstance(cause, StarletteHTTPException):
        return None
    if isinstance(cause, RecursionError):
        message = (f"body: JSON nested too deeply to parse (a job config may nest at most "
                   f"{MAX_CONFIG_DEPTH} levels)")
        return error_response(422, message, [message])
    if isinstance(cause, ValueError):
        message = f"body: malformed JSON ({cause})"[:300]
        return error_response(400, message, [message])
    return None


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.detail, exc.errors, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ApiError, _api_error)


_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, cursor or header)",
    401: "Missing or malformed bearer token, or an invalid, expired or revoked one",
    403: "The route is for admins only",
    404: "No such job (or not yours), checkpoint or log",
    409: "The job's state does not allow this, or Idempotency-Key reused with another body",
    413: "Request body larger than SAM3V_MAX_BODY_BYTES",
    416: "Requested range or offset lies beyond the file",
    422: "Invalid fields; each error names the field",
    429: "A limit was reached (the detail names it, e.g. SAM3V_MAX_ACTIVE_JOBS_PER_USER)",
    503: "Database or broker unreachable",
}


def responses(*codes: int) -> dict:
    """OpenAPI documentation of the error responses a route can return."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}
