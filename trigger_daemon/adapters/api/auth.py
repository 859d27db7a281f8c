"""Who may call the API, and with which Formance scope.

    ApiAuth           what create_api takes: an Authenticator, and whether /metrics is guarded
    StaticTokens      bearer tokens from the configuration, compared in constant time
    JwtAuthenticator  OAuth2 access tokens (JWTs) checked against a JWKS URL, an issuer and an
                      audience; scopes from the `scope` claim, as Formance's auth service issues
    JwksCache         the signing keys: fetched on first use, kept `max_age_seconds`, fetched
                      again when a token names a key id not seen yet (at most every few seconds)
    requires(scope)   the FastAPI dependency each route declares

Scopes follow the Formance services: a read (GET) needs `orchestration:read` or
`orchestration:write`; a write (create, delete, test) needs `orchestration:write`. Missing or
invalid credentials answer 401 with `WWW-Authenticate: Bearer ...`; a valid token without the
scope answers 403. Nothing here logs or echoes a token.

Imports httpx, PyJWT and FastAPI; nothing of the daemon's but the error tree.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
import jwt
import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

READ = "orchestration:read"
WRITE = "orchestration:write"
# What each required scope is satisfied by (Formance: write implies read).
_SATISFIES: Mapping[str, frozenset[str]] = {
    READ: frozenset({READ, WRITE}),
    WRITE: frozenset({WRITE}),
}
REALM = "trigger-daemon"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a token stands for: its subject (for logs) and its scopes."""

    subject: str
    scopes: frozenset[str]


class AuthenticationFailed(Exception):
    """The credentials are not valid; the message is safe to show (it holds no token)."""


class KeysUnavailable(Exception):
    """The signing keys cannot be fetched, so no token can be verified now."""


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Principal:
        """The principal behind `token`; AuthenticationFailed when it is not valid."""
        ...


@dataclass(frozen=True, slots=True)
class ApiAuth:
    authenticator: Authenticator
    protect_metrics: bool = False


class StaticTokens:
    """Tokens from the configuration. Each comparison runs over every token and compares
    SHA-256 digests with `hmac.compare_digest`, so timing tells neither which token nor how
    much of one matched."""

    def __init__(self, tokens: Sequence[tuple[str, Iterable[str]]]) -> None:
        if not tokens:
            raise ValueError("StaticTokens needs at least one token")
        self._entries = [
            (_digest(token), Principal(f"token-{index + 1}", frozenset(scopes)))
            for index, (token, scopes) in enumerate(tokens)
        ]

    async def authenticate(self, token: str) -> Principal:
        digest = _digest(token)
        found: Principal | None = None
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        if found is None:
            raise AuthenticationFailed("the token is not valid")
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class JwksCache:
    """Signing keys by key id, from a JWKS URL."""

    def __init__(
        self,
        url: str,
        *,
        max_age_seconds: float = 300.0,
        min_refresh_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._transport = transport
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named `kid`; fetches the set when it is stale, or when `kid` is unknown and
        the last fetch is older than `min_refresh_seconds` (so unknown ids cannot hammer the
        identity provider)."""
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        unknown = kid not in self._keys
        may_refresh = self._fetched_at is None or now - self._fetched_at >= self._min_refresh
        if stale or (unknown and may_refresh):
            await self._refresh(stale_at=self._fetched_at)
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationFailed(f"no signing key with kid {kid!r}")
        return key

    async def _refresh(self, *, stale_at: float | None) -> None:
        async with self._lock:
            if self._fetched_at != stale_at:  # another request refreshed while we waited
                return
            try:
                keys = await self._fetch()
            except KeysUnavailable:
                if not self._keys:
                    raise
                log.warning("api.jwks_refresh_failed", jwks_url=self._url, keeping=len(self._keys))
                self._fetched_at = time.monotonic()  # retry after min_refresh, not every call
                return
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                response = await http.get(self._url)
                response.raise_for_status()
                document = response.json()
            key_set = jwt.PyJWKSet.from_dict(document)
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise KeysUnavailable(f"cannot fetch the JWKS from {self._url}: {exc}") from None
        keys: dict[str | None, jwt.PyJWK] = {key.key_id: key for key in key_set.keys}
        if len(key_set.keys) == 1:  # a lone key also serves tokens that name no kid
            keys.setdefault(None, key_set.keys[0])
        return keys


class JwtAuthenticator:
    """OAuth2 bearer JWTs: signature (an asymmetric algorithm from `algorithms`, never `none`),
    `exp`, `iss` and `aud` are required and checked; scopes come from `scope` (space-separated,
    or a list)."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway_seconds: float = 30.0,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = [name for name in algorithms if name.lower() != "none"]
        self._leeway = leeway_seconds

    async def authenticate(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationFailed("the token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise AuthenticationFailed(f"the token's algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = await self._keys.key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed("the token is not meant for this audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed("the token comes from another issuer") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"the token is not valid: {_short(exc)}") from None
        subject = claims.get("sub") or claims.get("client_id") or "unknown"
        return Principal(str(subject), _scopes(claims.get("scope")))


def _scopes(claim: Any) -> frozenset[str]:
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(item for item in claim if isinstance(item, str))
    return frozenset()


def _short(exc: Exception) -> str:
    return str(exc)[:200]


_bearer = HTTPBearer(
    auto_error=False,
    description="A bearer token: reads need orchestration:read (or orchestration:write), "
    "writes need orchestration:write.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def requires(auth: ApiAuth, scope: str) -> Callable[..., Awaitable[None]]:
    """A route dependency: 401 without valid credentials, 403 without `scope`."""
    accepted = _SATISFIES[scope]

    async def authorize(request: Request, credentials: Credentials) -> None:
        if credentials is None:
            raise _unauthorized(None, "authentication required: send Authorization: Bearer TOKEN")
        try:
            principal = await auth.authenticator.authenticate(credentials.credentials)
        except AuthenticationFailed as exc:
            log.info("api.unauthenticated", path=request.url.path, reason=str(exc))
            raise _unauthorized("invalid_token", str(exc)) from None
        except KeysUnavailable as exc:
            log.warning("api.jwks_unavailable", error=str(exc))
            message = "cannot verify tokens now: the signing keys are unavailable"
            raise HTTPException(503, message) from None
        if not principal.scopes & accepted:
            log.info("api.forbidden", path=request.url.path, subject=principal.subject, scope=scope)
            raise HTTPException(
                403,
                f"the token lacks the scope {scope}",
                headers={
                    "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
                    f'scope="{scope}"'
                },
            )

    return authorize


def _unauthorized(error: str | None, message: str) -> HTTPException:
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        challenge += f', error="{error}"'
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})
