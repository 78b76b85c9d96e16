"""The OpenAPI document: what FastAPI derives from the routes, plus what it cannot see.

- Bodies parsed by hand (the facilitator's hot path reads raw bytes; registry bodies are validated by the
  same rules as the command line, naming the field) are declared with :func:`body_of`, which references a
  pydantic model added to the components here.
- Request validation answers 400 ``malformed_request`` (``app.errors``), never FastAPI's 422: the
  document says so.

``docs/openapi.json`` is this document, committed; a test keeps it equal to the app
(``.venv/bin/python scripts/openapi.py > docs/openapi.json`` writes it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.errors import ErrorBody

_REF = "#/components/schemas/{model}"
_BODY_MODELS: dict[str, type[BaseModel]] = {}


def body_of(model: type[BaseModel], *, description: str = "") -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of ``model`` for a route that parses it itself."""
    _BODY_MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}}}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` build the document described above (once, then cached like FastAPI's)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            _add_body_models(document)
            _validation_errors_are_400(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _add_body_models(document: dict[str, Any]) -> None:
    if not _BODY_MODELS:
        return
    _, schemas = models_json_schema([(model, "validation") for model in _BODY_MODELS.values()], ref_template=_REF)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.get("$defs", {}).items():
        components.setdefault(name, schema)


def _validation_errors_are_400(document: dict[str, Any]) -> None:
    """FastAPI documents 422 for every route with parameters; this service answers 400 instead."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(ref_template=_REF)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path in document.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {
                    "description": "reason codes: malformed_request (a parameter or the body is invalid)",
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}},
                }
