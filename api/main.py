"""The ASGI app: `uvicorn api.main:app`. Settings come from SAM3V_* environment variables
(api/settings.py); the database is migrated on start."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import jobstore
from api.errors import install_error_handlers
from api.middleware import BodySizeLimit, RequestTimer, scrub_access_log
from api.openapi import install_openapi, operation_id
from api.streams import OpenStreams
from api.routes import checkpoints, datasets, events, health, jobs, metrics, results, ui
from jobstore.settings import Settings, get_settings
from api.telemetry import Telemetry
from api.webhooks import WebhookSender


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    scrub_access_log()  # no query string (a ?token=...) in the access log

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        jobstore.migrate(settings, engine=app.state.engine)
        settings.runs_root.mkdir(parents=True, exist_ok=True)
        sender = WebhookSender(settings, app.state.engine)
        sender.start()
        yield
        sender.stop()

    app = FastAPI(title="SAM3 video fine-tuning service", version="0.1.0", lifespan=lifespan,
                  generate_unique_id_function=operation_id,
                  description="Submit SAM3 training/evaluation jobs, follow them, fetch "
                              "metrics and checkpoints. Bearer token on every route except "
                              "/healthz, /readyz and the docs.")
    app.state.settings = settings
    app.state.engine = jobstore.get_engine(settings)
    app.state.telemetry = Telemetry()
    app.state.open_streams = OpenStreams(settings.sse_max_streams_per_user)
    install_error_handlers(app)
    install_openapi(app)
    for router in (jobs.router, metrics.router, events.router, checkpoints.router,
                   datasets.router, results.router, health.router, ui.router):
        app.include_router(router)
    # Outermost last: timing sees everything, the body limit runs before any parsing.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           expose_headers=["Location", "ETag", "X-Checksum-Sha256", "Content-Range"])
    app.add_middleware(RequestTimer, histogram=app.state.telemetry.latency)
    return app


app = create_app()
