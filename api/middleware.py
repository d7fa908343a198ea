"""ASGI middleware: request body limit (413) and request latency for /metrics; and the
filter that keeps query strings out of uvicorn's access log."""
from __future__ import annotations

import logging
import re
import time

from fastapi import HTTPException

from api.errors import error_response


# Dataset uploads stream to disk under their own limit (SAM3V_UPLOAD_MAX_BYTES, enforced
# by the route while it reads), not the JSON body limit.
STREAMED_UPLOADS = re.compile(r"^/datasets/[^/]+/?$")


class BodySizeLimit:
    """Refuse bodies over `max_bytes`: by Content-Length up front, or while streaming.
    PUT /datasets/{name} is exempt (its route limits the upload)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "PUT" and STREAMED_UPLOADS.match(scope["path"]):
            return await self.app(scope, receive, send)
        message = f"request body larger than {self.max_bytes} bytes (SAM3V_MAX_BODY_BYTES)"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():  # bytes.isdigit(): ASCII digits only
                    return await error_response(400, "Content-Length header: not a number")(scope, receive, send)
                # Digits counted first: int() refuses more than 4300 of them (was a 500).
                digits = value.lstrip(b"0") or b"0"
                if len(digits) > 18 or int(digits) > self.max_bytes:
                    return await error_response(413, message)(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI re-raises HTTPException from body parsing -> our 413 handler.
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, limited_receive, send)


class RequestTimer:
    """Observe time to first response byte per (method, route template, status)."""

    def __init__(self, app, histogram):
        self.app, self.histogram = app, histogram

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def timed_send(message):
            if message["type"] == "http.response.start":
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                self.histogram.labels(scope["method"], path, str(message["status"])).observe(
                    time.perf_counter() - start)
            await send(message)

        await self.app(scope, receive, timed_send)


class ScrubQueryStrings(logging.Filter):
    """Drop the query string from the request paths in uvicorn's access log lines
    ('%s - "%s %s HTTP/%s" %d', the path with its query third): a token someone put in
    the URL (`?token=`, as browsers' EventSource cannot set headers) or any other query
    value never reaches logs/api.log. The path itself stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] if isinstance(arg, str) and arg.startswith("/") else arg
                for arg in record.args)
        return True


def scrub_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install ScrubQueryStrings on uvicorn's access logger (once per process; uvicorn
    configures its loggers before it imports the app, so the filter stays)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ScrubQueryStrings) for f in logger.filters):
        logger.addFilter(ScrubQueryStrings())
