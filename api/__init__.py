"""The HTTP API: `uvicorn api.main:app`.

It validates and stores jobs, and serves their state, metrics, logs, events and
checkpoints. What it shares with the worker and the launcher is in jobstore/ (the job
store and its migrations, the Settings, queues, the one Celery producer, tokens); the job
spec and the run-directory names are sam3_video.config and sam3_video.run_layout. The API
imports nothing of worker/ or deploy/.

Modules:
    main        create_app(settings): migrations on start, routers, middleware, error bodies
    deps        route dependencies: SettingsDep, EngineDep, TelemetryDep, CurrentUser, VisibleJob
    auth        Caller and the bearer-token lookup (tokens are created by jobstore.tokens)
    validation  a POSTed job: spec, paths (sam3_video.config.resolve_paths), datasets, GPUs
    views       store rows -> response bodies (progress, ETA, metrics, evaluation)
    routes/     jobs, metrics and logs, events (SSE), checkpoints, health
    schemas, errors, middleware, openapi, telemetry
"""
