"""The OpenAPI document, with the job spec schemas from sam3_video.config.

POST /jobs takes `config` as a plain object (validated by sam3_video.config.parse_config,
which picks the model by `kind`); here we only document it as TrainConfig | EvalConfig |
PredictConfig so frontends and schema-driven tests see the real fields.
"""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api.schemas import StreamEvent
from sam3_video.config import EvalConfig, PredictConfig, TrainConfig

REF = "#/components/schemas/{model}"


def operation_id(route) -> str:
    """The route function's name (create_job, download_checkpoint...): stable and readable
    method names for generated clients, instead of FastAPI's name+path+method."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            _, defs = models_json_schema([(TrainConfig, "validation"), (EvalConfig, "validation"),
                                          (PredictConfig, "validation"),
                                          (StreamEvent, "serialization")], ref_template=REF)
            schema["components"]["schemas"].update(defs["$defs"])
            config = schema["components"]["schemas"]["JobCreate"]["properties"]["config"]
            config.pop("additionalProperties", None)
            config.pop("type", None)
            config["oneOf"] = [{"$ref": REF.format(model="TrainConfig")},
                               {"$ref": REF.format(model="EvalConfig")},
                               {"$ref": REF.format(model="PredictConfig")}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
