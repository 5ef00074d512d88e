"""The pages for people in a real browser, with no internet: the front page, Swagger UI
at /docs and GraphiQL at /graphql, served over HTTP by uvicorn on the shipped data
(tests/browser.py: headless Chromium, no request to another host, no console error,
a screenshot of each page in var/test/artifacts/browser/)."""

from __future__ import annotations

import json

from schema.examples import EVENT_WITH_CLAIMS, STRIKES_BY_REGION_AND_MONTH
from tests.browser import browser, chromium, page, server_url  # noqa: F401 (fixtures)


def response_of(tab) -> dict:
    """GraphiQL's result pane, whole (CodeMirror draws only the lines in view)."""
    text = tab.evaluate("document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()")
    return json.loads(text)


def wait_for_response(tab, containing: str) -> dict:
    tab.locator(".graphiql-response").get_by_text(containing).first.wait_for()
    return response_of(tab)


def test_the_front_page_shows_what_is_loaded(page, server_url):
    page.goto(server_url + "/")
    assert page.title().startswith("conflictkb")
    assert page.locator("h1").inner_text() == "conflictkb"
    assert page.locator("#event-count").inner_text() == "16,580"  # the seed's 14 and UCDP's 16,566
    sources = page.locator("#sources").inner_text()
    assert "UCDP Georeferenced Event Dataset" in sources and "16,566" in sources
    assert "ucdp-ged-syria-2016-2019.csv.gz" in page.locator("#imports").inner_text()
    for link in ("/explore", "/docs", "/graphql", "/v1/events.csv", "/v1/events.geojson", "/v1/events.ndjson", "/v1/changes"):
        assert page.locator(f'a[href="{link}"]').count() == 1, link


def test_swagger_ui_lists_the_operations(page, server_url):
    page.goto(server_url + "/docs")
    page.locator(".opblock-summary-path").first.wait_for()  # the OpenAPI document is loaded and drawn
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/events" in paths and "/v1/stats/events" in paths and len(paths) > 20


def test_graphiql_runs_an_example_from_the_front_page_and_from_its_panel(page, server_url):
    page.goto(server_url + "/")
    page.get_by_role("link", name=STRIKES_BY_REGION_AND_MONTH.title).click()
    page.wait_for_url("**/graphql?q=*")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    editor.wait_for()
    assert "query StrikesByRegionAndMonth" in editor.inner_text()
    editor.click()
    page.keyboard.press("Control+Enter")
    strikes = wait_for_response(page, "Al Hasakah Governorate")["data"]["eventStats"]
    assert {"admin1": "Al Hasakah Governorate", "month": "2018-04"}.items() <= strikes[0].items()
    assert sum(row["events"] for row in strikes) >= 3

    # an example from GraphiQL's own Examples panel, run with the run button
    page.get_by_role("button", name="Show Examples").click()
    page.get_by_role("button", name=EVENT_WITH_CLAIMS.title).click()
    assert "query EventWithClaims" in editor.inner_text()
    page.locator(".graphiql-execute-button").click()
    event = wait_for_response(page, "Al-Qasr")["data"]["event"]
    assert event["subEventType"] == "Air/drone strike" and len(event["claims"]) >= 8
    assert {"DENIES", "ASSERTS", "UNCERTAIN"} <= {claim["stance"] for claim in event["claims"]}

    # the explorer plugin is there, and shows the query's fields. (Opened on this query:
    # graphiql-explorer, inside the plugin, cannot show a list of enums such as
    # eventStats' groupBy, and says so with a console error.)
    page.get_by_role("button", name="Show GraphiQL Explorer").click()
    explorer = page.locator(".graphiql-explorer-root")
    explorer.get_by_text("eventStats").first.wait_for()
    assert explorer.get_by_text("claims").count() >= 1

    # the documentation, the history and the dialogs (which add styles as they open)
    # (each panel shown before the next is asked for: a click while the previous one is
    # still rendering can be lost on a loaded machine)
    for panel, shown in (("Show Documentation Explorer", ".graphiql-doc-explorer"), ("Show History", ".graphiql-history")):
        page.get_by_role("button", name=panel).click()
        page.locator(shown).first.wait_for()
    # (the history lists the first query run; GraphiQL 4.1.2 has stopped listing the
    # second, run in the same tab from its Examples panel, on every run since 2026-12-04
    # 00:10 UTC, on code that listed it before: not understood, see the issue notes)
    page.locator(".graphiql-history").get_by_text("StrikesByRegionAndMonth").first.wait_for()
    for dialog in ("Open settings dialog", "Open short keys dialog"):
        page.get_by_role("button", name=dialog).click()
        page.get_by_role("dialog").wait_for()
        page.keyboard.press("Escape")
