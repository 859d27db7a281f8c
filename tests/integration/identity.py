"""A local OAuth2 identity provider for tests, shaped like Formance's auth service.

Serves a JWKS at `/keys` and a client-credentials token endpoint at `/oauth/token` over real
HTTP, from a thread: the Formance SDK asks for its token with a blocking client even in async
calls, so the provider must not share the test's event loop. Keys are generated per provider;
tokens carry `iss`, `aud`, `exp`, `sub` and a space-separated `scope`, signed RS256 with a `kid`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

AUDIENCE = "trigger-daemon"


class IdentityProvider:
    def __init__(self) -> None:
        self.keys: dict[str, RSAPrivateKey] = {}
        self.published: list[str] = []
        self.clients: dict[str, tuple[str, list[str]]] = {}
        self.jwks_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.add_key("key-1")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/api/auth"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/keys"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def add_client(self, client_id: str, secret: str, scopes: list[str]) -> None:
        self.clients[client_id] = (secret, scopes)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(
        self,
        scopes: list[str] | str,
        *,
        kid: str = "key-1",
        issuer: str | None = None,
        audience: str = AUDIENCE,
        expires_in: float = 300,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "sub": "client-1",
            "iat": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
            "scope": scopes if isinstance(scopes, str) else " ".join(scopes),
            **claims,
        }
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


def unsigned_token(payload: dict[str, Any]) -> str:
    """A JWT with `alg: none` and no signature, as an attacker would send it."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _handler_for(provider: IdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/keys":
                self._answer(404, {"error": "not_found"})
                return
            provider.jwks_requests += 1
            self._answer(200, provider.jwks())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            client = provider.clients.get(form.get("client_id", ""))
            if self.path != "/oauth/token" or form.get("grant_type") != "client_credentials":
                self._answer(400, {"error": "unsupported_grant_type"})
                return
            if client is None or client[0] != form.get("client_secret"):
                self._answer(401, {"error": "invalid_client"})
                return
            token = provider.token(client[1], sub=form["client_id"])
            self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler
