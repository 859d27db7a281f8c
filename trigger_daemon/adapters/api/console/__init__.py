"""The console: a web page at `/ui/` (and `/api/orchestration/ui/`), a client of this API.

The server sends only the shell: the HTML page, its stylesheet and its script modules, read
from `static/` once. They hold no data: the script fetches every trigger, occurrence and
count through the same routes and scopes as the SDKs, with the bearer token the user gives
(kept in the tab's session storage). So the shell is public and each datum is authenticated.

Every answer carries a Content-Security-Policy that allows scripts, styles and requests to
this origin only (no inline script) and forbids framing; the script inserts API data as text.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The shell is small and changes with the daemon's version: always revalidated.
    "Cache-Control": "no-cache",
}


def _shell_files() -> dict[str, tuple[bytes, str]]:
    """Each file of static/ by name: its bytes and content type."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


def console_router() -> APIRouter:
    """`/ui` (redirects), `/ui/` (the page) and `/ui/{file}` (its stylesheet and scripts)."""
    files = _shell_files()
    router = APIRouter(include_in_schema=False)

    def shell(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise HTTPException(404, "Not Found")
        body, content_type = found
        return Response(body, media_type=content_type, headers=SECURITY_HEADERS)

    @router.get("/ui")
    async def to_slash(request: Request) -> Response:
        return RedirectResponse(request.url.path + "/", headers=SECURITY_HEADERS)

    @router.get("/ui/")
    async def page() -> Response:
        return shell("index.html")

    @router.get("/ui/{name}")
    async def asset(name: str) -> Response:
        return shell(name)

    return router
