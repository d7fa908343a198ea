"""Property-based requests from the OpenAPI schema: no input may cause a server error.

Bounded examples per operation so it stays a few seconds. The SSE stream is left out:
for a live job it (correctly) never ends; its errors are tested in test_data_routes.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import DataGenerationMethod
from schemathesis.checks import not_a_server_error

import jobstore

schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI emits OpenAPI 3.1

@pytest.fixture
def api_schema(app, client, auth, make_job, engine):
    job = make_job()  # job 1 exists, so /jobs/{job_id}/... reaches real handlers
    jobstore.claim_job(job["id"], "w", 60, engine=engine)
    jobstore.add_metrics(job["id"], 1, [("loss", s, 1.0, float(s)) for s in range(5)], engine=engine)
    app.state.schemathesis_headers = auth["alice"]
    return schemathesis.from_dict(app.openapi(), app=app, data_generation_methods=[
        DataGenerationMethod.positive, DataGenerationMethod.negative])


schema = schemathesis.from_pytest_fixture("api_schema").exclude(path_regex=r"/events$")


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, app):
    response = case.call(headers=app.state.schemathesis_headers)
    case.validate_response(response, checks=(not_a_server_error,))
