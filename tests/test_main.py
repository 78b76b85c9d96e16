"""The application as a whole: its OpenAPI document builds cleanly (it is what /docs serves)."""

import warnings

from app.config import Settings
from app.main import create_app


def test_openapi_document_builds_without_warnings(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, example_routes=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document = app.openapi()
    paths = document["paths"]
    for path in ("/verify", "/settle", "/supported", "/health", "/ledger/attribution", "/ledger/export",
                 "/ledger/reconcile", "/capabilities/{capability_id}", "/discovery/resources",
                 "/cap/{capability_id}/{path}", "/examples/forecast"):
        assert path in paths, path
