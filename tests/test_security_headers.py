"""Security headers on every kind of answer; a strict CSP on the HTML pages that still
allows exactly what each page loads (api/security_headers.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.security_headers import install_security_headers
from tests.conftest import app_client, event_url, make_settings

API_CSP = "default-src 'none'; frame-ancestors 'none'"
EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
ORIGIN = "https://frontend.example"


def assert_api_headers(response: httpx.Response) -> None:
    for name, value in EVERYWHERE.items():
        assert response.headers.get(name) == value, (response.request.method, response.request.url, name)
    assert response.headers["content-security-policy"] == API_CSP
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"  # a public API, read cross-origin
    assert "strict-transport-security" not in response.headers  # plain HTTP: it would mean nothing


def directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in csp.split(";"))}


def inline_hashes(html: str, tag: str) -> list[str]:
    """The CSP hash of each inline <script>/<style> of a page, as a browser computes it."""
    bodies = re.findall(rf"<{tag}(?![^>]*\bsrc=)[^>]*>(.*?)</{tag}>", html, flags=re.S)
    return ["'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'" for body in bodies]


async def test_json_problem_304_head_and_streamed_answers_carry_them(client):
    listed = await client.get("/v1/events", params={"limit": 1})
    assert listed.status_code == 200
    assert_api_headers(listed)

    not_modified = await client.get("/v1/events", params={"limit": 1}, headers={"if-none-match": listed.headers["etag"]})
    assert not_modified.status_code == 304
    assert_api_headers(not_modified)

    head = await client.head(event_url("al-qasr-strike"))
    assert head.status_code == 200 and head.content == b""
    assert_api_headers(head)

    for problem in (await client.get("/v1/events/conflictkb-seed:nothing-like-it"),
                    await client.get("/v1/events", params={"limit": "many"}),
                    await client.get("/no/such/path")):
        assert problem.status_code in (404, 422)
        assert problem.headers["content-type"] == "application/problem+json"
        assert_api_headers(problem)

    async with client.stream("GET", "/v1/events.csv", params={"admin1": "Hasakah"}) as export:
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert_api_headers(export)
        await export.aread()

    for path in ("/openapi.json", "/healthz", "/readyz"):
        assert_api_headers(await client.get(path))

    graphql = await client.post("/graphql", json={"query": "{ events(first: 1) { totalCount } }"})
    assert graphql.status_code == 200
    assert_api_headers(graphql)  # the JSON of /graphql, not GraphiQL's page policy


async def test_cors_keeps_working_preflight_and_reads(client):
    preflight = await client.options("/v1/events", headers={
        "origin": ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert_api_headers(preflight)

    read = await client.get("/v1/events", params={"limit": 1}, headers={"origin": ORIGIN})
    assert read.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert_api_headers(read)


async def test_an_answer_from_a_middleware_carries_them(database_url, redis_url):
    """The key check for reads answers from its middleware, before any route."""
    settings = make_settings()
    settings.require_key_for_reads = True
    async with app_client(database_url, redis_url, settings) as http:
        refused = await http.get("/v1/events")
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert_api_headers(refused)


async def test_an_unhandled_error_carries_them():
    """Starlette answers those outside every added middleware: the headers wrap it too."""
    app = FastAPI()

    @app.get("/broken")
    async def broken():
        raise RuntimeError("a bug")

    install_security_headers(app, pages={}, hsts_max_age=0)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        failed = await http.get("/broken")
    assert failed.status_code == 500
    assert_api_headers(failed)


async def test_hsts_only_over_https(database_url, redis_url):
    async with app_client(database_url, redis_url) as http:
        http.base_url = "https://test"  # what uvicorn makes of a trusted proxy's X-Forwarded-Proto: https
        answer = await http.get("/healthz")
    assert answer.headers["strict-transport-security"] == "max-age=63072000"


PAGES = ["/", "/explore", "/docs", "/graphql"]


def loaded_urls(html: str) -> tuple[list[str], list[str]]:
    """The scripts and the stylesheets (and icons) a page loads, by URL."""
    scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    links = re.findall(r'<link[^>]*\bhref="([^"]+)"', html)
    return scripts, links


@pytest.mark.parametrize("path", PAGES)
async def test_html_pages_get_a_strict_csp_allowing_exactly_what_they_load(client, path):
    page = await client.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name, value in EVERYWHERE.items():
        assert page.headers[name] == value
    assert page.headers["cross-origin-resource-policy"] == "same-origin"
    csp = directives(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"] and csp["connect-src"] == ["'self'"]

    # no inline script or style at all: every one is a file of this server, so the
    # policy is 'self' and nothing broader (no hash, no 'unsafe-inline', no 'unsafe-eval')
    assert inline_hashes(page.text, "script") == [] and inline_hashes(page.text, "style") == []
    assert not re.search(r"<[^>]+\sstyle=", page.text)  # (a style attribute is inline CSS)
    scripts, links = loaded_urls(page.text)
    assert all(url.startswith("/static/") for url in scripts + links), (scripts, links)
    assert csp["script-src"] == (["'self'"] if scripts else ["'none'"])
    if path == "/graphql":  # GraphiQL's dialogs (Radix) add a <style> element as they open
        assert csp["style-src"] == ["'self'", "'unsafe-inline'"]
    else:
        assert csp["style-src"] == ["'self'"]
    assert all("unsafe" not in source for name, sources in csp.items() if name != "style-src" for source in sources)

    head = await client.head(path, headers={"accept": "text/html"})
    assert head.headers["content-security-policy"] == page.headers["content-security-policy"]
    # a browser revalidating the page takes the 304's headers in place of those it stored
    revalidated = await client.get(path, headers={"accept": "text/html,application/xhtml+xml",
                                                  "if-none-match": page.headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["content-security-policy"] == page.headers["content-security-policy"]


async def test_what_the_pages_load_is_served_here(client):
    """Every script, stylesheet and icon of every page is answered by this server (no
    CDN: the pages work with no internet)."""
    for path in PAGES:
        scripts, links = loaded_urls((await client.get(path, headers={"accept": "text/html"})).text)
        for url in scripts + links:
            asset = await client.get(url)
            assert asset.status_code == 200, (path, url)
            file = urlsplit(url).path
            kind = "javascript" if url in scripts else "css" if file.endswith(".css") else "svg"
            assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])


async def test_behind_a_root_path_the_page_policy_follows(database_url, redis_url):
    """Served under a prefix, the pages name their files and the schema under it."""
    async with app_client(database_url, redis_url) as http:
        transport = httpx.ASGITransport(app=http.app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as prefixed:
            page = await prefixed.get("/api/docs")
            assert page.status_code == 200 and "&#34;url&#34;: &#34;/api/openapi.json&#34;" in page.text
            scripts, links = loaded_urls(page.text)
            assert scripts and all(url.startswith("/api/static/") for url in scripts + links)
            assert (await prefixed.get(scripts[-1])).status_code == 200
            explorer = await prefixed.get("/api/explore", params={"admin1": "<b>Hasakah</b>"})
            # its code asks the API under the prefix; the query is read in the browser, never put in the page
            assert 'data-api="/api/v1"' in explorer.text and "<b>" not in explorer.text and "&lt;b" not in explorer.text
    csp = directives(page.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]
