"""The explorer (/explore) in headless Chromium on the shipped data (tests/browser.py: no
request to another host, no console error, a screenshot of each test's page in
var/test/artifacts/browser/). What the page shows is checked against what the API
answers for the same filter, asked here over HTTP as any client would."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import urlopen


from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser import ARTIFACTS, browser, chromium, page, server_url  # noqa: F401 (fixtures)

# The README's picture of the page, made by the Al-Qasr test below at a desktop's size
# (docs/explorer.png is a copy: make it again when the page changes).
README_SCREENSHOT = ARTIFACTS / "explorer-al-qasr.png"
EVERY_EVENT = 16_580  # the seed's 14 and UCDP's 16,566


def api(server_url: str, path: str, **params) -> dict:
    with urlopen(f"{server_url}/v1{path}?{urlencode(params, doseq=True)}") as answer:
        return json.loads(answer.read())


def ready(tab) -> None:
    """The list, the map and the chart show the filter in the URL."""
    tab.locator("#explorer[data-state=ready][data-chart=ready]").wait_for(state="attached")


def query_of(tab) -> dict[str, list[str]]:
    return parse_qs(urlsplit(tab.url).query)


def test_the_page_shows_every_event_on_the_map_in_the_chart_and_the_list(page, server_url):
    page.goto(server_url + "/explore")
    ready(page)
    assert page.locator("#status").inner_text() == f"{EVERY_EVENT:,} events."
    placed = sum(1 for f in api(server_url, "/events.geojson", fields="id")["features"] if f["geometry"])
    assert int(page.locator("#explorer").get_attribute("data-map-events")) == placed
    assert page.locator("#map .marker-cluster").count() > 0  # clustered at this zoom
    assert page.locator("#map-note").inner_text().startswith(f"{EVERY_EVENT - placed} of these events have no")
    assert page.locator("#event-list li").count() == 50
    assert any(url.endswith("/countries-50m.json") for url in page.watched.requests)  # the base map, from here
    page.locator("#chart-table summary").click()
    header = page.locator("#chart-table thead th").all_inner_texts()
    # the eight provinces with most events, then the rest together
    assert header[0] == "month" and len(header) == 1 + 8 + 1 and header[-1].endswith(" other provinces")


def test_a_province_and_dates_update_the_map_the_chart_and_the_url(page, server_url):
    page.goto(server_url + "/explore")
    ready(page)
    province = page.get_by_label("Province", exact=True)
    province.press_sequentially("Hasak")  # suggestions as one types, from the API's places
    page.locator('#f-admin1-suggestions option[value="Al Hasakah Governorate"]').wait_for(state="attached")
    province.fill("Hasakah")  # any spelling: the API finds Al Hasakah Governorate
    page.get_by_label("From", exact=True).fill("2018-01-01")
    page.get_by_label("To", exact=True).fill("2018-12-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*/explore\?.*admin1=Hasakah.*"))
    assert query_of(page) == {"date_from": ["2018-01-01"], "date_to": ["2018-12-31"], "admin1": ["Hasakah"]}
    ready(page)

    asked = {"admin1": "Hasakah", "date_from": "2018-01-01", "date_to": "2018-12-31"}
    total = api(server_url, "/events", count="true", limit=1, **asked)["total"]
    assert 0 < total < 100
    page.locator("#status").get_by_text(f"{total} events match the filter.").wait_for()
    features = api(server_url, "/events.geojson", fields="id", **asked)["features"]
    assert int(page.locator("#explorer").get_attribute("data-map-events")) == sum(1 for f in features if f["geometry"])
    assert page.locator("#event-list li").count() == min(total, 50)
    # the chart: the twelve months of 2018, the events of each stacked by province
    assert page.locator("#explorer").get_attribute("data-chart-periods") == "12"
    page.locator("#chart-table summary").click()
    cells = page.locator("#chart-table tbody td").all_inner_texts()
    assert sum(int(cell) for cell in cells) == total  # an event counts once, in its first month
    # the exports link to the same events
    assert parse_qs(urlsplit(page.locator("#as-csv").get_attribute("href")).query) == {k: [v] for k, v in asked.items()}

    # a bar of the chart narrows the map to its province and month
    bar = page.evaluate("""() => {
        const chart = Chart.getChart(document.getElementById('chart'));
        const meta = chart.getDatasetMeta(0);
        const index = chart.data.datasets[0].data.findIndex((n) => n > 0);
        const box = chart.canvas.getBoundingClientRect();
        const element = meta.data[index];
        return {x: box.left + element.x, y: box.top + (element.y + element.base) / 2,
                month: chart.data.labels[index], province: chart.data.datasets[0].label};
    }""")
    page.mouse.click(bar["x"], bar["y"])
    page.wait_for_url(re.compile(rf".*date_from={bar['month']}-01.*"))
    ready(page)
    assert query_of(page)["admin1"] == [bar["province"]]
    narrowed = {"admin1": bar["province"], "date_from": f"{bar['month']}-01", "date_to": query_of(page)["date_to"][0]}
    assert narrowed["date_to"].startswith(bar["month"])
    in_bar = api(server_url, "/events", count="true", limit=1, **narrowed)["total"]
    page.locator("#status").get_by_text(f"{in_bar} events match the filter.").wait_for()

    # Back: the previous filter, shown again
    page.go_back()
    page.locator("#status").get_by_text(f"{total} events match the filter.").wait_for()
    assert page.get_by_label("Province", exact=True).input_value() == "Hasakah"


def test_a_marker_opens_its_event_and_the_list_pages_on(page, server_url):
    page.goto(server_url + "/explore?" + urlencode({"admin1": "Hasakah", "date_from": "2018-01-01"}))
    ready(page)
    page.locator("#map .event-dot").first.click()  # a marker on its own at this zoom
    popup = page.locator(".leaflet-popup .popup")
    popup.get_by_role("link", name="The claims behind it").click()
    page.locator("#event[data-state=ready]").wait_for()
    assert query_of(page)["event"] == [page.locator("#event").get_attribute("data-event")]
    page.keyboard.press("Escape")

    page.goto(server_url + "/explore")
    ready(page)
    first = page.locator("#event-list a").evaluate_all("links => links.map(a => a.href)")
    page.get_by_role("button", name="More events").click()
    page.locator("#event-list li").nth(99).wait_for()
    every = page.locator("#event-list a").evaluate_all("links => links.map(a => a.href)")
    assert every[:50] == first and len(set(every)) == 100  # the next page, after the first


def test_the_form_keeps_what_the_url_holds_back_and_forth(page, server_url):
    strikes = {"event_type": "Explosions/Remote violence", "sub_event_type": "Air/drone strike"}
    page.goto(server_url + "/explore?" + urlencode(strikes))
    ready(page)
    sub_event_type = page.get_by_label("Sub-event type", exact=True)
    expect(sub_event_type).to_have_value(strikes["sub_event_type"])  # once the types have come
    page.get_by_label("Event type", exact=True).select_option("Battles")
    sub_event_type.select_option("Armed clash")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*sub_event_type=Armed.*"))
    ready(page)
    page.go_back()  # the strikes again, their sub-event type among the choices of their type
    page.wait_for_url(re.compile(r".*sub_event_type=Air.*"))
    ready(page)
    assert page.get_by_label("Event type", exact=True).input_value() == strikes["event_type"]
    expect(sub_event_type).to_have_value(strikes["sub_event_type"])

    # a field given twice in a shared URL shows its first value, and keeps both while it is unchanged
    page.goto(server_url + "/explore?" + urlencode({"country": ["SYR", "IRQ"]}, doseq=True))
    ready(page)
    page.get_by_label("From", exact=True).fill("2018-01-01")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*date_from=2018-01-01.*"))
    assert query_of(page)["country"] == ["SYR", "IRQ"]


def held_back(tab, pattern: str) -> list:
    """The requests of `tab` matching `pattern`, held unanswered: route.fallback() sends one on."""
    held = []
    tab.route(re.compile(pattern), lambda route: held.append(route))
    return held


def test_a_new_filter_stops_the_requests_of_the_one_before(page, server_url):
    """The first view's map and chart are held unanswered; a province chosen meanwhile
    stops them (the server would stop streaming the export, and free its slot)."""
    # (the new filter's, with admin1, are answered; the first view's only end by being stopped)
    held = held_back(page, r".*/v1/(events\.ndjson|stats/events)\?(?!.*admin1=).*")
    stopped = []
    page.on("requestfailed", lambda request: stopped.append(request.url) if request.failure == "net::ERR_ABORTED"
            else None)
    page.goto(server_url + "/explore")
    page.locator("#explorer[data-state=loading][data-chart=loading]").wait_for(state="attached")  # started
    page.get_by_label("Province", exact=True).fill("Hasakah")
    page.get_by_role("button", name="Show").click()
    ready(page)
    total = api(server_url, "/events", count="true", limit=1, admin1="Hasakah")["total"]
    assert page.locator("#status").inner_text() == f"{total} events match the filter."
    held_urls = {route.request.url for route in held}
    assert len(held_urls) == 3  # the map's export and the chart's two statistics
    # (the first view's list may be stopped too, if it had not come yet)
    deadline = time.monotonic() + 10  # (the browser reports a stopped request as it gets to it)
    while not held_urls <= set(stopped) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held_urls <= set(stopped)


def test_what_is_typed_before_the_event_types_come_stays(page, server_url):
    held = held_back(page, r".*/v1/vocabularies$")
    page.goto(server_url + "/explore")
    ready(page)
    province = page.get_by_label("Province", exact=True)
    province.fill("Hasakah")
    types = page.get_by_label("Event type", exact=True).locator("option")
    assert types.count() == 1  # "Any" alone: the types have not come
    held[0].fallback()
    expect(types).not_to_have_count(1)
    assert province.input_value() == "Hasakah"


def test_a_filter_chosen_before_the_page_has_loaded_is_kept_and_shown(page, server_url):
    """The page's script and Leaflet are held back: a province typed before the script
    comes stays in its field, and shown before Leaflet comes, it is what the page shows."""
    held = held_back(page, r".*/(explore\.js|leaflet\.js)(\?v=\w+)?$")
    with page.expect_request(re.compile(r".*/leaflet\.js$")):  # (both asked for: held)
        page.goto(server_url + "/explore", wait_until="commit")  # (its load waits for them)
    province = page.get_by_label("Province", exact=True)
    province.fill("Hasakah")
    script = next(route for route in held if "explore.js" in route.request.url)
    with page.expect_request(re.compile(r".*/v1/events\.ndjson\?.*")):  # the script has run
        script.fallback()
    assert province.input_value() == "Hasakah"
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r".*/explore\?admin1=Hasakah$"))
    next(route for route in held if "leaflet.js" in route.request.url).fallback()
    ready(page)
    total = api(server_url, "/events", count="true", limit=1, admin1="Hasakah")["total"]
    assert page.locator("#status").inner_text() == f"{total} events match the filter."


def test_the_chart_by_week_and_as_fatalities_with_their_band(page, server_url):
    asked = {"admin1": "Hasakah", "date_from": "2018-01-01", "date_to": "2018-12-31"}
    page.goto(server_url + "/explore?" + urlencode({**asked, "period": "week", "measure": "fatalities"}))
    ready(page)
    assert page.locator("#chart-heading").inner_text() == "Fatalities by week"
    # 2018-W01 to 2019-W01 (31 December 2018 is the Monday of 2019's first ISO week)
    assert page.locator("#explorer").get_attribute("data-chart-periods") == "53"
    page.locator("#chart-table summary").click()
    assert page.locator("#chart-table thead th").all_inner_texts() == [
        "week", "low estimate", "high estimate", "best estimate"]
    rows = [row.split("\t") for row in page.locator("#chart-table tbody tr").all_inner_texts()]
    stats = api(server_url, "/stats/events", group_by="week", **asked)["data"]
    for column, key in ((1, "fatalities_low"), (2, "fatalities_high"), (3, "fatalities_best")):
        shown = [row[column] for row in rows if row[column] != "no upper bound"]
        assert sum(map(int, shown)) == sum(row[key] or 0 for row in stats) > 0
    # Al-Qasr's week: "over two dozen" has no upper bound, and the band is open there
    assert [row[0] for row in rows if row[2] == "no upper bound"] == ["2018-W13"]
    assert all(int(low) <= int(best) <= int(high) for _, low, high, best in rows if high != "no upper bound")

    page.get_by_role("radio", name="events").check()
    page.wait_for_url(re.compile(r"^(?!.*measure=).*period=week.*"))  # the default is left out of the URL
    ready(page)
    assert page.locator("#chart-heading").inner_text() == "Events by province and week"
    weekly = [row.split("\t") for row in page.locator("#chart-table tbody tr").all_inner_texts()]
    assert sum(int(cell) for row in weekly for cell in row[1:]) == sum(row["events"] for row in stats)


def test_the_al_qasr_strike_shows_the_coalitions_denial_beside_sanas_accusation(page, server_url):
    page.set_viewport_size({"width": 1600, "height": 1000})  # the map beside the panel, for the README
    page.goto(server_url + "/explore?" + urlencode({"q": "Al-Qasr"}))
    ready(page)
    page.get_by_role("link", name="Air/drone strike at Al-Qasr").click()
    panel = page.locator("#event[data-state=ready]")
    panel.wait_for()
    event_id = api(server_url, "/events/conflictkb-seed:al-qasr-strike")["id"]
    assert query_of(page) == {"q": ["Al-Qasr"], "event": [event_id]}  # the view can be shared
    assert panel.get_by_role("heading", level=2).inner_text() == "Air/drone strike at Al-Qasr"

    # the derived status beside the actor, with the claims that made it
    coalition = panel.locator('.attribution li[data-actor="US-led coalition"]')
    assert coalition.locator(".status").inner_text() == "contested"
    assert coalition.locator(".refs a").all_inner_texts() == ["Syrian Arab News Agency", "US-led coalition"]
    assert "at least 25" in panel.locator(".figures").inner_text()

    # who struck: SANA's accusation and the coalition's denial side by side, under the status
    who = panel.locator('.topic[data-predicate="perpetrator"] .subject[data-subject="US-led coalition"]')
    assert who.locator(".subject-label .status").inner_text() == "contested"
    sana = who.locator('.claim[data-claimant="Syrian Arab News Agency"]')
    denial = who.locator('.claim[data-claimant="US-led coalition"]')
    assert sana.get_attribute("data-stance") == "asserts" and denial.get_attribute("data-stance") == "denies"
    assert "held the coalition responsible" in sana.locator("blockquote").inner_text()
    assert "no coalition airstrikes" in denial.locator("blockquote").inner_text()
    assert "via Associated Press" in denial.locator(".channel").inner_text()
    left, right = sana.bounding_box(), denial.bounding_box()
    assert left["y"] == right["y"] and left["x"] + left["width"] <= right["x"]  # one row, SANA first
    assert "derives" in (sana.get_attribute("class") or "")  # highlighted: it made the status
    monitor = who.locator('.claim[data-claimant="Syrian Observatory for Human Rights"]')
    assert monitor.get_attribute("data-stance") == "uncertain"

    # linked records from other sources, and the history
    assert panel.locator(".linked li").count() >= 1
    assert "created event" in panel.locator(".history").inner_text()

    page.keyboard.press("Escape")
    page.locator("#event").wait_for(state="hidden")
    assert "event" not in query_of(page)

    # shared with its province: the event over Hasakah's map and chart (the README's picture)
    page.goto(server_url + "/explore?" + urlencode({"admin1": "Hasakah", "event": event_id}))
    ready(page)
    panel.wait_for()
    in_hasakah = api(server_url, "/events", admin1="Hasakah", count="true", limit=1)["total"]
    assert page.locator("#status").inner_text() == f"{in_hasakah} events match the filter."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(README_SCREENSHOT))


def test_a_shared_link_opens_the_event_and_a_phone_gets_one_column(page, server_url):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server_url + "/explore?event=conflictkb-seed:al-qasr-strike")
    page.locator("#event[data-state=ready]").wait_for()
    assert page.locator("#event").bounding_box()["width"] == 390  # the whole screen
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390  # nothing wider than the phone
    page.get_by_role("button", name="Close the event").click()
    ready(page)
    map_box, list_box = page.locator("#map").bounding_box(), page.locator("#results").bounding_box()
    assert list_box["y"] > map_box["y"] + map_box["height"]  # stacked, not beside


def test_a_filter_the_api_refuses_is_named_on_the_page(page, server_url):
    # the browser logs each refused request (422, 404) as a console error: those are expected here
    page.watched.expect_errors(r"status of (422|404)")
    page.goto(server_url + "/explore?" + urlencode({"admin1": "Atlantis"}))
    problem = page.locator("#problem")
    problem.wait_for()
    assert "admin1" in problem.inner_text() and "Atlantis" in problem.inner_text()
    assert page.get_by_label("Province", exact=True).get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Province", exact=True).get_attribute("aria-describedby") == "problem"
    # an event that is not there: the panel says so, with the API's reason
    page.goto(server_url + "/explore?event=conflictkb-seed:no-such-event")
    panel = page.locator("#event[data-state=failed]")
    panel.wait_for()
    assert panel.get_by_role("heading", level=2).inner_text() == "The event cannot be shown"
    assert "no-such-event" in panel.locator(".problem").inner_text()


def accessibility_problems(tab) -> list[str]:
    """What axe-core's rules (WCAG 2 A and AA, and best practice) find wrong in the page as shown."""
    found = Axe().run(tab).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in found]


def test_the_page_and_an_event_pass_axe_cores_accessibility_rules(page, server_url):
    page.goto(server_url + "/explore")
    ready(page)
    assert accessibility_problems(page) == []
    page.get_by_role("link", name=re.compile(" at ")).first.focus()  # the list, by keyboard
    page.keyboard.press("Enter")
    page.locator("#event[data-state=ready]").wait_for()
    assert page.evaluate("document.activeElement.id") == "event-heading"  # focus moves into the event
    assert accessibility_problems(page) == []
    page.keyboard.press("Escape")
    page.locator("#event").wait_for(state="hidden")
    assert " at " in page.evaluate("document.activeElement.textContent")  # and back to where it was
