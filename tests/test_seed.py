"""The seed: the article's content, faithfully and idempotently loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import make_engine
from db.seed import SEEDS_DIR, SeedError, load_seed_dir, read_seed_file, seed_id
from tests.conftest import event_url

ARTICLE = (SEEDS_DIR / "article.txt").read_text(encoding="utf-8")
SEED = read_seed_file(SEEDS_DIR / "article.yaml")


def test_every_quote_is_verbatim_from_the_article():
    quotes = [c.quote for e in SEED.events for c in e.claims if c.quote]
    assert len(quotes) >= 30
    for quote in quotes:
        assert quote in ARTICLE, quote


def test_every_event_has_a_claim_and_dates_that_bound_it():
    for event in SEED.events:
        assert event.claims, event.key
        assert event.date_start <= event.date_end, event.key


def test_a_malformed_seed_names_the_broken_reference(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("events:\n  - {key: e, event_type: Battles, sub_event_type: Armed clash,"
                   " date_start: 2018-01-01, date_end: 2018-01-01, date_precision: day,"
                   " place: atlantis, geo_precision: exact}\n")
    with pytest.raises(SeedError, match="event e.place refers to unknown key 'atlantis'"):
        read_seed_file(bad)


async def _snapshot(conn) -> dict[str, list]:
    tables = ["places", "place_names", "place_lineage", "actors", "actor_names", "actor_memberships", "documents",
              "events", "event_actors", "claims", "event_external_ids", "actor_external_ids", "place_external_ids"]
    return {t: sorted(map(tuple, (await conn.execute(text(f"SELECT * FROM {t}"))).all()), key=repr)
            for t in tables}


async def test_seeding_again_changes_nothing(fresh_database_url: str):
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            before = await _snapshot(conn)
            report = await load_seed_dir(conn)
            after = await _snapshot(conn)
    finally:
        await engine.dispose()
    assert not report.changed, report.summary()
    assert report.summary() == "seed: nothing to change"
    assert after == before  # not a single row rewritten, not even its updated_at


async def test_seed_ids_are_the_same_on_every_machine(client):
    body = (await client.get(event_url("al-qasr-strike"))).json()
    assert body["id"] == str(seed_id("event", "al-qasr-strike")) == "ec79b8c2-2ead-5e4e-9112-94fc433919cd"


async def test_the_al_qasr_strike_as_the_article_tells_it(client):
    event = (await client.get(event_url("al-qasr-strike"))).json()
    assert event["sub_event_type"] == "Air/drone strike"
    assert event["place"]["name"] == "Al-Qasr"
    assert [a["name"] for a in event["place"]["ancestors"]] == ["Syria", "Al Hasakah Governorate"]
    # No day is given for the strike: the date is kept coarse, not invented.
    assert event["date_precision"] != "day"

    claims = event["claims"]
    by_claimant = {c["claimant"]["name"] for c in claims}
    assert {"Syrian Observatory for Human Rights", "Syrian Arab News Agency", "US-led coalition"} <= by_claimant
    denial = next(c for c in claims if c["stance"] == "denies")
    assert denial["claimant"]["name"] == "US-led coalition"
    assert denial["via"]["name"] == "Associated Press"
    assert "no coalition airstrikes" in denial["quote"]
    assert denial["document"]["title"] == "Led strikes on Syria's Hasakah leave over two dozen civilians dead"

    sohr_uncertain = [c for c in claims if c["stance"] == "uncertain" and c["predicate"] == "perpetrator"]
    assert {c["value"]["actor"]["name"] for c in sohr_uncertain} == {"US-led coalition", "Iraqi forces"}

    toll = next(c for c in claims if c["predicate"] == "civilian_fatalities")
    assert toll["value"] == {"low": 25} and "over two dozen civilians" in toll["quote"]
    # "over two dozen": at least 25, and no source says how many more
    assert (event["fatalities"]["civilians_low"], event["fatalities"]["civilians"]) == (25, 25)
    assert event["fatalities"]["civilians_high"] is None and event["fatalities"]["high"] is None
    assert toll["id"] in event["fatalities"]["claim_ids"]


@pytest.mark.parametrize("key, sub_event_type, precision, place", [
    ("raf-motorbike-strike", "Air/drone strike", "month", "Syria"),
    ("raf-mosul-strikes", "Air/drone strike", "year", "Mosul"),
    ("northern-syria-missile-attack", "Shelling/artillery/missile attack", "month", "Northern Syria"),
    ("afrin-offensive", "Armed clash", "year", "Afrin District"),
    ("afrin-capture", "Armed clash", "month", "Afrin"),
    ("sdf-redeployment", "Change to group/activity", "year", "Eastern Syria"),
    ("captives-release", "Agreement", "month", "Northwestern Syria"),
    ("dumayr-surrender", "Agreement", "month", "Dumayr"),
    ("eastern-qalamoun-surrender", "Agreement", "month", "Eastern Qalamoun"),
])
async def test_each_event_of_the_article_is_there(client, key, sub_event_type, precision, place):
    """The article dates nothing to the day (only "2014" and "March"), so no event is day-precise."""
    event = (await client.get(event_url(key))).json()
    assert (event["sub_event_type"], event["date_precision"], event["place"]["name"]) == \
        (sub_event_type, precision, place)


async def test_figures_the_article_states_are_kept_with_their_words(client):
    redeploy = (await client.get(event_url("sdf-redeployment"))).json()
    fighters = next(c for c in redeploy["claims"] if c["predicate"] == "persons_involved")
    assert fighters["value"]["best"] == 1700 and "1,700 fighters" in fighters["quote"]

    release = (await client.get(event_url("captives-release"))).json()
    freed = next(c for c in release["claims"] if c["predicate"] == "persons_involved")
    assert freed["value"]["low"] == 37 and freed["claimant"]["name"] == "Syrian state media"

    capture = (await client.get(event_url("afrin-capture"))).json()
    assert capture["date_start"] == "2018-03-01" and capture["date_end"] == "2018-03-31"


async def test_memberships_are_time_bounded_relations(client):
    raf = (await client.get("/v1/actors", params={"q": "Royal Air Force"})).json()["data"][0]
    assert [(m["group"]["name"], m["relation"]) for m in raf["memberships"]] == [("US-led coalition", "member")]
    assert raf["parent"]["name"] == "UK Ministry of Defence"

    ypg = (await client.get("/v1/actors", params={"q": "YPG"})).json()["data"][0]
    sdf_membership = ypg["memberships"][0]
    assert sdf_membership["group"]["name"] == "Syrian Democratic Forces"
    assert sdf_membership["valid_from"] is None and sdf_membership["valid_to"] is None  # not stated
