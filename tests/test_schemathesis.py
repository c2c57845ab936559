"""A bounded schemathesis run over the whole OpenAPI spec: no 5xx, no schema violations.

The app runs in-process (ASGI) over a real on-disk collection; every request carries an admin
key so ingest, delete and key admin are exercised too.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402
from edgerag.server.auth import KeyStore  # noqa: E402

CONFIG = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
_DIR = Path(tempfile.mkdtemp(prefix="edgerag-schemathesis-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)  # module-level: no fixture owns it
_ENGINE = Engine.open(_DIR, CONFIG)
_ENGINE.ingest([("pump.md", b"# Pump\n\nReplace the seal when the pump leaks at the shaft.")])
_, ADMIN = KeyStore(_DIR).create("admin", "schemathesis")
APP = create_app(ServerSettings(db=_DIR, max_upload_bytes=1 << 20), engine=_ENGINE)

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

# A schema can't say "a parseable PDF" or "a photo": for bodies carrying content, a
# schema-valid request may still be bad input (422/400). Every other check still applies,
# including "no 5xx" and response-schema conformance.
CONTENT_BODIES = {"/ingest", "/search", "/ask", "/answer"}


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms(case: schemathesis.Case) -> None:
    # Never revoke the key the run itself uses.
    if case.path == "/admin/keys/{key_id}" and case.method == "DELETE":
        case.path_parameters = {"key_id": "0000ffff"}
    excluded = []
    if case.path in CONTENT_BODIES:
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"X-API-Key": ADMIN}, excluded_checks=excluded)


def teardown_module() -> None:
    _ENGINE.close()
