"""docs/openapi.json is the app's OpenAPI document: regenerate it when a route changes.

    .venv/bin/python scripts/openapi.py > docs/openapi.json
"""

from __future__ import annotations

import json
from pathlib import Path

from scripts.openapi import document

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def test_the_committed_openapi_document_is_the_apps():
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == json.loads(document()), (
        "docs/openapi.json is out of date: run .venv/bin/python scripts/openapi.py > docs/openapi.json")


def test_every_operation_declares_its_answers_and_no_422():
    operations = [(path, method, operation) for path, item in json.loads(document())["paths"].items()
                  for method, operation in item.items()]
    assert len(operations) >= 20
    for path, method, operation in operations:
        answers = operation["responses"]
        assert "422" not in answers, (method, path)  # this service answers 400 malformed_request
        assert any(code.startswith("2") for code in answers), (method, path)
        for code, answer in answers.items():
            assert answer.get("content") or method == "head" or code == "204", (method, path, code)
        if method in ("post", "put", "patch") and not path.startswith("/cap/"):
            assert "requestBody" in operation, (method, path)
