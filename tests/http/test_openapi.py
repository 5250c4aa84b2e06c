"""The committed OpenAPI document is what the app serves, and it describes exactly the app's
routes and the problem codes the code can raise."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from worker.http.app import ROUTES
from worker.http.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "openapi.json"


def test_the_committed_file_is_the_apps_document(client: Any) -> None:
    """schemas/openapi.json equals /openapi.json (regenerate: python -m worker.http.openapi)."""
    served = client.get("/openapi.json").json()
    assert orjson.loads(COMMITTED.read_bytes()) == served


def test_the_document_describes_every_route_and_no_other() -> None:
    """(path, method) pairs of the document and of the app's routes are the same set."""
    documented = {(path, method.upper()) for path, item in openapi_document()["paths"].items()
                  for method in item}  # fmt: skip
    routed = {(route.path, method) for route in ROUTES for method in route.methods or ()
              if method != "HEAD"}  # fmt: skip
    assert documented == routed


def test_every_problem_code_raised_is_documented() -> None:
    """Each code passed to a Problem in worker/http is in the Problem schema's enum."""
    sources = "\n".join(p.read_text() for p in (ROOT / "worker" / "http").glob("*.py"))
    raised = set(re.findall(r'Problem\(\s*\d{3},\s*"([a-z_]+)"', sources))
    raised |= set(re.findall(r'unavailable\(\s*"([a-z_]+)"', sources))
    enum = set(openapi_document()["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    assert raised
    assert raised <= enum
