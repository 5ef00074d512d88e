"""The derivation rules (db/derive.py): attribution status and fatalities from claims."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, select

from db import models as m
from db.derive import recompute_events
from db.engine import make_engine
from db.seed import seed_id
from tests.conftest import event_url


def _status(event: dict, actor_name: str, role: str = "perpetrator") -> dict:
    return next(a for a in event["actors"] if a["actor"]["name"] == actor_name and a["role"] == role)


async def test_the_coalition_is_contested_on_the_al_qasr_strike(client):
    event = (await client.get(event_url("al-qasr-strike"))).json()
    coalition = _status(event, "US-led coalition")
    assert coalition["status"] == "contested"
    reasons = {c["id"]: c for c in event["claims"] if c["id"] in coalition["status_claim_ids"]}
    assert {(c["claimant"]["name"], c["stance"]) for c in reasons.values()} == {
        ("Syrian Arab News Agency", "asserts"), ("US-led coalition", "denies")}
    # SOHR could not tell who struck: Iraqi forces are named by nobody with certainty.
    assert _status(event, "Iraqi forces")["status"] == "unknown"


async def test_israel_is_alleged_on_the_missile_attack(client):
    event = (await client.get(event_url("northern-syria-missile-attack"))).json()
    israel = _status(event, "Government of Israel")
    assert israel["status"] == "alleged"
    claimants = {c["claimant"]["name"] for c in event["claims"] if c["id"] in israel["status_claim_ids"]}
    assert claimants == {"Government of Iran", "Government of Syria"}


async def test_the_raf_is_confirmed_on_the_motorbike_strike_by_its_own_ministry(client):
    event = (await client.get(event_url("raf-motorbike-strike"))).json()
    raf = _status(event, "Royal Air Force")
    assert raf["status"] == "confirmed"
    (concession,) = [c for c in event["claims"] if c["id"] in raf["status_claim_ids"]]
    assert concession["stance"] == "concedes" and concession["claimant"]["name"] == "UK Ministry of Defence"
    assert event["fatalities"]["civilians"] == 1


async def test_the_raf_is_only_alleged_around_mosul(client):
    event = (await client.get(event_url("raf-mosul-strikes"))).json()
    assert _status(event, "Royal Air Force")["status"] == "alleged"
    assert event["fatalities"]["best"] is None  # "civilian deaths", no figure


# ---------------------------------------------------------------- the rules, case by case


class Scenario:
    """An event with claims written straight into a private database."""

    def __init__(self, conn):
        self.conn = conn
        self.event_id = uuid.uuid4()

    async def create(self) -> "Scenario":
        await self.conn.execute(insert(m.events).values(
            id=self.event_id, event_type="Explosions/Remote violence", sub_event_type="Air/drone strike",
            date_start=dt.date(2018, 5, 1), date_end=dt.date(2018, 5, 1), date_precision="day",
            place_id=seed_id("place", "al-qasr"), geo_precision="exact"))
        return self

    async def claim(self, claimant: str, predicate: str, stance: str, **value) -> uuid.UUID:
        claim_id = uuid.uuid4()
        if "actor" in value:
            value["value_actor_id"] = seed_id("actor", value.pop("actor"))
        await self.conn.execute(insert(m.claims).values(
            id=claim_id, event_id=self.event_id, claimant_id=seed_id("actor", claimant), predicate=predicate,
            stance=stance, **{k if k.startswith("value_") else f"value_{k}": v for k, v in value.items()}))
        return claim_id

    async def status(self, actor: str, role: str = "perpetrator") -> tuple[str, set[uuid.UUID]]:
        await recompute_events(self.conn, [self.event_id])
        row = (await self.conn.execute(select(m.event_actors.c.status, m.event_actors.c.status_claim_ids).where(
            m.event_actors.c.event_id == self.event_id, m.event_actors.c.actor_id == seed_id("actor", actor),
            m.event_actors.c.role == role))).one()
        return row.status, set(row.status_claim_ids)

    async def fatalities(self) -> tuple:
        await recompute_events(self.conn, [self.event_id])
        e = m.events.c
        return (await self.conn.execute(select(
            e.fatalities_low, e.fatalities_best, e.fatalities_high, e.civilian_fatalities_low,
            e.civilian_fatalities_best, e.civilian_fatalities_high).where(e.id == self.event_id))).one()


@pytest.fixture
async def scenario(fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.connect() as conn:
        yield await Scenario(conn).create()
        await conn.rollback()
    await engine.dispose()


async def test_one_assertion_alone_is_alleged(scenario):
    sana = await scenario.claim("sana", "perpetrator", "asserts", actor="us-led-coalition")
    assert await scenario.status("us-led-coalition") == ("alleged", {sana})


async def test_assertion_then_denial_is_contested_with_both_claims(scenario):
    sana = await scenario.claim("sana", "perpetrator", "asserts", actor="us-led-coalition")
    assert (await scenario.status("us-led-coalition"))[0] == "alleged"
    denial = await scenario.claim("us-led-coalition", "perpetrator", "denies", actor="us-led-coalition")
    assert await scenario.status("us-led-coalition") == ("contested", {sana, denial})


async def test_two_independent_sources_agreeing_confirm(scenario):
    sohr = await scenario.claim("sohr", "perpetrator", "asserts", actor="us-led-coalition")
    ap = await scenario.claim("ap", "perpetrator", "asserts", actor="us-led-coalition")
    assert await scenario.status("us-led-coalition") == ("confirmed", {sohr, ap})


async def test_parties_agreeing_do_not_confirm(scenario):
    # State media and a state are not independent sources, however many agree.
    await scenario.claim("sana", "perpetrator", "asserts", actor="government-of-israel")
    await scenario.claim("government-of-iran", "perpetrator", "asserts", actor="government-of-israel")
    assert (await scenario.status("government-of-israel"))[0] == "alleged"


async def test_one_source_twice_is_not_two_sources(scenario):
    await scenario.claim("bbc", "perpetrator", "asserts", actor="raf")
    await scenario.claim("bbc", "perpetrator", "asserts", actor="raf")
    assert (await scenario.status("raf"))[0] == "alleged"


async def test_independent_agreement_with_a_denial_is_contested(scenario):
    await scenario.claim("sohr", "perpetrator", "asserts", actor="us-led-coalition")
    await scenario.claim("ap", "perpetrator", "asserts", actor="us-led-coalition")
    await scenario.claim("us-led-coalition", "perpetrator", "denies", actor="us-led-coalition")
    assert (await scenario.status("us-led-coalition"))[0] == "contested"


async def test_a_concession_by_the_actor_or_its_ministry_confirms_over_denials(scenario):
    await scenario.claim("government-of-syria", "perpetrator", "denies", actor="raf")
    concession = await scenario.claim("uk-mod", "perpetrator", "concedes", actor="raf")
    assert await scenario.status("raf") == ("confirmed", {concession})


async def test_a_concession_by_an_outsider_counts_as_an_assertion(scenario):
    await scenario.claim("sana", "perpetrator", "concedes", actor="raf")
    assert (await scenario.status("raf"))[0] == "alleged"


async def test_only_uncertainty_or_denial_is_unknown(scenario):
    unsure = await scenario.claim("sohr", "perpetrator", "uncertain", actor="iraqi-forces")
    denial = await scenario.claim("iraqi-forces", "perpetrator", "denies", actor="iraqi-forces")
    assert await scenario.status("iraqi-forces") == ("unknown", {unsure, denial})


async def test_targets_follow_the_same_rule(scenario):
    await scenario.claim("sohr", "target", "asserts", actor="civilians")
    await scenario.claim("bbc", "target", "asserts", actor="civilians")
    assert (await scenario.status("civilians", role="target"))[0] == "confirmed"


async def test_fatalities_span_the_claims_and_take_the_median(scenario):
    await scenario.claim("sohr", "fatalities", "asserts", low=20, best=25, high=30)
    await scenario.claim("sana", "fatalities", "asserts", best=40)
    await scenario.claim("ap", "fatalities", "asserts", low=10, best=12)
    await scenario.claim("us-led-coalition", "fatalities", "denies", best=0)  # a denial carries no figure
    low, best, high, *_ = await scenario.fatalities()
    assert (low, best, high) == (10, 25, 40)


async def test_civilian_deaths_are_deaths(scenario):
    await scenario.claim("sohr", "civilian_fatalities", "asserts", low=25, best=25)
    await scenario.claim("ap", "fatalities", "asserts", best=10)
    assert await scenario.fatalities() == (25, 25, 25, 25, 25, 25)


async def test_a_figure_with_only_a_lower_bound_leaves_the_upper_bound_open(scenario):
    await scenario.claim("sohr", "civilian_fatalities", "asserts", low=25)   # "over two dozen"
    await scenario.claim("ap", "fatalities", "asserts", low=20, best=22, high=30)
    low, best, high, c_low, c_best, c_high = await scenario.fatalities()
    assert (c_low, c_best, c_high) == (25, 25, None)
    assert (low, best, high) == (25, 25, None)  # at least the civilians; no bound above


async def test_no_figure_means_unknown_not_zero(scenario):
    await scenario.claim("bbc", "civilian_fatalities", "asserts")
    assert await scenario.fatalities() == (None,) * 6


async def test_a_claim_value_must_fit_its_predicate(scenario):
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="a perpetrator claim takes a value of kind actor"):
        await scenario.claim("sohr", "perpetrator", "asserts", best=3)


async def test_an_upper_figure_alone_says_nothing_of_the_lower(scenario):
    await scenario.claim("sohr", "fatalities", "asserts", high=30)   # "up to 30"
    await scenario.claim("ap", "fatalities", "asserts", best=12)
    low, best, high, *_ = await scenario.fatalities()
    assert (low, best, high) == (12, 12, 30)
