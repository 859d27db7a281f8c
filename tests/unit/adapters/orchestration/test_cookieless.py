"""The cookieless client, and the httpx behaviour it relies on: an answer's cookies are stored
through `client.cookies.extract_cookies(response)` and a request gets the client's cookies
through `client.cookies`. If an httpx upgrade changes either, these tests fail."""

from __future__ import annotations

import httpx
import pytest

from trigger_daemon.adapters.orchestration.cookieless import CookielessAsyncClient

URL = "http://orchestration.test/v2/workflows/wf/instances"


def answer_with_a_cookie(sent: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201, headers={"Set-Cookie": "session=abc; Path=/"}, json={})

    return httpx.MockTransport(handle)


class RecordingCookies(httpx.Cookies):
    def __init__(self) -> None:
        super().__init__()
        self.extracted_from: list[httpx.Response] = []

    def extract_cookies(self, response: httpx.Response) -> None:
        self.extracted_from.append(response)
        super().extract_cookies(response)


class RecordingCookiesClient(httpx.AsyncClient):
    """Overrides `cookies` the way CookielessAsyncClient does, to see what httpx does with it."""

    recorded = RecordingCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self.recorded

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return


async def test_httpx_stores_an_answers_cookies_through_the_cookies_property() -> None:
    sent: list[httpx.Request] = []
    async with RecordingCookiesClient(transport=answer_with_a_cookie(sent)) as client:
        response = await client.send(httpx.Request("POST", URL, json={}))

    assert client.recorded.extracted_from == [response]
    assert dict(client.recorded) == {"session": "abc"}


@pytest.mark.parametrize("client_class", [httpx.AsyncClient, CookielessAsyncClient])
async def test_a_cookie_an_answer_sets_is_sent_back_only_by_httpxs_own_client(
    client_class: type[httpx.AsyncClient],
) -> None:
    sent: list[httpx.Request] = []
    async with client_class(transport=answer_with_a_cookie(sent)) as client:
        await client.send(httpx.Request("POST", URL, json={}))
        await client.post(URL, json={})  # post() adds the client's cookies to its request

    keeps_cookies = client_class is httpx.AsyncClient
    assert (sent[1].headers.get("Cookie") == "session=abc") is keeps_cookies
    assert (dict(client.cookies) == {"session": "abc"}) is keeps_cookies


async def test_cookies_given_to_the_cookieless_client_are_never_sent() -> None:
    sent: list[httpx.Request] = []
    async with CookielessAsyncClient(
        transport=answer_with_a_cookie(sent), cookies={"given": "1"}
    ) as client:
        client.cookies = {"assigned": "2"}
        client.cookies.set("set", "3")
        client.cookies["item"] = "4"
        await client.post(URL, json={})

    assert "Cookie" not in sent[0].headers
    assert dict(client.cookies) == {}
