"""Issue #11, item 8: the API as it is described — schemathesis against the served
OpenAPI document (bounded examples): no 5xx, no status code the description does not
declare, one error shape everywhere, 401 with its WWW-Authenticate, docs served locally.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from docaxis.api import create_app
from docaxis.pki import DevPKI
from docaxis.transport import InMemoryBroker
from tests.relay_support import build_network, network_pki
from tests.test_relay import FAST

SENDER = "000.00.00.H43"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    folder = tmp_path_factory.mktemp("contract")
    pki: DevPKI = network_pki(folder / "pki")
    network = build_network(folder, pki, lambda _node: InMemoryBroker(FAST))
    danang = network.nodes["danang"]  # not started: submissions commit synchronously
    return create_app(danang), danang.store.issue_credential(SENDER)


@pytest.fixture(scope="module")
def web_schema(served: tuple[Any, str]) -> Any:
    app, _token = served
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("web_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_described_api_answers_as_described(case: Any, served: tuple[Any, str]) -> None:
    _app, token = served
    if case.path_parameters and "code" in case.path_parameters:
        case.path_parameters["code"] = SENDER  # the caller's own agency: past the 403
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error, status_code_conformance])


def _get(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://node") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(call())


def test_one_error_shape_everywhere(served: tuple[Any, str]) -> None:
    app, token = served
    unauthenticated = _get(app, "GET", "/v1/agencies/000.00.00.H43/inbox")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {token}"}
    answers = [unauthenticated,
               _get(app, "GET", "/no/such/path"),                       # the router's 404
               _get(app, "DELETE", "/v1/packages", headers=auth),       # the router's 405
               _get(app, "GET", "/v1/agencies/000.00.00.H43/inbox/x", headers=auth),  # 422
               _get(app, "POST", "/v1/packages", headers={**auth, "Content-Type":
                                                          "text/plain"}, content=b"x")]
    assert [a.status_code for a in answers] == [401, 404, 405, 422, 415]
    for answer in answers:
        body = answer.json()
        assert set(body) == {"error", "message", "reasons"}, body
        assert "detail" not in body
    assert answers[2].headers.get("allow")


def test_docs_are_served_from_the_package(served: tuple[Any, str]) -> None:
    app, _token = served
    page = _get(app, "GET", "/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert _get(app, "GET", "/docs/static/swagger-ui-bundle.js").status_code == 200
    spec = _get(app, "GET", "/openapi.json").json()
    post = spec["paths"]["/v1/packages"]["post"]
    assert "application/xml" in post["requestBody"]["content"]
    assert {"401", "403", "413", "422", "503"} <= set(post["responses"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"



def test_a_revoked_token_stops_working_within_the_cache_interval(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("tokens")
    network = build_network(folder, network_pki(folder / "pki"),
                            lambda _node: InMemoryBroker(FAST))
    danang = network.nodes["danang"]
    app = create_app(danang)
    token = danang.store.issue_credential(SENDER)
    auth = {"Authorization": f"Bearer {token}"}
    assert _get(app, "GET", f"/v1/agencies/{SENDER}/inbox", headers=auth).status_code == 200
    assert danang.store.revoke_credentials(SENDER) == 1
    # remembered for the cache interval (one database query per token and interval) …
    assert _get(app, "GET", f"/v1/agencies/{SENDER}/inbox", headers=auth).status_code == 200
    app.state.tokens.ttl = 0.0  # … and refused once it has passed
    refused = _get(app, "GET", f"/v1/agencies/{SENDER}/inbox", headers=auth)
    assert refused.status_code == 401 and refused.json()["error"] == "API-UNAUTHENTICATED"
