"""The OpenAPI document, with the job spec schemas from sam3_video.config.

POST /jobs takes `config` as a plain object (validated by sam3_video.config.parse_config,
which picks the model by `kind`); here we only document it as TrainConfig | EvalConfig so
frontends and schema-driven tests see the real fields.
"""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from sam3_video.config import EvalConfig, TrainConfig

REF = "#/components/schemas/{model}"


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            _, defs = models_json_schema([(TrainConfig, "validation"), (EvalConfig, "validation")],
                                         ref_template=REF)
            schema["components"]["schemas"].update(defs["$defs"])
            config = schema["components"]["schemas"]["JobCreate"]["properties"]["config"]
            config.pop("additionalProperties", None)
            config.pop("type", None)
            config["oneOf"] = [{"$ref": REF.format(model="TrainConfig")},
                               {"$ref": REF.format(model="EvalConfig")}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
