"""API authentication end to end: static tokens and JWTs from a local identity provider over
real HTTP, every route of both API versions by scope, and the operator routes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.identity import AUDIENCE, IdentityProvider, identity_provider, unsigned_token
from trigger_daemon.adapters.api import (
    ApiAuth,
    Authenticator,
    JwksCache,
    JwtAuthenticator,
    StaticTokens,
    create_api,
    serving,
)
from trigger_daemon.core.triggers import parse_definition
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

READ, WRITE = "orchestration:read", "orchestration:write"
GATEWAY = "/api/orchestration"
TRIGGER = {"event": "SAVED_PAYMENT", "workflowID": "wf-1", "vars": {"id": "event.id"}}

# (method, path, body, success status): {id} is a trigger created just before the call.
ROUTES = [
    ("GET", "/_info", None, 200),
    ("GET", "/triggers", None, 200),
    ("POST", "/triggers", TRIGGER, 201),
    ("GET", "/triggers/{id}", None, 200),
    ("DELETE", "/triggers/{id}", None, 204),
    ("GET", "/triggers/{id}/occurrences", None, 200),
    ("GET", "/v2/_info", None, 200),
    ("GET", "/v2/triggers", None, 200),
    ("POST", "/v2/triggers", TRIGGER, 201),
    ("GET", "/v2/triggers/{id}", None, 200),
    ("DELETE", "/v2/triggers/{id}", None, 204),
    ("GET", "/v2/triggers/{id}/occurrences", None, 200),
    ("POST", "/v2/triggers/{id}/test", {"id": "pay-1"}, 200),
    ("POST", "/v2/triggers/test", {"trigger": TRIGGER, "event": {"id": "pay-1"}}, 200),
    ("GET", f"{GATEWAY}/v2/triggers", None, 200),
    ("POST", f"{GATEWAY}/triggers", TRIGGER, 201),
    ("DELETE", f"{GATEWAY}/v2/triggers/{{id}}", None, 204),
]

STATIC = {
    "read": "read-token-0123456789abcdef",
    "write": "write-token-0123456789abcdef",
    "other": "other-token-0123456789abcdef",
}


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with identity_provider() as provider:
        yield provider


@asynccontextmanager
async def served(
    catalog: TriggerCatalog, store: Store, auth: ApiAuth | None, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(catalog, store, version="9.9.9-test", auth=auth, **options)
    async with (
        serving(app, host="127.0.0.1", port=0) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        yield http


def static_tokens() -> StaticTokens:
    return StaticTokens(
        [
            (STATIC["read"], [READ]),
            (STATIC["write"], [WRITE]),
            (STATIC["other"], ["ledger:read", "payments:write"]),
        ]
    )


def jwt_authenticator(idp: IdentityProvider, **cache: Any) -> JwtAuthenticator:
    return JwtAuthenticator(JwksCache(idp.jwks_url, **cache), issuer=idp.issuer, audience=AUDIENCE)


def credentials(kind: str, idp: IdentityProvider) -> dict[str, str | None]:
    """The bearer token for each kind of caller (None: no Authorization header)."""
    if kind == "token":
        tokens: dict[str, str | None] = dict(STATIC)
    else:
        tokens = {
            "read": idp.token([READ, "openid"]),
            "write": idp.token(WRITE),
            "other": idp.token("ledger:read payments:write"),
        }
    return {**tokens, "missing": None, "wrong": "not-a-valid-token-at-all"}


def expected_status(method: str, success: int, who: str) -> int:
    if who in ("missing", "wrong"):
        return 401
    if who == "other" or (who == "read" and method != "GET"):
        return 403
    return success


def headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorCode", "errorMessage"}
    assert body["errorCode"] == "VALIDATION"


@pytest.mark.parametrize("kind", ["token", "jwt"])
@pytest.mark.parametrize(("method", "path", "body", "success"), ROUTES)
async def test_each_route_answers_401_403_or_success_by_scope(
    catalog: TriggerCatalog,
    store: Store,
    idp: IdentityProvider,
    kind: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    success: int,
) -> None:
    authenticator: Authenticator = static_tokens() if kind == "token" else jwt_authenticator(idp)
    async with served(catalog, store, ApiAuth(authenticator)) as http:
        for who, token in credentials(kind, idp).items():
            trigger = await catalog.create(parse_definition(TRIGGER))
            response = await http.request(
                method, path.format(id=trigger.id), json=body, headers=headers(token)
            )

            wanted = expected_status(method, success, who)
            assert response.status_code == wanted, f"{who}: {response.text}"
            if wanted == 401:
                assert_error(response, 401)
                challenge = response.headers["WWW-Authenticate"]
                assert challenge.startswith('Bearer realm="trigger-daemon"')
                assert ('error="invalid_token"' in challenge) == (token is not None)
            elif wanted == 403:
                assert_error(response, 403)
                scope = READ if method == "GET" else WRITE
                assert (
                    f'error="insufficient_scope", scope="{scope}"'
                    in (response.headers["WWW-Authenticate"])
                )
                assert scope in response.json()["errorMessage"]
            if token is not None:
                assert token not in response.text


async def test_health_and_readiness_stay_open_and_metrics_follow_the_setting(
    catalog: TriggerCatalog, store: Store
) -> None:
    async with served(catalog, store, ApiAuth(static_tokens())) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/openapi.json")).status_code == 200

    async with served(catalog, store, ApiAuth(static_tokens(), protect_metrics=True)) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert_error(await http.get("/metrics"), 401)
        other = await http.get("/metrics", headers=headers(STATIC["other"]))
        assert_error(other, 403)
        metrics = await http.get("/metrics", headers=headers(STATIC["read"]))
        assert metrics.status_code == 200
        assert "# HELP" in metrics.text


async def test_the_openapi_document_declares_the_bearer_scheme_only_when_auth_is_on(
    catalog: TriggerCatalog, store: Store
) -> None:
    async with served(catalog, store, ApiAuth(static_tokens())) as http:
        document = (await http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert document["paths"]["/v2/triggers"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]

    async with served(catalog, store, None) as http:
        open_document = (await http.get("/openapi.json")).json()
    assert "securitySchemes" not in open_document.get("components", {})


async def test_the_bearer_scheme_is_case_insensitive_and_other_schemes_are_refused(
    catalog: TriggerCatalog, store: Store
) -> None:
    async with served(catalog, store, ApiAuth(static_tokens())) as http:
        lower = await http.get(
            "/v2/triggers", headers={"Authorization": f"bearer {STATIC['read']}"}
        )
        basic = await http.get("/v2/triggers", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        raw = await http.get("/v2/triggers", headers={"Authorization": STATIC["read"]})
    assert lower.status_code == 200
    assert_error(basic, 401)
    assert_error(raw, 401)


# JWT: every way a token can be wrong


def bad_tokens(idp: IdentityProvider) -> dict[str, str]:
    public_pem = (
        idp.keys["key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    good = idp.token(WRITE)
    header, payload, signature = good.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(
            b'"orchestration:write"', b'"orchestration:admin"'
        )
    ).decode()
    now = int(time.time())
    return {
        "wrong issuer": idp.token(WRITE, issuer="https://evil.example/api/auth"),
        "wrong audience": idp.token(WRITE, audience="ledger"),
        "expired": idp.token(WRITE, expires_in=-120),
        "alg none": unsigned_token(
            {"iss": idp.issuer, "aud": AUDIENCE, "exp": now + 300, "scope": WRITE}
        ),
        "HS256 keyed with the public key": jwt.encode(
            {"iss": idp.issuer, "aud": AUDIENCE, "exp": now + 300, "scope": WRITE},
            public_pem[27:91],  # PyJWT refuses a whole PEM as an HMAC key; its base64 will do
            algorithm="HS256",
            headers={"kid": "key-1"},
        ),
        "tampered payload": f"{header}.{forged_payload}.{signature}",
        "signed by an unpublished key": idp.token(WRITE, kid="rogue"),
        "no exp": idp.token(WRITE, exp=None),
        "garbage": "abc.def.ghi",
    }


async def test_jwts_that_are_wrong_in_any_way_are_refused(
    catalog: TriggerCatalog, store: Store, idp: IdentityProvider
) -> None:
    idp.add_key("rogue", publish=False)
    async with served(catalog, store, ApiAuth(jwt_authenticator(idp))) as http:
        assert (await http.get("/v2/triggers", headers=headers(idp.token(READ)))).status_code == 200
        for what, token in bad_tokens(idp).items():
            response = await http.post("/v2/triggers", json=TRIGGER, headers=headers(token))
            assert response.status_code == 401, f"{what}: {response.text}"
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], what
            assert token not in response.text
    assert await store.list_triggers() == []


async def test_expiry_tolerates_the_configured_leeway(idp: IdentityProvider) -> None:
    authenticator = JwtAuthenticator(
        JwksCache(idp.jwks_url), issuer=idp.issuer, audience=AUDIENCE, leeway_seconds=60
    )
    principal = await authenticator.authenticate(idp.token(READ, expires_in=-30))
    assert principal.scopes == {READ}
    with pytest.raises(Exception, match="expired"):
        await authenticator.authenticate(idp.token(READ, expires_in=-90))


async def test_keys_are_cached_and_refetched_for_an_unknown_kid(idp: IdentityProvider) -> None:
    authenticator = jwt_authenticator(idp, min_refresh_seconds=0)
    before = idp.jwks_requests
    for _ in range(3):
        await authenticator.authenticate(idp.token(READ))
    assert idp.jwks_requests == before + 1  # fetched once, then cached

    idp.add_key("key-2")  # the provider rotates its keys
    principal = await authenticator.authenticate(idp.token(WRITE, kid="key-2"))

    assert principal.scopes == {WRITE}
    assert idp.jwks_requests == before + 2


async def test_unknown_kids_cannot_hammer_the_identity_provider(idp: IdentityProvider) -> None:
    authenticator = jwt_authenticator(idp, min_refresh_seconds=60)
    await authenticator.authenticate(idp.token(READ))
    before = idp.jwks_requests
    idp.add_key("never-published", publish=False)
    for _ in range(5):
        with pytest.raises(Exception, match="no signing key"):
            await authenticator.authenticate(idp.token(READ, kid="never-published"))
    assert idp.jwks_requests == before


async def test_an_unreachable_jwks_answers_503_internal(
    catalog: TriggerCatalog, store: Store, idp: IdentityProvider
) -> None:
    keys = JwksCache("http://127.0.0.1:9/keys", timeout_seconds=1)
    auth = ApiAuth(JwtAuthenticator(keys, issuer=idp.issuer, audience=AUDIENCE))
    async with served(catalog, store, auth) as http:
        response = await http.get("/v2/triggers", headers=headers(idp.token(READ)))
    assert response.status_code == 503
    assert response.json()["errorCode"] == "INTERNAL"


async def test_scopes_also_come_as_a_list_claim(idp: IdentityProvider) -> None:
    principal = await jwt_authenticator(idp).authenticate(idp.token("", scope=[READ, WRITE]))
    assert principal.scopes == {READ, WRITE}


# Limits


async def test_request_bodies_are_capped(catalog: TriggerCatalog, store: Store) -> None:
    limit = 4096
    async with served(catalog, store, None, max_body_bytes=limit) as http:
        base = len(_json({**TRIGGER, "filter": ""}))
        at_limit = {**TRIGGER, "filter": "a" * (limit - base)}  # a long (valid) field name
        over = {**TRIGGER, "filter": "a" * (limit - base + 1)}
        assert len(_json(at_limit)) == limit
        assert len(_json(over)) == limit + 1

        ok = await http.post("/v2/triggers", content=_json(at_limit))
        too_big = await http.post("/v2/triggers", content=_json(over))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b" " * 1024

        chunked = await http.post("/v2/triggers", content=chunks())

    assert ok.status_code == 201, ok.text
    assert too_big.status_code == 413
    assert too_big.json() == {
        "errorCode": "VALIDATION",
        "errorMessage": f"the request body is larger than {limit} bytes",
    }
    assert chunked.status_code == 413
    assert chunked.json()["errorCode"] == "VALIDATION"


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def test_query_parameters_are_bounded(catalog: TriggerCatalog, store: Store) -> None:
    async with served(catalog, store, None) as http:
        checks = [
            ({"pageSize": "1000"}, 200),
            ({"pageSize": "1001"}, 400),
            ({"pageSize": "0"}, 400),
            ({"name": "n" * 256}, 200),
            ({"name": "n" * 257}, 400),
            ({"cursor": "c" * 2049}, 400),
        ]
        for params, status in checks:
            response = await http.get("/v2/triggers", params=params)
            assert response.status_code == status, (params, response.text)
        at_limit = await http.get("/v2/triggers", params={"cursor": "c" * 2048})
        repeated = await http.get("/v2/triggers?name=a&name=b")
        v1_name = await http.get("/triggers", params={"name": "n" * 257})

    assert "cursor" in at_limit.json()["errorMessage"]  # refused as a bad cursor, not its size
    assert "at most 2048" not in at_limit.text
    assert repeated.status_code == 400
    assert repeated.json() == {
        "errorCode": "VALIDATION",
        "errorMessage": "query parameter 'name' is given more than once; give it once",
    }
    assert v1_name.status_code == 400
