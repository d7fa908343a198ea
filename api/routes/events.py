"""Server-Sent Events from the job_events table. Event ids are the table's ids, so a
client that reconnects with Last-Event-ID (even to a restarted API) misses nothing."""
from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, select

import jobstore
from api.deps import CurrentUser, EngineDep, OpenStreamsDep, SettingsDep, VisibleJob
from api.errors import ApiError, responses
from api.streams import SlotStreamingResponse
from jobstore.settings import Settings

router = APIRouter(prefix="/jobs/{job_id}", tags=["jobs"])
BATCH = 500


def _fetch(engine, job_id: int, after: int) -> tuple[list[jobstore.JobEvent], str | None]:
    """Events after `after` and the job's state, read in one snapshot."""
    with jobstore.session_scope(engine, write=False) as s:
        state = s.scalar(select(jobstore.Job.state).where(jobstore.Job.id == job_id))
        events = list(s.scalars(select(jobstore.JobEvent)
                                .where(jobstore.JobEvent.job_id == job_id, jobstore.JobEvent.id > after)
                                .order_by(jobstore.JobEvent.id).limit(BATCH)))
    return events, state


EVENT_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() also takes "²"


def parse_event_id(header: str) -> int:
    """A Last-Event-ID value as an int, or 400 naming the header."""
    value = header.strip()
    if not EVENT_ID.fullmatch(value) or int(value) > 2**62:
        raise ApiError(400, "Last-Event-ID header: must be an event id (a non-negative integer "
                            f"of ASCII digits, at most 2**62), got {header[:30]!r}")
    return int(value)


def _format(event: jobstore.JobEvent) -> str:
    data = {**event.data, "job_id": event.job_id, "time": event.created_at}
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"


async def _stream(request: Request, engine: Engine, settings: Settings, job_id: int, after: int):
    last_sent = time.monotonic()
    while True:
        events, state = await anyio.to_thread.run_sync(_fetch, engine, job_id, after)
        for event in events:
            yield _format(event)
            after = event.id
        # The final state event is written with the state, so once finished and drained: done.
        if state is None or (state in jobstore.FINISHED_STATES and len(events) < BATCH):
            return
        if events:
            last_sent = time.monotonic()
            continue
        if await request.is_disconnected():
            return
        if time.monotonic() - last_sent > settings.sse_keepalive_seconds:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(settings.sse_poll_seconds)


@router.get("/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {
              "schema": {"type": "string", "description": "a stream of SSE messages, each "
                         "`id: <event id>`, `event: <kind>`, `data: <StreamEvent JSON>`"},
              "itemSchema": {"$ref": "#/components/schemas/StreamEvent"},
              "example": 'id: 7\nevent: progress\ndata: {"step": 12, "max_steps": 20, '
                         '"eta_seconds": 8.5, "job_id": 3, "time": 1764700000.0}\n\n'}},
          "description": "events (kinds: state, progress, metrics, checkpoint, webhook); "
                         "the stream ends once the job is finished and every event was sent"},
    **responses(400, 401, 404, 422, 429)})
def job_events(request: Request, job: VisibleJob, caller: CurrentUser, settings: SettingsDep,
               engine: EngineDep, open_streams: OpenStreamsDep,
               last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=30)] = None,
               after: Annotated[int | None, Query(ge=0, le=2**62, description="like Last-Event-ID")] = None):
    """Server-Sent Events of this job, from after Last-Event-ID (or ?after=). A user may
    have SAM3V_SSE_MAX_STREAMS_PER_USER streams open; one more is a 429."""
    start = after or 0
    if last_event_id is not None:
        start = parse_event_id(last_event_id)
    release = open_streams.take(caller)  # the last step before the response: it releases
    return SlotStreamingResponse(_stream(request, engine, settings, job.id, start), release,
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
