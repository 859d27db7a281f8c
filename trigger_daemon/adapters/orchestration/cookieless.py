"""httpx's AsyncClient without a cookie jar: answers' cookies are neither read nor kept.

The orchestration API is called with a token, never a session, yet httpx reads every answer's
Set-Cookie through urllib's cookie jar, wrapping the request and the answer in urllib's types
on the way, whether or not a cookie comes back. httpx (0.27, 0.28) has no public switch for
that: a `http.cookiejar.CookieJar` passed as `cookies=` that refuses everything still pays for
the wrapping. So this client overrides its `cookies` property with cookies that stay empty.
It relies on httpx storing an answer's cookies with `client.cookies.extract_cookies(response)`
and reading the client's cookies through that property when it builds a request, which
tests/unit/adapters/orchestration/test_cookieless.py pins.
"""

from __future__ import annotations

from typing import Any

import httpx


class _AlwaysEmptyCookies(httpx.Cookies):
    """Cookies that never hold one: storing an answer's cookies, or setting one, does nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return


class CookielessAsyncClient(httpx.AsyncClient):
    """httpx's AsyncClient whose cookies stay empty, whatever the answers or the caller set."""

    _always_empty = _AlwaysEmptyCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._always_empty

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return
