"""The HTTP API: `python -m api` (uvicorn with connection limits; `uvicorn api.main:app` works too).

It validates and stores jobs, and serves their state, metrics, logs, events and
checkpoints. What it shares with the worker and the launcher is in jobstore/ (the job
store and its migrations, the Settings, queues, the one Celery producer, tokens); the job
spec and the run-directory names are sam3_video.config and sam3_video.run_layout. The API
imports nothing of worker/ or deploy/.

Modules:
    main        create_app(settings): migrations on start, routers, middleware, error bodies
    server      python -m api: uvicorn with Settings' connection limits, a request read timeout
    deps        route dependencies: SettingsDep, EngineDep, TelemetryDep, CurrentUser, VisibleJob
    auth        Caller and the bearer-token lookup (tokens are created by jobstore.tokens)
    validation  a POSTed job: spec, paths (sam3_video.config.resolve_paths), datasets, GPUs
    views       store rows -> response bodies (progress, ETA, metrics, evaluation)
    routes/     jobs, metrics and logs, events (SSE), checkpoints, health
    streams     the per-user cap on open event streams
    schemas, errors, middleware, openapi, telemetry
"""
