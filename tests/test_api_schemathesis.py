"""Schemathesis against the API's own OpenAPI schema, in process (ASGI), with an admin token on a seeded store:
no generated request, valid or not, gets a 5xx, and every answer matches its documented schema.

``/api/v1/events`` is left out: it streams until the client goes away (tests/test_api.py covers it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from opsmind.api import create_app
from opsmind.config import Settings
from opsmind.store import Store
from test_api import NOW, seed  # the same seeded records as the route tests (conftest puts tests/ on the path)

ADMIN = "schemathesis-admin-token"
MAX_EXAMPLES = 10


STORE_DIR = Path(tempfile.mkdtemp(prefix="opsmind-schemathesis-"))


def _app() -> object:
    base = STORE_DIR
    store = Store.open(f"sqlite:///{base / 'api.db'}")
    seed(store)
    s = Settings.model_validate({"api": {"admin_token": ADMIN, "max_body_bytes": 65536}})
    return create_app(s, store=store, clock=lambda: NOW)


# remote_write bodies are bytes: send the generated binary as it is (they are all rejected with a 400, none a 5xx)
schemathesis.serializer.alias("application/x-protobuf", "application/octet-stream")
schema = schemathesis.openapi.from_asgi("/openapi.json", _app()).exclude(path="/api/v1/events")


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield None
    shutil.rmtree(STORE_DIR, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_server_errors(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"},
                           checks=[not_a_server_error, response_schema_conformance])
