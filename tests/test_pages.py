"""The pages for people without a browser (tests/test_browser.py has one): the front
page's figures, escaping, cache and policy; every example it and GraphiQL offer answers
with data on the shipped data; the static files, their caching and the vendored files'
integrity."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from api.pages import CHANGE_FEED, EXPORTS, REST_EXAMPLES, STATIC_DIR, content_version, vendored
from schema.examples import EXAMPLES
from tests.conftest import AIRSTRIKE, app_client, as_, execute_statements, statements_run

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
async def shipped(shipped_database_url, redis_url) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(shipped_database_url, redis_url) as http:
        yield http


def is_filled(value) -> bool:
    """An answer with something in it: a non-empty list, or an object with a non-empty field."""
    if isinstance(value, list):
        return bool(value)
    if isinstance(value, dict):
        return any(is_filled(item) or isinstance(item, (int, str)) and item for item in value.values())
    return value is not None


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.operation_name)
async def test_every_graphql_example_answers_with_data(shipped, example):
    answer = (await shipped.post("/graphql", json={"query": example.query})).json()
    assert "errors" not in answer, answer["errors"]
    assert all(is_filled(value) for value in answer["data"].values()), answer


async def test_every_rest_example_and_link_answers_with_data(shipped):
    for _, path in REST_EXAMPLES:
        answer = await shipped.get(path)
        assert answer.status_code == 200, (path, answer.text)
        body = answer.json()
        assert is_filled(body.get("data", body)), path
    for _, path in (*EXPORTS, ("feed", CHANGE_FEED)):
        async with shipped.stream("GET", path) as answer:
            assert answer.status_code == 200, path
            assert await anext(answer.aiter_bytes()), path


async def test_the_front_page_says_what_is_loaded_and_links_to_graphiql_with_each_example(shipped):
    page = await shipped.get("/", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in page.text and "<title>conflictkb" in page.text
    assert '<strong id="event-count">16,580</strong>' in page.text
    assert "UCDP Georeferenced Event Dataset" in page.text and "16,566" in page.text
    assert "2014-01-01" in page.text and "2019-12-01" in page.text
    assert "ucdp-ged-syria-2016-2019.csv.gz" in page.text
    linked = [parse_qs(urlsplit(html.unescape(href)).query)["q"][0]
              for href in re.findall(r'href="(/graphql\?[^"]*)"', page.text)]
    assert linked == [example.query for example in EXAMPLES]


async def test_the_figures_are_cached_until_a_write(fresh_client, keys):
    first = await fresh_client.get("/", headers=HTML)
    with statements_run(fresh_client) as statements:
        again = await fresh_client.get("/", headers=HTML)
    assert again.text == first.text
    assert not [sql for sql in statements if "dataset_files" in sql]  # from the answer cache

    created = await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
    assert created.status_code == 201
    after = await fresh_client.get("/", headers=HTML)
    assert after.text != first.text and "Written through the API" in after.text


async def test_what_the_page_shows_is_escaped_and_its_policy_does_not_follow_the_data(
        fresh_database_url, redis_url, shipped):
    await execute_statements(
        fresh_database_url,
        "INSERT INTO datasets (code, name) VALUES ('evil', '<script>alert(1)</script>')",
        "INSERT INTO dataset_files (sha256, dataset, file_name, summary) "
        "VALUES ('x', 'evil', '<img src=x onerror=alert(1)>', '\"><b>bold</b>')")
    async with app_client(fresh_database_url, redis_url) as http:
        page = await http.get("/", headers=HTML)
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<b>bold</b>" not in page.text
    policy = page.headers["content-security-policy"]
    assert policy == (await shipped.get("/", headers=HTML)).headers["content-security-policy"]
    assert "script-src 'none'" in policy  # the front page runs no script at all


async def test_static_files_are_cached_for_a_year_under_a_version_otherwise_revalidated(shipped):
    graphiql = vendored()["graphiql"]
    for versioned in (f"/static/vendor/{graphiql['directory']}/graphiql.min.js",
                      next(url for url in (await shipped.get("/docs", headers=HTML)).text.split('"')
                           if url.endswith("swagger-ui-bundle.js"))):
        answer = await shipped.get(versioned)
        assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert answer.headers["content-encoding"] == "gzip"  # ~1 MB of JavaScript travels as ~300 KB

    # the vendored files' record is not under a version: revalidated
    manifest = await shipped.get("/static/vendor/manifest.json")
    assert manifest.status_code == 200 and manifest.headers["cache-control"] == "no-cache"
    # ours, as the pages name them: with their content's hash, so also for a year
    explorer = (await shipped.get("/explore", headers=HTML)).text
    named = re.findall(r'(?:src|href)="(/static/conflictkb/[^"]+)"', explorer)
    assert {urlsplit(url).path for url in named} >= {"/static/conflictkb/explore.js", "/static/conflictkb/base.css"}
    for url in named:
        path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
        assert query == {"v": [content_version(STATIC_DIR / path.removeprefix("/static/"))]}
        answer = await shipped.get(url)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    # without the current hash (an old page, a typed URL): the file as it is now, revalidated
    for url in ("/static/conflictkb/graphiql.js", "/static/conflictkb/graphiql.js?v=0123456789abcdef"):
        ours = await shipped.get(url)
        assert ours.status_code == 200 and ours.headers["cache-control"] == "no-cache"
        unchanged = await shipped.get(url, headers={"if-none-match": ours.headers["etag"]})
        assert unchanged.status_code == 304
    assert (await shipped.get("/static/vendor/manifest.json/../../pages.py")).status_code == 404


def test_a_files_version_is_its_content(tmp_path):
    file = tmp_path / "page.js"
    file.write_text("one();")
    first = content_version(file)
    assert content_version(file) == first
    # an edit, or a deploy: a new URL for the pages rendered after it (another size: the
    # clock under a file's time may not tick between two writes this close)
    file.write_text("two(); three();")
    assert content_version(file) != first


def test_the_vendored_files_are_those_the_manifest_records():
    """scripts/vendor_assets.py wrote them: any other change shows here."""
    vendor = STATIC_DIR / "vendor"
    recorded = {f"{package['directory']}/{name}": digest
                for package in vendored().values() for name, digest in package["files"].items()}
    present = {str(path.relative_to(vendor)) for path in vendor.rglob("*") if path.is_file()} - {"manifest.json"}
    assert present == set(recorded)
    for path, digest in recorded.items():
        assert hashlib.sha256((vendor / path).read_bytes()).hexdigest() == digest, path
    assert all("LICENSE" in package["files"] for package in vendored().values())
