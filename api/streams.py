"""The per-user cap on open event streams (GET /jobs/{id}/events).

A stream holds a connection (one of SAM3V_API_LIMIT_CONCURRENCY) and polls the database
until its job finishes, so one user could otherwise hold them all. The count is per API
process: N uvicorn processes allow N x SAM3V_SSE_MAX_STREAMS_PER_USER.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import Caller
from api.errors import ApiError


class OpenStreams:
    def __init__(self, limit: int):
        self.limit = limit
        self._open: Counter[int] = Counter()
        self._lock = threading.Lock()  # taken in the route's thread, released on the loop

    def count(self, user_id: int) -> int:
        with self._lock:
            return self._open[user_id]

    def take(self, caller: Caller) -> Callable[[], None]:
        """A slot for one more stream of `caller`, or 429; returns its release (idempotent)."""
        with self._lock:
            if self._open[caller.id] >= self.limit:
                raise ApiError(429, f"user {caller.name!r} already has {self._open[caller.id]} "
                                    f"event streams open; the limit is {self.limit} "
                                    "(SAM3V_SSE_MAX_STREAMS_PER_USER): close one first",
                               [f"sse_max_streams_per_user: {self.limit} of {self.limit} in use"])
            self._open[caller.id] += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self._open[caller.id] -= 1
                    if self._open[caller.id] <= 0:
                        del self._open[caller.id]
        return release


class SlotStreamingResponse(StreamingResponse):
    """A StreamingResponse that gives its slot back however the stream ends (the job
    finished, the client went away, the server shuts down)."""

    def __init__(self, content, release: Callable[[], None], **kwargs):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
