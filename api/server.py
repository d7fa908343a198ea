"""Serve the API: `python -m api --host 0.0.0.0 --port 8000` (the launcher, the image and
compose start it so). It is uvicorn with the connection limits from Settings:

    SAM3V_API_READ_TIMEOUT_S        a client has this long to send a whole request
    SAM3V_API_LIMIT_CONCURRENCY     connections + requests in flight; past it uvicorn's 503
    SAM3V_API_KEEP_ALIVE_S          idle keep-alive connections close after this

`uvicorn api.main:app` still serves the same app, without these bounds.

Why a protocol class: uvicorn (0.54) has no timeout for reading a request. Its only
timer, timeout_keep_alive, is armed after a response, so a client that opens a connection
and sends half a request line, half its headers or half its body holds the connection,
and a slot of limit_concurrency, for as long as it likes (200 such sockets stayed open
indefinitely). Nothing in the ASGI app can help: uvicorn calls the app only once the
headers are complete. So RequestTimeoutH11Protocol, uvicorn's own h11 protocol, arms one
timer when the connection opens and again at the first byte of each later request on it
(also one pipelined behind the last), and disarms it when h11 says the whole request
(headers and body) has arrived. If it fires
first, the connection is closed: with a 408 if the headers were still incomplete (no
request reached the app); while the body is incomplete the app is already running, so it
just sees the client disconnect. Serving always uses this class (not httptools, even
where installed).
"""
from __future__ import annotations

import argparse
import functools
import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from jobstore.settings import Settings, get_settings


class RequestTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each request (see above)."""

    def __init__(self, *args: Any, read_timeout_s: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.read_timeout_s = read_timeout_s
        self._read_timer = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of another request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # DONE: the whole request is in (or the connection is closing)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms the keep-alive timer, then reads on: pipelined
        # bytes that arrived with the last request may already have begun the next one
        if self.transport.is_closing():
            return
        state, (pending, _) = self.conn.their_state, self.conn.trailing_data
        if state is h11.SEND_BODY or (state is h11.IDLE and pending):
            self._unset_keepalive_if_required()  # a request under way: the read timeout applies
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        pending, _ = self.conn.trailing_data
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE and pending:
            # Part of a request line or headers: no request exists for h11 to answer, so the
            # 408 is written as it is; the connection closes right after it.
            detail = (f"request not received within {self.read_timeout_s:g} s "
                      "(SAM3V_API_READ_TIMEOUT_S)")
            body = json.dumps({"detail": detail, "errors": []}).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n"
                                 b"content-type: application/json\r\nconnection: close\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))
        self.logger.info("%s:%s - request not received within %g s; closing the connection",
                         *(self.client or ("?", "?")), self.read_timeout_s)
        self.transport.close()


def uvicorn_config(settings: Settings, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(
        "api.main:app", host=host, port=port, log_level=log_level,
        http=functools.partial(RequestTimeoutH11Protocol,
                               read_timeout_s=settings.api_read_timeout_s),
        ws="none",  # the API has no WebSocket routes; an upgrade would leave the h11 protocol
        limit_concurrency=settings.api_limit_concurrency,
        timeout_keep_alive=settings.api_keep_alive_s,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.Server(uvicorn_config(get_settings(), args.host, args.port, args.log_level)).run()
