"""Print the service's OpenAPI document (what docs/openapi.json holds; a test keeps the two equal).

    .venv/bin/python scripts/openapi.py > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.main import create_app


def document() -> str:
    """The document as committed: the production app (no example routes), keys sorted, two-space indent."""
    app = create_app(Settings(_env_file=None, example_routes=False))  # type: ignore[call-arg]
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
