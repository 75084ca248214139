"""Property-based run of the API against its own OpenAPI schema: no input makes it fail (5xx)."""

import atexit
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings

from app.auth import TokenStore
from app.main import create_app
from app.settings import Settings


def _app(tmp_dir):
    config = Settings(data_dir=tmp_dir, max_model_bytes=4096, max_data_bytes=4096)
    token = TokenStore(config.tokens_file).create("fuzz")
    return create_app(config, start_workers=False), token


_DATA = tempfile.mkdtemp(prefix="aconnect-fuzz-")
atexit.register(shutil.rmtree, _DATA, ignore_errors=True)
APP, TOKEN = _app(_DATA)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                           checks=[schemathesis.checks.not_a_server_error])
