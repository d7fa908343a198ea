"""The OpenAPI document is fit for generated clients: stable operation ids, tags, request
examples the server accepts, and the event-stream payload described by a schema that every
real event fits."""
from __future__ import annotations

import json
import re

import jobstore
from api.routes.events import _format
from api.schemas import JOB_EXAMPLES, StreamEvent


def _operations(doc):
    return [(method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_operation_ids_are_unique_readable_names(client):
    doc = client.get("/openapi.json").json()
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z_]*", i) for i in ids), ids
    # the route function's name, nothing derived from the path or the method
    assert not [i for i in ids if "__" in i or re.search(r"_(get|post|put|delete)$", i)], ids
    assert {"create_job", "list_jobs", "get_job", "job_events", "download_checkpoint"} <= set(ids)
    assert all(op.get("tags") for _, _, op in _operations(doc))


def test_every_request_example_is_accepted(client, auth):
    doc = client.get("/openapi.json").json()
    examples = doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"train", "eval", "predict"}
    for name, example in JOB_EXAMPLES.items():
        assert examples[name]["value"] == example["value"]
        r = client.post("/jobs", json=example["value"], headers=auth["alice"])
        assert r.status_code == 201, (name, r.text)
        assert r.json()["kind"] == example["value"]["kind"]


def test_the_event_stream_schema_covers_every_event_kind(client, auth, make_job, engine):
    doc = client.get("/openapi.json").json()
    content = doc["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert content["text/event-stream"]["itemSchema"] == {"$ref": "#/components/schemas/StreamEvent"}
    documented = set(doc["components"]["schemas"]["StreamEvent"]["properties"])

    job = make_job()
    running = jobstore.claim_job(job["id"], "w", 60, engine=engine)
    jobstore.record_progress(job["id"], 3, 20, 5.0, engine=engine)
    jobstore.add_metrics(job["id"], running.attempt, [("loss", 3, 0.5, 1.0)], engine=engine)
    jobstore.add_checkpoint(job["id"], "step_3", 3, 10, "0" * 64, "/x", engine=engine)
    assert jobstore.finish_job(job["id"], running.attempt, "succeeded", None, None, engine=engine)
    with jobstore.session_scope(engine, write=False) as s:
        events = s.query(jobstore.JobEvent).filter_by(job_id=job["id"]).all()
        sent = [json.loads(_format(e).split("data: ", 1)[1]) for e in events]
        kinds = {e.kind for e in events}
    assert kinds == {"state", "progress", "metrics", "checkpoint"}
    for data in sent:
        assert set(data) <= documented, set(data) - documented
        StreamEvent.model_validate(data)
    assert client.get("/openapi.json").json()["paths"]["/jobs"]["post"]["requestBody"]["required"]
